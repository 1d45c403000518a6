//! `/metrics` in Prometheus' text format (version 0.0.4), made from the same status the API
//! answers: per virtual and real server the kernel's counters (connections, packets, bytes)
//! and rates, connections now, weight and health; the pair's role, peer, transitions and each
//! heartbeat channel; the admin endpoint's own connections.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::front::Counters;

/// The exposition of `status` (as `Backend::status` gives it) and the front's `counters`.
pub fn render(status: &Value, counters: &Counters) -> String {
    let mut out = Exposition::default();
    out.sample(
        "director_info",
        "gauge",
        "The box: its version and hostname.",
        &[
            ("version", text(&status["version"])),
            ("hostname", text(&status["hostname"])),
        ],
        1.0,
    );
    if let Some(uptime) = status["uptime_s"].as_f64() {
        out.sample(
            "director_uptime_seconds",
            "gauge",
            "Since the daemon started.",
            &[],
            uptime,
        );
    }
    if let Some(revision) = status["revision"].as_f64() {
        out.sample(
            "director_config_revision",
            "gauge",
            "The configuration revision in force.",
            &[],
            revision,
        );
    }
    pair(&mut out, &status["pair"]);
    ipvs(&mut out, &status["ipvs"]);
    let front = [
        ("accepted", &counters.accepted),
        ("refused_source", &counters.refused_source),
        ("refused_busy", &counters.refused_busy),
        ("handshake_failed", &counters.handshake_failed),
        ("handshake_done", &counters.handshakes),
    ];
    for (outcome, counter) in front {
        out.sample(
            "director_admin_connections_total",
            "counter",
            "Connections to the admin endpoint, by what became of them.",
            &[("outcome", outcome.to_string())],
            counter.load(Ordering::Relaxed) as f64,
        );
    }
    out.finish()
}

fn pair(out: &mut Exposition, pair: &Value) {
    if !pair.is_object() || pair.get("error").is_some() {
        return;
    }
    let role = text(&pair["role"]);
    for each in ["init", "standby", "active", "fault"] {
        out.sample(
            "director_pair_role",
            "gauge",
            "1 for the role this node holds.",
            &[("role", each.to_string())],
            f64::from(u8::from(role == each)),
        );
    }
    out.sample(
        "director_pair_role_seconds",
        "gauge",
        "How long the role has held.",
        &[],
        number(&pair["for_ms"]) / 1000.0,
    );
    out.sample(
        "director_pair_transitions",
        "gauge",
        "Role transitions kept in the history (the newest ones).",
        &[],
        pair["transitions"].as_array().map_or(0, Vec::len) as f64,
    );
    let peer_alive = pair["peer"]["alive"].as_bool().unwrap_or(false);
    out.sample(
        "director_pair_peer_alive",
        "gauge",
        "1 while the peer's beats arrive.",
        &[],
        f64::from(u8::from(peer_alive)),
    );
    for (name, help, key) in [
        ("director_heartbeats_sent_total", "Beats sent.", "sent"),
        (
            "director_heartbeats_accepted_total",
            "Beats accepted.",
            "accepted",
        ),
    ] {
        out.sample(name, "counter", help, &[], number(&pair[key]));
    }
    for (name, help, key) in [
        (
            "director_heartbeat_longest_gap_seconds",
            "The longest time between two beats sent since the pair started.",
            "beat_gap_ms",
        ),
        (
            "director_heartbeat_recent_gap_seconds",
            "The longest time between two beats sent over about the last 10 s.",
            "beat_gap_recent_ms",
        ),
    ] {
        out.sample(name, "gauge", help, &[], number(&pair[key]) / 1000.0);
    }
    if let Some(refused) = pair["refused"].as_object() {
        for (reason, count) in refused {
            out.sample(
                "director_heartbeats_refused_total",
                "counter",
                "Beats refused, by reason.",
                &[("reason", reason.clone())],
                number(count),
            );
        }
    }
    for channel in pair["channels"].as_array().into_iter().flatten() {
        let labels = [("channel", text(&channel["channel"]))];
        if let Some(ago) = channel["last_beat_ms_ago"].as_f64() {
            out.sample(
                "director_heartbeat_last_seconds",
                "gauge",
                "Since the channel last brought a beat.",
                &labels,
                ago / 1000.0,
            );
        }
        out.sample(
            "director_heartbeat_send_failures_total",
            "counter",
            "Beats that could not be sent, per channel.",
            &labels,
            number(&channel["send_failures"]),
        );
    }
}

