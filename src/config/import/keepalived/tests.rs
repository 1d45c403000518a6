use std::net::{IpAddr, SocketAddr};

use super::import;
use super::vrrp::master_down_interval;
use crate::config::import::{self, detect, Format, ImportError, Imported, Note, Source};
use crate::config::model::*;
use crate::config::types::Span;
use crate::config::validate;

const SAMPLE: &str = include_str!("../../../../tests/samples/keepalived/keepalived.conf");
const BACKUP: &str = include_str!("../../../../tests/samples/keepalived/backup.conf");
const BROKEN: &str = include_str!("../../../../tests/samples/keepalived/broken.conf");

fn read(name: &str, text: &str) -> Result<Imported, ImportError> {
    import(Source { name, text })
}

fn imported(text: &str) -> Imported {
    match read("keepalived.conf", text) {
        Ok(imported) => imported,
        Err(e) => panic!("not imported: {e}"),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn secs(s: u64) -> Span {
    Span::from_millis(s * 1000)
}

fn ms(ms: u64) -> Span {
    Span::from_millis(ms)
}

/// The 1-based line of the first line of `text` containing `needle`, from `after` on.
fn line_of(text: &str, needle: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{needle} is not in the sample"))
}

fn vs<'a>(config: &'a Config, name: &str) -> &'a VirtualServer {
    config
        .virtual_servers
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = config.virtual_servers.iter().map(|v| &v.name).collect();
            panic!("no virtual server {name} in {names:?}")
        })
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

#[test]
fn services_vips_ports_protocols_schedulers_and_forwarding() {
    let config = imported(SAMPLE).config;
    let names: Vec<&str> = config
        .virtual_servers
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "tcp-192.0.2.10-80",
            "tcp-192.0.2.10-443",
            "tcp-192.0.2.11-25",
            "udp-192.0.2.11-53",
            "fwmark-5",
            "API-tcp-192.0.2.20-8080",
            "API-tcp-192.0.2.21-8080",
            "API-fwmark-9",
            "tcp-2001_db8__10-80",
        ]
    );
    let web = vs(&config, "tcp-192.0.2.10-80");
    assert_eq!(web.vip, Some(ip("192.0.2.10")));
    assert_eq!(web.port, Some(80));
    assert_eq!(web.protocol, Protocol::Tcp);
    assert_eq!(web.scheduler, Scheduler::Wrr);
    assert_eq!(web.forwarding, Forwarding::Dr);
    assert_eq!(
        web.sorry_server,
        Some(SocketAddr::new(ip("198.51.100.99"), 80))
    );
    let mail = vs(&config, "tcp-192.0.2.11-25");
    assert_eq!(
        (mail.scheduler, mail.forwarding),
        (Scheduler::Lc, Forwarding::Nat)
    );
    let dns = vs(&config, "udp-192.0.2.11-53");
    assert_eq!(
        (dns.protocol, dns.scheduler),
        (Protocol::Udp, Scheduler::Rr)
    );
    let marked = vs(&config, "fwmark-5");
    assert_eq!(
        (marked.vip, marked.port, marked.fwmark),
        (None, None, Some(5))
    );
    assert_eq!(
        (marked.scheduler, marked.forwarding),
        (Scheduler::Sh, Forwarding::Tunnel)
    );
    let v6 = vs(&config, "tcp-2001_db8__10-80");
    assert_eq!(v6.vip, Some(ip("2001:db8::10")));
}

#[test]
fn persistence_with_and_without_values() {
    let config = imported(SAMPLE).config;
    let https = vs(&config, "tcp-192.0.2.10-443");
    assert_eq!(
        https.persistence,
        Some(Persistence {
            timeout: secs(1800),
            netmask: Some(ip("255.255.255.0")),
            prefix_len: None,
        })
    );
    assert!(https.quiescent, "inhibit_on_failure on every real server");
    // `persistence_timeout` alone is keepalived's 6 minutes.
    let marked = vs(&config, "fwmark-5");
    assert_eq!(
        marked.persistence.as_ref().map(|p| p.timeout),
        Some(secs(360))
    );
    assert_eq!(vs(&config, "tcp-192.0.2.10-80").persistence, None);
}

