//! Tests of the lvs.cf importer, on complete sample files written from lvs.cf(5) and the
//! Piranha documentation: a NAT pair with four kinds of service, a single director with
//! direct routing, and a file full of mistakes.

use std::net::{IpAddr, SocketAddr};

use super::import;
use crate::config::import::{
    self as importer, detect, Format, ImportError, Imported, Note, Source,
};
use crate::config::model::*;
use crate::config::types::Span;
use crate::config::validate;

const PAIR: &str = include_str!("../../../../tests/samples/lvscf/lvs.cf");
const SINGLE: &str = include_str!("../../../../tests/samples/lvscf/lvs-single.cf");
const BROKEN: &str = include_str!("../../../../tests/samples/lvscf/broken.cf");

fn read(text: &str) -> Result<Imported, ImportError> {
    import(Source {
        name: "lvs.cf",
        text,
    })
}

fn imported(text: &str) -> Imported {
    match read(text) {
        Ok(imported) => imported,
        Err(e) => panic!("the text imports: {e}"),
    }
}

fn errors(text: &str) -> Vec<Note> {
    match read(text) {
        Err(ImportError::Unreadable(errors)) => errors,
        other => panic!("expected errors, got {other:?}"),
    }
}

/// The 1-based line of the first line of `text` at or after line `after` that contains
/// `needle`.
fn line_of(text: &str, needle: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("'{needle}' is not in the text"))
}

fn notes_on(notes: &[Note], line: usize) -> Vec<&str> {
    notes
        .iter()
        .filter(|n| n.line == line)
        .map(|n| n.message.as_str())
        .collect()
}

fn has_note(notes: &[Note], line: usize, words: &str) -> bool {
    notes_on(notes, line).iter().any(|m| m.contains(words))
}

fn vs<'a>(config: &'a Config, name: &str) -> &'a VirtualServer {
    config
        .virtual_servers
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no virtual server {name}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn secs(s: u64) -> Span {
    Span::from_millis(s * 1000)
}

#[test]
fn services_vips_ports_protocols_schedulers_and_forwarding() {
    let config = imported(PAIR).config;
    let names: Vec<&str> = config
        .virtual_servers
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["HTTP", "DNS", "HTTPS", "SMTP"]);

    let http = vs(&config, "HTTP");
    assert_eq!(http.vip, Some(ip("192.0.2.10")));
    assert_eq!(http.port, Some(80));
    assert_eq!(http.device.as_deref(), Some("eth0:1"));
    assert_eq!(http.protocol, Protocol::Tcp);
    assert_eq!(http.scheduler, Scheduler::Wlc);
    assert_eq!(http.forwarding, Forwarding::Nat);
    assert!(http.enabled);
    assert!(http.quiescent);
    assert_eq!(http.reentry, Some(secs(15)));

    let dns = vs(&config, "DNS");
    assert_eq!((dns.vip, dns.port), (Some(ip("192.0.2.20")), Some(53)));
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(dns.scheduler, Scheduler::Rr);
    assert_eq!(dns.reentry, Some(secs(30)));
    assert!(!dns.quiescent);

    // A firewall-mark service: the mark, no VIP and no port of its own.
    let https = vs(&config, "HTTPS");
    assert_eq!(https.fwmark, Some(80));
    assert_eq!(
        (https.vip, https.port, https.device.as_ref()),
        (None, None, None)
    );
    assert_eq!(https.family, Some(Family::Inet));
    assert_eq!(https.scheduler, Scheduler::Lblc);

    // `port = smtp` by name; no `active` line leaves the service off, as in Piranha.
    let smtp = vs(&config, "SMTP");
    assert_eq!(smtp.port, Some(25));
    assert_eq!(smtp.scheduler, Scheduler::Sh);
    assert!(!smtp.enabled);
    assert_eq!(
        smtp.sorry_server,
        Some(SocketAddr::new(ip("10.1.0.99"), 25))
    );

    let single = imported(SINGLE).config;
    assert!(single
        .virtual_servers
        .iter()
        .all(|v| v.forwarding == Forwarding::Dr));
    assert_eq!(vs(&single, "WWW").scheduler, Scheduler::Wrr);
    assert_eq!(vs(&single, "ALLPORTS").scheduler, Scheduler::Lc);

    for (network, forwarding) in [
        ("nat", Forwarding::Nat),
        ("direct", Forwarding::Dr),
        ("tunnel", Forwarding::Tunnel),
    ] {
        let text = format!(
            "network = {network}\nvirtual V {{\n active = 1\n address = 192.0.2.1 eth0:1\n}}\n"
        );
        assert_eq!(
            imported(&text).config.virtual_servers[0].forwarding,
            forwarding
        );
    }
}

