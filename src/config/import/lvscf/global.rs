//! The global section of lvs.cf: the two LVS routers and pulse's heartbeat (the pair), the
//! forwarding method of every service, and IPVS's connection timeouts.

use std::net::IpAddr;

use super::super::SET_THE_KEY;
use super::syntax::Stmt;
use super::Report;
use crate::config::model::{
    self, Forwarding, Isolation, Pair, RolePreference, UdpChannel, UdpMode,
};
use crate::config::types::Span;
use crate::config::Config;

/// pulse's defaults (its parser, lvsconfig.c): heartbeat on UDP port 539, a heartbeat every
/// 2 s, the peer dead after 5 s; NAT when `network` is absent. Without `syncd_id` the sync
/// daemon gets the model's id: both boxes of the pair run director, so only they must agree.
const HEARTBEAT_PORT: u16 = 539;
const KEEPALIVE: Span = Span::from_millis(2_000);
const DEADTIME: Span = Span::from_millis(5_000);
const FORWARDING: Forwarding = Forwarding::Nat;

/// The heartbeat link of the box; Piranha heartbeats over whatever routes to the peer.
const HEARTBEAT_INTERFACE: &str = "eth1";

/// A value and the line it came from.
type At<T> = Option<(T, usize)>;

/// What the global section says; the services read `forwarding`, the rest becomes the pair.
#[derive(Default)]
pub(super) struct Settings {
    pub forwarding: Option<Forwarding>,
    primary: At<IpAddr>,
    backup: At<IpAddr>,
    backup_private: At<IpAddr>,
    backup_active: At<bool>,
    heartbeat: At<bool>,
    heartbeat_port: Option<u16>,
    keepalive: Option<Span>,
    deadtime: Option<Span>,
    syncdaemon: Option<bool>,
    syncd_id: Option<u8>,
    tcp_timeout: Option<Span>,
    tcpfin_timeout: Option<Span>,
    udp_timeout: Option<Span>,
    /// Lines that only a pair uses, noted when there is none.
    pair_only: Vec<(usize, String)>,
}

impl Settings {
    pub fn forwarding(&self) -> Forwarding {
        self.forwarding.unwrap_or(FORWARDING)
    }
}

/// Reads the settings outside blocks; blocks are the services' business.
pub(super) fn read(tree: &[Stmt], report: &mut Report) -> Settings {
    let mut s = Settings::default();
    let mut seen = Vec::new();
    for stmt in tree.iter().filter(|s| s.block.is_none()) {
        report.repeated(&mut seen, stmt);
        let line = stmt.line;
        match stmt.key.as_str() {
            "primary" => {
                if let Some(addr) = report.value(stmt).and_then(|v| report.address(stmt, v)) {
                    s.primary = Some((addr, line));
                }
            }
            "backup" => {
                if let Some(addr) = report.value(stmt).and_then(|v| report.address(stmt, v)) {
                    s.backup = Some((addr, line));
                }
            }
            "backup_private" => {
                if let Some(addr) = report.value(stmt).and_then(|v| report.address(stmt, v)) {
                    s.backup_private = Some((addr, line));
                    s.pair_only.push((line, stmt.key.clone()));
                }
            }
            "primary_private" => {
                if let Some(addr) = report.value(stmt).and_then(|v| report.address(stmt, v)) {
                    report.note(
                        line,
                        format!(
                            "`primary_private = {addr}`: this box's own heartbeat address; \
                             configure it on {HEARTBEAT_INTERFACE} (network.interfaces), the \
                             pair only names the peer"
                        ),
                    );
                }
            }
            "backup_active" => s.backup_active = report.flag(stmt).map(|b| (b, line)),
            "heartbeat" => {
                s.heartbeat = report.flag(stmt).map(|b| (b, line));
                s.pair_only.push((line, stmt.key.clone()));
            }
            "heartbeat_port" => {
                s.heartbeat_port = report
                    .number(stmt, 1, u64::from(u16::MAX))
                    .and_then(|p| u16::try_from(p).ok());
                s.pair_only.push((line, stmt.key.clone()));
            }
            "keepalive" => {
                s.keepalive = report.seconds(stmt, 1);
                s.pair_only.push((line, stmt.key.clone()));
            }
            "deadtime" => {
                s.deadtime = report.seconds(stmt, 1);
                s.pair_only.push((line, stmt.key.clone()));
            }
            "syncdaemon" => {
                s.syncdaemon = report.flag(stmt);
                s.pair_only.push((line, stmt.key.clone()));
            }
            "syncd_id" => {
                s.syncd_id = report
                    .number(stmt, 0, 255)
                    .and_then(|n| u8::try_from(n).ok());
                s.pair_only.push((line, stmt.key.clone()));
            }
            "network" => {
                s.forwarding = match report.value(stmt) {
                    Some("nat") => Some(Forwarding::Nat),
                    Some("direct") => Some(Forwarding::Dr),
                    Some("tunnel") => Some(Forwarding::Tunnel),
                    Some(other) => {
                        report.error(
                            line,
                            format!("`network`: '{other}' is not one of nat, direct, tunnel"),
                        );
                        None
                    }
                    None => None,
                }
            }
            // Piranha leaves the kernel's timeout alone for 0, as the box does for none.
            "tcp_timeout" => s.tcp_timeout = report.seconds(stmt, 0).filter(|t| t.as_millis() > 0),
            "tcpfin_timeout" => {
                s.tcpfin_timeout = report.seconds(stmt, 0).filter(|t| t.as_millis() > 0)
            }
            "udp_timeout" => s.udp_timeout = report.seconds(stmt, 0).filter(|t| t.as_millis() > 0),
            "service" => match report.value(stmt) {
                Some("lvs") | None => {}
                Some("fos") => report.unsupported(
                    stmt,
                    "failover services are not supported; the `virtual` blocks are imported \
                     as the box's services",
                ),
                Some(other) => {
                    report.error(line, format!("`service`: '{other}' is not lvs or fos"))
                }
            },
            _ => unmapped(stmt, report),
        }
    }
    s
}

