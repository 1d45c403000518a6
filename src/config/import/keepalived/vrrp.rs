//! `global_defs` and the VRRP part of keepalived.conf. A `vrrp_instance` becomes the pair:
//! its priority and initial state give the node's priority and preferred role, its advert
//! interval the heartbeat, VRRP's master-down interval the deadtime, `nopreempt` turns off
//! failback, its unicast peer is the peer and its password the key. Its VIPs give the devices
//! of the virtual servers that use them.

use std::net::IpAddr;

use super::super::SET_THE_KEY;
use super::syntax::Stmt;
use super::Report;
use crate::config::model::{self, Isolation, Pair, RolePreference, UdpChannel, UdpMode};
use crate::config::types::Span;
use crate::config::Config;

/// VRRP's defaults (RFC 3768, keepalived.conf(5)): priority 100, an advert every second,
/// the master declared down after 3 silent adverts plus the skew.
const PRIORITY: u8 = 100;
const ADVERT_INT: Span = Span::from_millis(1000);
const DOWN_TIMER_ADVERTS: u64 = 3;
/// keepalived's default garp_master_repeat, gratuitous ARPs after becoming master.
const GARP_REPEAT: u32 = 5;
/// The heartbeat runs where the product puts it unless VRRP named an interface.
const HEARTBEAT_INTERFACE: &str = "eth1";
const HEARTBEAT_PORT: u16 = 694;
/// The model's default spacing of announcements (keepalived sends its burst back to back).
const ANNOUNCE_SPACING: Span = Span::from_millis(200);

const MAIL: &str =
    "e-mail alerts are not supported; the box reports on its console and admin endpoint";
const SCRIPTS: &str =
    "no scripts run on changes of state; the box reports them on its console and admin endpoint";

#[derive(Default)]
pub(super) struct Vrrp {
    instances: Vec<Instance>,
    version: Option<u8>,
    garp_repeat: Option<u32>,
    garp_interval: Option<Span>,
    /// `lvs_sync_daemon` of global_defs, with its sync id if given.
    sync: Option<Option<u8>>,
}

struct Instance {
    line: usize,
    name: String,
    role: Option<RolePreference>,
    interface: Option<String>,
    vrid: Option<u8>,
    priority: u8,
    advert: Span,
    preempt: bool,
    key: Option<(usize, String)>,
    peers: Vec<(usize, IpAddr)>,
    vips: Vec<Vip>,
    version: Option<u8>,
    down_adverts: u64,
    garp_repeat: Option<u32>,
    garp_interval: Option<Span>,
    sync: bool,
}

struct Vip {
    line: usize,
    addr: IpAddr,
    device: Option<String>,
}

impl Vrrp {
    pub fn global_defs(&mut self, stmt: &Stmt, config: &mut Config, report: &mut Report) {
        if !report.needs_block(stmt) {
            return;
        }
        for c in stmt.body() {
            match c.keyword() {
                "router_id" | "lvs_id" => {
                    if let Some(id) = report.value(c) {
                        hostname(c, id, config, report);
                    }
                }
                "notification_email"
                | "notification_email_from"
                | "smtp_server"
                | "smtp_helo_name"
                | "smtp_connect_timeout"
                | "smtp_alert"
                | "smtp_alert_vrrp"
                | "smtp_alert_checker"
                | "email_faults" => report.unsupported(c, MAIL),
                "lvs_sync_daemon" => self.sync = Some(sync_daemon(c, report)),
                "lvs_timeouts" => lvs_timeouts(c, config, report),
                "lvs_flush" | "lvs_flush_onstop" => report.unsupported(
                    c,
                    "the box reconciles the IPVS table with its configuration and never \
                     flushes it",
                ),
                "vrrp_version" => self.version = version(c, report),
                "vrrp_garp_master_repeat" => self.garp_repeat = garp_repeat(c, report),
                "vrrp_garp_interval" => self.garp_interval = report.timer(c),
                "enable_script_security" | "script_user" => report.unsupported(
                    c,
                    "check programs run as the daemon's user; there is no script user",
                ),
                kw if kw.starts_with("vrrp_") => report.unsupported(
                    c,
                    "VRRP is replaced by the pair's heartbeat; this VRRP setting has no \
                     equivalent",
                ),
                _ => report.unknown(c),
            }
        }
    }