#[test]
fn persistence_with_netmask_and_on_every_port() {
    let config = imported(PAIR).config;
    assert_eq!(
        vs(&config, "HTTP").persistence,
        Some(Persistence {
            timeout: secs(300),
            netmask: Some(ip("255.255.255.0")),
            prefix_len: None,
        })
    );
    assert_eq!(
        vs(&config, "HTTPS").persistence.as_ref().map(|p| p.timeout),
        Some(secs(600))
    );
    assert_eq!(vs(&config, "DNS").persistence, None);

    let single = imported(SINGLE).config;
    let all = vs(&single, "ALLPORTS");
    assert_eq!(all.port, Some(0));
    assert_eq!(
        all.persistence,
        Some(Persistence {
            timeout: secs(3600),
            netmask: None,
            prefix_len: None,
        })
    );

    // Piranha takes 255.255.255.255 as no mask; a mask without persistence does nothing.
    let text = "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n persistent = 60\n pmask = 255.255.255.255\n}\nvirtual W {\n active = 1\n address = 192.0.2.2 eth0:1\n pmask = 255.255.0.0\n}\n";
    let result = imported(text);
    assert_eq!(
        result.config.virtual_servers[0]
            .persistence
            .as_ref()
            .and_then(|p| p.netmask),
        None
    );
    assert_eq!(result.config.virtual_servers[1].persistence, None);
    assert!(has_note(&result.notes, 10, "without `persistent`"));
}

#[test]
fn real_servers_with_weights_ports_and_states() {
    let imported = imported(PAIR);
    let http = vs(&imported.config, "HTTP");
    let servers: Vec<(&str, IpAddr, Option<u16>, u32, bool)> = http
        .real_servers
        .iter()
        .map(|r| (r.name.as_str(), r.address, r.port, r.weight, r.enabled))
        .collect();
    assert_eq!(
        servers,
        [
            ("web1", ip("10.1.0.11"), None, 3, true),
            ("web2", ip("10.1.0.12"), Some(8080), 1, true),
            ("web-3", ip("10.1.0.13"), None, 2, true),
            ("web4", ip("10.1.0.14"), None, 0, false),
        ]
    );
    let renamed = line_of(PAIR, "server web:3", 1);
    assert!(has_note(&imported.notes, renamed, "named 'web-3'"));

    // Weight 1 by default; a firewall-mark service's servers keep the virtual's port.
    let dns = vs(&imported.config, "DNS");
    assert!(dns
        .real_servers
        .iter()
        .all(|r| r.weight == 1 && r.port.is_none()));
    let https = vs(&imported.config, "HTTPS");
    assert!(https
        .real_servers
        .iter()
        .all(|r| r.port == Some(443) && r.weight == 2));

    // Without `active`, Piranha leaves a real server out.
    let text = "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n server a {\n  address = 10.0.0.1\n }\n}\n";
    let result = self::imported(text);
    assert!(!result.config.virtual_servers[0].real_servers[0].enabled);
    assert!(has_note(&result.notes, 4, "imported disabled"));
}