/// Global directives that are read (and checked) but have no equivalent.
fn unmapped(stmt: &Stmt, report: &mut Report) {
    let why = match stmt.key.as_str() {
        "serial_no" => {
            report.number(stmt, 0, u64::MAX);
            "the Piranha GUI's revision counter; the box numbers its own revisions in its store"
        }
        "nat_router" => {
            // `nat_router = ADDRESS DEVICE:N`, as Piranha requires both.
            match stmt.values.as_slice() {
                [addr, _device] => {
                    report.address(stmt, addr);
                }
                _ => {
                    report.error(
                        stmt.line,
                        "`nat_router` needs an address and a device (`nat_router = 10.0.0.254 eth1:1`)",
                    );
                    return;
                }
            }
            "the floating gateway of the real servers has no place in the configuration: the \
             box moves only the VIPs of its virtual servers on takeover; put this address on \
             the inside interface of the active box by other means"
        }
        "nat_nmask" => {
            report.netmask(stmt);
            "belongs to `nat_router`, which is not imported"
        }
        "reservation_conflict_action" => {
            match report.value(stmt) {
                Some("nothing" | "preempt") | None => {}
                Some(other) => report.error(
                    stmt.line,
                    format!("`reservation_conflict_action`: '{other}' is not nothing or preempt"),
                ),
            }
            "SCSI reservations of shared disks are not managed by the box"
        }
        "debug_level" => "logging is set on the box, not in its configuration",
        "monitor_links" => {
            if report.number(stmt, 0, 1) == Some(0) {
                return;
            }
            "link monitoring before heartbeats is not available; the heartbeat alone decides"
        }
        "hard_shutdown" => {
            report.flag(stmt);
            "pulse's hard shutdown has no equivalent; a hung box is reset by the watchdog \
             (pair.watchdog)"
        }
        "syncd_iface" => "connection synchronisation runs over the heartbeat link here",
        "rsh_command" | "sync" => {
            "the box does not copy its configuration to the peer: import the same file on both \
             boxes"
        }
        "primary_shared" | "backup_shared" => {
            "shared-storage paths of pulse's file sync are not used: the box keeps its \
             configuration in its own store"
        }
        "ipvsadm" => "the box programs IPVS itself, not through ipvsadm",
        "active_cmd" | "inactive_cmd" => {
            "commands run when the box becomes active or standby are not supported"
        }
        _ => {
            report.unknown(stmt, "in the global section");
            return;
        }
    };
    report.unsupported(stmt, why);
}