#[test]
fn real_servers_with_weights_ports_and_thresholds() {
    let config = imported(SAMPLE).config;
    let web = vs(&config, "tcp-192.0.2.10-80");
    let weights: Vec<_> = web
        .real_servers
        .iter()
        .map(|r| (r.name.as_str(), r.address, r.port, r.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("198.51.100.21-80", ip("198.51.100.21"), Some(80), 3),
            ("198.51.100.22-80", ip("198.51.100.22"), Some(80), 1),
        ]
    );
    let mail = vs(&config, "tcp-192.0.2.11-25");
    let first = &mail.real_servers[0];
    assert_eq!(first.port, Some(2525));
    assert_eq!((first.upper_threshold, first.lower_threshold), (500, 400));
    // Without `weight` keepalived gives 1.
    assert_eq!(vs(&config, "udp-192.0.2.11-53").real_servers[0].weight, 1);
    let marked = vs(&config, "fwmark-5");
    assert_eq!(marked.real_servers[1].name, "198.51.100.52");
    assert_eq!(marked.real_servers[1].port, None);
}

#[test]
fn checks_and_their_timings() {
    let config = imported(SAMPLE).config;
    let http = vs(&config, "tcp-192.0.2.10-80").check.clone().unwrap();
    assert_eq!((http.interval, http.timeout), (secs(6), secs(3)));
    // nb_get_retry 3, delay_before_retry 3: keepalived took about 9 s to mark a server down;
    // every 6 s, the nearest is the third failure in a row (12 s).
    assert_eq!((http.rise, http.fall, http.port), (1, 3, None));
    let get = http.http.unwrap();
    assert_eq!(
        (get.tls, get.path.as_str(), get.status),
        (false, "/health", vec![200])
    );

    let https = vs(&config, "tcp-192.0.2.10-443").check.clone().unwrap();
    assert_eq!(
        (https.interval, https.timeout, https.fall),
        (secs(10), secs(4), 1)
    );
    let get = https.http.unwrap();
    assert!(
        get.tls && !get.verify,
        "keepalived does not verify certificates"
    );
    assert_eq!(get.host.as_deref(), Some("www.example.net"));
    let mut expected: Vec<u16> = (200..=299).collect();
    expected.push(301);
    assert_eq!(get.status, expected);

    let tcp = vs(&config, "tcp-192.0.2.11-25").check.clone().unwrap();
    assert_eq!(tcp.tcp, Some(TcpCheck {}));
    assert_eq!(
        (tcp.interval, tcp.timeout, tcp.fall, tcp.port),
        (secs(15), secs(5), 1, Some(2525))
    );

    let misc = vs(&config, "udp-192.0.2.11-53").check.clone().unwrap();
    assert_eq!(
        misc.program,
        Some(ProgramCheck {
            path: "/usr/local/bin/check_dns".into(),
            args: vec!["198.51.100.41".into(), "www.example.net".into()],
        })
    );
    // Scripts have no retry by default: the first failure counts.
    assert_eq!(
        (misc.interval, misc.timeout, misc.fall),
        (secs(20), secs(5), 1)
    );

    // A group shares its timings among its members.
    let api = vs(&config, "API-fwmark-9").check.clone().unwrap();
    assert_eq!((api.interval, api.timeout), (secs(5), secs(2)));
}

#[test]
fn keepalived_defaults_fill_what_the_file_leaves_out() {
    let config = imported(BACKUP).config;
    let web = vs(&config, "tcp-192.0.2.10-80");
    // No lb_kind: keepalived uses NAT. No delay_loop: 60 s; connect_timeout 5 s; retry 1,
    // 1 s later: the first failure is enough here.
    assert_eq!(web.forwarding, Forwarding::Nat);
    let check = web.check.clone().unwrap();
    assert_eq!(
        (check.interval, check.timeout, check.rise, check.fall),
        (secs(60), secs(5), 1, 1)
    );
    let get = check.http.unwrap();
    assert_eq!(get.path, "/ping");
    assert_eq!(get.status, (200..=299).collect::<Vec<u16>>());
    // No lb_algo at all: keepalived's wlc.
    let bare = imported("virtual_server 192.0.2.1 80 {\n real_server 198.51.100.1 80 {\n }\n}\n");
    assert_eq!(bare.config.virtual_servers[0].scheduler, Scheduler::Wlc);
    assert_eq!(bare.config.virtual_servers[0].check, None);
    assert!(bare.notes.is_empty(), "{:?}", bare.notes);
}

