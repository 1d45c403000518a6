//! `virtual NAME { ... }` blocks with their `server NAME { ... }` blocks: the virtual servers,
//! their real servers, and nanny's monitoring as the health check.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::super::{clean_name, distinct_name};
use super::global::Settings;
use super::syntax::Stmt;
use super::Report;
use crate::config::model::{
    Check, CheckProtocol, Family, Forwarding, Persistence, ProgramCheck, Protocol, RealServer,
    Scheduler, SendExpectCheck, TcpCheck, VirtualServer,
};
use crate::config::types::Span;

/// Piranha's defaults for a virtual server (lvsInitVirtualServer): port 80, TCP, weighted
/// least-connection, a service timeout of 10 s and a re-entry time of 180 s.
const PORT: u16 = 80;
const TIMEOUT: Span = Span::from_millis(10_000);
const REENTRY: Span = Span::from_millis(180_000);

/// A real server's weight when the file gives none.
const WEIGHT: u32 = 1;

/// Port names of /etc/services that Piranha's `port` accepts besides numbers.
const PORT_NAMES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("imap", 143),
    ("ldap", 389),
    ("https", 443),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
];

/// What one `virtual` block says, each value with its line where a note may need it.
#[derive(Default)]
struct Fields {
    active: Option<bool>,
    vip: Option<(IpAddr, String, usize)>,
    fwmark: Option<(u32, usize)>,
    port: Option<u16>,
    protocol: Option<Protocol>,
    scheduler: Option<Scheduler>,
    persistent: Option<(u64, usize)>,
    pmask: Option<(Ipv4Addr, usize)>,
    send: Option<(String, usize)>,
    expect: Option<(String, usize)>,
    use_regex: Option<(bool, usize)>,
    send_program: Option<(String, usize)>,
    timeout: Option<Span>,
    reentry: Option<Span>,
    quiesce: Option<bool>,
    sorry_server: Option<IpAddr>,
}

/// Builds the virtual server of a `virtual` block; `None` when it cannot be (the reason is an
/// error in `report`).
pub(super) fn virtual_server(
    stmt: &Stmt,
    settings: &Settings,
    names: &mut HashSet<String>,
    report: &mut Report,
) -> Option<VirtualServer> {
    let mut f = Fields::default();
    let mut seen = Vec::new();
    let mut servers = Vec::new();
    for c in stmt.body() {
        if c.block.is_some() {
            if c.key == "server" {
                servers.push(c);
            } else {
                report.unknown(c, "inside a `virtual` block");
            }
            continue;
        }
        report.repeated(&mut seen, c);
        field(c, &mut f, report);
    }

    let name = distinct_name(&clean_name(stmt.name(), "virtual"), names);
    if name != stmt.name() {
        report.note(
            stmt.line,
            format!(
                "`virtual {}` is named '{name}' here (letters, digits, '-', '_' and '.', \
                 distinct)",
                stmt.name()
            ),
        );
    }
    let enabled = f.active.unwrap_or_else(|| {
        report.note(
            stmt.line,
            format!(
                "`virtual {}` has no `active` line: Piranha leaves such a service off, so it is \
                 imported disabled",
                stmt.name()
            ),
        );
        false
    });
    let protocol = f.protocol.unwrap_or(Protocol::Tcp);
    let port = f.port.unwrap_or(PORT);
    // The real servers are read even when the service itself cannot be, so that their
    // errors are reported too.
    let mut real_names = HashSet::new();
    let real_servers: Vec<RealServer> = servers
        .into_iter()
        .filter_map(|s| {
            let service = Service {
                port,
                fwmark: f.fwmark.is_some(),
                forwarding: settings.forwarding(),
            };
            real_server(s, &service, &mut real_names, report)
        })
        .collect();

    let (vip, vs_port, fwmark, family, device) = match (f.fwmark, &f.vip) {
        (Some((mark, _)), vip) => {
            if let Some((addr, device, line)) = vip {
                report.note(
                    *line,
                    format!(
                        "`address = {addr} {device}`: a firewall-mark service is selected by \
                         its mark, and the box brings up no VIP for it; put {addr} on {device} \
                         by other means"
                    ),
                );
            }
            let family = match vip {
                Some((IpAddr::V6(_), _, _)) => Family::Inet6,
                _ => Family::Inet,
            };
            (None, None, Some(mark), Some(family), None)
        }
        (None, Some((addr, device, _))) => {
            (Some(*addr), Some(port), None, None, Some(device.clone()))
        }
        (None, None) => {
            // An `address` line that could not be read is already an error of its own.
            if stmt.body().iter().any(|c| c.key == "address") {
                return None;
            }
            report.error(
                stmt.line,
                format!(
                    "`virtual {}` has no `address` (nor a `fwmark`)",
                    stmt.name()
                ),
            );
            return None;
        }
    };

    let persistence = persistence(&f, report);
    let check = check(stmt, &f, protocol, report).filter(|c| {
        // nanny would connect to port 0, which nothing answers: every real server would
        // fail. A program needs no port.
        let portless = port == 0 && c.program.is_none();
        if portless {
            report.note(
                stmt.line,
                format!(
                    "`virtual {}` serves every port (port 0): nothing answers a check on port \
                     0, so no check is imported; add one with a port (check.port)",
                    stmt.name()
                ),
            );
        }
        !portless
    });

    Some(VirtualServer {
        name,
        enabled,
        vip,
        port: vs_port,
        fwmark,
        family,
        protocol,
        scheduler: f.scheduler.unwrap_or(Scheduler::Wlc),
        forwarding: settings.forwarding(),
        persistence,
        device,
        quiescent: f.quiesce.unwrap_or(false),
        reentry: Some(f.reentry.unwrap_or(REENTRY)),
        sorry_server: f.sorry_server.map(|addr| SocketAddr::new(addr, port)),
        check,
        real_servers,
    })
}