#[test]
fn checks_and_their_timings() {
    let imported = imported(PAIR);
    let config = &imported.config;

    // send/expect: nanny's timeout is the interval and the wait, one failure takes it out.
    let http = vs(config, "HTTP").check.as_ref().unwrap();
    assert_eq!((http.interval, http.timeout), (secs(6), secs(6)));
    assert_eq!((http.rise, http.fall, http.port), (1, 1, None));
    assert_eq!(
        http.send_expect,
        Some(SendExpectCheck {
            protocol: CheckProtocol::Tcp,
            send: Some("GET / HTTP/1.0\\r\\n\\r\\n".into()),
            expect: Some("HTTP".into()),
        })
    );
    assert!(http.tcp.is_none() && http.program.is_none() && http.http.is_none());

    let dns = vs(config, "DNS").check.as_ref().unwrap();
    assert_eq!(dns.interval, secs(5));
    let se = dns.send_expect.as_ref().unwrap();
    assert_eq!(se.protocol, CheckProtocol::Udp);
    assert_eq!(se.send.as_deref(), Some("ping\\n"));

    // send_program is an external program, never a connection check; %h is kept: the program
    // check puts the real server's address there, as nanny did.
    let https = vs(config, "HTTPS").check.as_ref().unwrap();
    assert_eq!(
        https.program,
        Some(ProgramCheck {
            path: "/usr/local/bin/check_https".into(),
            args: vec!["%h".into()],
        })
    );
    assert!(https.tcp.is_none() && https.send_expect.is_none());
    assert_eq!(https.interval, secs(10));
    let program_line = line_of(PAIR, "send_program", 1);
    assert!(!has_note(&imported.notes, program_line, "`%h`"));
    let expect_line = line_of(PAIR, "expect = \"OK\"", 1);
    assert!(has_note(&imported.notes, expect_line, "exit status"));

    // expect alone (an SMTP banner), with use_regex said.
    let smtp = vs(config, "SMTP").check.as_ref().unwrap();
    let se = smtp.send_expect.as_ref().unwrap();
    assert_eq!(
        (se.send.as_deref(), se.expect.as_deref()),
        (None, Some("220"))
    );
    let regex_line = line_of(PAIR, "use_regex = 1", 1);
    assert!(has_note(&imported.notes, regex_line, "regular-expression"));

    // Neither send nor send_program: a TCP connection with nanny's default timing.
    let text = "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n}\n";
    let plain = self::imported(text).config;
    let check = plain.virtual_servers[0].check.as_ref().unwrap();
    assert_eq!(check.tcp, Some(TcpCheck {}));
    assert_eq!((check.interval, check.timeout), (secs(10), secs(10)));

    // A UDP service with nothing to send cannot be checked: said, no check.
    let text =
        "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n protocol = udp\n port = 53\n}\n";
    let udp = self::imported(text);
    assert_eq!(udp.config.virtual_servers[0].check, None);
    assert!(has_note(&udp.notes, 1, "cannot be checked"));

    // With a send_program, send is ignored, as nanny does.
    let text = "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n send = \"x\"\n send_program = /bin/check\n}\n";
    let both = self::imported(text);
    let check = both.config.virtual_servers[0].check.as_ref().unwrap();
    assert_eq!(
        check.program.as_ref().map(|p| p.path.as_str()),
        Some("/bin/check")
    );
    assert!(check.send_expect.is_none());
    assert!(has_note(&both.notes, 4, "ignored"));
}

#[test]
fn piranha_defaults_fill_what_the_file_leaves_out() {
    let text = "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n server a {\n  address = 10.0.0.1\n  active = 1\n }\n}\n";
    let config = imported(text).config;
    let v = &config.virtual_servers[0];
    assert_eq!(v.port, Some(80));
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.scheduler, Scheduler::Wlc);
    // Piranha's parser defaults to NAT when `network` is absent.
    assert_eq!(v.forwarding, Forwarding::Nat);
    assert_eq!(v.reentry, Some(secs(180)));
    assert!(!v.quiescent);
    assert_eq!(v.persistence, None);
    assert_eq!(v.real_servers[0].weight, 1);
    assert_eq!(config.pair, None);
    assert_eq!(config.network.ipvs.tcp_timeout, None);
}

