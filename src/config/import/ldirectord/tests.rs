//! Tests of the ldirectord + heartbeat importer, on complete sample files written from
//! ldirectord(8), ha.cf(5) and heartbeat's documentation of haresources and authkeys.

use std::net::{IpAddr, SocketAddr};

use super::import;
use crate::config::import::{
    self as importer, detect, Format, ImportError, Imported, Note, Source,
};
use crate::config::model::*;
use crate::config::types::Span;
use crate::config::validate;

const LDIRECTORD_CF: &str = include_str!("../../../../tests/samples/ldirectord/ldirectord.cf");
const HA_CF: &str = include_str!("../../../../tests/samples/ldirectord/ha.cf");
const HARESOURCES: &str = include_str!("../../../../tests/samples/ldirectord/haresources");
const AUTHKEYS: &str = include_str!("../../../../tests/samples/ldirectord/authkeys");

/// The sibling files of the samples; `without` leaves some out.
fn siblings(without: &'static [&'static str]) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        if without.contains(&name) {
            return None;
        }
        match name {
            "ha.cf" => Some(HA_CF.to_string()),
            "haresources" => Some(HARESOURCES.to_string()),
            "authkeys" => Some(AUTHKEYS.to_string()),
            _ => None,
        }
    }
}

fn source(text: &str) -> Source<'_> {
    Source {
        name: "ldirectord.cf",
        text,
    }
}

fn sample() -> Imported {
    import(source(LDIRECTORD_CF), &siblings(&[])).expect("the samples import")
}

/// Imports an ldirectord.cf alone (no heartbeat files).
fn alone(text: &str) -> Result<Imported, ImportError> {
    import(source(text), &|_: &str| None)
}

fn errors(text: &str) -> Vec<Note> {
    match alone(text) {
        Err(ImportError::Unreadable(errors)) => errors,
        other => panic!("expected errors, got {other:?}"),
    }
}

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("'{needle}' is not in the sample"))
}

/// The notes of `file` at `line`.
fn notes_at<'a>(imported: &'a Imported, file: &str, line: usize) -> Vec<&'a str> {
    imported
        .notes
        .iter()
        .filter(|n| n.file == file && n.line == line)
        .map(|n| n.message.as_str())
        .collect()
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
fn the_sample_validates_and_has_every_service() {
    let imported = sample();
    assert_eq!(validate(&imported.config), vec![]);
    let names: Vec<&str> = imported
        .config
        .virtual_servers
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "tcp-192.0.2.10-80",
            "tcp-192.0.2.10-443",
            "tcp-192.0.2.20-25",
            "udp-192.0.2.20-53",
            "fwmark-7",
            "tcp-192.0.2.30-3306",
            "tcp-192.0.2.40-8080",
        ]
    );
}

#[test]
fn http_service_with_persistence_fallback_and_negotiate_check() {
    let config = sample().config;
    let web = vs(&config, "tcp-192.0.2.10-80");
    assert_eq!(web.vip, Some(ip("192.0.2.10")));
    assert_eq!(web.port, Some(80));
    assert_eq!(web.protocol, Protocol::Tcp);
    assert_eq!(web.scheduler, Scheduler::Wlc);
    assert_eq!(web.forwarding, Forwarding::Dr);
    assert!(web.quiescent);
    assert_eq!(web.device.as_deref(), Some("eth0"));
    assert_eq!(
        web.persistence,
        Some(Persistence {
            timeout: secs(600),
            netmask: Some(ip("255.255.255.0")),
            prefix_len: None,
        })
    );
    // The global fallback, on the service's port.
    assert_eq!(
        web.sorry_server,
        Some("127.0.0.1:80".parse::<SocketAddr>().unwrap())
    );
    let reals: Vec<(&str, IpAddr, Option<u16>, u32)> = web
        .real_servers
        .iter()
        .map(|r| (r.name.as_str(), r.address, r.port, r.weight))
        .collect();
    assert_eq!(
        reals,
        [
            ("198.51.100.11-80", ip("198.51.100.11"), Some(80), 3),
            ("198.51.100.12-80", ip("198.51.100.12"), Some(80), 2),
            ("198.51.100.13-80", ip("198.51.100.13"), Some(80), 1),
        ]
    );
    let check = web.check.as_ref().unwrap();
    // negotiatetimeout 4 (global), checkinterval 5, failurecount 2.
    assert_eq!((check.interval, check.timeout), (secs(5), secs(4)));
    assert_eq!((check.rise, check.fall, check.port), (1, 2, Some(80)));
    let http = check.http.as_ref().unwrap();
    assert!(!http.tls);
    assert_eq!(http.path, "/health/index.html");
    assert_eq!(http.host.as_deref(), Some("www.example.net"));
    assert_eq!(http.expect.as_deref(), Some("Test Page"));
    assert!(http.status.contains(&200) && http.status.contains(&204));
    assert!(check.tcp.is_none() && check.send_expect.is_none() && check.program.is_none());
}