fn ipvs(out: &mut Exposition, ipvs: &Value) {
    for service in ipvs["services"].as_array().into_iter().flatten() {
        let key = match service.get("fwmark") {
            Some(mark) => format!("fwmark {mark}"),
            None => {
                let address = text(&service["address"]);
                let address = if address.contains(':') {
                    format!("[{address}]")
                } else {
                    address
                };
                format!(
                    "{}:{}/{}",
                    address,
                    service["port"],
                    text(&service["protocol"])
                )
            }
        };
        let labels = vec![("service", key.clone())];
        counters(
            out,
            "director_ipvs_service",
            "virtual service",
            &labels,
            service,
        );
        for destination in service["destinations"].as_array().into_iter().flatten() {
            let address = text(&destination["address"]);
            let address = if address.contains(':') {
                format!("[{address}]")
            } else {
                address
            };
            let mut labels = vec![
                ("service", key.clone()),
                ("real", format!("{address}:{}", destination["port"])),
            ];
            let health = &destination["health"];
            if let Some(name) = health["real_server"].as_str() {
                labels.push(("virtual_server", text(&health["virtual_server"])));
                labels.push(("real_server", name.to_string()));
            }
            counters(
                out,
                "director_ipvs_real",
                "real server",
                &labels,
                destination,
            );
            for (name, help, field) in [
                (
                    "director_ipvs_real_active_connections",
                    "Established connections now.",
                    "active_connections",
                ),
                (
                    "director_ipvs_real_inactive_connections",
                    "Other connections now.",
                    "inactive_connections",
                ),
                (
                    "director_ipvs_real_weight",
                    "The weight in the kernel's table.",
                    "weight",
                ),
            ] {
                out.sample(name, "gauge", help, &labels, number(&destination[field]));
            }
            if let Some(state) = health["state"].as_str() {
                for each in ["up", "down", "unknown"] {
                    let mut with = labels.clone();
                    with.push(("state", each.to_string()));
                    out.sample(
                        "director_real_server_health",
                        "gauge",
                        "1 for the health state the checks give the real server.",
                        &with,
                        f64::from(u8::from(state == each)),
                    );
                }
                if let Some(duration) = health["last"]["duration"].as_f64() {
                    out.sample(
                        "director_health_check_duration_seconds",
                        "gauge",
                        "How long the last check took.",
                        &labels,
                        duration / 1000.0,
                    );
                }
                for (result, field) in [("success", "successes"), ("failure", "failures")] {
                    let mut with = labels.clone();
                    with.push(("result", result.to_string()));
                    out.sample(
                        "director_health_checks_total",
                        "counter",
                        "Checks made, by result.",
                        &with,
                        number(&health["counts"][field]),
                    );
                }
            }
        }
    }
}