#[test]
fn the_pair_and_its_heartbeat() {
    let imported = imported(PAIR);
    let config = &imported.config;
    assert_eq!(config.node.role, RolePreference::Primary);
    let pair = config.pair.as_ref().expect("a pair");
    // The private address carries the heartbeat.
    assert_eq!(pair.peer, ip("10.0.0.3"));
    assert_eq!(pair.key, "");
    assert_eq!((pair.keepalive, pair.deadtime), (secs(3), secs(9)));
    let udp = pair.udp.as_ref().unwrap();
    assert_eq!(
        (udp.interface.as_str(), udp.port, udp.mode),
        ("eth1", 539, UdpMode::Unicast)
    );
    assert!(pair.connection_sync);
    assert_eq!(pair.sync_id, 7);
    assert!(!pair.auto_failback);
    assert_eq!(pair.when_isolated, Isolation::HigherPriorityStays);
    assert_eq!(
        (
            config.network.ipvs.tcp_timeout,
            config.network.ipvs.tcpfin_timeout,
            config.network.ipvs.udp_timeout
        ),
        (Some(secs(900)), Some(secs(120)), Some(secs(300)))
    );

    let backup_line = line_of(PAIR, "backup = ", 1);
    assert!(has_note(&imported.notes, backup_line, "no shared key"));
    let primary_line = line_of(PAIR, "primary = ", 1);
    assert!(has_note(&imported.notes, primary_line, "taken as this box"));

    // pulse's defaults, and the public address when there is no private one.
    let text = "primary = 192.0.2.2\nbackup_active = 1\nbackup = 192.0.2.3\n";
    let pair = self::imported(text).config.pair.unwrap();
    assert_eq!(pair.peer, ip("192.0.2.3"));
    assert_eq!((pair.keepalive, pair.deadtime), (secs(2), secs(5)));
    assert_eq!(pair.udp.unwrap().port, 539);
    assert!(!pair.connection_sync);
    // No syncd_id: the model's default id.
    assert_eq!(pair.sync_id, crate::config::model::sync_id());

    // A backup that is not active is no pair; its settings are said to be unused.
    let text = "primary = 192.0.2.2\nbackup = 192.0.2.3\nkeepalive = 4\n";
    let alone = self::imported(text);
    assert_eq!(alone.config.pair, None);
    assert!(has_note(&alone.notes, 2, "`backup_active` is not 1"));
    assert!(has_note(&alone.notes, 3, "only a pair uses it"));
}

#[test]
fn every_line_without_an_equivalent_is_a_note_on_its_line() {
    let imported = imported(PAIR);
    for (needle, words) in [
        ("serial_no", "revision"),
        ("primary_private", "own heartbeat address"),
        ("rsh_command", "import the same file"),
        ("nat_router", "floating gateway"),
        ("nat_nmask", "nat_router"),
        ("reservation_conflict_action", "SCSI"),
        ("debug_level", "logging"),
        ("monitor_links", "link monitoring"),
        ("syncd_iface", "heartbeat link"),
        ("hard_shutdown", "watchdog"),
        ("vip_nmask", "host address"),
        ("client_monitor", "nanny"),
        ("address = 192.0.2.30", "brings up no VIP"),
        ("failover FTP", "failover services"),
    ] {
        let line = line_of(PAIR, needle, 1);
        assert!(
            has_note(&imported.notes, line, words),
            "line {line} ({needle}): {:?}",
            notes_on(&imported.notes, line)
        );
    }
    let smtp = line_of(PAIR, "virtual SMTP", 1);
    assert!(has_note(&imported.notes, smtp, "no `active` line"));

    // Comments, blank lines and lines that map fully are not notes.
    for note in &imported.notes {
        let text = PAIR.lines().nth(note.line - 1).unwrap_or("").trim();
        assert!(!text.is_empty() && !text.starts_with('#'), "{note}");
    }
    for needle in [
        "port = 80",
        "scheduler = wlc",
        "load_monitor = none",
        "weight = 3",
    ] {
        let line = line_of(PAIR, needle, 1);
        assert_eq!(
            notes_on(&imported.notes, line),
            Vec::<&str>::new(),
            "{needle}"
        );
    }
    // Notes come in line order, each naming the file.
    assert!(imported.notes.windows(2).all(|w| w[0].line <= w[1].line));
    assert!(imported.notes.iter().all(|n| n.file == "lvs.cf"));
}

#[test]
fn unknown_directives_and_blocks_are_reported_on_their_lines() {
    let imported = imported(PAIR);
    for needle in ["frobnicate", "mystery_option", "colour"] {
        let line = line_of(PAIR, needle, 1);
        assert!(
            has_note(&imported.notes, line, &format!("`{needle}`")),
            "{needle}: {:?}",
            notes_on(&imported.notes, line)
        );
        assert!(has_note(&imported.notes, line, "not imported"));
    }
    let text = "widget W {\n size = 3\n}\nvirtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n gadget G {\n }\n}\n";
    let result = self::imported(text);
    assert!(has_note(&result.notes, 1, "lines 1-3"));
    assert!(has_note(&result.notes, 7, "`gadget G`"));
    // A setting given twice: the later one wins, and the earlier is said.
    let text = "virtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n port = 81\n port = 82\n}\n";
    let result = self::imported(text);
    assert_eq!(result.config.virtual_servers[0].port, Some(82));
    assert!(has_note(&result.notes, 4, "given again on line 5"));
}