    pub fn instance(&mut self, stmt: &Stmt, report: &mut Report) {
        let name = report.value(stmt).unwrap_or_default().to_string();
        if !report.needs_block(stmt) {
            return;
        }
        let mut inst = Instance {
            line: stmt.line,
            name,
            role: None,
            interface: None,
            vrid: None,
            priority: PRIORITY,
            advert: ADVERT_INT,
            preempt: true,
            key: None,
            peers: Vec::new(),
            vips: Vec::new(),
            version: None,
            down_adverts: DOWN_TIMER_ADVERTS,
            garp_repeat: None,
            garp_interval: None,
            sync: false,
        };
        for c in stmt.body() {
            match c.keyword() {
                "state" => inst.role = report.value(c).and_then(|v| state(c, v, report)),
                "interface" => inst.interface = report.value(c).map(str::to_string),
                "virtual_router_id" => {
                    inst.vrid = report.number(c, 1, 255).and_then(|n| u8::try_from(n).ok())
                }
                "priority" => {
                    if let Some(p) = report.number(c, 1, 255).and_then(|n| u8::try_from(n).ok()) {
                        inst.priority = p;
                    }
                }
                "advert_int" => match report.timer(c) {
                    Some(span) if span.as_millis() > 0 => inst.advert = span,
                    Some(_) => report.error(c.line, "`advert_int` must be more than 0"),
                    None => {}
                },
                "nopreempt" => inst.preempt = false,
                "preempt" => inst.preempt = true,
                "preempt_delay" => {
                    report.timer(c);
                    report.unsupported(
                        c,
                        "the preferred node takes its role back as soon as it hears its peer",
                    )
                }
                "authentication" => inst.key = authentication(c, report),
                "unicast_peer" => {
                    if report.needs_block(c) {
                        for peer in c.body() {
                            if let Some(addr) = report.address(peer, peer.keyword()) {
                                inst.peers.push((peer.line, addr));
                            }
                            if !peer.args().is_empty() {
                                report.note(
                                    peer.line,
                                    format!(
                                        "unicast peer {}: '{}' (TTL checks) is not imported",
                                        peer.keyword(),
                                        peer.args().join(" ")
                                    ),
                                );
                            }
                        }
                    }
                }
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    if report.needs_block(c) {
                        for entry in c.body() {
                            inst.vips.extend(vip(entry, report));
                        }
                    }
                }
                "version" => inst.version = version(c, report),
                "down_timer_adverts" => {
                    if let Some(n) = report.number(c, 1, 100) {
                        inst.down_adverts = n;
                    }
                }
                "garp_master_repeat" => inst.garp_repeat = garp_repeat(c, report),
                "garp_interval" => inst.garp_interval = report.timer(c),
                "lvs_sync_daemon_interface" => {
                    report.value(c);
                    inst.sync = true;
                }
                "track_interface" | "track_script" | "track_file" | "track_process"
                | "track_bfd" => report.unsupported(
                    c,
                    "the VIPs move when the peer's heartbeat stops; tracked interfaces, \
                     scripts, files and processes do not move them here",
                ),
                "unicast_src_ip" | "mcast_src_ip" => report.unsupported(
                    c,
                    "the heartbeat is sent from the box's own address on its interface",
                ),
                "mcast_dst_ip" | "unicast_ttl" | "check_unicast_src" | "unicast_fault_no_peer" => {
                    report.unsupported(c, "the heartbeat is unicast to the peer")
                }
                "auth_hmac" => report.unsupported(
                    c,
                    "the heartbeat is always authenticated with the pair's key (HMAC); \
                     put the shared key in pair.key",
                ),
                "notify_master"
                | "notify_backup"
                | "notify_fault"
                | "notify_stop"
                | "notify"
                | "notify_master_rx_lower_pri"
                | "notify_priority_changes" => report.unsupported(c, SCRIPTS),
                "smtp_alert" => report.unsupported(c, MAIL),
                "virtual_routes" | "virtual_rules" => report.unsupported(
                    c,
                    "routes and rules that follow the VIPs are not supported; static routes \
                     belong in network.routes",
                ),
                "use_vmac" | "use_vmac_addr" | "vmac_xmit_base" | "use_ipvlan" => {
                    report.unsupported(c, "VIPs live on the interface itself; no virtual MAC")
                }
                kw if kw.starts_with("garp_") => report.unsupported(
                    c,
                    "announcements after a takeover are set by pair.announce_count and \
                     announce_spacing only",
                ),
                "dont_track_primary"
                | "native_ipv6"
                | "accept"
                | "no_accept"
                | "strict_mode"
                | "skip_check_adv_addr"
                | "lower_prio_no_advert"
                | "higher_prio_send_advert"
                | "timer_expired_backup"
                | "promote_secondaries"
                | "no_virtual_ipaddress"
                | "old_unicast_checksum"
                | "v3_checksum_as_v2"
                | "kernel_rx_buf_size"
                | "linkbeat_use_polling"
                | "debug"
                | "vrf"
                | "track_src_ip" => report.unsupported(
                    c,
                    "VRRP is replaced by the pair's heartbeat; this VRRP setting has no \
                         equivalent",
                ),
                _ => report.unknown(c),
            }
        }
        self.instances.push(inst);
    }

    /// The pair from the first instance, and the VIP devices from all of them.
    pub fn finish(self, config: &mut Config, report: &mut Report) {
        for inst in &self.instances {
            vip_devices(inst, config, report);
        }
        let mut instances = self.instances.iter();
        let Some(first) = instances.next() else {
            return;
        };
        for other in instances {
            report.note(
                other.line,
                format!(
                    "`vrrp_instance {}`: the box has one pair, set from `vrrp_instance {}` \
                     (line {}); this instance's VIPs move with it and its own state, priority, \
                     timers and peer are not used",
                    other.name, first.name, first.line
                ),
            );
        }
        if let Some(role) = first.role {
            config.node.role = role;
        }
        let mut peers = first.peers.iter();
        let Some(&(_, peer)) = peers.next() else {
            report.note(
                first.line,
                format!(
                    "`vrrp_instance {}` has no unicast_peer: keepalived found its peer by \
                     multicast, but the pair needs the peer's address, so no pair is \
                     imported; add one with pair.peer",
                    first.name
                ),
            );
            return;
        };
        for (line, extra) in peers {
            report.note(
                *line,
                format!("unicast peer {extra}: the pair has one peer, {peer}; not imported"),
            );
        }
        let key = match &first.key {
            Some((line, key)) => {
                let length = key.chars().count();
                if length < 16 {
                    report.note(
                        *line,
                        format!(
                            "`auth_pass`: the key has {length} characters (VRRP allows 8), but \
                             the pair's key needs at least 16; it is imported as it is: \
                             {SET_THE_KEY}, the same on both boxes"
                        ),
                    );
                }
                key.clone()
            }
            None => {
                report.note(
                    first.line,
                    format!(
                        "`vrrp_instance {}` has no authentication: pair.key is left empty; \
                         {SET_THE_KEY}, the same on both boxes",
                        first.name
                    ),
                );
                String::new()
            }
        };
        let version = first.version.or(self.version).unwrap_or(2);
        config.pair = Some(Pair {
            peer,
            key,
            priority: first.priority,
            udp: Some(UdpChannel {
                interface: first
                    .interface
                    .clone()
                    .unwrap_or_else(|| HEARTBEAT_INTERFACE.into()),
                port: HEARTBEAT_PORT,
                mode: UdpMode::Unicast,
                group: None,
            }),
            serial: None,
            keepalive: first.advert,
            deadtime: master_down_interval(
                first.advert,
                first.priority,
                first.down_adverts,
                version,
            ),
            warntime: None,
            initdead: None,
            auto_failback: first.preempt,
            ping_nodes: Vec::new(),
            // keepalived has no ping nodes, and without them only priority can decide.
            when_isolated: Isolation::HigherPriorityStays,
            announce_count: first
                .garp_repeat
                .or(self.garp_repeat)
                .unwrap_or(GARP_REPEAT),
            announce_spacing: first
                .garp_interval
                .or(self.garp_interval)
                .unwrap_or(ANNOUNCE_SPACING),
            watchdog: None,
            // keepalived synchronises connections only when told to.
            connection_sync: self.sync.is_some() || first.sync,
            // Its sync daemon's id defaults to the instance's virtual router id.
            sync_id: self
                .sync
                .flatten()
                .or(first.vrid)
                .unwrap_or_else(model::sync_id),
        });
    }
}

