//! The LVS part of keepalived.conf: `virtual_server` (by address and port, `fwmark` or
//! `group`) and its `real_server`s, as virtual servers. A group becomes one virtual server per
//! member, each with the group's real servers and check.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::super::{clean_name, mark_name, real_name, service_name};
use super::checks::{self, Timing};
use super::groups::{family, mark, Group, Member};
use super::syntax::Stmt;
use super::Report;
use crate::config::model::{
    Check, Family, Forwarding, Persistence, Protocol, RealServer, Scheduler, VirtualServer,
};
use crate::config::types::Span;
use crate::config::Config;

/// keepalived's persistence when `persistence_timeout` has no value, or only a granularity
/// is given: 6 minutes (ipvsadm's default).
const PERSISTENCE: Span = Span::from_millis(360_000);

/// How persistence groups clients, before the service's family is known.
enum Granularity {
    Netmask(IpAddr),
    PrefixLen(u8),
}

/// What the body of one `virtual_server` says, shared by all its members.
struct Service {
    template: VirtualServer,
    persistence: Option<Span>,
    granularity: Option<Granularity>,
    sorry: Option<(IpAddr, Option<u16>)>,
    /// The line of each real server of `template`, in the same order.
    real_lines: Vec<usize>,
}

/// One `virtual_server` block: one virtual server, or one per member of its group.
pub(super) fn virtual_server(
    stmt: &Stmt,
    groups: &HashMap<String, Group>,
    config: &mut Config,
    report: &mut Report,
) {
    let (members, prefix) = header(stmt, groups, report);
    if !report.needs_block(stmt) {
        return;
    }
    let service = body(stmt, report);
    // A group's members share the real servers: each of their lines is noted once.
    let mut noted = HashSet::new();
    for member in members {
        let vs = instantiate(&service, member, prefix.as_deref(), &mut noted, report);
        config.virtual_servers.push(vs);
    }
}

/// The members a header names, and the prefix of their names for a group.
fn header(
    stmt: &Stmt,
    groups: &HashMap<String, Group>,
    report: &mut Report,
) -> (Vec<Member>, Option<String>) {
    match stmt.arg(0) {
        None => {
            report.error(
                stmt.line,
                "`virtual_server` needs an address and port, `fwmark N` or `group NAME`",
            );
            (Vec::new(), None)
        }
        Some("fwmark") => {
            report.extra(stmt, 2);
            let mark = report.value_at(stmt, 1).and_then(|v| mark(stmt, v, report));
            (
                mark.map(|mark| Member::Mark { mark, family: None })
                    .into_iter()
                    .collect(),
                None,
            )
        }
        Some("group") => {
            report.extra(stmt, 2);
            let Some(name) = report.value_at(stmt, 1) else {
                return (Vec::new(), None);
            };
            match groups.get(name) {
                Some(group) => (group.members.clone(), Some(clean_name(name, "group"))),
                None => {
                    report.error(
                        stmt.line,
                        format!("`virtual_server group {name}`: no virtual_server_group {name}"),
                    );
                    (Vec::new(), None)
                }
            }
        }
        Some(addr) => {
            report.extra(stmt, 2);
            let addr = report.address(stmt, addr);
            let port = stmt.arg(1).and_then(|p| report.port(stmt, p));
            let port_ok = stmt.arg(1).is_none() || port.is_some();
            match addr {
                Some(addr) if port_ok => (vec![Member::Vip { addr, port }], None),
                _ => (Vec::new(), None),
            }
        }
    }
}