/// Reads one setting of a `virtual` block into `f`.
fn field(c: &Stmt, f: &mut Fields, report: &mut Report) {
    let line = c.line;
    match c.key.as_str() {
        "active" => f.active = report.flag(c),
        "address" => match c.values.as_slice() {
            // Piranha requires the device: it is where pulse brings the VIP up.
            [addr, device] => {
                if let Some(addr) = report.address(c, addr) {
                    f.vip = Some((addr, device.clone(), line));
                }
            }
            _ => report.error(
                line,
                "`address` needs the VIP and its device (`address = 192.0.2.10 eth0:1`)",
            ),
        },
        "vip_nmask" => {
            // A host mask is what the box does anyway.
            if report.netmask(c).is_some_and(|m| m != Ipv4Addr::BROADCAST) {
                report.unsupported(
                    c,
                    "the box brings a VIP up as a host address (/32), without this netmask",
                );
            }
        }
        "fwmark" => {
            f.fwmark = report
                .number(c, 1, u64::from(u32::MAX))
                .and_then(|m| u32::try_from(m).ok())
                .map(|m| (m, line))
        }
        "port" => f.port = port(c, report),
        "protocol" => {
            f.protocol = match report.value(c) {
                Some("tcp") => Some(Protocol::Tcp),
                Some("udp") => Some(Protocol::Udp),
                Some(other) => {
                    report.error(line, format!("`protocol`: '{other}' is not tcp or udp"));
                    None
                }
                None => None,
            }
        }
        "scheduler" => f.scheduler = scheduler(c, report),
        "persistent" => f.persistent = report.number(c, 0, 31_536_000).map(|p| (p, line)),
        "pmask" => f.pmask = report.netmask(c).map(|m| (m, line)),
        "send" => f.send = report.value(c).map(|v| (v.to_string(), line)),
        "expect" => f.expect = report.value(c).map(|v| (v.to_string(), line)),
        "use_regex" => f.use_regex = report.flag(c).map(|b| (b, line)),
        "send_program" => f.send_program = report.value(c).map(|v| (v.to_string(), line)),
        "timeout" => f.timeout = report.seconds(c, 1),
        "reentry" => f.reentry = report.seconds(c, 0),
        "quiesce_server" => f.quiesce = report.flag(c),
        "sorry_server" => {
            f.sorry_server = report.value(c).and_then(|v| report.address(c, v));
        }
        "load_monitor" => match report.value(c) {
            Some("none") | None => {}
            Some(_) => report.unsupported(
                c,
                "load monitoring with rup or ruptime is not available; weights stay as \
                 configured",
            ),
        },
        "client_monitor" => report.unsupported(
            c,
            "the box runs its own health checks in place of nanny; the check is imported from \
             send, expect and send_program",
        ),
        "master" | "start_cmd" | "stop_cmd" | "dirs" => report.unsupported(
            c,
            "only failover services use it, and they are not supported",
        ),
        _ => report.unknown(c, "in a `virtual` block"),
    }
}