/// VRRP's Master_Down_Interval: `adverts` advert intervals plus the skew, which lets the
/// higher priority backup take over first. VRRPv2 (RFC 3768) skews by (256 - priority)/256
/// seconds, VRRPv3 (RFC 5798) by that fraction of the advert interval.
pub(super) fn master_down_interval(advert: Span, priority: u8, adverts: u64, version: u8) -> Span {
    let weight = 256 - u64::from(priority);
    let skew = if version == 3 {
        weight * advert.as_millis() / 256
    } else {
        weight * 1000 / 256
    };
    Span::from_millis(
        advert
            .as_millis()
            .saturating_mul(adverts)
            .saturating_add(skew),
    )
}

/// Puts each VIP's device on the virtual servers that serve it.
fn vip_devices(inst: &Instance, config: &mut Config, report: &mut Report) {
    for vip in &inst.vips {
        let device = vip.device.clone().or_else(|| inst.interface.clone());
        let mut used = false;
        for vs in config
            .virtual_servers
            .iter_mut()
            .filter(|vs| vs.vip == Some(vip.addr))
        {
            vs.device = device.clone();
            used = true;
        }
        if !used {
            report.note(
                vip.line,
                format!(
                    "VIP {}: no virtual_server uses this address; the box brings up the VIPs of \
                     its virtual servers only, so it is not imported",
                    vip.addr
                ),
            );
        }
    }
}

