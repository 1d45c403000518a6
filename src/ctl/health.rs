//! What `director ctl status` and `director ctl ipvs --health|--json` show of the health
//! checks: per virtual server each real server's state and since when, its last result, its
//! counts, and the sorry server. Pure functions of a health snapshot, the configuration and
//! (for `ctl ipvs`) the kernel's table; the request wiring is in the daemon.
//!
//! Times are written on the clock of the log (seconds since boot), so that a state reads
//! against the log lines that announced it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use super::ipvs::json_string;
use crate::config::Config;
use crate::health::{ServerHealth, ServerSnapshot, ServiceSnapshot, Snapshot, State};
use crate::ipvs::{destination_names, service_key, DestinationName};
use crate::sys::ipvs::{Destination, ServiceKey, TableEntry};

/// The health of every virtual server, for `ctl status`, the table's destinations marked when
/// `table` is given. `boot` is the time since boot at `health.now`, to write times on the
/// log's clock.
pub fn render_status(
    config: &Config,
    health: &Snapshot,
    boot: Duration,
    table: Option<&[TableEntry]>,
) -> String {
    let mut out = String::new();
    let keys: HashMap<&str, ServiceKey> = config
        .virtual_servers
        .iter()
        .filter_map(|vs| Some((vs.name.as_str(), service_key(vs)?)))
        .collect();
    let clock = Clock {
        now: health.now,
        boot,
    };
    let _ = writeln!(
        out,
        "health (times in seconds since boot, as in the log; now {}):",
        clock.stamp(health.now)
    );
    if health.services.is_empty() {
        out.push_str("  no virtual servers\n");
    }
    for service in &health.services {
        let key = keys.get(service.name.as_str());
        let _ = write!(out, "  {}", service.name);
        if let Some(key) = key {
            let _ = write!(out, " ({key})");
        }
        if !service.checked {
            match &service.problem {
                Some(problem) => {
                    let _ = write!(out, ": NOT checked, the check cannot run: {problem}");
                }
                None => out.push_str(": not checked"),
            }
        }
        out.push('\n');
        for server in &service.servers {
            server_line(&mut out, service, server, &clock);
            if let (Some(table), Some(key)) = (table, key) {
                let present = in_table(table, key, server.target.ip());
                match present {
                    Some(weight) => {
                        let _ = write!(out, "; in IPVS, weight {weight}");
                    }
                    None => out.push_str("; not in IPVS"),
                }
            }
            out.push('\n');
        }
        if let Some(sorry) = service.sorry_server {
            let _ = writeln!(
                out,
                "    sorry server {sorry}: {}",
                if service.sorry_active {
                    "IN (every real server is down)"
                } else {
                    "out"
                }
            );
        }
    }
    out
}

/// Turns the health checks' clock into the log's.
struct Clock {
    now: Duration,
    boot: Duration,
}

impl Clock {
    /// `at` on the health clock as seconds since boot.
    fn stamp(&self, at: Duration) -> String {
        let since_boot = (self.boot + at).saturating_sub(self.now);
        format!("{}.{:03}", since_boot.as_secs(), since_boot.subsec_millis())
    }

    fn ago(&self, at: Duration) -> String {
        let span = self.now.saturating_sub(at);
        format!("{:.1} s ago", span.as_secs_f64())
    }
}

fn state_word(state: State) -> &'static str {
    match state {
        State::Unknown => "unknown",
        State::Up => "up",
        State::Down => "down",
    }
}

/// `    rs1 192.0.2.21:80 up since 12.345 (40.1 s ago); last: HTTP 200 (ok, 3 ms, 0.4 s
/// ago); checks 41: 40 ok, 1 failed`, without the line's end.
fn server_line(
    out: &mut String,
    service: &ServiceSnapshot,
    server: &ServerSnapshot,
    clock: &Clock,
) {
    let health = &server.health;
    let _ = write!(
        out,
        "    {} {} {} since {} ({})",
        server.name,
        server.target,
        state_word(health.state),
        clock.stamp(health.since),
        clock.ago(health.since)
    );
    if !server.enabled {
        out.push_str(", disabled");
    }
    if let Some(weight) = health.weight {
        let _ = write!(out, ", weight {weight} from the check");
    }
    if !service.checked {
        return;
    }
    match &health.last {
        Some(last) => {
            let _ = write!(
                out,
                "; last: {} ({}, {} ms, {})",
                last.message,
                if last.healthy { "ok" } else { "failed" },
                last.duration.as_millis(),
                clock.ago(last.at)
            );
        }
        None => out.push_str("; not checked yet"),
    }
    let counts = &health.counts;
    let _ = write!(
        out,
        "; checks {}: {} ok, {} failed",
        counts.checks, counts.successes, counts.failures
    );
    if health.state == State::Down && counts.successes_in_a_row > 0 {
        let _ = write!(out, ", {} ok in a row", counts.successes_in_a_row);
    }
}