/// A port by number or by its /etc/services name.
fn port(c: &Stmt, report: &mut Report) -> Option<u16> {
    let text = report.value(c)?;
    let port = super::parse_whole(text)
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| {
            PORT_NAMES
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, p)| *p)
        });
    if port.is_none() {
        report.error(
            c.line,
            format!(
                "`{}`: '{text}' is not a port (0-65535 or a name like http)",
                c.key
            ),
        );
    }
    port
}

fn scheduler(c: &Stmt, report: &mut Report) -> Option<Scheduler> {
    let text = report.value(c)?;
    let scheduler = Scheduler::from_name(text);
    if scheduler.is_none() {
        report.error(
            c.line,
            format!(
                "`scheduler`: '{text}' is not an IPVS scheduler ({})",
                Scheduler::names()
            ),
        );
    }
    scheduler
}

/// `persistent` seconds, grouped by `pmask`. Piranha treats 255.255.255.255 as no mask, and a
/// mask without persistence does nothing.
fn persistence(f: &Fields, report: &mut Report) -> Option<Persistence> {
    let timeout = match f.persistent {
        Some((secs, _)) if secs > 0 => Span::from_millis(secs * 1000),
        _ => {
            if let Some((mask, line)) = f.pmask {
                report.note(
                    line,
                    format!("`pmask = {mask}`: without `persistent` the mask has no effect"),
                );
            }
            return None;
        }
    };
    let netmask = f
        .pmask
        .map(|(mask, _)| mask)
        .filter(|m| *m != Ipv4Addr::BROADCAST && !m.is_unspecified())
        .map(IpAddr::V4);
    Some(Persistence {
        timeout,
        netmask,
        prefix_len: None,
    })
}

/// nanny's monitoring as a check. nanny gets the service timeout as its interval and declares
/// a real server dead when it does not answer within it, once: so the check runs every
/// `timeout` seconds, waits as long, and one failure takes the server out. A send_program
/// wins over send (as in nanny); send and expect make a send/expect check; neither makes a
/// TCP connection check.
fn check(stmt: &Stmt, f: &Fields, protocol: Protocol, report: &mut Report) -> Option<Check> {
    let timeout = f.timeout.unwrap_or(TIMEOUT);
    let mut check = Check {
        interval: timeout,
        timeout,
        rise: 1,
        fall: 1,
        port: None,
        min_weight: None,
        max_weight: None,
        tcp: None,
        http: None,
        send_expect: None,
        program: None,
    };
    if let Some((program, line)) = &f.send_program {
        let mut words = program.split_whitespace().map(str::to_string);
        let Some(path) = words.next() else {
            report.error(*line, "`send_program` names no program");
            return None;
        };
        let args: Vec<String> = words.collect();
        // nanny puts the real server's address for `%h`; so does the box's program check.
        if let Some((_, send_line)) = &f.send {
            report.note(
                *send_line,
                "`send` is ignored when there is a `send_program`, as nanny does",
            );
        }
        if let Some((expect, expect_line)) = &f.expect {
            report.note(
                *expect_line,
                format!(
                    "`expect = {expect}`: nanny compared the program's output with it; the \
                     box's program check looks only at the exit status (0 is healthy)"
                ),
            );
        }
        if let Some((true, regex_line)) = f.use_regex {
            report.note(regex_line, "`use_regex`: there is no output to match");
        }
        check.program = Some(ProgramCheck { path, args });
        return Some(check);
    }
    if f.send.is_some() || f.expect.is_some() {
        if let Some((true, line)) = f.use_regex {
            report.note(
                line,
                "`use_regex = 1`: the expect string is imported as written; the box's \
                 send/expect check has no separate regular-expression switch, so check that it \
                 still matches the answers",
            );
        }
        let protocol = match protocol {
            Protocol::Udp => CheckProtocol::Udp,
            _ => CheckProtocol::Tcp,
        };
        check.send_expect = Some(SendExpectCheck {
            protocol,
            send: f.send.as_ref().map(|(s, _)| s.clone()),
            expect: f.expect.as_ref().map(|(e, _)| e.clone()),
        });
        return Some(check);
    }
    if let Some((true, line)) = f.use_regex {
        report.note(line, "`use_regex`: there is no expect string to match");
    }
    if protocol == Protocol::Udp {
        report.note(
            stmt.line,
            format!(
                "`virtual {}`: a UDP service without `send` cannot be checked (nothing would \
                 answer); no check is imported",
                stmt.name()
            ),
        );
        return None;
    }
    check.tcp = Some(TcpCheck {});
    Some(check)
}

