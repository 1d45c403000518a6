//! Real-server health checking: checkers (TCP connect, HTTP and HTTPS, send/expect, external
//! program) run by one scheduler on the daemon's tokio runtime; a pure state machine per real
//! server (`rules`) turns their results into up, down and dynamic weights; only a change of
//! state becomes an `Event`, for the log and for the IPVS table (through `ipvs::Overrides`).
//!
//! The daemon's side, in order: `Health::new()` gives the handle, the `Runner` to spawn and
//! the receiver of events; `Health::update(&config)` on every configuration (the state of a
//! check that did not change is kept); on each event, an IPVS round over the virtual server it
//! concerns: `ipvs::desired_with(&config, &health)` has the failed real servers out and the
//! sorry servers in (`Overrides::sorry`); `Health::snapshot()` for `ctl`.

mod checker;
mod http;
mod program;
pub mod rules;
mod schedule;
mod send_expect;
pub mod syn;

use std::fmt;
use std::io;

pub use checker::{CheckResult, Checker};
pub use rules::{Change, Counts, Event, LastResult, Rules, ServerHealth, State};
pub use schedule::{Health, Runner, ServerSnapshot, ServiceSnapshot, Snapshot, MAX_IN_FLIGHT};

/// Why a configured check cannot run. Its virtual server is then left unchecked: its real
/// servers stay as configured, since a check the director cannot make proves nothing about
/// them.
#[derive(Debug)]
pub enum HealthError {
    /// The CA file of an HTTPS check could not be read.
    ReadCa { path: String, source: io::Error },
    /// The CA file holds no certificate, or one rustls refuses.
    LoadCa { path: String, reason: String },
    /// rustls refused the client configuration.
    Tls(rustls::Error),
    /// An expect pattern is not a regular expression (validation reports it first).
    Regex {
        pattern: String,
        source: regex_lite::Error,
    },
    /// A send string has an unknown escape (validation reports it first).
    Send(String),
}

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthError::ReadCa { path, source } => {
                write!(
                    f,
                    "reading the CA file {path}: {}",
                    checker::io_text(source)
                )
            }
            HealthError::LoadCa { path, reason } => write!(f, "CA file {path}: {reason}"),
            HealthError::Tls(e) => write!(f, "TLS client configuration: {e}"),
            HealthError::Regex { pattern, source } => {
                write!(f, "/{pattern}/ is not a regular expression: {source}")
            }
            HealthError::Send(why) => write!(f, "send string: {why}"),
        }
    }
}

impl std::error::Error for HealthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HealthError::ReadCa { source, .. } => Some(source),
            HealthError::Tls(e) => Some(e),
            HealthError::Regex { source, .. } => Some(source),
            HealthError::LoadCa { .. } | HealthError::Send(_) => None,
        }
    }
}

/// Serde of a `Duration` as whole milliseconds, for the state shown by `ctl`.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    /// The same for an `Option<Duration>`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
        }
    }
}