/// The weight of the destination at `address` in the service `key`, when the table has it.
fn in_table(table: &[TableEntry], key: &ServiceKey, address: IpAddr) -> Option<u32> {
    let (_, destinations) = table.iter().find(|(entry, _)| entry.service.key == *key)?;
    destinations
        .iter()
        .find(|d| d.destination.address == address)
        .map(|d| d.destination.weight)
}

/// Finds what the health checks say of a destination of the kernel's table.
pub struct HealthLookup<'a> {
    config: &'a Config,
    health: &'a Snapshot,
    boot: Duration,
    names: HashMap<(ServiceKey, IpAddr, u16), DestinationName>,
    services: HashMap<&'a str, &'a ServiceSnapshot>,
}

impl<'a> HealthLookup<'a> {
    pub fn new(config: &'a Config, health: &'a Snapshot, boot: Duration) -> HealthLookup<'a> {
        HealthLookup {
            config,
            health,
            boot,
            names: destination_names(config),
            services: health
                .services
                .iter()
                .map(|service| (service.name.as_str(), service))
                .collect(),
        }
    }

    /// The section `ctl ipvs --health` adds after the table: `render_status` with the table's
    /// weights.
    pub fn section(&self, table: &[TableEntry]) -> String {
        format!(
            "\n{}",
            render_status(self.config, self.health, self.boot, Some(table))
        )
    }

    /// The `health` object of a destination in `ctl ipvs --json`: which configured server it
    /// is and its state (`state`, `since`, `last`, `counts`, `weight`; times in milliseconds
    /// on the health checks' clock, whose present is `now`), or the sorry server and whether
    /// it is in. `None` for a destination the configuration does not know.
    pub fn json(&self, key: &ServiceKey, destination: &Destination) -> Option<String> {
        let name = self
            .names
            .get(&(*key, destination.address, destination.port))?;
        let service = self.services.get(name.virtual_server.as_str());
        let mut out = String::from("{\"virtual_server\":");
        json_string(&mut out, &name.virtual_server);
        match &name.real_server {
            None => {
                let active = service.is_some_and(|s| s.sorry_active);
                let _ = write!(out, ",\"sorry_server\":true,\"active\":{active}");
            }
            Some(real_server) => {
                out.push_str(",\"real_server\":");
                json_string(&mut out, real_server);
                let _ = write!(
                    out,
                    ",\"checked\":{},\"now\":{}",
                    service.is_some_and(|s| s.checked),
                    millis(self.health.now)
                );
                let server =
                    service.and_then(|s| s.servers.iter().find(|r| &r.name == real_server));
                if let Some(server) = server {
                    health_fields(&mut out, &server.health);
                }
            }
        }
        out.push('}');
        Some(out)
    }
}

