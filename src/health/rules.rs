//! The rules that turn check results into a real server's state, as a pure function of the
//! results and the time they came: no I/O, time passed in, so that tests step it result by
//! result on a simulated clock.
//!
//! - A real server starts `Unknown`, which counts as up: a reboot or a restart of the daemon
//!   does not empty the IPVS table. Its first check decides at once: a success makes it `Up`
//!   (quietly: nothing changes in IPVS), a failure makes it `Down` without waiting for `fall`
//!   failures, since nothing says it was ever up.
//! - `Up` goes `Down` at the `fall`th failure in a row; a success in between starts the count
//!   again.
//! - `Down` comes back `Up` after `rise` successes in a row, and only once `reentry` has passed
//!   since the first of them (Piranha's re-entry time). Results come at the check's interval,
//!   so that is the first success at or after that time. A failure starts both again.
//! - A down real server is `Override::Down`: IPVS removes it, or sets its weight to 0 when the
//!   virtual server is quiescent (`ipvs::desired_with` decides).
//! - A successful check of an up server that returns a weight sets the server's weight to it,
//!   held within the check's `min_weight..=max_weight`; one that returns none puts the
//!   configured weight back. A weight is a change of its own, not of state.
//! - A virtual server's sorry server is in while none of its enabled real servers is up (or
//!   unknown), and out as soon as one is.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::checker::{seconds, CheckResult};
use crate::config::model::{Check, VirtualServer};
use crate::ipvs::Override;

/// The numbers of a check that the rules follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub rise: u32,
    pub fall: u32,
    pub reentry: Duration,
    pub min_weight: u32,
    pub max_weight: u32,
}

impl Rules {
    pub fn of(vs: &VirtualServer, check: &Check) -> Rules {
        let (min_weight, max_weight) = check.weight_bounds();
        Rules {
            rise: check.rise.max(1),
            fall: check.fall.max(1),
            reentry: vs.reentry.map_or(Duration::ZERO, |span| {
                Duration::from_millis(span.as_millis())
            }),
            min_weight,
            max_weight: max_weight.max(min_weight),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not checked yet: in service as configured.
    Unknown,
    Up,
    Down,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Unknown => "unknown",
            State::Up => "UP",
            State::Down => "DOWN",
        })
    }
}

/// The last check's result, as kept for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastResult {
    pub healthy: bool,
    #[serde(with = "super::millis")]
    pub duration: Duration,
    pub message: Cow<'static, str>,
    /// When it came (time since the health checks started).
    #[serde(with = "super::millis")]
    pub at: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub checks: u64,
    pub successes: u64,
    pub failures: u64,
    /// The current run: successes or failures in a row (the other is 0).
    pub successes_in_a_row: u32,
    pub failures_in_a_row: u32,
}

/// Everything known of one real server's health. Times are since the health checks started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    pub state: State,
    /// When the state last changed.
    #[serde(with = "super::millis")]
    pub since: Duration,
    pub last: Option<LastResult>,
    pub counts: Counts,
    /// When the run of successes that may bring a down server back began.
    #[serde(with = "super::millis::option")]
    pub rising_since: Option<Duration>,
    /// The weight from the checks (bounded), instead of the configured one.
    pub weight: Option<u32>,
}

/// A change a result made to a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Down {
        failures: u32,
    },
    Up {
        successes: u32,
        /// How long it has been healthy.
        over: Duration,
        weight: Option<u32>,
    },
    /// `None`: the configured weight.
    Weight {
        from: Option<u32>,
        to: Option<u32>,
    },
}

impl ServerHealth {
    pub fn new(now: Duration) -> ServerHealth {
        ServerHealth {
            state: State::Unknown,
            since: now,
            last: None,
            counts: Counts::default(),
            rising_since: None,
            weight: None,
        }
    }

    /// What the health checks say to IPVS of this real server (`None`: as configured).
    pub fn ipvs_override(&self) -> Option<Override> {
        match self.state {
            State::Down => Some(Override::Down),
            State::Up | State::Unknown => self.weight.map(Override::Weight),
        }
    }

    /// Whether this server takes connections as far as health goes.
    pub fn serving(&self) -> bool {
        self.state != State::Down
    }