#[test]
fn the_vrrp_instance_becomes_the_pair() {
    let config = imported(SAMPLE).config;
    assert_eq!(config.node.hostname, "lb1");
    assert_eq!(config.node.role, RolePreference::Primary);
    let pair = config.pair.unwrap();
    assert_eq!(pair.peer, ip("203.0.113.2"));
    assert_eq!(pair.key, "Sh4redSecret-2024");
    assert_eq!(pair.priority, 150);
    assert_eq!(pair.keepalive, secs(1));
    // VRRPv2: 3 adverts + (256 - 150) / 256 s.
    assert_eq!(pair.deadtime, ms(3000 + 106 * 1000 / 256));
    assert!(pair.auto_failback);
    let udp = pair.udp.unwrap();
    assert_eq!(
        (udp.interface.as_str(), udp.mode),
        ("eth1", UdpMode::Unicast)
    );
    assert!(pair.connection_sync);
    assert_eq!(pair.sync_id, 7);
    assert_eq!(pair.announce_count, 5);
    assert_eq!(config.network.ipvs.tcp_timeout, Some(secs(900)));
    assert_eq!(config.network.ipvs.tcpfin_timeout, Some(secs(120)));
    assert_eq!(config.network.ipvs.udp_timeout, Some(secs(300)));
}

#[test]
fn a_vrrpv3_backup_without_preemption() {
    let imported = imported(BACKUP);
    let config = imported.config;
    assert_eq!(config.node.hostname, "LVS-DEVEL");
    assert_eq!(config.node.role, RolePreference::Backup);
    let pair = config.pair.unwrap();
    assert!(!pair.auto_failback);
    assert_eq!(pair.keepalive, ms(500));
    // VRRPv3 skews by a share of the advert interval: 3 * 500 + 156 * 500 / 256.
    assert_eq!(pair.deadtime, ms(1500 + 156 * 500 / 256));
    assert_eq!(pair.announce_count, 3);
    assert!(!pair.connection_sync, "no lvs_sync_daemon");
    assert_eq!(pair.sync_id, 51);
    // The key is kept as written, reported, and left to validation.
    assert_eq!(pair.key, "1111");
    let auth = line_of(BACKUP, "auth_pass", 0);
    assert!(
        has_note(&imported.notes, auth, "at least 16"),
        "{:?}",
        imported.notes
    );
}

#[test]
fn master_down_interval_follows_the_rfcs() {
    assert_eq!(master_down_interval(secs(1), 100, 3, 2), ms(3609));
    assert_eq!(master_down_interval(secs(1), 255, 3, 2), ms(3003));
    assert_eq!(master_down_interval(secs(2), 128, 3, 3), ms(7000));
    assert_eq!(master_down_interval(secs(1), 254, 1, 2), ms(1007));
}

#[test]
fn vips_give_the_devices_of_their_services() {
    let config = imported(SAMPLE).config;
    assert_eq!(
        vs(&config, "tcp-192.0.2.10-80").device.as_deref(),
        Some("eth0:1")
    );
    assert_eq!(
        vs(&config, "tcp-192.0.2.10-443").device.as_deref(),
        Some("eth0:1")
    );
    assert_eq!(
        vs(&config, "tcp-192.0.2.11-25").device.as_deref(),
        Some("eth0")
    );
    assert_eq!(
        vs(&config, "tcp-2001_db8__10-80").device.as_deref(),
        Some("eth0")
    );
    assert_eq!(vs(&config, "fwmark-5").device, None);
    // Without `dev` a VIP lives on the instance's interface.
    let backup = imported(BACKUP);
    assert_eq!(
        backup.config.virtual_servers[0].device.as_deref(),
        Some("eth0")
    );
    let unused = line_of(BACKUP, "192.0.2.99", 0);
    assert!(has_note(&backup.notes, unused, "no virtual_server uses"));
    let wide = line_of(BACKUP, "192.0.2.10/24", 0);
    assert!(has_note(&backup.notes, wide, "prefix length is not kept"));
    assert!(has_note(
        &backup.notes,
        wide,
        "brd 192.0.2.255 scope global"
    ));
}