/// What a `server` block takes from its `virtual` block and the global section.
struct Service {
    port: u16,
    fwmark: bool,
    forwarding: Forwarding,
}

/// A `server NAME { ... }` block. Piranha gives a real server the service's port and weight 1,
/// and leaves it inactive without `active = 1`.
fn real_server(
    stmt: &Stmt,
    service: &Service,
    names: &mut HashSet<String>,
    report: &mut Report,
) -> Option<RealServer> {
    let service_port = service.port;
    let mut address = None;
    let mut active = None;
    let mut weight = None;
    let mut port = None;
    let mut seen = Vec::new();
    for c in stmt.body() {
        if c.block.is_some() {
            report.unknown(c, "inside a `server` block");
            continue;
        }
        report.repeated(&mut seen, c);
        match c.key.as_str() {
            "address" => address = report.value(c).and_then(|v| report.address(c, v)),
            "active" => active = report.flag(c),
            "weight" => {
                weight = report
                    .number(c, 0, 65_535)
                    .and_then(|w| u32::try_from(w).ok())
            }
            "port" => port = self::port(c, report).map(|p| (p, c.line)),
            _ => report.unknown(c, "in a `server` block"),
        }
    }
    let Some(address) = address else {
        if !stmt.body().iter().any(|c| c.key == "address") {
            report.error(
                stmt.line,
                format!("`server {}` has no `address`", stmt.name()),
            );
        }
        return None;
    };
    let name = distinct_name(&clean_name(stmt.name(), "server"), names);
    if name != stmt.name() {
        report.note(
            stmt.line,
            format!(
                "`server {}` is named '{name}' here (letters, digits, '-', '_' and '.', distinct)",
                stmt.name()
            ),
        );
    }
    let enabled = active.unwrap_or_else(|| {
        report.note(
            stmt.line,
            format!(
                "`server {}` has no `active` line: Piranha leaves such a real server out, so it \
                 is imported disabled",
                stmt.name()
            ),
        );
        false
    });
    // A firewall-mark service has no port of its own: its real servers keep the one Piranha
    // gave them (the virtual's `port`), which is also where they are checked.
    let port = if service.fwmark {
        Some(port.map_or(service_port, |(p, _)| p))
    } else {
        match port {
            Some((p, _)) if p == service_port => None,
            // Direct routing and tunnelling deliver the packet unchanged: the kernel ignores a
            // real server's port, so Piranha's real server got the virtual port, and the box
            // refuses a port it could not honour.
            Some((p, line)) if service.forwarding != Forwarding::Nat && service_port != 0 => {
                report.note(
                    line,
                    format!(
                        "`port = {p}`: {} forwarding cannot change the port; the kernel \
                         delivered to the virtual port {service_port}, and so does the box \
                         (this port is not imported)",
                        if service.forwarding == Forwarding::Dr {
                            "direct"
                        } else {
                            "tunnel"
                        }
                    ),
                );
                None
            }
            Some((p, _)) => Some(p),
            None => None,
        }
    };
    Some(RealServer {
        name,
        address,
        port,
        weight: weight.unwrap_or(WEIGHT),
        upper_threshold: 0,
        lower_threshold: 0,
        enabled,
    })
}
