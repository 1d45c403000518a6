//! A `virtual` block as a virtual server: names, real servers, fallback, persistence, and
//! the health check with ldirectord's timing rules.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use super::{
    Block, CheckType, Scoped, Target, DEFAULT_CHECKINTERVAL, DEFAULT_CHECKTIMEOUT,
    DEFAULT_NEGOTIATETIMEOUT, SERVICES, SUCCESS_CODES,
};
use crate::config::import::ldirectord::parse_number;
use crate::config::import::ldirectord::Report;
use crate::config::import::{distinct_name, mark_name, real_name, service_name};
use crate::config::model::{
    Check, CheckProtocol, Family, Forwarding, HttpCheck, Persistence, ProgramCheck, Protocol,
    RealServer, Scheduler, SendExpectCheck, TcpCheck, VirtualServer,
};
use crate::config::types::Span;

/// What earlier blocks used: virtual server names, and fallback lines already noted (a global
/// fallback serves every block, its note is given once).
#[derive(Default)]
pub(super) struct Seen {
    names: HashSet<String>,
    fallback_lines: HashSet<usize>,
}

/// One block as a virtual server, with the global settings and ldirectord's defaults filled in.
pub(super) fn build(
    file: &str,
    block: &Block,
    global: &Scoped,
    fork: bool,
    seen: &mut Seen,
    report: &mut Report,
) -> Option<VirtualServer> {
    let target = block.target.as_ref()?;
    let mut note = |line: usize, message: String| report.note(file, line, message);

    let (vip, port, fwmark) = match *target {
        Target::Service(addr, port) => (Some(addr), Some(port), None),
        Target::Mark(mark) => (None, None, Some(mark)),
    };
    let protocol = match (&block.protocol, fwmark) {
        (Some((p, line)), Some(_)) if p != "fwm" => {
            note(
                *line,
                format!("`protocol`: a firewall-mark service has no protocol of its own ('{p}' is not imported)"),
            );
            Protocol::Tcp
        }
        (Some((p, line)), None) if p == "fwm" => {
            note(
                *line,
                "`protocol`: fwm is only for firewall-mark services; tcp is used".to_string(),
            );
            Protocol::Tcp
        }
        (Some((p, _)), None) if p == "udp" => Protocol::Udp,
        (Some(_), _) => Protocol::Tcp,
        // ldirectord's default: UDP for DNS, TCP otherwise.
        (None, None) if port == Some(53) => Protocol::Udp,
        (None, _) => Protocol::Tcp,
    };
    let service = match block.service {
        Some((service, _)) => service,
        None => port
            .and_then(|p| SERVICES.iter().find(|(_, sp)| *sp == p && p != 0))
            .map(|(name, _)| *name)
            .unwrap_or("none"),
    };

    let label = match (vip, port, fwmark) {
        (Some(vip), Some(port), _) => service_name(protocol, vip, port),
        (_, _, Some(mark)) => mark_name(mark, block.v6.then_some(Family::Inet6)),
        _ => format!("virtual-{}", block.line),
    };
    let name = distinct_name(&label, &mut seen.names);

    // The real servers: the virtual server forwards one way; ldirectord allowed one per server.
    let forwarding = block
        .reals
        .first()
        .map(|r| r.method)
        .unwrap_or(Forwarding::Dr);
    let mut real_names = HashSet::new();
    let mut real_servers = Vec::new();
    let mut reported_lines = HashSet::new();
    for real in &block.reals {
        if real.method != forwarding && reported_lines.insert((real.line, 0)) {
            note(
                real.line,
                format!(
                    "`real`: {} forwarding differs from the first real server's ({}); the box \
                     forwards every real server of a virtual service the same way",
                    method_word(real.method),
                    method_word(forwarding)
                ),
            );
        }
        let mut rport = real.port;
        if forwarding != Forwarding::Nat {
            if let (Some(rp), Some(vp)) = (rport, port) {
                if rp != vp && vp != 0 {
                    if reported_lines.insert((real.line, 1)) {
                        note(
                            real.line,
                            format!(
                                "`real`: {} forwarding cannot change the port; ldirectord used \
                                 the virtual port {vp} instead of {rp}, and so does the box",
                                method_word(forwarding)
                            ),
                        );
                    }
                    rport = None;
                }
            }
        }
        let base = real_name(real.addr, rport.or(port));
        real_servers.push(RealServer {
            name: distinct_name(&base, &mut real_names),
            address: real.addr,
            port: rport,
            weight: real.weight,
            upper_threshold: 0,
            lower_threshold: 0,
            enabled: true,
        });
    }

    // A global fallback serves the TCP and UDP services of its address family, not the
    // firewall-mark ones.
    let global_fallback = global
        .fallback
        .as_ref()
        .filter(|f| fwmark.is_none() && f.addr.is_ipv6() == block.v6);
    let fallback = block.scoped.fallback.as_ref().or(global_fallback);
    let sorry_server = fallback.map(|f| {
        if f.method != forwarding && seen.fallback_lines.insert(f.line) {
            note(
                f.line,
                format!(
                    "`fallback`: {} forwarding is not kept where the real servers are forwarded \
                     otherwise (first in {name}); there the fallback server is reached like the \
                     real servers ({})",
                    method_word(f.method),
                    method_word(forwarding)
                ),
            );
        }
        SocketAddr::new(f.addr, f.port.or(port).unwrap_or(0))
    });

    let persistence = match block.persistent {
        Some((0, line)) => {
            note(
                line,
                "`persistent`: 0 seconds is no persistence; not imported".into(),
            );
            None
        }
        Some((seconds, _)) => {
            let mut persistence = Persistence {
                timeout: Span::from_millis(seconds.saturating_mul(1000)),
                netmask: None,
                prefix_len: None,
            };
            if let Some((mask, line)) = &block.netmask {
                if block.v6 {
                    match parse_number::<u8>(mask, "a prefix length") {
                        Ok(len) => persistence.prefix_len = Some(len),
                        Err(why) => note(*line, format!("`netmask`: {why}; not imported")),
                    }
                } else {
                    match mask.parse::<IpAddr>() {
                        Ok(addr) => persistence.netmask = Some(addr),
                        Err(_) => note(
                            *line,
                            format!("`netmask`: '{mask}' is not a dotted netmask; not imported"),
                        ),
                    }
                }
            }
            Some(persistence)
        }
        None => {
            if let Some((_, line)) = &block.netmask {
                note(
                    *line,
                    "`netmask` without `persistent` has no effect (in ldirectord too); not imported"
                        .into(),
                );
            }
            None
        }
    };

    let mut vs = VirtualServer {
        name,
        enabled: true,
        vip,
        port,
        fwmark,
        family: if fwmark.is_some() && block.v6 {
            Some(Family::Inet6)
        } else {
            None
        },
        protocol,
        scheduler: block.scheduler.unwrap_or(Scheduler::Wrr),
        forwarding,
        persistence,
        device: None,
        quiescent: block.scoped.quiescent.or(global.quiescent).unwrap_or(true),
        reentry: None,
        sorry_server,
        check: None,
        real_servers,
    };
    vs.check = build_check(block, global, fork, service, protocol, &mut vs, &mut note);
    Some(vs)
}