#[test]
fn nat_service_with_port_mapping_and_connect_check() {
    let config = sample().config;
    let tls = vs(&config, "tcp-192.0.2.10-443");
    assert_eq!(tls.forwarding, Forwarding::Nat);
    assert_eq!(tls.scheduler, Scheduler::Wrr);
    assert!(
        !tls.quiescent,
        "quiescent=no in the block overrides the global yes"
    );
    assert_eq!(tls.persistence, None);
    // The global fallback without a port serves each service on its own port.
    assert_eq!(
        tls.sorry_server,
        Some("127.0.0.1:443".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(tls.real_servers.len(), 2);
    assert!(tls
        .real_servers
        .iter()
        .all(|r| r.port == Some(8443) && r.weight == 10));
    let check = tls.check.as_ref().unwrap();
    assert!(check.tcp.is_some());
    // checktimeout 2 in the block, the global interval and failure count.
    assert_eq!(
        (check.interval, check.timeout, check.fall),
        (secs(5), secs(2), 2)
    );
}

#[test]
fn tunnel_udp_fwmark_and_program_services() {
    let config = sample().config;
    let smtp = vs(&config, "tcp-192.0.2.20-25");
    assert_eq!(smtp.forwarding, Forwarding::Tunnel);
    assert_eq!(smtp.scheduler, Scheduler::Rr);
    assert_eq!(smtp.device.as_deref(), Some("eth0:1"));
    // No SMTP check on the box: a TCP connect, with the negotiate timeout.
    let check = smtp.check.as_ref().unwrap();
    assert!(check.tcp.is_some());
    assert_eq!(check.timeout, secs(4));

    let dns = vs(&config, "udp-192.0.2.20-53");
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(dns.scheduler, Scheduler::Sh);
    assert_eq!(
        dns.check, None,
        "no DNS check for UDP: servers stay in service"
    );

    let mark = vs(&config, "fwmark-7");
    assert_eq!((mark.fwmark, mark.vip, mark.port), (Some(7), None, None));
    assert_eq!(mark.scheduler, Scheduler::Lblc);
    assert_eq!(
        mark.sorry_server, None,
        "a global fallback is not for firewall marks"
    );
    assert_eq!(
        mark.persistence.as_ref().map(|p| p.timeout),
        Some(secs(1800))
    );
    assert!(mark
        .real_servers
        .iter()
        .all(|r| r.port.is_none() && r.weight == 5));
    let check = mark.check.as_ref().unwrap();
    // fork=yes: the block's own checkinterval counts.
    assert_eq!((check.interval, check.port), (secs(15), Some(80)));
    assert_eq!(check.http.as_ref().map(|h| h.path.as_str()), Some("/alive"));

    let mysql = vs(&config, "tcp-192.0.2.30-3306");
    assert_eq!(
        (mysql.forwarding, mysql.scheduler),
        (Forwarding::Nat, Scheduler::Lc)
    );
    assert_eq!(mysql.device.as_deref(), Some("eth0"));
    assert!(mysql.check.as_ref().unwrap().tcp.is_some());

    let app = vs(&config, "tcp-192.0.2.40-8080");
    let check = app.check.as_ref().unwrap();
    assert_eq!(
        check.program.as_ref().map(|p| p.path.as_str()),
        Some("/usr/local/bin/check_app")
    );
    assert_eq!((check.timeout, check.fall), (secs(4), 3));
    assert_eq!(app.device, None, "haresources gives 192.0.2.40 no device");
}

#[test]
fn the_pair_follows_ha_cf_haresources_and_authkeys() {
    let config = sample().config;
    assert_eq!(config.node.hostname, "lvs-a");
    assert_eq!(config.node.role, RolePreference::Primary);
    let pair = config.pair.unwrap();
    assert_eq!(pair.peer, ip("10.10.10.2"));
    assert_eq!(pair.key, "4f6a3b1e9c2d7a8b5e0f1c3d");
    assert_eq!(pair.keepalive, Span::from_millis(500));
    assert_eq!(pair.deadtime, secs(10));
    assert_eq!(pair.warntime, Some(secs(5)));
    assert_eq!(pair.initdead, Some(secs(60)));
    assert!(!pair.auto_failback);
    assert_eq!(
        pair.udp,
        Some(UdpChannel {
            interface: "eth1".into(),
            port: 694,
            mode: UdpMode::Unicast,
            group: None,
        })
    );
    assert_eq!(
        pair.serial,
        Some(SerialPort {
            device: "ttyS1".into(),
            baud: 38400,
        })
    );
    assert_eq!(
        pair.ping_nodes,
        [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")]
    );
    assert_eq!(pair.when_isolated, Isolation::PingNodesDecide);
    // heartbeat: the deadtime plus 10 ms, in whole seconds.
    assert_eq!(
        pair.watchdog,
        Some(Watchdog {
            device: "/dev/watchdog".into(),
            timeout: secs(11),
            strict_fencing: false,
        })
    );
}

#[test]
fn heartbeat_defaults_apply_where_ha_cf_is_silent() {
    let ha = "ucast eth1 10.10.10.2\nnode a\nnode b\n";
    let files = move |name: &str| match name {
        "ha.cf" => Some(ha.to_string()),
        "authkeys" => Some("auth 1\n1 sha1 0123456789abcdef0123\n".to_string()),
        _ => None,
    };
    let imported = import(
        source("virtual=192.0.2.10:80\n\treal=198.51.100.1:80 gate\n"),
        &files,
    )
    .unwrap();
    let pair = imported.config.pair.clone().unwrap();
    assert_eq!((pair.keepalive, pair.deadtime), (secs(1), secs(30)));
    assert_eq!((pair.warntime, pair.initdead), (None, Some(secs(30))));
    assert!(
        pair.auto_failback,
        "heartbeat's default `legacy` fails back"
    );
    assert_eq!(pair.serial, None);
    assert_eq!(pair.when_isolated, Isolation::HigherPriorityStays);
    assert_eq!(imported.config.node.role, RolePreference::Equal);
    assert_eq!(validate(&imported.config), vec![]);

    // A short deadtime: initdead is at least 12 s; times in heartbeat's syntax.
    let files = |name: &str| match name {
        "ha.cf" => Some("keepalive 0.5\ndeadtime 2000ms\nucast eth1 10.0.0.2\nnode a\n".into()),
        _ => None,
    };
    let pair = import(source(""), &files).unwrap().config.pair.unwrap();
    assert_eq!(pair.keepalive, Span::from_millis(500));
    assert_eq!((pair.deadtime, pair.initdead), (secs(2), Some(secs(12))));
}

#[test]
fn ldirectord_defaults_apply_where_the_file_is_silent() {
    let imported =
        alone("virtual=192.0.2.10:80\n    real=198.51.100.1:80 gate\n    real=198.51.100.2 gate\n")
            .unwrap();
    let web = &imported.config.virtual_servers[0];
    assert_eq!(web.scheduler, Scheduler::Wrr);
    assert!(web.quiescent);
    // Port 80: service http, negotiate check of "/"; the 30 s negotiate timeout cannot
    // exceed the 10 s interval.
    let check = web.check.as_ref().unwrap();
    assert_eq!(
        (check.interval, check.timeout, check.fall),
        (secs(10), secs(10), 1)
    );
    assert_eq!(check.http.as_ref().map(|h| h.path.as_str()), Some("/"));
    assert_eq!(web.real_servers[1].port, None);
    assert!(notes_at(&imported, "ldirectord.cf", 1)
        .iter()
        .any(|n| n.contains("30s is longer than the check interval 10s")));
    // Port 53 is UDP; no ha.cf means no pair.
    let dns =
        alone("virtual=192.0.2.10:53\n\treal=198.51.100.1:53 gate\n\tchecktype=connect\n").unwrap();
    assert_eq!(dns.config.virtual_servers[0].protocol, Protocol::Udp);
    assert_eq!(dns.config.pair, None);
    assert!(dns
        .notes
        .iter()
        .any(|n| n.file == "ha.cf" && n.line == 0 && n.message.contains("without a pair")));
}

#[test]
fn lines_without_equivalent_are_notes_at_their_lines() {
    let imported = sample();
    let cf = |needle: &str| notes_at(&imported, "ldirectord.cf", line_of(LDIRECTORD_CF, needle));
    for needle in [
        "autoreload=yes",
        "logfile=",
        "emailalert=\"noc",
        "emailalertfreq",
        "cleanstop",
        "emailalert=\"postmaster",
        "login=",
        "passwd=",
        "database=",
        "request=\"SELECT",
    ] {
        assert_eq!(cf(needle).len(), 1, "{needle}: {:?}", imported.notes);
    }
    assert!(cf("emailalert=\"noc")[0].contains("e-mail alerts are not supported"));
    let fallback = cf("fallback=127.0.0.1");
    assert_eq!(fallback.len(), 1, "noted once for all services");
    assert!(fallback[0].contains("first in tcp-192.0.2.10-443"));
    assert!(cf("service=smtp")[0].contains("smtp negotiate check is not available"));
    assert!(cf("service=dns")[0].contains("UDP service"));
    assert!(cf("service=mysql")[0].contains("TCP connection"));
    assert!(
        !cf("passwd=")[0].contains("s3cret"),
        "a password is never repeated"
    );

    let ha = |needle: &str| notes_at(&imported, "ha.cf", line_of(HA_CF, needle));
    for needle in ["logfacility", "ping_group", "respawn", "apiauth", "crm off"] {
        assert_eq!(ha(needle).len(), 1, "{needle}: {:?}", imported.notes);
    }
    assert!(ha("node\tlvs-a")[0].contains("this box is taken to be `lvs-a`"));
    assert!(ha("ucast eth1 10.10.10.1")[0].contains("this box's own address"));

    let resources = notes_at(&imported, "haresources", line_of(HARESOURCES, "LVSSync"));
    assert!(resources[0].contains("connection_sync"));
    let vip30 = notes_at(&imported, "haresources", line_of(HARESOURCES, "192.0.2.30"));
    assert!(vip30.is_empty(), "192.0.2.30 has a virtual service");
    let vip40 = notes_at(&imported, "haresources", line_of(HARESOURCES, "192.0.2.40"));
    assert!(vip40.is_empty(), "192.0.2.40 has a virtual service");

    let keys = notes_at(&imported, "authkeys", line_of(AUTHKEYS, "1 crc"));
    assert!(keys[0].contains("not the one `auth 2` selects"));
    let key = notes_at(&imported, "authkeys", line_of(AUTHKEYS, "2 sha1"));
    assert!(key[0].contains("sha1 method is not kept"));

    // Comments and blank lines are never notes; notes come in file and line order.
    for note in &imported.notes {
        let text = match note.file.as_str() {
            "ldirectord.cf" => LDIRECTORD_CF,
            "ha.cf" => HA_CF,
            "haresources" => HARESOURCES,
            "authkeys" => AUTHKEYS,
            other => panic!("note for unknown file {other}"),
        };
        if note.line > 0 {
            let line = text.lines().nth(note.line - 1).unwrap().trim();
            assert!(!line.is_empty() && !line.starts_with('#'), "{note}");
        }
    }
    let order = ["ldirectord.cf", "ha.cf", "haresources", "authkeys"];
    let keys: Vec<(usize, usize)> = imported
        .notes
        .iter()
        .map(|n| (order.iter().position(|f| *f == n.file).unwrap(), n.line))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn unknown_directives_are_notes_with_line_and_file() {
    let text = "# header\n\nchecktimeout=5\nfrobnicate=yes\nvirtual=192.0.2.1:80\n\treal=198.51.100.1:80 gate\n\tcolour=blue\n\tmonitorfile=\"/var/log/m.log\"\n";
    let ha = "keepalive 1\nfrobnicate on\nucast eth1 10.0.0.2\nnode a\n";
    let files = move |name: &str| (name == "ha.cf").then(|| ha.to_string());
    let imported = import(source(text), &files).unwrap();
    let at = |file: &str, line: usize| notes_at(&imported, file, line);
    assert!(at("ldirectord.cf", 4)[0].contains("`frobnicate` is not an ldirectord directive"));
    assert!(at("ldirectord.cf", 7)[0].contains("`colour`"));
    assert!(at("ldirectord.cf", 8)[0].contains("`monitorfile`"));
    assert!(at("ha.cf", 2)[0].contains("`frobnicate` is not a heartbeat directive"));
    assert!(at("authkeys", 0)[0].contains("no authkeys"));
    assert!(at("ldirectord.cf", 1).is_empty() && at("ldirectord.cf", 2).is_empty());
}

#[test]
fn several_syntax_errors_are_all_reported() {
    let text = "\
checktimeout=soon
\treal=198.51.100.9:80 gate
virtual=192.0.2.10:80
\treal=web1.example.net:80 gate
\treal=198.51.100.2:80 teleport
\tscheduler=
\tpersistent=ten
\tchecktype=sometimes
quiescent=maybe
request=\"/\"
virtual=192.0.2.999:80
checkinterval=
virtual=192.0.2.11:80
\treal=198.51.100.3:80 gate
quiescent=no
\treal=198.51.100.4:80 gate
";
    let errors = errors(text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16],
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| e.file == "ldirectord.cf"));
    assert!(errors[1]
        .message
        .contains("no `virtual` line comes before it"));
    assert!(errors[2].message.contains("not an IP address"));
    assert!(errors[3].message.contains("forwarding method"));
    assert!(errors[8].message.contains("indent it"));
    assert!(errors[9].message.contains("not an IP address"));
    assert!(errors[10].message.contains("no value"));
    assert!(errors[11].message.contains("ended the virtual block"));
}

#[test]
fn heartbeat_syntax_errors_name_their_files() {
    let ha = "keepalive fast\nucast eth1\nnode a\nmcast eth1 192.0.2.1 694 1 0\nping 999.1.1.1\n";
    let resources = "a IPaddr::192.0.2.300/24/eth0\n";
    let keys = "auth 3\n1 sha1 0123456789abcdef0\n2 blowfish x\n";
    let files = move |name: &str| match name {
        "ha.cf" => Some(ha.to_string()),
        "haresources" => Some(resources.to_string()),
        "authkeys" => Some(keys.to_string()),
        _ => None,
    };
    let Err(ImportError::Unreadable(errors)) = import(source("virtual=1\n"), &files) else {
        panic!("expected errors");
    };
    let places: Vec<(&str, usize)> = errors.iter().map(|e| (e.file.as_str(), e.line)).collect();
    assert_eq!(
        places,
        [
            ("ha.cf", 1),
            ("ha.cf", 2),
            ("ha.cf", 4),
            ("ha.cf", 5),
            ("haresources", 1),
            ("authkeys", 1),
            ("authkeys", 3),
        ],
        "{errors:?}"
    );
}

#[test]
fn keys_are_never_invented() {
    let files = |keys: &'static str| {
        move |name: &str| match name {
            "ha.cf" => Some("ucast eth1 10.0.0.2\nnode a\nnode b\n".to_string()),
            "authkeys" => Some(keys.to_string()),
            _ => None,
        }
    };
    let text = "virtual=192.0.2.10:80\n\treal=198.51.100.1:80 gate\n";
    let short = importer::import(
        Format::Ldirectord,
        source(text),
        &files("auth 1\n1 md5 Hello!\n"),
    );
    let Err(ImportError::Invalid {
        problems, notes, ..
    }) = short
    else {
        panic!("a short key fails validation");
    };
    assert!(problems.iter().any(|p| p.path == "pair.key"));
    assert!(notes
        .iter()
        .any(|n| n.file == "authkeys" && n.line == 2 && n.message.contains("shorter than the 16")));

    let crc = import(source(text), &files("auth 1\n1 crc\n")).unwrap();
    assert_eq!(crc.config.pair.as_ref().unwrap().key, "");
    assert!(notes_at(&crc, "authkeys", 2)[0].contains("`crc` has no key"));
}

#[test]
fn end_to_end_import_validates_and_detect_recognises_the_sample() {
    let imported =
        importer::import(Format::Ldirectord, source(LDIRECTORD_CF), &siblings(&[])).expect("valid");
    assert_eq!(imported.config.virtual_servers.len(), 7);
    assert_eq!(detect("ldirectord.cf", LDIRECTORD_CF), Format::Ldirectord);
    assert_eq!(
        detect("/etc/ha.d/conf/www", LDIRECTORD_CF),
        Format::Ldirectord
    );
    // The result survives the TOML round trip.
    let toml = crate::config::to_toml(&imported.config).unwrap();
    assert_eq!(crate::config::from_toml(&toml).unwrap(), imported.config);
}

#[test]
fn without_heartbeat_files_the_box_runs_alone() {
    let imported = import(
        source(LDIRECTORD_CF),
        &siblings(&["ha.cf", "haresources", "authkeys"]),
    )
    .unwrap();
    assert_eq!(imported.config.pair, None);
    assert_eq!(imported.config.node, Node::default());
    assert!(notes_at(&imported, "ha.cf", 0)[0].contains("without a pair"));
    assert_eq!(validate(&imported.config), vec![]);
}

#[test]
fn real_server_forms() {
    let text = "\
virtual=192.0.2.10:80
\treal=198.51.100.10->198.51.100.12:80 gate 4
\treal=198.51.100.20:8080 gate \"/check.html\", \"OKAY\"
\tchecktype=3
virtual6=[2001:db8::10]:443
\treal6=[2001:db8::21]:443 gate 2
\tservice=https
\tpersistent=300
\tnetmask=64
";
    let imported = alone(text).unwrap();
    let web = &imported.config.virtual_servers[0];
    let names: Vec<&str> = web.real_servers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "198.51.100.10-80",
            "198.51.100.11-80",
            "198.51.100.12-80",
            "198.51.100.20-80"
        ]
    );
    // gate cannot map 80 to 8080: ldirectord used the virtual port.
    assert_eq!(web.real_servers[3].port, None);
    assert!(notes_at(&imported, "ldirectord.cf", 3)[0].contains("cannot change the port"));
    // The only per-server request becomes the service's.
    let http = web.check.as_ref().unwrap().http.as_ref().unwrap();
    assert_eq!(
        (http.path.as_str(), http.expect.as_deref()),
        ("/check.html", Some("OKAY"))
    );
    assert!(notes_at(&imported, "ldirectord.cf", 4)[0].contains("full check every time"));

    let v6 = &imported.config.virtual_servers[1];
    assert_eq!(v6.name, "tcp-2001_db8__10-443");
    assert_eq!(v6.vip, Some(ip("2001:db8::10")));
    assert_eq!(v6.real_servers[0].address, ip("2001:db8::21"));
    assert_eq!(v6.persistence.as_ref().unwrap().prefix_len, Some(64));
    assert!(v6.check.as_ref().unwrap().http.as_ref().unwrap().tls);
    assert_eq!(validate(&imported.config), vec![]);
}