#[test]
fn every_syntax_error_is_reported_with_its_line() {
    let errors = self::errors(BROKEN);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    let expected: Vec<usize> = [
        ("primary = lvs1", "not an IP address"),
        ("keepalive = two", "not a whole number"),
        ("network = bridge", "not one of nat"),
        ("192.0.2.300", "not an IP address"),
        ("port =", "needs a value"),
        ("weight 3", "needs `=`"),
        ("send = ", "not closed"),
        ("scheduler = fastest", "not an IPVS scheduler"),
        ("virtual OPEN", "never closed"),
    ]
    .iter()
    .map(|(needle, words)| {
        let line = line_of(BROKEN, needle, 1);
        assert!(
            errors
                .iter()
                .any(|e| e.line == line && e.message.contains(words)),
            "line {line} ({needle}): {errors:?}"
        );
        line
    })
    .collect();
    for line in &expected {
        assert!(lines.contains(line));
    }
    // The stray `}` after the block.
    let stray = line_of(BROKEN, "}", 16);
    assert!(errors
        .iter()
        .any(|e| e.line == stray && e.message.contains("closes no open block")));
    assert!(lines.windows(2).all(|w| w[0] <= w[1]));

    // More malformed values, each an error on its own line.
    let text = "deadtime = -1\nheartbeat_port = 99999\nbackup_active = maybe\nvirtual V {\n address = 192.0.2.1\n fwmark = x\n pmask = 255.0\n}\nvirtual {\n}\n{\n}\ntcp_timeout = 1.5\n";
    let lines: Vec<usize> = self::errors(text).iter().map(|e| e.line).collect();
    for line in [1, 2, 3, 5, 6, 7, 9, 11, 13] {
        assert!(lines.contains(&line), "line {line}: {lines:?}");
    }
    // A real server or a service without an address.
    let text = "virtual V {\n active = 1\n server s {\n  active = 1\n }\n}\n";
    let lines: Vec<usize> = self::errors(text).iter().map(|e| e.line).collect();
    assert_eq!(lines, [1, 3]);
    // A malformed address is one error, not also a missing one.
    let text = "virtual V {\n active = 1\n address = 192.0.2.999 eth0:1\n}\n";
    let lines: Vec<usize> = self::errors(text).iter().map(|e| e.line).collect();
    assert_eq!(lines, [3]);
}

#[test]
fn names_are_kept_or_made_valid_and_distinct() {
    let text = "virtual web/site {\n active = 1\n address = 192.0.2.1 eth0:1\n}\nvirtual web-site {\n active = 1\n address = 192.0.2.2 eth0:1\n}\nvirtual \"%%\" {\n active = 1\n address = 192.0.2.3 eth0:1\n}\n";
    let result = imported(text);
    let names: Vec<&str> = result
        .config
        .virtual_servers
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["web-site", "web-site-2", "virtual"]);
    assert!(has_note(&result.notes, 5, "named 'web-site-2'"));
    assert_eq!(validate(&result.config), vec![]);
}

#[test]
fn the_single_director_imports_end_to_end_and_validates() {
    let result = importer::import(
        Format::LvsCf,
        Source {
            name: "lvs.cf",
            text: SINGLE,
        },
        &|_: &str| None,
    );
    let imported = match result {
        Ok(imported) => imported,
        Err(e) => panic!("the single director validates: {e}"),
    };
    assert_eq!(imported.config.pair, None);
    let www = vs(&imported.config, "WWW");
    assert_eq!(www.vip, Some(ip("198.51.100.10")));
    assert_eq!(www.real_servers.len(), 2);
    // A host netmask is what the box does anyway: no note.
    let nmask = line_of(SINGLE, "vip_nmask", 1);
    assert_eq!(notes_on(&imported.notes, nmask), Vec::<&str>::new());
    // Without a backup the heartbeat settings have nothing to configure: said.
    let keepalive = line_of(SINGLE, "keepalive", 1);
    assert!(has_note(&imported.notes, keepalive, "only a pair uses it"));
}