fn millis(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

/// `ServerHealth` as JSON fields, as its serde form names them.
fn health_fields(out: &mut String, health: &ServerHealth) {
    let _ = write!(
        out,
        ",\"state\":\"{}\",\"since\":{},\"last\":",
        state_word(health.state),
        millis(health.since)
    );
    match &health.last {
        Some(last) => {
            let _ = write!(
                out,
                "{{\"healthy\":{},\"duration\":{},\"message\":",
                last.healthy,
                millis(last.duration)
            );
            json_string(out, &last.message);
            let _ = write!(out, ",\"at\":{}}}", millis(last.at));
        }
        None => out.push_str("null"),
    }
    let c = &health.counts;
    let _ = write!(
        out,
        ",\"counts\":{{\"checks\":{},\"successes\":{},\"failures\":{},\"successes_in_a_row\":{},\"failures_in_a_row\":{}}}",
        c.checks, c.successes, c.failures, c.successes_in_a_row, c.failures_in_a_row
    );
    out.push_str(",\"rising_since\":");
    match health.rising_since {
        Some(at) => {
            let _ = write!(out, "{}", millis(at));
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"weight\":");
    match health.weight {
        Some(weight) => {
            let _ = write!(out, "{weight}");
        }
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::config::from_toml;
    use crate::health::{Counts, LastResult, ServerHealth};
    use crate::sys::ipvs::{DestinationEntry, Forwarding, Service, ServiceEntry, Stats};

    const CONFIG: &str = r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
sorry_server = "192.0.2.30:80"
check = { interval = "1s", timeout = "1s", http = {} }
real_servers = [
  { name = "rs1", address = "192.0.2.21" },
  { name = "rs2", address = "192.0.2.22" },
]
"#;

    fn snapshot() -> Snapshot {
        let up = ServerHealth {
            state: State::Up,
            since: Duration::from_secs(2),
            last: Some(LastResult {
                healthy: true,
                duration: Duration::from_millis(3),
                message: Cow::Borrowed("HTTP 200"),
                at: Duration::from_secs(9),
            }),
            counts: Counts {
                checks: 8,
                successes: 8,
                failures: 0,
                successes_in_a_row: 8,
                failures_in_a_row: 0,
            },
            rising_since: None,
            weight: None,
        };
        let mut down = up.clone();
        down.state = State::Down;
        down.since = Duration::from_secs(7);
        down.last = Some(LastResult {
            healthy: false,
            duration: Duration::from_millis(1),
            message: Cow::Borrowed("connection refused"),
            at: Duration::from_secs(9),
        });
        down.counts.failures = 2;
        down.counts.successes_in_a_row = 0;
        Snapshot {
            now: Duration::from_secs(10),
            services: vec![ServiceSnapshot {
                name: "web".into(),
                checked: true,
                problem: None,
                sorry_server: Some("192.0.2.30:80".parse().expect("an address")),
                sorry_active: false,
                servers: vec![
                    ServerSnapshot {
                        name: "rs1".into(),
                        target: "192.0.2.21:80".parse().expect("an address"),
                        enabled: true,
                        health: down,
                    },
                    ServerSnapshot {
                        name: "rs2".into(),
                        target: "192.0.2.22:80".parse().expect("an address"),
                        enabled: true,
                        health: up,
                    },
                ],
            }],
        }
    }

    fn table() -> Vec<TableEntry> {
        let key = ServiceKey::Address {
            protocol: crate::sys::ipvs::Protocol::Tcp,
            address: "192.0.2.100".parse().expect("an address"),
            port: 80,
        };
        let destination = DestinationEntry {
            destination: Destination {
                address: "192.0.2.22".parse().expect("an address"),
                port: 80,
                forwarding: Forwarding::Route,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            },
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        };
        vec![(
            ServiceEntry {
                service: Service::new(key, "wlc"),
                stats: Stats::default(),
            },
            vec![destination],
        )]
    }

    #[test]
    fn status_names_each_state_since_when_its_last_result_and_counts() {
        let config = from_toml(CONFIG).expect("a configuration");
        // Health started 100 s after boot.
        let text = render_status(&config, &snapshot(), Duration::from_secs(110), None);
        assert_eq!(
            text,
            "health (times in seconds since boot, as in the log; now 110.000):\n\
             \x20 web (tcp 192.0.2.100:80)\n\
             \x20   rs1 192.0.2.21:80 down since 107.000 (3.0 s ago); last: connection refused (failed, 1 ms, 1.0 s ago); checks 8: 8 ok, 2 failed\n\
             \x20   rs2 192.0.2.22:80 up since 102.000 (8.0 s ago); last: HTTP 200 (ok, 3 ms, 1.0 s ago); checks 8: 8 ok, 0 failed\n\
             \x20   sorry server 192.0.2.30:80: out\n"
        );
        let with_table = render_status(
            &config,
            &snapshot(),
            Duration::from_secs(110),
            Some(&table()),
        );
        assert!(
            with_table.contains("2 failed; not in IPVS\n"),
            "{with_table}"
        );
        assert!(
            with_table.contains("0 failed; in IPVS, weight 1\n"),
            "{with_table}"
        );
    }

    #[test]
    fn json_gives_each_destination_its_health() {
        let config = from_toml(CONFIG).expect("a configuration");
        let health = snapshot();
        let lookup = HealthLookup::new(&config, &health, Duration::from_secs(110));
        let table = table();
        let key = table[0].0.service.key;
        let rs2 = &table[0].1[0].destination;
        let text = lookup.json(&key, rs2).expect("rs2 is configured");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        // The same fields as the serde form of the state.
        let serde_form =
            serde_json::to_value(&health.services[0].servers[1].health).expect("serialised");
        for (field, wanted) in serde_form.as_object().expect("an object") {
            assert_eq!(&value[field], wanted, "{field}");
        }
        assert_eq!(value["real_server"], "rs2");
        assert_eq!(value["state"], "up");
        assert_eq!(value["since"], 2000);
        assert_eq!(value["now"], 10_000);
        assert_eq!(value["last"]["message"], "HTTP 200");
        assert_eq!(value["counts"]["checks"], 8);
        let mut sorry = rs2.clone();
        sorry.address = "192.0.2.30".parse().expect("an address");
        let text = lookup.json(&key, &sorry).expect("the sorry server");
        assert_eq!(
            text,
            r#"{"virtual_server":"web","sorry_server":true,"active":false}"#
        );
        sorry.address = "192.0.2.99".parse().expect("an address");
        assert_eq!(lookup.json(&key, &sorry), None);
    }
}