#[test]
fn check_types_off_on_and_ping() {
    let text = "\
virtual=192.0.2.10:80
\treal=198.51.100.1:80 gate
\tfallback=127.0.0.1:80
\tchecktype=off
virtual=192.0.2.10:81
\treal=198.51.100.1:81 gate
\tchecktype=on
virtual=192.0.2.10:82
\treal=198.51.100.1:82 gate
\tchecktype=ping
";
    let imported = alone(text).unwrap();
    let [off, on, ping] = imported.config.virtual_servers.as_slice() else {
        panic!("three services");
    };
    assert!(off.check.is_none() && !off.real_servers[0].enabled && off.sorry_server.is_none());
    assert!(on.check.is_none() && on.real_servers[0].enabled);
    assert!(ping.check.as_ref().unwrap().tcp.is_some());
    assert!(notes_at(&imported, "ldirectord.cf", 10)[0].contains("ICMP ping"));
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "",
        "=",
        "virtual",
        "virtual=",
        "virtual=[",
        "virtual=[::1",
        "virtual=[::1]x",
        "virtual=0",
        "virtual=99999999999999999999",
        "virtual=1.2.3.4:99999",
        "\treal=",
        "virtual=1.2.3.4:80\n\treal=1.2.3.4",
        "virtual=1.2.3.4:80\n\treal=1.2.3.4->1.2.3.3 gate",
        "virtual=1.2.3.4:80\n\treal=1.0.0.0->1.255.255.255 gate",
        "virtual=1.2.3.4:80\n\treal=::1->::2 gate",
        "virtual=1.2.3.4:80\n\treal=1.2.3.5:80 gate 1 \"",
        "virtual=1.2.3.4:80\n\treal=1.2.3.5:80 gate 1 \"a\" \"b\" c",
        "virtual=1.2.3.4:80\n\treal=1.2.3.5:80 gate 99999999999999",
        "virtual=1.2.3.4:80\n\trequest=\"\"\n\treceive=\"é\"",
        "virtual=1.2.3.4:80\n\tchecktype=99999999999",
        "virtual=1.2.3.4:80\n\tnetmask=ünïcode\n\tpersistent=1",
        "virtual6=1.2.3.4:80",
        "virtual=1.2.3.4:80\n\treal6=[::1]:80 gate",
        "é=ü\n\t#\n\"#\"",
        "virtual=1.2.3.4:http\n\trequest=\"http://\"",
        "virtual=1.2.3.4:80\n\trequest=\"http://h:x/\"",
    ];
    for text in odd {
        let _ = alone(text);
    }
    let ha_odd = [
        "keepalive",
        "keepalive .",
        "keepalive 1.",
        "keepalive 99999999999999999999",
        "keepalive 18446744073709551615s",
        "deadtime 1.9999999999999ms",
        "mcast eth0",
        "ucast",
        "node",
        "ping_group g",
        "baud fast",
        "udpport 70000",
        "serial",
        "watchdog",
        "é ü",
    ];
    for ha in ha_odd {
        let files = move |name: &str| match name {
            "ha.cf" => Some(ha.to_string()),
            "haresources" => Some("\\\n x IPaddr:: /// \\".to_string()),
            "authkeys" => Some("auth\n1\n x y\nauth 99999999999".to_string()),
            _ => None,
        };
        let _ = import(source("virtual=1.2.3.4:80"), &files);
    }
}