/// Puts the global settings into `config`: IPVS timeouts, and the pair when the file has an
/// active backup.
pub(super) fn apply(s: Settings, config: &mut Config, report: &mut Report) {
    config.network.ipvs.tcp_timeout = s.tcp_timeout;
    config.network.ipvs.tcpfin_timeout = s.tcpfin_timeout;
    config.network.ipvs.udp_timeout = s.udp_timeout;

    let backup = s.backup.filter(|(addr, _)| !addr.is_unspecified());
    let active = s.backup_active.is_some_and(|(on, _)| on);
    let pair_possible = match (active, backup) {
        (true, Some(_)) => true,
        (true, None) => {
            if let Some((_, line)) = s.backup_active {
                report.note(
                    line,
                    "`backup_active = 1` without a `backup` address: there is no peer, so no \
                     pair is imported",
                );
            }
            false
        }
        (false, Some((addr, line))) => {
            report.note(
                line,
                format!(
                    "`backup = {addr}`: `backup_active` is not 1, so Piranha ran without a \
                     backup; no pair is imported"
                ),
            );
            false
        }
        (false, None) => {
            if let Some((_, line)) = s.backup {
                report.note(line, "`backup = 0.0.0.0`: no backup; no pair is imported");
            }
            false
        }
    };
    if let Some((addr, line)) = s.primary {
        let message = if pair_possible {
            format!(
                "`primary = {addr}`: taken as this box (node.role = \"primary\") and `backup` \
                 as its peer, because lvs.cf does not say which router it is on; on the backup \
                 router set node.role = \"backup\" and pair.peer to the primary's heartbeat \
                 address"
            )
        } else {
            format!(
                "`primary = {addr}`: taken as this box; its address stays on the interface it \
                 is configured on"
            )
        };
        report.note(line, message);
    }
    let Some((backup_addr, backup_line)) = backup.filter(|_| pair_possible) else {
        for (line, key) in &s.pair_only {
            report.note(
                *line,
                format!("`{key}`: only a pair uses it, and there is none; not imported"),
            );
        }
        return;
    };
    // The private addresses carry the heartbeat when given (lvs.cf(5)).
    let peer = s.backup_private.map_or(backup_addr, |(addr, _)| addr);
    if let Some((false, line)) = s.heartbeat {
        report.note(
            line,
            "`heartbeat = 0`: a pair always exchanges heartbeats here; the UDP heartbeat is \
             imported on",
        );
    }
    report.note(
        backup_line,
        format!(
            "lvs.cf has no shared key for the heartbeat: pair.key is left empty; {SET_THE_KEY}, \
             the same on both boxes"
        ),
    );
    report.note(
        backup_line,
        "pulse has no ping nodes: when the peer falls silent the box with the higher priority \
         stays active (pair.when_isolated = \"higher_priority_stays\")",
    );
    config.node.role = RolePreference::Primary;
    config.pair = Some(Pair {
        peer,
        key: String::new(),
        priority: 100,
        udp: Some(UdpChannel {
            interface: HEARTBEAT_INTERFACE.into(),
            port: s.heartbeat_port.unwrap_or(HEARTBEAT_PORT),
            mode: UdpMode::Unicast,
            group: None,
        }),
        serial: None,
        keepalive: s.keepalive.unwrap_or(KEEPALIVE),
        deadtime: s.deadtime.unwrap_or(DEADTIME),
        warntime: None,
        initdead: None,
        // pulse does not hand the service back when the primary returns.
        auto_failback: false,
        ping_nodes: Vec::new(),
        when_isolated: Isolation::HigherPriorityStays,
        announce_count: 5,
        announce_spacing: Span::from_millis(200),
        watchdog: None,
        // Piranha starts the IPVS sync daemon only when told to.
        connection_sync: s.syncdaemon.unwrap_or(false),
        sync_id: s.syncd_id.unwrap_or_else(model::sync_id),
    });
}
