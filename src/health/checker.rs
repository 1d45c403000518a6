//! One check of one real server: the kinds of check, compiled once from the configuration,
//! and the result every kind gives (verdict, weight, duration, a message for the operator).

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::syn::{Answer, Prober};
use super::{http, program, send_expect, HealthError};
use crate::config::model::Check;

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub healthy: bool,
    /// A weight the real server asked for (an HTTP header, a program's `weight=N`), before
    /// the check's bounds are applied.
    pub weight: Option<u32>,
    pub duration: Duration,
    /// For the operator: what was done and what came back. A fixed text when healthy, so that
    /// the common case allocates nothing.
    pub message: Cow<'static, str>,
}

/// What a probe found, before it is timed.
pub(super) struct Outcome {
    pub healthy: bool,
    pub weight: Option<u32>,
    pub message: Cow<'static, str>,
}

impl Outcome {
    pub fn healthy(message: impl Into<Cow<'static, str>>) -> Outcome {
        Outcome {
            healthy: true,
            weight: None,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<Cow<'static, str>>) -> Outcome {
        Outcome {
            healthy: false,
            weight: None,
            message: message.into(),
        }
    }
}

/// A check compiled from the configuration: its patterns, TLS settings and send bytes are
/// prepared once and shared by every real server of the virtual server.
pub enum Checker {
    /// A TCP connection that completes.
    Tcp,
    Http(http::HttpProbe),
    SendExpect(send_expect::SendExpectProbe),
    Program(program::ProgramProbe),
}

impl Checker {
    /// The checker of `check` (exactly one kind, as validation requires: the first wins).
    pub fn new(check: &Check) -> Result<Checker, HealthError> {
        if let Some(http) = &check.http {
            Ok(Checker::Http(http::HttpProbe::new(http)?))
        } else if let Some(se) = &check.send_expect {
            Ok(Checker::SendExpect(send_expect::SendExpectProbe::new(se)?))
        } else if let Some(program) = &check.program {
            Ok(Checker::Program(program::ProgramProbe::new(program)))
        } else {
            Ok(Checker::Tcp)
        }
    }

    /// Checks `target`; the whole check, connection included, takes at most `timeout`. A TCP
    /// check makes a full connection.
    pub async fn run(&self, target: SocketAddr, timeout: Duration) -> CheckResult {
        self.run_with(target, timeout, None).await
    }

    /// `run`, a TCP check sending a SYN with `prober` (half-open) when there is one.
    pub async fn run_with(
        &self,
        target: SocketAddr,
        timeout: Duration,
        prober: Option<&Prober>,
    ) -> CheckResult {
        let start = Instant::now();
        let outcome = match tokio::time::timeout(timeout, self.probe(target, prober)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::failed(self.timed_out(target, timeout)),
        };
        CheckResult {
            healthy: outcome.healthy,
            weight: outcome.weight,
            duration: start.elapsed(),
            message: outcome.message,
        }
    }

    async fn probe(&self, target: SocketAddr, prober: Option<&Prober>) -> Outcome {
        // The larger kinds are boxed so that a TCP check in flight stays a few hundred bytes,
        // not the size of a TLS session.
        match self {
            Checker::Tcp => match prober {
                Some(prober) if prober.reaches(target) => half_open(prober, target).await,
                _ => connect_only(target).await,
            },
            Checker::Http(probe) => Box::pin(probe.probe(target)).await,
            Checker::SendExpect(probe) => Box::pin(probe.probe(target)).await,
            Checker::Program(probe) => Box::pin(probe.probe(target)).await,
        }
    }