/// Every sample with one line cut at each character boundary in turn: no input panics.
#[test]
fn never_panics_on_truncated_sample_lines() {
    let files = [LDIRECTORD_CF, HA_CF, HARESOURCES, AUTHKEYS];
    for (which, text) in files.iter().enumerate() {
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            for (cut, _) in line.char_indices().skip(1) {
                let mut mutated: Vec<&str> = lines.clone();
                mutated[n] = &line[..cut];
                let mutated = mutated.join("\n");
                let mut all = files.map(str::to_string);
                all[which] = mutated;
                let [cf, ha, resources, keys] = all;
                let sibling = move |name: &str| match name {
                    "ha.cf" => Some(ha.clone()),
                    "haresources" => Some(resources.clone()),
                    "authkeys" => Some(keys.clone()),
                    _ => None,
                };
                let _ = import(source(&cf), &sibling);
            }
        }
    }
}

#[test]
fn an_external_check_command_is_split_and_its_arguments_noted() {
    let text = "virtual=192.0.2.1:80\n\treal=198.51.100.1:80 gate\n\tchecktype=external\n\tcheckcommand=\"/usr/local/bin/check_app --verbose 'two words'\"\n";
    let imported = alone(text).unwrap();
    let check = imported.config.virtual_servers[0].check.clone().unwrap();
    assert_eq!(
        check.program,
        Some(ProgramCheck {
            path: "/usr/local/bin/check_app".into(),
            args: vec!["--verbose".into(), "two words".into()],
        })
    );
    let notes = notes_at(&imported, "ldirectord.cf", 4);
    assert!(
        notes.iter().any(|n| n.contains("four more arguments")),
        "{notes:?}"
    );
    // Unquoted, and with quotes inside.
    let text = "virtual=192.0.2.1:80\n\treal=198.51.100.1:80 gate\n\tchecktype=external\n\tcheckcommand=/bin/check -p \"a b\"\n";
    let check = alone(text).unwrap().config.virtual_servers[0]
        .check
        .clone()
        .unwrap();
    assert_eq!(
        check.program.map(|p| (p.path, p.args)),
        Some(("/bin/check".into(), vec!["-p".into(), "a b".into()]))
    );
    // An open quote or no program is an error on its line.
    for command in ["\"/bin/check 'x\"", "\" \""] {
        let text = format!(
            "virtual=192.0.2.1:80\n\treal=198.51.100.1:80 gate\n\tchecktype=external\n\tcheckcommand={command}\n"
        );
        let lines: Vec<usize> = errors(&text).iter().map(|e| e.line).collect();
        assert_eq!(lines, [4], "{command}");
    }
}