#[test]
fn a_group_is_one_service_per_member() {
    let config = imported(SAMPLE).config;
    for name in [
        "API-tcp-192.0.2.20-8080",
        "API-tcp-192.0.2.21-8080",
        "API-fwmark-9",
    ] {
        let service = vs(&config, name);
        assert_eq!(service.real_servers.len(), 1, "{name}");
        assert_eq!(service.real_servers[0].address, ip("198.51.100.61"));
        assert_eq!(service.scheduler, Scheduler::Rr);
        assert!(service.check.is_some());
    }
    assert_eq!(vs(&config, "API-tcp-192.0.2.21-8080").port, Some(8080));
    let text = "virtual_server group G {\n real_server 198.51.100.1 80 {\n }\n}\n\
                virtual_server_group G {\n 192.0.2.8/30 80\n 2001:db8::a-c 443\n fwmark 3 inet6\n}\n";
    let config = imported(text).config;
    let members: Vec<_> = config
        .virtual_servers
        .iter()
        .map(|v| (v.vip, v.port, v.fwmark, v.family))
        .collect();
    let mut expected: Vec<_> = (8..=11)
        .map(|i| (Some(ip(&format!("192.0.2.{i}"))), Some(80), None, None))
        .collect();
    for h in ["a", "b", "c"] {
        expected.push((Some(ip(&format!("2001:db8::{h}"))), Some(443), None, None));
    }
    expected.push((None, None, Some(3), Some(Family::Inet6)));
    assert_eq!(members, expected);
}

#[test]
fn every_line_without_an_equivalent_is_a_note_on_its_line() {
    let imported = imported(SAMPLE);
    let notes = &imported.notes;
    let expect = [
        (line_of(SAMPLE, "notification_email {", 0), "e-mail"),
        (line_of(SAMPLE, "notification_email_from", 0), "e-mail"),
        (
            line_of(SAMPLE, "smtp_server", 0),
            "e-mail alerts are not supported",
        ),
        (line_of(SAMPLE, "smtp_connect_timeout", 0), "e-mail"),
        (line_of(SAMPLE, "lvs_sync_daemon", 0), "heartbeat link"),
        (line_of(SAMPLE, "vrrp_script", 0), "lines 16-19"),
        (line_of(SAMPLE, "unicast_src_ip", 0), "own address"),
        (line_of(SAMPLE, "track_interface", 0), "tracked interfaces"),
        (line_of(SAMPLE, "notify_master", 0), "no scripts"),
        (line_of(SAMPLE, "HTTP_GET", 0), "no separate retry delay"),
        (line_of(SAMPLE, "quorum 2", 0), "no quorum"),
        (
            line_of(SAMPLE, "check_dns 198.51.100.42", 0) - 1,
            "differs from the check on line",
        ),
    ];
    for (line, words) in expect {
        assert!(
            has_note(notes, line, words),
            "line {line}: {words}: {notes:#?}"
        );
    }
    // Comments and blank lines are never notes; every note is on a real line.
    for note in notes {
        let text = SAMPLE.lines().nth(note.line - 1).unwrap().trim();
        assert!(
            !text.is_empty() && !text.starts_with('!') && !text.starts_with('#'),
            "{note}"
        );
        assert_eq!(note.file, "keepalived.conf");
    }
    // 11 lines with no equivalent, and the retry mapping on each of the 10 network checkers.
    assert_eq!(notes.len(), 21, "{notes:#?}");
}

#[test]
fn unknown_directives_and_includes_are_reported() {
    let notes = imported(BACKUP).notes;
    let include = line_of(BACKUP, "include", 0);
    assert!(has_note(&notes, include, "imported alone"));
    assert!(has_note(
        &notes,
        line_of(BACKUP, "vrrp_sync_group", 0),
        "lines 10-14"
    ));
    assert!(has_note(
        &notes,
        line_of(BACKUP, "preempt_delay", 0),
        "takes its role back"
    ));
    assert!(has_note(
        &notes,
        line_of(BACKUP, "frobnicate", 0),
        "`frobnicate`"
    ));
    assert!(has_note(&notes, line_of(BACKUP, "smtp_alert", 0), "e-mail"));
    let sorted: Vec<usize> = notes.iter().map(|n| n.line).collect();
    let mut expected = sorted.clone();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "notes are in line order");
}

