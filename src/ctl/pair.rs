//! The pair's part of `director ctl status`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ha::run::Status;

/// The pair as text: this node's role and since when, the peer, each channel's last beat,
/// the heartbeats refused, and the transitions with their reasons (oldest first).
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pair: node {:x} (incarnation {}) {} for {}{}",
        status.node,
        status.incarnation,
        status.role,
        span(status.for_),
        match status.intent {
            crate::ha::machine::Intent::None => "",
            crate::ha::machine::Intent::Claim => ", takeover asked",
            crate::ha::machine::Intent::Yield => ", release asked",
        }
    );
    let _ = writeln!(
        out,
        "  links {}, ping nodes reached {}",
        if status.fitness.links_up {
            "up"
        } else {
            "DOWN"
        },
        status.fitness.pings
    );
    match &status.peer {
        Some(peer) => {
            let _ = writeln!(
                out,
                "  peer {:x}: {} ({}), {:?} priority {}, revision {} (shared {}), ping nodes {}{}",
                peer.node,
                peer.role,
                if status.peer_alive { "alive" } else { "LOST" },
                peer.preference,
                peer.priority,
                peer.revision,
                peer.shared,
                peer.fitness.pings,
                if peer.leaving { ", leaving" } else { "" }
            );
        }
        None => out.push_str("  peer: never heard\n"),
    }
    for (channel, heard) in &status.heard {
        let failures = status
            .send_failures
            .iter()
            .find(|(c, _)| c == channel)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "  {:<6} last beat {}{}",
            channel.name(),
            match heard {
                Some(ago) => format!("{} ago", span(*ago)),
                None => "never".into(),
            },
            if failures > 0 {
                format!(", {failures} send(s) failed")
            } else {
                String::new()
            }
        );
    }
    let refused: Vec<String> = status
        .rejected
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    let _ = writeln!(
        out,
        "  heartbeats: {} sent (longest gap {}, {} in the last 10 s), {} accepted, refused: {}",
        status.sent,
        span(status.beat_gap),
        span(status.beat_gap_recent),
        status.accepted,
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
    if status.history.is_empty() {
        out.push_str("  no transitions yet\n");
    }
    for transition in &status.history {
        let _ = writeln!(
            out,
            "  at {}: {} -> {}: {}",
            span(transition.at),
            transition.from,
            transition.to,
            transition.reason
        );
    }
    out
}

/// The pair as JSON, for the admin API: the same facts as `render`, times in milliseconds.
pub fn json(status: &Status) -> serde_json::Value {
    use serde_json::json;
    let ms = |d: Duration| d.as_millis() as u64;
    let peer = status.peer.as_ref().map(|peer| {
        json!({
            "node": format!("{:x}", peer.node),
            "role": peer.role.to_string(),
            "alive": status.peer_alive,
            "preference": format!("{:?}", peer.preference).to_lowercase(),
            "priority": peer.priority,
            "revision": peer.revision,
            "shared": peer.shared.to_string(),
            "ping_nodes": peer.fitness.pings,
            "leaving": peer.leaving,
        })
    });
    let channels: Vec<serde_json::Value> = status
        .heard
        .iter()
        .map(|(channel, heard)| {
            let failures = status
                .send_failures
                .iter()
                .find(|(c, _)| c == channel)
                .map_or(0, |(_, n)| *n);
            json!({
                "channel": channel.name(),
                "last_beat_ms_ago": heard.map(ms),
                "send_failures": failures,
            })
        })
        .collect();
    let refused: serde_json::Map<String, serde_json::Value> = status
        .rejected
        .iter()
        .map(|(why, n)| (why.to_string(), json!(n)))
        .collect();
    let transitions: Vec<serde_json::Value> = status
        .history
        .iter()
        .map(|t| {
            json!({
                "at_ms": ms(t.at),
                "from": t.from.to_string(),
                "to": t.to.to_string(),
                "reason": t.reason,
            })
        })
        .collect();
    json!({
        "node": format!("{:x}", status.node),
        "incarnation": status.incarnation,
        "role": status.role.to_string(),
        "for_ms": ms(status.for_),
        "intent": match status.intent {
            crate::ha::machine::Intent::None => "none",
            crate::ha::machine::Intent::Claim => "takeover",
            crate::ha::machine::Intent::Yield => "release",
        },
        "links_up": status.fitness.links_up,
        "ping_nodes": status.fitness.pings,
        "peer": peer,
        "channels": channels,
        "sent": status.sent,
        "beat_gap_ms": ms(status.beat_gap),
        "beat_gap_recent_ms": ms(status.beat_gap_recent),
        "accepted": status.accepted,
        "refused": refused,
        "transitions": transitions,
    })
}

/// `1.234 s`, `87 ms`.
fn span(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::machine::{Beat, Channel, Fitness, Intent, Role, Transition};
    use crate::ha::message::Rejected;

    #[test]
    fn the_status_names_role_peer_channels_refusals_and_transitions() {
        let status = Status {
            node: 0xab,
            incarnation: 7,
            role: Role::Active,
            for_: Duration::from_millis(61_250),
            intent: Intent::None,
            fitness: Fitness {
                links_up: true,
                pings: 1,
            },
            peer: Some(Beat {
                revision: 3,
                shared: crate::config::replica::Stamp {
                    serial: 2,
                    digest: 0x0a0b_0c0d,
                },
                ..Beat::sample(0xcd)
            }),
            peer_alive: true,
            heard: vec![
                (Channel::Udp, Some(Duration::from_millis(40))),
                (Channel::Serial, None),
            ],
            accepted: 600,
            rejected: vec![(Rejected::Forged, 2), (Rejected::Stale, 0)],
            history: vec![Transition {
                at: Duration::from_millis(1_500),
                from: Role::Init,
                to: Role::Active,
                reason: "neither node active: this node ranks higher (preferred role)".into(),
            }],
            sent: 610,
            send_failures: vec![(Channel::Udp, 0), (Channel::Serial, 3)],
            beat_gap: Duration::from_millis(23),
            beat_gap_recent: Duration::from_millis(11),
        };
        let text = render(&status);
        assert_eq!(
            text,
            "pair: node ab (incarnation 7) active for 61.250 s\n\
             \x20 links up, ping nodes reached 1\n\
             \x20 peer cd: standby (alive), Backup priority 100, revision 3 (shared serial 2 (#0a0b0c0d)), ping nodes 1\n\
             \x20 udp    last beat 40 ms ago\n\
             \x20 serial last beat never, 3 send(s) failed\n\
             \x20 heartbeats: 610 sent (longest gap 23 ms, 11 ms in the last 10 s), 600 accepted, refused: 2 forged\n\
             \x20 at 1.500 s: init -> active: neither node active: this node ranks higher (preferred role)\n"
        );
        let json = json(&status);
        assert_eq!(json["role"], "active");
        assert_eq!(json["for_ms"], 61_250);
        assert_eq!(json["peer"]["node"], "cd");
        assert_eq!(json["peer"]["alive"], true);
        assert_eq!(json["channels"][0]["last_beat_ms_ago"], 40);
        assert_eq!(
            json["channels"][1]["last_beat_ms_ago"],
            serde_json::Value::Null
        );
        assert_eq!(json["channels"][1]["send_failures"], 3);
        assert_eq!(json["refused"]["forged"], 2);
        assert_eq!(json["transitions"][0]["to"], "active");
    }
}