#[test]
fn warntime_is_left_unset_or_kept_as_written() {
    let ha = |extra: &str| {
        format!("keepalive 1\ndeadtime 2\n{extra}ucast eth1 10.0.0.2\nnode a\nnode b\n")
    };
    let import_with = |ha: String| {
        let files = move |name: &str| match name {
            "ha.cf" => Some(ha.clone()),
            "authkeys" => Some("auth 1\n1 sha1 0123456789abcdef0123\n".to_string()),
            _ => None,
        };
        importer::import(
            Format::Ldirectord,
            source("virtual=192.0.2.10:80\n\treal=198.51.100.1:80 gate\n"),
            &files,
        )
    };
    // Without warntime: none, and the short timings validate.
    let imported = import_with(ha("")).expect("keepalive 1, deadtime 2 validates");
    assert_eq!(imported.config.pair.unwrap().warntime, None);
    // A warntime out of range is kept, and validation says so.
    match import_with(ha("warntime 5\n")) {
        Err(ImportError::Invalid { problems, .. }) => {
            let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(paths, ["pair.warntime"]);
        }
        other => panic!("expected the warntime to be refused, got {other:?}"),
    }
}

#[test]
fn connection_sync_follows_lvs_sync_daemon_swap() {
    let sync = |resources: Option<&str>| {
        let resources = resources.map(str::to_string);
        let files = move |name: &str| match name {
            "ha.cf" => Some(HA_CF.to_string()),
            "authkeys" => Some(AUTHKEYS.to_string()),
            "haresources" => resources.clone(),
            _ => None,
        };
        let pair = import(source(LDIRECTORD_CF), &files)
            .unwrap()
            .config
            .pair
            .unwrap();
        (pair.connection_sync, pair.sync_id)
    };
    let default = crate::config::model::sync_id();
    assert_eq!(sync(Some(HARESOURCES)), (true, default));
    assert_eq!(
        sync(Some("lvs-a 192.0.2.10 LVSSyncDaemonSwap::master::42\n")),
        (true, 42)
    );
    assert_eq!(sync(Some("lvs-a 192.0.2.10\n")), (false, default));
    assert_eq!(sync(None), (false, default));
}

#[test]
fn fwmark_and_ipv6_services_use_the_shared_names() {
    let text = "virtual=7\n\treal=198.51.100.1 gate\n\tservice=http\nvirtual6=[2001:db8::10]:53\n\treal6=[2001:db8::21]:53 masq\n\tprotocol=udp\n\tchecktype=on\n";
    let config = alone(text).unwrap().config;
    let names: Vec<&str> = config
        .virtual_servers
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(names, ["fwmark-7", "udp-2001_db8__10-53"]);
    assert_eq!(
        config.virtual_servers[1].real_servers[0].name,
        "2001_db8__21-53"
    );
    let v6mark = alone("virtual6=7\n\treal6=[2001:db8::21]:80 gate\n\tchecktype=on\n").unwrap();
    assert_eq!(v6mark.config.virtual_servers[0].name, "fwmark-7-inet6");
}