fn body(stmt: &Stmt, report: &mut Report) -> Service {
    let mut template = VirtualServer {
        name: String::new(),
        enabled: true,
        vip: None,
        port: None,
        fwmark: None,
        family: None,
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wlc,
        // keepalived's default forwarding is NAT, unlike the model's.
        forwarding: Forwarding::Nat,
        persistence: None,
        device: None,
        quiescent: false,
        reentry: None,
        sorry_server: None,
        check: None,
        real_servers: Vec::new(),
    };
    let mut service = Service {
        template: template.clone(),
        persistence: None,
        granularity: None,
        sorry: None,
        real_lines: Vec::new(),
    };
    let mut timing = Timing::default();
    let mut reals = Vec::new();
    for c in stmt.body() {
        if timing.take(c, report) {
            continue;
        }
        match c.keyword() {
            "lb_algo" | "lvs_sched" => {
                if let Some(s) = report.value(c).and_then(|v| scheduler(c, v, report)) {
                    template.scheduler = s;
                }
            }
            "lb_kind" | "lvs_method" => {
                if let Some(f) = forwarding(c, report) {
                    template.forwarding = f;
                }
            }
            "persistence_timeout" => match c.arg(0) {
                None => service.persistence = Some(PERSISTENCE),
                Some(_) => match report.number(c, 0, u64::MAX / 1000) {
                    Some(0) => report.note(
                        c.line,
                        "`persistence_timeout 0`: no persistence, as in keepalived",
                    ),
                    Some(secs) => service.persistence = Some(Span::from_millis(secs * 1000)),
                    None => {}
                },
            },
            "persistence_granularity" => {
                service.granularity = report.value(c).and_then(|v| granularity(c, v, report))
            }
            "protocol" => {
                if let Some(p) = report.value(c).and_then(|v| protocol(c, v, report)) {
                    template.protocol = p;
                }
            }
            "sorry_server" => service.sorry = sorry_server(c, report),
            "inhibit_on_failure" => {
                template.quiescent = report.flag(c).unwrap_or(template.quiescent)
            }
            "ip_family" => template.family = report.value(c).and_then(|v| family(c, v, report)),
            "quorum" | "hysteresis" => {
                report.number(c, 0, u64::from(u32::MAX));
                report.unsupported(
                    c,
                    "there is no quorum of real server weight here; the service stays up while \
                     any real server is up, and the sorry server takes over when none is",
                )
            }
            "quorum_up" | "quorum_down" => {
                report.unsupported(c, "there is no quorum here, so no quorum scripts either")
            }
            "alpha" => report.unsupported(
                c,
                "real servers start as up here and go down on their first failed checks",
            ),
            "omega" => report.unsupported(c, "no scripts run when the service stops"),
            "ha_suspend" => report.unsupported(
                c,
                "checks run on both boxes; the standby keeps its view of the real servers ready",
            ),
            "smtp_alert" => report.unsupported(
                c,
                "e-mail alerts are not supported; the box reports on its console and admin \
                 endpoint",
            ),
            "snmp_name" => {
                report.unsupported(c, "SNMP is not supported; use the admin endpoint's metrics")
            }
            "sorry_server_inhibit" | "sorry_server_lvs_method" => report.unsupported(
                c,
                "the sorry server is added with the service's forwarding and weight 1",
            ),
            "nat_mask" => report.unsupported(c, "obsolete; NAT needs no mask here"),
            "persistence_engine" => {
                report.unsupported(c, "persistence engines (SIP) are not supported")
            }
            "ops" | "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => report.unsupported(c, "scheduler flags are not supported"),
            "real_server" => reals.push(c),
            _ => report.unknown(c),
        }
    }
    // Real servers come last: the virtual server's settings are their defaults wherever in
    // the block those settings stand.
    let mut checks: Vec<(&Stmt, Option<(usize, Check)>)> = Vec::new();
    let mut inhibited = Vec::new();
    for rs in reals {
        if let Some(real) = real_server(rs, &timing, template.forwarding, report) {
            template.real_servers.push(real.server);
            service.real_lines.push(rs.line);
            checks.push((rs, real.check));
            if real.inhibit {
                inhibited.push(rs.line);
            }
        }
    }
    if !inhibited.is_empty() && !template.quiescent {
        // One real server's inhibit_on_failure covers its whole service here.
        template.quiescent = true;
        if inhibited.len() < template.real_servers.len() {
            for line in inhibited {
                report.note(
                    line,
                    "`inhibit_on_failure` on some real servers: here every real server of this \
                     virtual server gets weight 0 on failure instead of being removed",
                );
            }
        }
    }
    template.check = shared_check(&checks, report);
    service.template = template;
    service
}

/// The service's check: the real servers' check when they agree, else the first one's.
fn shared_check(checks: &[(&Stmt, Option<(usize, Check)>)], report: &mut Report) -> Option<Check> {
    let (first_line, first) = checks.iter().find_map(|(_, c)| c.clone())?;
    for (rs, check) in checks {
        match check {
            Some((line, check)) if *check != first => report.note(
                *line,
                format!(
                    "`{}`: one check serves all real servers of a virtual server here; this one \
                     differs from the check on line {first_line}, which is used instead",
                    rs.body()
                        .iter()
                        .find(|c| c.line == *line)
                        .map_or("check", Stmt::keyword)
                ),
            ),
            None => report.note(
                rs.line,
                format!(
                    "`real_server` without a checker is always up in keepalived; here it is \
                     checked like the others (line {first_line})"
                ),
            ),
            Some(_) => {}
        }
    }
    Some(first)
}

struct Real {
    server: RealServer,
    check: Option<(usize, Check)>,
    inhibit: bool,
}