    /// The message of a check that took too long: what it was doing.
    fn timed_out(&self, target: SocketAddr, timeout: Duration) -> String {
        let after = seconds(timeout);
        match self {
            Checker::Tcp => format!("connect {target} timed out after {after}"),
            Checker::Http(probe) => format!("{} timed out after {after}", probe.doing(target)),
            Checker::SendExpect(probe) => {
                format!("{} timed out after {after}", probe.doing(target))
            }
            Checker::Program(probe) => format!(
                "program {} timed out after {after} and was killed",
                probe.path()
            ),
        }
    }
}

/// A SYN answered with a SYN-ACK is healthy, one answered with a reset is refused (see
/// `syn`); with every source port in use for `target`, a full connection.
async fn half_open(prober: &Prober, target: SocketAddr) -> Outcome {
    match prober.check(target).await {
        Some(answer) => outcome_of(answer, target, None),
        None => connect_only(target).await,
    }
}

/// The verdict on what `target` answered a SYN (`timeout`: the check's, for the message).
fn outcome_of(answer: Answer, target: SocketAddr, timeout: Option<Duration>) -> Outcome {
    match answer {
        Answer::Listening => Outcome::healthy("listening (SYN-ACK)"),
        Answer::Refused => Outcome::failed(format!("connect {target}: connection refused")),
        Answer::NotSent(why) => Outcome::failed(format!("connect {target}: {why}")),
        Answer::TimedOut => Outcome::failed(match timeout {
            Some(timeout) => format!("connect {target} timed out after {}", seconds(timeout)),
            None => format!("connect {target}: no answer"),
        }),
    }
}

/// The result of a TCP check that `Prober::start` ran: what `target` answered, after
/// `duration`.
pub(super) fn half_open_result(
    answer: Answer,
    target: SocketAddr,
    timeout: Duration,
    duration: Duration,
) -> CheckResult {
    let outcome = outcome_of(answer, target, Some(timeout));
    CheckResult {
        healthy: outcome.healthy,
        weight: None,
        duration,
        message: outcome.message,
    }
}

/// A connection that completes is healthy. It is closed with a reset (zero linger): a
/// director checking thousands of servers every few seconds would otherwise keep tens of
/// thousands of sockets in TIME_WAIT.
async fn connect_only(target: SocketAddr) -> Outcome {
    match TcpStream::connect(target).await {
        Ok(stream) => {
            let _ = stream.set_zero_linger();
            Outcome::healthy("connected")
        }
        Err(e) => Outcome::failed(format!("connect {target}: {}", io_text(&e))),
    }
}

/// An I/O error as a phrase: "connection refused", not "Connection refused (os error 111)".
pub(crate) fn io_text(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A duration for a message: "2 s", "1.5 s", "250 ms".
pub(crate) fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Up to `max` characters of `bytes` as text between quotes, control characters escaped, for
/// showing what a server answered.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("\"");
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A weight a server sent: a whole number, or why it is not one.
pub(crate) fn parse_weight(text: &str) -> Result<u32, String> {
    let text = text.trim();
    text.parse::<u32>()
        .map_err(|_| format!("'{text}' is not a whole number from 0 to {}", u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_phrases() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_text(&refused), "connection refused");
        let custom = io::Error::other("Bad thing");
        assert_eq!(io_text(&custom), "bad thing");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
    }

    #[test]
    fn excerpts_escape_and_cut() {
        assert_eq!(excerpt(b"+OK\r\n", 20), "\"+OK\\r\\n\"");
        assert_eq!(excerpt(b"abcdef", 3), "\"abc...\"");
        assert_eq!(excerpt(b"a\"b", 10), "\"a\\\"b\"");
    }

    #[test]
    fn a_tcp_check_in_flight_is_small() {
        let target: SocketAddr = "192.0.2.21:80".parse().expect("an address");
        let check = Checker::Tcp;
        let future = check.run_with(target, Duration::from_secs(1), None);
        let size = std::mem::size_of_val(&future);
        assert!(size < 1024, "{size} bytes");
    }

    #[test]
    fn weights_are_whole_numbers() {
        assert_eq!(parse_weight(" 7 "), Ok(7));
        assert!(parse_weight("-1")
            .unwrap_err()
            .contains("'-1' is not a whole number"));
        assert!(parse_weight("3.5").is_err());
    }
}