/// The kernel's counters and rates of a service or destination (`stats`, `rates`).
fn counters(
    out: &mut Exposition,
    prefix: &str,
    what: &str,
    labels: &[(&str, String)],
    entry: &Value,
) {
    let stats = &entry["stats"];
    let rates = &entry["rates"];
    out.sample(
        &format!("{prefix}_connections_total"),
        "counter",
        &format!("Connections scheduled to the {what}."),
        labels,
        number(&stats["connections"]),
    );
    out.sample(
        &format!("{prefix}_connections_per_second"),
        "gauge",
        &format!("The kernel's estimate of new connections a second to the {what}."),
        labels,
        number(&rates["connections"]),
    );
    for direction in ["in", "out"] {
        let mut with = labels.to_vec();
        with.push(("direction", direction.to_string()));
        for (unit, help) in [("packets", "Packets"), ("bytes", "Bytes")] {
            let field = format!("{direction}_{unit}");
            out.sample(
                &format!("{prefix}_{unit}_total"),
                "counter",
                &format!("{help} through the {what}, by direction."),
                &with,
                number(&stats[&field]),
            );
            out.sample(
                &format!("{prefix}_{unit}_per_second"),
                "gauge",
                &format!(
                    "The kernel's estimate of {} a second through the {what}.",
                    unit
                ),
                &with,
                number(&rates[&field]),
            );
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// Samples gathered by metric name, so that each family is written once with its HELP and
/// TYPE lines.
#[derive(Default)]
struct Exposition {
    families: BTreeMap<String, (String, String, Vec<String>)>,
    order: Vec<String>,
}

impl Exposition {
    fn sample(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        labels: &[(&str, String)],
        value: f64,
    ) {
        if !self.families.contains_key(name) {
            self.order.push(name.to_string());
        }
        let family = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| (kind.to_string(), help.to_string(), Vec::new()));
        let mut line = name.to_string();
        if !labels.is_empty() {
            line.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{key}=\"{}\"", escape(value));
            }
            line.push('}');
        }
        let _ = write!(line, " {value}");
        family.2.push(line);
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for name in &self.order {
            if let Some((kind, help, lines)) = self.families.get(name) {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for line in lines {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status() -> Value {
        json!({
            "version": "0.1.0",
            "hostname": "lvs-a",
            "uptime_s": 42,
            "revision": 7,
            "pair": {
                "role": "active", "for_ms": 1500, "sent": 10, "accepted": 9,
                "refused": { "forged": 2 },
                "peer": { "alive": true },
                "channels": [
                    { "channel": "udp", "last_beat_ms_ago": 40, "send_failures": 0 },
                    { "channel": "serial", "last_beat_ms_ago": null, "send_failures": 3 }
                ],
                "transitions": [ { "to": "active" } ]
            },
            "ipvs": { "services": [ {
                "family": "inet", "protocol": "tcp", "address": "192.0.2.100", "port": 80,
                "stats": { "connections": 12, "in_packets": 100, "out_packets": 0, "in_bytes": 5000, "out_bytes": 0 },
                "rates": { "connections": 2, "in_packets": 10, "out_packets": 0, "in_bytes": 500, "out_bytes": 0 },
                "destinations": [ {
                    "address": "192.0.2.21", "port": 80, "weight": 3,
                    "active_connections": 4, "inactive_connections": 1,
                    "stats": { "connections": 12, "in_packets": 100, "out_packets": 0, "in_bytes": 5000, "out_bytes": 0 },
                    "rates": { "connections": 2, "in_packets": 10, "out_packets": 0, "in_bytes": 500, "out_bytes": 0 },
                    "health": { "virtual_server": "web", "real_server": "rs\"1", "state": "up",
                                "last": { "duration": 3 }, "counts": { "successes": 40, "failures": 1 } }
                } ]
            } ] }
        })
    }

    #[test]
    fn every_family_is_typed_once_and_samples_are_labelled() {
        let text = render(&status(), &Counters::default());
        for line in [
            "director_info{version=\"0.1.0\",hostname=\"lvs-a\"} 1",
            "director_config_revision 7",
            "director_pair_role{role=\"active\"} 1",
            "director_pair_role{role=\"standby\"} 0",
            "director_pair_role_seconds 1.5",
            "director_heartbeats_refused_total{reason=\"forged\"} 2",
            "director_heartbeat_last_seconds{channel=\"udp\"} 0.04",
            "director_heartbeat_send_failures_total{channel=\"serial\"} 3",
            "director_ipvs_service_connections_total{service=\"192.0.2.100:80/tcp\"} 12",
            "director_ipvs_service_bytes_total{service=\"192.0.2.100:80/tcp\",direction=\"in\"} 5000",
            "director_ipvs_real_weight{service=\"192.0.2.100:80/tcp\",real=\"192.0.2.21:80\",virtual_server=\"web\",real_server=\"rs\\\"1\"} 3",
            "director_real_server_health{service=\"192.0.2.100:80/tcp\",real=\"192.0.2.21:80\",virtual_server=\"web\",real_server=\"rs\\\"1\",state=\"up\"} 1",
            "director_health_check_duration_seconds{service=\"192.0.2.100:80/tcp\",real=\"192.0.2.21:80\",virtual_server=\"web\",real_server=\"rs\\\"1\"} 0.003",
            "director_admin_connections_total{outcome=\"refused_source\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a family typed twice");
        // A sample's family is typed before it.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{name} sampled before its TYPE");
            }
        }
    }

    #[test]
    fn a_box_without_a_pair_or_table_still_says_what_it_is() {
        let text = render(
            &json!({ "version": "0.1.0", "pair": null, "ipvs": { "error": "no IPVS" } }),
            &Counters::default(),
        );
        assert!(text.contains("director_info{"));
        assert!(!text.contains("director_pair_role"));
    }
}