fn real_server(
    stmt: &Stmt,
    inherited: &Timing,
    service_forwarding: Forwarding,
    report: &mut Report,
) -> Option<Real> {
    report.extra(stmt, 2);
    let addr = report
        .value_at(stmt, 0)
        .and_then(|a| report.address(stmt, a));
    let port = stmt.arg(1).and_then(|p| report.port(stmt, p));
    if !report.needs_block(stmt) {
        return None;
    }
    let mut timing = inherited.clone();
    let mut server = RealServer {
        name: String::new(),
        address: addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        port,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        enabled: true,
    };
    let mut inhibit = false;
    let mut checkers = Vec::new();
    for c in stmt.body() {
        if timing.take(c, report) {
            continue;
        }
        match c.keyword() {
            "weight" => {
                if let Some(w) = report.number(c, 0, u64::from(u32::MAX)) {
                    server.weight = u32::try_from(w).unwrap_or(u32::MAX);
                }
            }
            "inhibit_on_failure" => inhibit = report.flag(c).unwrap_or(inhibit),
            "uthreshold" => {
                if let Some(n) = report.number(c, 0, u64::from(u32::MAX)) {
                    server.upper_threshold = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
            "lthreshold" => {
                if let Some(n) = report.number(c, 0, u64::from(u32::MAX)) {
                    server.lower_threshold = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
            "lvs_method" => {
                if forwarding(c, report).is_some_and(|f| f != service_forwarding) {
                    report.unsupported(
                        c,
                        "all real servers of a virtual server share its forwarding here; the \
                         virtual server's is used",
                    );
                }
            }
            "notify_up" | "notify_down" => report.unsupported(
                c,
                "no scripts run on changes of state; the box reports them on its console and \
                 admin endpoint",
            ),
            "smtp_alert" => report.unsupported(
                c,
                "e-mail alerts are not supported; the box reports on its console and admin \
                 endpoint",
            ),
            "snmp_name" => {
                report.unsupported(c, "SNMP is not supported; use the admin endpoint's metrics")
            }
            "alpha" => report.unsupported(
                c,
                "a real server starts as up here and goes down on its first failed checks",
            ),
            kw if checks::is_checker(kw) => checkers.push(c),
            _ => report.unknown(c),
        }
    }
    let mut check = None;
    for c in checkers {
        match (&check, checks::checker(c, &timing, report)) {
            (None, Some(found)) => check = Some((c.line, found)),
            (Some((line, _)), Some(_)) => report.unsupported(
                c,
                &format!("a real server has one check here; the check on line {line} is used"),
            ),
            (_, None) => {}
        }
    }
    server.name = real_name(addr?, port);
    Some(Real {
        server,
        check,
        inhibit,
    })
}

fn scheduler(stmt: &Stmt, text: &str, report: &mut Report) -> Option<Scheduler> {
    let Some(s) = Scheduler::from_name(text) else {
        report.error(
            stmt.line,
            format!(
                "`{}`: '{text}' is not an IPVS scheduler ({})",
                stmt.keyword(),
                Scheduler::names()
            ),
        );
        return None;
    };
    Some(s)
}

/// `lb_kind`/`lvs_method NAT|DR|TUN [type ...]`.
fn forwarding(stmt: &Stmt, report: &mut Report) -> Option<Forwarding> {
    let text = report.value_at(stmt, 0)?;
    let f = match text.to_ascii_uppercase().as_str() {
        "NAT" => Forwarding::Nat,
        "DR" => Forwarding::Dr,
        "TUN" => Forwarding::Tunnel,
        _ => {
            report.error(
                stmt.line,
                format!("`{}`: '{text}' is not NAT, DR or TUN", stmt.keyword()),
            );
            return None;
        }
    };
    if f == Forwarding::Tunnel && stmt.args().len() > 1 {
        report.note(
            stmt.line,
            format!(
                "`{}`: tunnel options ('{}') are not imported; the tunnel is IP-in-IP",
                stmt.keyword(),
                stmt.args().get(1..).unwrap_or(&[]).join(" ")
            ),
        );
    } else {
        report.extra(stmt, 1);
    }
    Some(f)
}

fn protocol(stmt: &Stmt, text: &str, report: &mut Report) -> Option<Protocol> {
    match text.to_ascii_uppercase().as_str() {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => {
            report.error(
                stmt.line,
                format!("`protocol`: '{text}' is not TCP, UDP or SCTP"),
            );
            None
        }
    }
}

/// An IPv4 netmask, or for IPv6 a prefix length (as keepalived reads it).
fn granularity(stmt: &Stmt, text: &str, report: &mut Report) -> Option<Granularity> {
    if text.contains('.') {
        match text.parse::<Ipv4Addr>() {
            Ok(mask) => Some(Granularity::Netmask(IpAddr::V4(mask))),
            Err(_) => {
                report.error(
                    stmt.line,
                    format!("`persistence_granularity`: '{text}' is not a netmask"),
                );
                None
            }
        }
    } else {
        report
            .number_in(stmt, text, 1, 128)
            .and_then(|n| u8::try_from(n).ok())
            .map(Granularity::PrefixLen)
    }
}

fn sorry_server(stmt: &Stmt, report: &mut Report) -> Option<(IpAddr, Option<u16>)> {
    report.extra(stmt, 2);
    let addr = report
        .value_at(stmt, 0)
        .and_then(|a| report.address(stmt, a))?;
    let port = match stmt.arg(1) {
        Some(p) => Some(report.port(stmt, p)?),
        None => None,
    };
    Some((addr, port))
}

/// The service for one member: its address, port or mark, its name, its persistence.
/// `noted` holds the real server lines already noted for an earlier member.
fn instantiate(
    service: &Service,
    member: Member,
    group: Option<&str>,
    noted: &mut HashSet<usize>,
    report: &mut Report,
) -> VirtualServer {
    let mut vs = service.template.clone();
    let v4 = match member {
        Member::Vip { addr, port } => {
            vs.vip = Some(addr);
            // Without a port keepalived serves every port (which needs persistence).
            let port = port.unwrap_or(0);
            vs.port = Some(port);
            vs.name = service_name(vs.protocol, addr, port);
            if vs.forwarding != Forwarding::Nat && port != 0 {
                same_port(&mut vs, port, &service.real_lines, noted, report);
            }
            addr.is_ipv4()
        }
        Member::Mark { mark, family } => {
            vs.fwmark = Some(mark);
            vs.family = family.or(vs.family).or_else(|| {
                // keepalived takes a mark service's family from its real servers.
                let all_v6 = !vs.real_servers.is_empty()
                    && vs.real_servers.iter().all(|rs| rs.address.is_ipv6());
                all_v6.then_some(Family::Inet6)
            });
            vs.name = mark_name(mark, vs.family);
            vs.family != Some(Family::Inet6)
        }
    };
    if let Some(group) = group {
        vs.name = format!("{group}-{}", vs.name);
    }
    if service.persistence.is_some() || service.granularity.is_some() {
        let mut p = Persistence {
            timeout: service.persistence.unwrap_or(PERSISTENCE),
            netmask: None,
            prefix_len: None,
        };
        match &service.granularity {
            Some(Granularity::Netmask(mask)) => p.netmask = Some(*mask),
            Some(Granularity::PrefixLen(len)) if !v4 => p.prefix_len = Some(*len),
            // A number on an IPv4 service: keepalived reads it as a netmask's length.
            Some(Granularity::PrefixLen(len)) => {
                let bits = u32::MAX
                    .checked_shl(32 - u32::from((*len).min(32)))
                    .unwrap_or(0);
                p.netmask = Some(IpAddr::V4(Ipv4Addr::from(bits)));
            }
            None => {}
        }
        vs.persistence = Some(p);
    }
    if let Some((addr, port)) = service.sorry {
        let port = port.or(vs.port).unwrap_or(0);
        vs.sorry_server = Some(SocketAddr::new(addr, port));
    }
    vs
}

/// Direct routing and tunnelling deliver packets unchanged, to the virtual port: the kernel
/// ignores a real server's port there (keepalived's too), and the box refuses one it could not
/// honour. A different port is dropped, with a note on its `real_server` line.
fn same_port(
    vs: &mut VirtualServer,
    port: u16,
    lines: &[usize],
    noted: &mut HashSet<usize>,
    report: &mut Report,
) {
    let method = match vs.forwarding {
        Forwarding::Dr => "DR",
        _ => "TUN",
    };
    for (rs, line) in vs.real_servers.iter_mut().zip(lines) {
        let Some(rport) = rs.port.filter(|p| *p != port) else {
            continue;
        };
        rs.port = None;
        rs.name = real_name(rs.address, Some(port));
        if noted.insert(*line) {
            report.note(
                *line,
                format!(
                    "`real_server {} {rport}`: {method} forwarding cannot change the port; the \
                     kernel delivered to the virtual port {port}, and so does the box (the port \
                     {rport} is not imported, and the real server is checked on {port} unless \
                     the check sets connect_port)",
                    rs.address
                ),
            );
        }
    }
}