/// One line of `virtual_ipaddress`: `ADDRESS[/LEN] [dev IF] [label IF:N] [options...]`.
fn vip(entry: &Stmt, report: &mut Report) -> Option<Vip> {
    let text = entry.keyword();
    let (addr_text, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr = report.address(entry, addr_text);
    let host_len = if addr_text.contains(':') { 128 } else { 32 };
    if let Some(len) = len {
        if report
            .number_in(entry, len, 0, host_len)
            .is_some_and(|l| l != host_len)
        {
            report.note(
                entry.line,
                format!(
                    "VIP {text}: a VIP is brought up as a host address (/{host_len}); the \
                         prefix length is not kept"
                ),
            );
        }
    }
    let mut device = None;
    let mut label = None;
    let mut ignored = Vec::new();
    let mut words = entry.args().iter();
    while let Some(word) = words.next() {
        let takes_value = matches!(
            word.as_str(),
            "dev"
                | "label"
                | "brd"
                | "broadcast"
                | "scope"
                | "peer"
                | "preferred_lft"
                | "track_group"
        );
        if !takes_value {
            ignored.push(word.clone());
            continue;
        }
        let Some(value) = words.next() else {
            report.error(entry.line, format!("VIP {text}: `{word}` needs a value"));
            continue;
        };
        match word.as_str() {
            "dev" => device = Some(value.clone()),
            "label" => label = Some(value.clone()),
            _ => ignored.push(format!("{word} {value}")),
        }
    }
    if !ignored.is_empty() {
        report.note(
            entry.line,
            format!(
                "VIP {text}: '{}' is not imported; a VIP is a plain address on its device",
                ignored.join(" ")
            ),
        );
    }
    Some(Vip {
        line: entry.line,
        addr: addr?,
        // A label (eth0:1) names the device too, and keeps the alias ifconfig users see.
        device: label.or(device),
    })
}

fn authentication(stmt: &Stmt, report: &mut Report) -> Option<(usize, String)> {
    if !report.needs_block(stmt) {
        return None;
    }
    let mut key = None;
    for c in stmt.body() {
        match c.keyword() {
            "auth_type" => match report.value(c).map(str::to_ascii_uppercase).as_deref() {
                Some("PASS") | None => {}
                Some("AH") => report.note(
                    c.line,
                    "`auth_type AH`: the heartbeat is authenticated with an HMAC of the pair's \
                     key; the password becomes that key",
                ),
                Some(other) => {
                    report.error(c.line, format!("`auth_type`: '{other}' is not PASS or AH"))
                }
            },
            "auth_pass" => key = report.value(c).map(|k| (c.line, k.to_string())),
            _ => report.unknown(c),
        }
    }
    key
}

fn state(stmt: &Stmt, text: &str, report: &mut Report) -> Option<RolePreference> {
    match text.to_ascii_uppercase().as_str() {
        "MASTER" => Some(RolePreference::Primary),
        "BACKUP" => Some(RolePreference::Backup),
        _ => {
            report.error(
                stmt.line,
                format!("`state`: '{text}' is not MASTER or BACKUP"),
            );
            None
        }
    }
}

fn version(stmt: &Stmt, report: &mut Report) -> Option<u8> {
    report.number(stmt, 2, 3).and_then(|n| u8::try_from(n).ok())
}

fn garp_repeat(stmt: &Stmt, report: &mut Report) -> Option<u32> {
    report
        .number(stmt, 1, u64::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
}

/// `lvs_sync_daemon IF INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]`.
fn sync_daemon(stmt: &Stmt, report: &mut Report) -> Option<u8> {
    let mut id = None;
    let mut ignored = Vec::new();
    let mut words = stmt.args().iter().skip(2);
    if stmt.args().len() < 2 {
        report.error(
            stmt.line,
            "`lvs_sync_daemon` needs an interface and a vrrp_instance",
        );
    }
    while let Some(word) = words.next() {
        let Some(value) = words.next() else {
            report.error(
                stmt.line,
                format!("`lvs_sync_daemon`: `{word}` needs a value"),
            );
            break;
        };
        if word == "id" {
            id = report
                .number_in(stmt, value, 0, 255)
                .and_then(|n| u8::try_from(n).ok());
        } else {
            ignored.push(format!("{word} {value}"));
        }
    }
    let mut why = String::from("connection synchronisation runs on the heartbeat link to the peer");
    if !ignored.is_empty() {
        why = format!("{why}; '{}' is not imported", ignored.join(" "));
    }
    if let Some(interface) = stmt.arg(0) {
        report.note(
            stmt.line,
            format!("`lvs_sync_daemon` on {interface}: {why}"),
        );
    }
    id
}

/// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`: IPVS connection timeouts in seconds.
fn lvs_timeouts(stmt: &Stmt, config: &mut Config, report: &mut Report) {
    let mut words = stmt.args().iter();
    while let Some(word) = words.next() {
        let Some(value) = words.next() else {
            report.error(stmt.line, format!("`lvs_timeouts`: `{word}` needs a value"));
            break;
        };
        let span = report
            .number_in(stmt, value, 1, u64::MAX / 1000)
            .map(|secs| Span::from_millis(secs * 1000));
        let ipvs = &mut config.network.ipvs;
        match word.as_str() {
            "tcp" => ipvs.tcp_timeout = span,
            "tcpfin" => ipvs.tcpfin_timeout = span,
            "udp" => ipvs.udp_timeout = span,
            _ => report.error(
                stmt.line,
                format!("`lvs_timeouts`: '{word}' is not tcp, tcpfin or udp"),
            ),
        }
    }
}

/// `router_id` names the machine: it becomes the host name when it can be one.
fn hostname(stmt: &Stmt, id: &str, config: &mut Config, report: &mut Report) {
    if is_hostname(id) {
        config.node.hostname = id.to_string();
        return;
    }
    // Router ids like LVS_DEVEL are common; a dash is the nearest a host name allows.
    let adjusted = id.replace('_', "-");
    if is_hostname(&adjusted) {
        report.note(
            stmt.line,
            format!(
                "`{} {id}`: not a host name; the node is named '{adjusted}'",
                stmt.keyword()
            ),
        );
        config.node.hostname = adjusted;
    } else {
        report.note(
            stmt.line,
            format!(
                "`{} {id}`: not a host name; node.hostname stays '{}'",
                stmt.keyword(),
                config.node.hostname
            ),
        );
    }
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