#[test]
fn the_pair_sample_is_valid_but_for_the_key() {
    let problems = match importer::import(
        Format::LvsCf,
        Source {
            name: "lvs.cf",
            text: PAIR,
        },
        &|_: &str| None,
    ) {
        Err(ImportError::Invalid {
            problems, notes, ..
        }) => {
            assert!(!notes.is_empty());
            problems
        }
        other => panic!("expected the missing key, got {other:?}"),
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["pair.key"]);

    let mut config = imported(PAIR).config;
    if let Some(pair) = config.pair.as_mut() {
        pair.key = "a shared key of enough length".into();
    }
    assert_eq!(validate(&config), vec![]);
}

#[test]
fn detect_recognises_the_samples() {
    assert_eq!(detect("lvs.cf", PAIR), Format::LvsCf);
    assert_eq!(detect("/etc/sysconfig/ha/lvs1.conf", PAIR), Format::LvsCf);
    assert_eq!(detect("director.cfg", SINGLE), Format::LvsCf);
}

#[test]
fn no_input_makes_it_panic() {
    // Every prefix of the samples (on character boundaries), and some hostile lines.
    for text in [PAIR, SINGLE, BROKEN] {
        for (i, _) in text.char_indices() {
            let _ = read(&text[..i]);
        }
    }
    for text in [
        "", "{", "}", "{{}}", "\"", "'", "=", "= =", "virtual", "virtual {", "virtual V {",
        "virtual V { }", "server S {\n}", "virtual V {\n server S {\n  address = ::1\n }\n}",
        "virtual V {\n address = ::1 eth0\n fwmark = 4294967295\n persistent = 99999999999999999999\n}",
        "primary = é\nbackup_active = 1\nbackup = ü", "send = \"\\", "send = '\\'",
        "virtual V {\n send_program = \"  \"\n address = 192.0.2.1 e\n}",
        "\u{feff}#\n\t\r\n", "virtual é {\n active = 1\n address = 192.0.2.1 eth0:1\n}",
        "nat_router = 1.2.3.4", "keepalive = 0\ndeadtime = 0\nbackup_active = 1\nbackup = 1.2.3.4",
    ] {
        let _ = read(text);
    }
}

#[test]
fn blocks_nested_100000_deep_are_one_error_not_a_stack_overflow() {
    const DEPTH: usize = 100_000;
    let opens = "virtual a {\n".repeat(DEPTH);
    // Closed or left open, the deep part is one error on the line that goes too deep.
    for text in [opens.clone(), format!("{opens}{}", "}\n".repeat(DEPTH))] {
        let errors = self::errors(&text);
        let deep: Vec<usize> = errors
            .iter()
            .filter(|e| e.message.contains("nested more than 16 levels"))
            .map(|e| e.line)
            .collect();
        assert_eq!(deep, [17]);
        assert!(errors.len() <= 18, "{}", errors.len());
    }
    // Sixteen levels are still read.
    let text = format!("{}{}", "virtual a {\n".repeat(16), "}\n".repeat(16));
    assert!(self::errors(&text)
        .iter()
        .all(|e| !e.message.contains("nested")));
}

#[test]
fn a_real_server_port_under_direct_routing_is_dropped_with_a_note() {
    let text = "network = direct\nvirtual V {\n active = 1\n address = 192.0.2.1 eth0:1\n port = 80\n server a {\n  address = 10.0.0.1\n  active = 1\n  port = 8080\n }\n server b {\n  address = 10.0.0.2\n  active = 1\n  port = 80\n }\n}\n";
    let result = importer::import(
        Format::LvsCf,
        Source {
            name: "lvs.cf",
            text,
        },
        &|_: &str| None,
    )
    .expect("a DR service with a real-server port validates");
    let reals = &result.config.virtual_servers[0].real_servers;
    assert_eq!((reals[0].port, reals[1].port), (None, None));
    assert!(has_note(&result.notes, 9, "cannot change the port"));
    assert!(notes_on(&result.notes, 14).is_empty());
    // NAT keeps the port.
    let nat = text.replace("network = direct", "network = nat");
    let reals = &imported(&nat).config.virtual_servers[0].real_servers;
    assert_eq!(reals[0].port, Some(8080));
}