#[test]
fn every_syntax_error_is_reported_with_its_line() {
    let Err(ImportError::Unreadable(errors)) = read("broken.conf", BROKEN) else {
        panic!("broken.conf was read");
    };
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [5, 6, 7, 9, 12, 13, 15, 17, 21, 22], "{errors:#?}");
    let says = |line: usize, words: &str| {
        assert!(
            errors
                .iter()
                .any(|e| e.line == line && e.message.contains(words)),
            "line {line}: {words}: {errors:#?}"
        )
    };
    says(5, "not MASTER or BACKUP");
    says(6, "'high' is not a whole number");
    says(7, "`advert_int` needs a value");
    says(9, "'192.0.2.300' is not an IP address");
    says(12, "'http' is not a port number");
    says(13, "'roundrobin' is not an IPVS scheduler");
    says(15, "'-1' is not a whole number");
    says(17, "'soon' is not a number of seconds");
    says(21, "closes no open block");
    // The real server on line 24 is closed; its virtual server is not.
    says(
        22,
        "`virtual_server` opens a block with `{` that is never closed",
    );
    assert!(errors.iter().all(|e| e.file == "broken.conf"));
}

#[test]
fn braces_on_the_next_line_or_inline_and_quotes() {
    let text = "virtual_server 192.0.2.1 80\n{\n  lb_algo rr ; \n}\n";
    let imported = imported(text);
    assert!(has_note(&imported.notes, 3, "'; '") || has_note(&imported.notes, 3, "';'"));
    let text =
        "virtual_server 192.0.2.1 80 { lb_algo rr\n real_server 198.51.100.1 80 { weight 4 } }\n";
    let config = imported_ok(text);
    assert_eq!(config.virtual_servers[0].scheduler, Scheduler::Rr);
    assert_eq!(config.virtual_servers[0].real_servers[0].weight, 4);
    let text = "virtual_server 192.0.2.1 80 {\n real_server 198.51.100.1 80 {\n  MISC_CHECK {\n   misc_path \"/bin/check 'a b' c\" # why\n  }\n }\n}\n";
    let check = imported_ok(text).virtual_servers[0].check.clone().unwrap();
    let program = check.program.unwrap();
    assert_eq!(program.path, "/bin/check");
    assert_eq!(program.args, ["a b", "c"]);
    let Err(ImportError::Unreadable(errors)) =
        read("k.conf", "global_defs {\n router_id \"lb1\n}\n")
    else {
        panic!("an open quote was read");
    };
    assert_eq!(errors[0].line, 2);
}

fn imported_ok(text: &str) -> Config {
    imported(text).config
}

#[test]
fn a_check_longer_than_its_interval_is_shortened_and_said() {
    let text = "virtual_server 192.0.2.1 80 {\n delay_loop 2\n real_server 198.51.100.1 80 {\n  TCP_CHECK {\n  }\n }\n}\n";
    let imported = imported(text);
    let check = imported.config.virtual_servers[0].check.clone().unwrap();
    assert_eq!((check.interval, check.timeout), (secs(2), secs(2)));
    assert!(has_note(&imported.notes, 4, "shortened"));
}

#[test]
fn without_a_unicast_peer_there_is_no_pair() {
    let text = "vrrp_instance VI_1 {\n state BACKUP\n interface eth0\n virtual_router_id 9\n}\n";
    let imported = imported(text);
    assert_eq!(imported.config.pair, None);
    assert_eq!(imported.config.node.role, RolePreference::Backup);
    assert!(has_note(&imported.notes, 1, "no unicast_peer"));
}