pub(super) fn method_word(method: Forwarding) -> &'static str {
    match method {
        Forwarding::Dr => "gate",
        Forwarding::Nat => "masq",
        Forwarding::Tunnel => "ipip",
    }
}

/// What the check of a block does, before timing.
enum Kind {
    Tcp,
    Http(HttpCheck),
    SendExpect(SendExpectCheck),
    Program(ProgramCheck),
}

/// The health check: ldirectord's check type and service mapped to the box's checkers, with
/// ldirectord's timing rules.
pub(super) fn build_check(
    block: &Block,
    global: &Scoped,
    fork: bool,
    service: &str,
    protocol: Protocol,
    vs: &mut VirtualServer,
    note: &mut dyn FnMut(usize, String),
) -> Option<Check> {
    let (checktype, type_line) = block
        .checktype
        .unwrap_or((CheckType::Negotiate, block.line));
    let service_line = block.service.map(|(_, l)| l).unwrap_or(type_line);
    let udp = protocol == Protocol::Udp;

    // The request/receive pair: the block's own, else the one the real servers agree on.
    let mut probes = block.reals.iter().filter_map(|r| r.probe.as_ref());
    let shared = probes
        .next()
        .filter(|first| probes.all(|p| p == *first))
        .cloned();
    let request = block
        .request
        .as_ref()
        .map(|(r, _)| r.clone())
        .or_else(|| shared.as_ref().map(|(r, _)| r.clone()));
    let receive = block
        .receive
        .as_ref()
        .map(|(r, _)| r.clone())
        .or_else(|| shared.as_ref().map(|(_, r)| r.clone()));
    let probe_used = matches!(
        (checktype, service),
        (
            CheckType::Negotiate | CheckType::Combined(_),
            "http" | "https" | "simpletcp"
        )
    );
    for real in &block.reals {
        if let Some((req, rec)) = &real.probe {
            if !probe_used {
                note(
                    real.line,
                    "`real`: the box's check of this service does not use request/receive strings; not imported"
                        .into(),
                );
            } else if Some(req) != request.as_ref() || Some(rec) != receive.as_ref() {
                note(
                    real.line,
                    "`real`: the box checks every real server of a virtual service with the same \
                     request; this server's own request/receive is not imported"
                        .into(),
                );
            }
        }
    }
    if !probe_used {
        for (what, line) in [("request", &block.request), ("receive", &block.receive)] {
            if let Some((_, line)) = line {
                note(
                    *line,
                    format!(
                        "`{what}`: the box's check of this service does not use it; not imported"
                    ),
                );
            }
        }
    }
    for (what, line) in &block.credentials {
        note(
            *line,
            format!(
                "`{what}` is only for ldirectord's {service} negotiate check, which the box does \
                 not have; not imported (the value is not kept)"
            ),
        );
    }

    // What the box can do for a check it does not have: connect over TCP, or nothing for UDP.
    let substitute = |why: &str,
                      line: usize,
                      note: &mut dyn FnMut(usize, String)|
     -> Option<Kind> {
        if udp {
            note(
                line,
                format!("{why}; the box has no such check for a UDP service, so its real servers are always in service"),
            );
            None
        } else {
            note(
                line,
                format!("{why}; the box checks that a TCP connection completes instead"),
            );
            Some(Kind::Tcp)
        }
    };
    let negotiate = |note: &mut dyn FnMut(usize, String)| -> Option<Kind> {
        match service {
            "http" | "https" => {
                let (path, host) = http_target(request.as_deref().unwrap_or("/"));
                if let Some(line) = block.head {
                    note(
                        line,
                        "`httpmethod`: HEAD is not supported; the box checks with GET".into(),
                    );
                }
                Some(Kind::Http(HttpCheck {
                    tls: service == "https",
                    // ldirectord checks each real server by its address, which a certificate
                    // for the service's name never matches; verifying would fail them all.
                    verify: false,
                    path,
                    host: block.virtualhost.as_ref().map(|(h, _)| h.clone()).or(host),
                    status: SUCCESS_CODES.to_vec(),
                    expect: receive.clone(),
                    ca: None,
                    weight_header: None,
                }))
            }
            "simpletcp" => Some(Kind::SendExpect(SendExpectCheck {
                protocol: if udp {
                    CheckProtocol::Udp
                } else {
                    CheckProtocol::Tcp
                },
                send: request.clone(),
                expect: receive.clone(),
            })),
            // ldirectord does not check a service of type none; neither does the box.
            "none" => None,
            other => substitute(
                &format!("the {other} negotiate check is not available"),
                service_line,
                note,
            ),
        }
    };
    let kind = match checktype {
        CheckType::Negotiate => negotiate(note),
        CheckType::Combined(n) => {
            note(
                type_line,
                format!(
                    "`checktype = {n}`: the box runs the full check every time, not one in {n}"
                ),
            );
            negotiate(note)
        }
        CheckType::Connect if !udp => Some(Kind::Tcp),
        CheckType::Connect => {
            substitute("ldirectord checks UDP services with ping", type_line, note)
        }
        CheckType::Ping => substitute("ICMP ping checks are not available", type_line, note),
        CheckType::On => None,
        CheckType::Off => {
            note(
                type_line,
                "`checktype = off`: ldirectord activated no real server; they are imported disabled"
                    .into(),
            );
            for real in &mut vs.real_servers {
                real.enabled = false;
            }
            vs.sorry_server = None;
            None
        }
        CheckType::External | CheckType::ExternalPerl => {
            if checktype == CheckType::ExternalPerl {
                note(
                    type_line,
                    "`checktype = external-perl`: there is no Perl on the box; the command is run as a program"
                        .into(),
                );
            }
            let program = match block.checkcommand.clone() {
                Some((path, args, line)) => {
                    note(
                        line,
                        format!(
                            "`checkcommand`: ldirectord ran {path} with four more arguments: \
                             the virtual service's address (or firewall mark), its port, and \
                             the real server's address and port; the box's program check \
                             passes only the arguments written here, so the program must find \
                             the real server another way (one program per real server, or a \
                             fixed target)"
                        ),
                    );
                    ProgramCheck { path, args }
                }
                // ldirectord's own default when there is no checkcommand.
                None => ProgramCheck {
                    path: "/bin/true".into(),
                    args: Vec::new(),
                },
            };
            Some(Kind::Program(program))
        }
    };
    let kind = kind?;

    // ldirectord's timeouts default to each other: connect-type checks prefer checktimeout,
    // negotiate checks negotiatetimeout, the block's before the global ones.
    let (b, g) = (&block.scoped, global);
    let negotiates = matches!(kind, Kind::Http(_) | Kind::SendExpect(_))
        || matches!(checktype, CheckType::Negotiate | CheckType::Combined(_));
    let timeout = if negotiates {
        b.negotiatetimeout
            .or(b.checktimeout)
            .or(g.negotiatetimeout)
            .or(g.checktimeout)
            .unwrap_or(DEFAULT_NEGOTIATETIMEOUT)
    } else {
        b.checktimeout
            .or(b.negotiatetimeout)
            .or(g.checktimeout)
            .or(g.negotiatetimeout)
            .unwrap_or(DEFAULT_CHECKTIMEOUT)
    };
    // ldirectord honours a block's checkinterval only when it forks a checker per block.
    if let (Some((_, line)), false) = (b.checkinterval, fork) {
        note(
            line,
            "`checkinterval` in a virtual block: ldirectord ignores it without `fork = yes`, so \
             the global interval is used"
                .into(),
        );
    }
    let interval = b
        .checkinterval
        .filter(|_| fork)
        .or(g.checkinterval)
        .map(|(s, _)| s)
        .unwrap_or(DEFAULT_CHECKINTERVAL);
    let timeout = if timeout > interval {
        // ldirectord waited the timeout out and then slept the interval; the box starts a
        // check every interval, so a longer timeout cannot be kept.
        note(
            block.line,
            format!(
                "`virtual`: the check timeout {timeout}s is longer than the check interval \
                 {interval}s; the box waits at most {interval}s for an answer"
            ),
        );
        interval
    } else {
        timeout
    };
    // checkcount retries a failed attempt at once; the box counts failures across rounds.
    let fall = b
        .failurecount
        .or(g.failurecount)
        .unwrap_or(1)
        .saturating_mul(b.checkcount.or(g.checkcount).unwrap_or(1))
        .max(1);

    let mut port = block.checkport;
    if port.is_none() && vs.fwmark.is_some() && vs.real_servers.iter().any(|r| r.port.is_none()) {
        // A firewall-mark service has no port; ldirectord then checks the service's own port.
        port = SERVICES
            .iter()
            .find(|(name, p)| *name == service && *p != 0)
            .map(|(_, p)| *p);
    }
    let mut check = Check {
        interval: Span::from_millis(interval.saturating_mul(1000)),
        timeout: Span::from_millis(timeout.saturating_mul(1000)),
        rise: 1,
        fall,
        port,
        min_weight: None,
        max_weight: None,
        tcp: None,
        http: None,
        send_expect: None,
        program: None,
    };
    match kind {
        Kind::Tcp => check.tcp = Some(TcpCheck {}),
        Kind::Http(http) => check.http = Some(http),
        Kind::SendExpect(se) => check.send_expect = Some(se),
        Kind::Program(program) => check.program = Some(program),
    }
    Some(check)
}

/// The path and host header of an ldirectord request: a relative URI (`index.html`, made
/// absolute as ldirectord does) or a full `http://host/path` URL.
pub(super) fn http_target(request: &str) -> (String, Option<String>) {
    let url = request
        .strip_prefix("http://")
        .or_else(|| request.strip_prefix("https://"));
    match url {
        Some(rest) => {
            let (authority, path) = match rest.find('/') {
                Some(at) => rest.split_at(at),
                None => (rest, "/"),
            };
            let host = authority
                .rsplit_once(':')
                .filter(|(h, p)| !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                .map(|(h, _)| h)
                .unwrap_or(authority);
            let host = (!host.is_empty()).then(|| host.to_string());
            (path.to_string(), host)
        }
        None if request.starts_with('/') => (request.to_string(), None),
        None => (format!("/{request}"), None),
    }
}