    /// Takes in one result that came at `now`; the change it makes, if any.
    pub fn record(&mut self, rules: &Rules, result: CheckResult, now: Duration) -> Option<Change> {
        let healthy = result.healthy;
        let weight = result
            .weight
            .map(|w| w.clamp(rules.min_weight, rules.max_weight));
        let counts = &mut self.counts;
        counts.checks += 1;
        if healthy {
            counts.successes += 1;
            counts.successes_in_a_row = counts.successes_in_a_row.saturating_add(1);
            counts.failures_in_a_row = 0;
        } else {
            counts.failures += 1;
            counts.failures_in_a_row = counts.failures_in_a_row.saturating_add(1);
            counts.successes_in_a_row = 0;
            self.rising_since = None;
        }
        self.last = Some(LastResult {
            healthy,
            duration: result.duration,
            message: result.message,
            at: now,
        });
        let failures = self.counts.failures_in_a_row;
        let successes = self.counts.successes_in_a_row;
        match (self.state, healthy) {
            (State::Unknown, true) => {
                self.enter(State::Up, now);
                self.set_weight(weight)
            }
            (State::Unknown, false) => {
                self.enter(State::Down, now);
                Some(Change::Down { failures })
            }
            (State::Up, true) => self.set_weight(weight),
            (State::Up, false) if failures >= rules.fall => {
                self.enter(State::Down, now);
                self.weight = None;
                Some(Change::Down { failures })
            }
            (State::Up, false) | (State::Down, false) => None,
            (State::Down, true) => {
                let first = *self.rising_since.get_or_insert(now);
                let over = now.saturating_sub(first);
                if successes >= rules.rise && over >= rules.reentry {
                    self.enter(State::Up, now);
                    self.weight = weight;
                    Some(Change::Up {
                        successes,
                        over,
                        weight,
                    })
                } else {
                    None
                }
            }
        }
    }

    fn enter(&mut self, state: State, now: Duration) {
        self.state = state;
        self.since = now;
        self.rising_since = None;
    }

    fn set_weight(&mut self, weight: Option<u32>) -> Option<Change> {
        if weight == self.weight {
            return None;
        }
        let from = std::mem::replace(&mut self.weight, weight);
        Some(Change::Weight { from, to: weight })
    }
}

/// Whether a virtual server with a sorry server needs it: none of its enabled real servers
/// is serving. The items are (enabled, health) of each real server.
pub fn sorry_needed<'a>(servers: impl IntoIterator<Item = (bool, &'a ServerHealth)>) -> bool {
    !servers
        .into_iter()
        .any(|(enabled, health)| enabled && health.serving())
}