#[test]
fn the_sample_imports_end_to_end_and_validates() {
    let no_siblings = |_: &str| None;
    let source = Source {
        name: "keepalived.conf",
        text: SAMPLE,
    };
    let imported = match import::import(Format::Keepalived, source, &no_siblings) {
        Ok(imported) => imported,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(validate(&imported.config), []);
    // The same config survives the TOML round trip.
    let toml = crate::config::to_toml(&imported.config).unwrap();
    assert_eq!(crate::config::from_toml(&toml), Ok(imported.config));
}

#[test]
fn a_short_key_is_left_to_validation() {
    let no_siblings = |_: &str| None;
    let source = Source {
        name: "backup.conf",
        text: BACKUP,
    };
    match import::import(Format::Keepalived, source, &no_siblings) {
        Err(ImportError::Invalid {
            problems, notes, ..
        }) => {
            let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(paths, ["pair.key"]);
            assert!(!notes.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn detect_recognises_the_samples() {
    assert_eq!(detect("keepalived.conf", SAMPLE), Format::Keepalived);
    assert_eq!(detect("/etc/lb/lb1.conf", SAMPLE), Format::Keepalived);
    assert_eq!(detect("lb2.cfg", BACKUP), Format::Keepalived);
}

#[test]
fn no_input_makes_it_panic() {
    // Every prefix of the samples (on character boundaries), and some hostile lines.
    for text in [SAMPLE, BACKUP, BROKEN] {
        for (i, _) in text.char_indices() {
            let _ = read("k.conf", &text[..i]);
        }
    }
    for text in [
        "{", "}", "{{}}", "\"", "'", "virtual_server", "virtual_server fwmark",
        "virtual_server group", "virtual_server_group { }", "virtual_server_group G { 1.2.3.4-0 }",
        "virtual_server_group G { ::1-ffff 1 }",
        "virtual_server_group G {\n ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 1\n ::/0\n}", "virtual_server_group G { 1.2.3.4/99 }",
        "real_server { weight }", "vrrp_instance { advert_int 99999999999999999999.9 }",
        "vrrp_instance X { advert_int .999 priority 0 }", "virtual_server 1.2.3.4 99999 {}",
        "virtual_server é 1 { lb_algo ü }", "global_defs { lvs_timeouts tcp }",
        "global_defs { lvs_sync_daemon }", "vrrp_instance X { virtual_ipaddress { 1.2.3.4/ dev } }",
        "virtual_server fwmark 1 { persistence_granularity 200 }", "\u{feff}!\n#\n\t\r\n",
        "virtual_server 1.2.3.4 80 { real_server 1.2.3.5 80 { HTTP_GET { url { status_code 1-999 } } } }",
    ] {
        let _ = read("k.conf", text);
    }
}

#[test]
fn includes_and_conditional_lines_are_noted_wherever_they_stand() {
    let text = "global_defs {\n  include /etc/keepalived/global.conf\n@lb1 router_id lb1\n  $PEER=203.0.113.2\n}\n";
    let imported = imported(text);
    assert!(has_note(&imported.notes, 2, "imported alone"));
    assert!(has_note(&imported.notes, 3, "conditional configuration"));
    assert!(has_note(&imported.notes, 4, "parameter substitution"));
    assert_eq!(imported.config.node.hostname, "director");
}

fn errors(text: &str) -> Vec<Note> {
    match read("keepalived.conf", text) {
        Err(ImportError::Unreadable(errors)) => errors,
        other => panic!("expected errors, got {other:?}"),
    }
}

#[test]
fn blocks_nested_100000_deep_are_one_error_not_a_stack_overflow() {
    const DEPTH: usize = 100_000;
    let opens = format!("global_defs {{\n{}", "a {\n".repeat(DEPTH));
    let closed = format!("{opens}{}", "}\n".repeat(DEPTH + 1));
    // The brace may also stand on the line after its keyword.
    let next_line = format!("global_defs {{\n{}", "a\n{\n".repeat(DEPTH));
    for (text, line) in [(&opens, 17), (&closed, 17), (&next_line, 32)] {
        let errors = errors(text);
        let deep: Vec<usize> = errors
            .iter()
            .filter(|e| e.message.contains("nested more than 16 levels"))
            .map(|e| e.line)
            .collect();
        assert_eq!(deep, [line]);
        assert!(errors.len() <= 17, "{}", errors.len());
    }
    // What follows the deep block is read again.
    let text = format!(
        "{closed}virtual_server 192.0.2.1 80 {{\n real_server 10.0.0.1 80 {{\n }}\n}}\nbogus {{\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[1].message.contains("never closed"));
}

#[test]
fn a_real_server_outside_a_virtual_server_is_an_error() {
    // The virtual_server's brace is closed one line too early.
    let text = "virtual_server 192.0.2.1 80 {\n lb_kind NAT\n}\n real_server 10.0.0.1 80 {\n  weight 2\n }\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 4);
    assert!(errors[0]
        .message
        .contains("real_server outside a virtual_server"));
}

#[test]
fn a_real_server_port_under_dr_or_tun_is_dropped_with_a_note() {
    let text = "virtual_server 192.0.2.1 80 {\n lb_kind DR\n real_server 10.0.0.1 8080 {\n }\n real_server 10.0.0.2 80 {\n }\n}\n\
                virtual_server_group G {\n 192.0.2.5-6 443\n}\n\
                virtual_server group G {\n lb_kind TUN\n real_server 10.0.0.3 8443 {\n }\n}\n";
    let result = import::import(
        Format::Keepalived,
        Source {
            name: "keepalived.conf",
            text,
        },
        &|_: &str| None,
    )
    .expect("DR and TUN services with real-server ports validate");
    for vs in &result.config.virtual_servers {
        assert!(
            vs.real_servers
                .iter()
                .all(|rs| rs.port.is_none() || rs.port == vs.port),
            "{vs:?}"
        );
    }
    assert!(has_note(
        &result.notes,
        3,
        "DR forwarding cannot change the port"
    ));
    assert!(!has_note(&result.notes, 5, "cannot change the port"));
    // One note for the group's real server, not one per member.
    let tun: Vec<_> = notes_on(&result.notes, 13);
    assert_eq!(tun.len(), 1, "{tun:?}");
    assert!(tun[0].contains("TUN forwarding cannot change the port"));
    // NAT keeps it.
    let nat = imported(&text.replace("lb_kind DR", "lb_kind NAT"));
    assert_eq!(
        nat.config.virtual_servers[0].real_servers[0].port,
        Some(8080)
    );
}

#[test]
fn retries_map_to_fall_by_their_delay_and_are_explained() {
    let service = |checker: &str| {
        format!(
            "virtual_server 192.0.2.1 80 {{\n delay_loop 10\n real_server 10.0.0.1 80 {{\n  TCP_CHECK {{\n{checker}  }}\n }}\n}}\n"
        )
    };
    let check = |text: &str| {
        let imported = imported(text);
        let check = imported.config.virtual_servers[0].check.clone().unwrap();
        (check.fall, notes_on(&imported.notes, 4).join("\n"))
    };
    // 3 retries 1 s apart against a 10 s loop: the first failure takes it out, and the note
    // says why.
    let (fall, note) = check(&service("   retry 3\n   delay_before_retry 1\n"));
    assert_eq!(fall, 1);
    assert!(
        note.contains("retried a failed check 3 time(s), 1s apart"),
        "{note}"
    );
    assert!(note.contains("no separate retry delay"), "{note}");
    assert!(note.contains("fall = 1"), "{note}");
    // The default retry (1, 1 s later) is said too.
    let (fall, note) = check(&service(""));
    assert_eq!(fall, 1);
    assert!(note.contains("fall = 1"), "{note}");
    // Retries that take longer than the loop: as many failures in a row as come nearest to
    // keepalived's time, never more than its attempts.
    let (fall, note) = check(&service("   retry 2\n   delay_before_retry 10\n"));
    assert_eq!(fall, 3);
    assert!(note.contains("fall = 3"), "{note}");
    let (fall, _) = check(&service("   retry 2\n   delay_before_retry 60\n"));
    assert_eq!(fall, 3);
    // No retry: no note.
    let (fall, note) = check(&service("   retry 0\n"));
    assert_eq!((fall, note.as_str()), (1, ""));
}

#[test]
fn a_group_range_of_more_than_256_addresses_is_an_error() {
    let text =
        "virtual_server_group G {\n 192.0.2.1 80\n 10.0.0.0/8 80\n 10.1.0.1-10.1.2.1 80\n}\n";
    let errors = errors(text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4], "{errors:?}");
    assert!(errors[0].message.contains("16777216 addresses"));
}