/// A change, as logged and as sent to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Server {
        virtual_server: Arc<str>,
        real_server: Arc<str>,
        target: SocketAddr,
        change: Change,
        /// The message of the result that made the change.
        last: Cow<'static, str>,
    },
    Sorry {
        virtual_server: Arc<str>,
        server: SocketAddr,
        active: bool,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Server {
                virtual_server,
                real_server,
                target,
                change,
                last,
            } => {
                write!(f, "{real_server} {target} of {virtual_server} ")?;
                match *change {
                    Change::Down { failures: 1 } => write!(f, "is DOWN: {last}"),
                    Change::Down { failures } => {
                        write!(f, "is DOWN: {failures} failures in a row, last: {last}")
                    }
                    Change::Up {
                        successes,
                        over,
                        weight,
                    } => {
                        let s = if successes == 1 { "" } else { "es" };
                        write!(f, "is UP: {successes} success{s} in a row")?;
                        if !over.is_zero() {
                            write!(f, " over {}", seconds(over))?;
                        }
                        if let Some(weight) = weight {
                            write!(f, ", weight {weight}")?;
                        }
                        write!(f, ", last: {last}")
                    }
                    Change::Weight { from, to } => {
                        let text = |w: Option<u32>| {
                            w.map_or_else(|| "as configured".to_string(), |w| w.to_string())
                        };
                        write!(f, "weight {} (was {})", text(to), text(from))
                    }
                }
            }
            Event::Sorry {
                virtual_server,
                server,
                active: true,
            } => write!(
                f,
                "every real server of {virtual_server} is down: sorry server {server} in"
            ),
            Event::Sorry {
                virtual_server,
                server,
                active: false,
            } => write!(
                f,
                "a real server of {virtual_server} is back: sorry server {server} out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated clock: seconds since start.
    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn ok() -> CheckResult {
        CheckResult {
            healthy: true,
            weight: None,
            duration: Duration::from_millis(3),
            message: Cow::Borrowed("connected"),
        }
    }

    fn weighted(weight: u32) -> CheckResult {
        CheckResult {
            weight: Some(weight),
            ..ok()
        }
    }

    fn failed() -> CheckResult {
        CheckResult {
            healthy: false,
            weight: None,
            duration: Duration::from_millis(1),
            message: Cow::Borrowed("connect 192.0.2.21:80: connection refused"),
        }
    }

    fn rules(rise: u32, fall: u32, reentry: u64) -> Rules {
        Rules {
            rise,
            fall,
            reentry: at(reentry),
            min_weight: 0,
            max_weight: 65535,
        }
    }

    /// A server proven up at time 0.
    fn up(rules: &Rules) -> ServerHealth {
        let mut server = ServerHealth::new(at(0));
        assert_eq!(server.record(rules, ok(), at(0)), None);
        assert_eq!(server.state, State::Up);
        server
    }

    #[test]
    fn an_unchecked_server_is_in_service_and_its_first_check_decides() {
        let r = rules(2, 3, 10);
        let server = ServerHealth::new(at(0));
        assert_eq!(server.state, State::Unknown);
        assert_eq!(server.ipvs_override(), None);
        assert!(server.serving());
        // A first success changes nothing in IPVS: no event.
        let mut first_ok = ServerHealth::new(at(0));
        assert_eq!(first_ok.record(&r, ok(), at(1)), None);
        assert_eq!((first_ok.state, first_ok.since), (State::Up, at(1)));
        // A first failure takes it out at once, whatever fall says.
        let mut first_bad = ServerHealth::new(at(0));
        assert_eq!(
            first_bad.record(&r, failed(), at(1)),
            Some(Change::Down { failures: 1 })
        );
        assert_eq!(first_bad.ipvs_override(), Some(Override::Down));
    }

    #[test]
    fn fall_failures_in_a_row_take_a_server_down_exactly_at_the_last() {
        let r = rules(1, 3, 0);
        let mut server = up(&r);
        assert_eq!(server.record(&r, failed(), at(2)), None);
        assert_eq!(server.record(&r, failed(), at(4)), None);
        assert_eq!(server.ipvs_override(), None);
        assert_eq!(
            server.record(&r, failed(), at(6)),
            Some(Change::Down { failures: 3 })
        );
        assert_eq!((server.state, server.since), (State::Down, at(6)));
        assert_eq!(server.ipvs_override(), Some(Override::Down));
        // Further failures are no news.
        assert_eq!(server.record(&r, failed(), at(8)), None);
        assert_eq!(server.counts.failures_in_a_row, 4);
    }

    #[test]
    fn a_success_in_between_starts_the_failures_again() {
        let r = rules(1, 3, 0);
        let mut server = up(&r);
        for t in [2, 4] {
            assert_eq!(server.record(&r, failed(), at(t)), None);
        }
        assert_eq!(server.record(&r, ok(), at(6)), None);
        for t in [8, 10] {
            assert_eq!(server.record(&r, failed(), at(t)), None);
        }
        assert_eq!(server.state, State::Up);
        assert_eq!(
            server.record(&r, failed(), at(12)),
            Some(Change::Down { failures: 3 })
        );
        assert_eq!(
            server.counts,
            Counts {
                checks: 7,
                successes: 2,
                failures: 5,
                successes_in_a_row: 0,
                failures_in_a_row: 3,
            }
        );
    }

    #[test]
    fn rise_successes_and_the_reentry_time_bring_a_server_back() {
        let r = rules(2, 1, 10);
        let mut server = up(&r);
        assert_eq!(
            server.record(&r, failed(), at(2)),
            Some(Change::Down { failures: 1 })
        );
        // Two successes, but only 2 s: not yet.
        assert_eq!(server.record(&r, ok(), at(4)), None);
        assert_eq!(server.rising_since, Some(at(4)));
        assert_eq!(server.record(&r, ok(), at(6)), None);
        assert_eq!(server.record(&r, ok(), at(12)), None);
        assert_eq!(server.state, State::Down);
        // 10 s after the first success of the run.
        assert_eq!(
            server.record(&r, ok(), at(14)),
            Some(Change::Up {
                successes: 4,
                over: at(10),
                weight: None
            })
        );
        assert_eq!((server.state, server.since), (State::Up, at(14)));
        assert_eq!(server.ipvs_override(), None);
    }

    #[test]
    fn a_failure_while_rising_starts_the_reentry_time_again() {
        let r = rules(2, 1, 10);
        let mut server = up(&r);
        server.record(&r, failed(), at(0));
        server.record(&r, ok(), at(2));
        server.record(&r, ok(), at(4));
        assert_eq!(server.record(&r, failed(), at(6)), None);
        assert_eq!(server.rising_since, None);
        server.record(&r, ok(), at(8));
        assert_eq!(server.record(&r, ok(), at(16)), None);
        assert!(matches!(
            server.record(&r, ok(), at(18)),
            Some(Change::Up { .. })
        ));
    }

    #[test]
    fn rise_alone_counts_without_a_reentry_time() {
        let r = rules(3, 1, 0);
        let mut server = up(&r);
        server.record(&r, failed(), at(0));
        assert_eq!(server.record(&r, ok(), at(1)), None);
        assert_eq!(server.record(&r, ok(), at(2)), None);
        assert_eq!(
            server.record(&r, ok(), at(3)),
            Some(Change::Up {
                successes: 3,
                over: at(2),
                weight: None
            })
        );
    }

    #[test]
    fn weights_from_checks_are_held_within_bounds_and_said_once() {
        let r = Rules {
            min_weight: 1,
            max_weight: 50,
            ..rules(1, 1, 0)
        };
        let mut server = up(&r);
        assert_eq!(
            server.record(&r, weighted(7), at(1)),
            Some(Change::Weight {
                from: None,
                to: Some(7)
            })
        );
        assert_eq!(server.ipvs_override(), Some(Override::Weight(7)));
        // The same weight again is no news.
        assert_eq!(server.record(&r, weighted(7), at(2)), None);
        assert_eq!(
            server.record(&r, weighted(1000), at(3)),
            Some(Change::Weight {
                from: Some(7),
                to: Some(50)
            })
        );
        assert_eq!(
            server.record(&r, weighted(0), at(4)),
            Some(Change::Weight {
                from: Some(50),
                to: Some(1)
            })
        );
        // A success without a weight: the configured weight again.
        assert_eq!(
            server.record(&r, ok(), at(5)),
            Some(Change::Weight {
                from: Some(1),
                to: None
            })
        );
        assert_eq!(server.ipvs_override(), None);
    }

    #[test]
    fn a_down_server_keeps_down_whatever_weight_and_comes_back_with_it() {
        let r = rules(2, 1, 0);
        let mut server = up(&r);
        server.record(&r, weighted(9), at(1));
        server.record(&r, failed(), at(2));
        assert_eq!(server.ipvs_override(), Some(Override::Down));
        assert_eq!(server.weight, None);
        assert_eq!(server.record(&r, weighted(4), at(3)), None);
        assert_eq!(server.ipvs_override(), Some(Override::Down));
        assert_eq!(
            server.record(&r, weighted(5), at(4)),
            Some(Change::Up {
                successes: 2,
                over: at(1),
                weight: Some(5)
            })
        );
        assert_eq!(server.ipvs_override(), Some(Override::Weight(5)));
    }

    #[test]
    fn a_quiescent_virtual_server_gets_weight_0_not_removal() {
        use crate::config::from_toml;
        use crate::ipvs::desired_with;

        let config = from_toml(
            r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
quiescent = true
check = { interval = "2s", timeout = "1s", tcp = {} }
real_servers = [
  { name = "a", address = "192.0.2.21", weight = 5 },
  { name = "b", address = "192.0.2.22", weight = 5 },
]
"#,
        )
        .expect("a configuration");
        let r = rules(1, 1, 0);
        let mut a = up(&r);
        a.record(&r, failed(), at(1));
        struct Only(ServerHealth);
        impl crate::ipvs::Overrides for Only {
            fn real_server(
                &self,
                _: &VirtualServer,
                rs: &crate::config::model::RealServer,
            ) -> Option<Override> {
                if rs.name == "a" {
                    self.0.ipvs_override()
                } else {
                    None
                }
            }
        }
        let table = desired_with(&config, &Only(a.clone()));
        let weights: Vec<u32> = table.services[0]
            .destinations
            .iter()
            .map(|d| d.weight)
            .collect();
        assert_eq!(weights, [0, 5]);
        // Not quiescent: removed.
        let mut config = config;
        config.virtual_servers[0].quiescent = false;
        let table = desired_with(&config, &Only(a));
        assert_eq!(table.services[0].destinations.len(), 1);
    }

    #[test]
    fn the_sorry_server_is_needed_only_when_no_enabled_server_serves() {
        let r = rules(1, 1, 0);
        let mut a = up(&r);
        let mut b = up(&r);
        assert!(!sorry_needed([(true, &a), (true, &b)]));
        a.record(&r, failed(), at(1));
        assert!(!sorry_needed([(true, &a), (true, &b)]));
        // A disabled server takes no connections, up or not.
        assert!(sorry_needed([(true, &a), (false, &b)]));
        b.record(&r, failed(), at(1));
        assert!(sorry_needed([(true, &a), (true, &b)]));
        // One back: out again.
        b.record(&r, ok(), at(2));
        assert!(!sorry_needed([(true, &a), (true, &b)]));
        // Unchecked servers count as serving.
        assert!(!sorry_needed([(true, &ServerHealth::new(at(0)))]));
    }

    #[test]
    fn events_read_as_log_lines() {
        let event = |change| Event::Server {
            virtual_server: "web".into(),
            real_server: "rs1".into(),
            target: "192.0.2.21:80".parse().expect("an address"),
            change,
            last: "connect 192.0.2.21:80: connection refused".into(),
        };
        assert_eq!(
            event(Change::Down { failures: 3 }).to_string(),
            "rs1 192.0.2.21:80 of web is DOWN: 3 failures in a row, last: connect 192.0.2.21:80: connection refused"
        );
        assert_eq!(
            event(Change::Down { failures: 1 }).to_string(),
            "rs1 192.0.2.21:80 of web is DOWN: connect 192.0.2.21:80: connection refused"
        );
        let up = Event::Server {
            virtual_server: "web".into(),
            real_server: "rs1".into(),
            target: "192.0.2.21:80".parse().expect("an address"),
            change: Change::Up {
                successes: 2,
                over: at(10),
                weight: Some(4),
            },
            last: "HTTP 200".into(),
        };
        assert_eq!(
            up.to_string(),
            "rs1 192.0.2.21:80 of web is UP: 2 successes in a row over 10 s, weight 4, last: HTTP 200"
        );
        assert_eq!(
            event(Change::Weight {
                from: None,
                to: Some(7)
            })
            .to_string(),
            "rs1 192.0.2.21:80 of web weight 7 (was as configured)"
        );
        let sorry = Event::Sorry {
            virtual_server: "web".into(),
            server: "192.0.2.200:80".parse().expect("an address"),
            active: true,
        };
        assert_eq!(
            sorry.to_string(),
            "every real server of web is down: sorry server 192.0.2.200:80 in"
        );
    }

    #[test]
    fn the_state_serialises_for_display() {
        let r = rules(1, 1, 0);
        let mut server = up(&r);
        server.record(&r, failed(), at(3));
        let json = serde_json::to_value(&server).expect("serialised");
        assert_eq!(json["state"], "down");
        assert_eq!(json["since"], 3000);
        assert_eq!(
            json["last"]["message"],
            "connect 192.0.2.21:80: connection refused"
        );
        let back: ServerHealth = serde_json::from_value(json).expect("deserialised");
        assert_eq!(back, server);
    }
}
