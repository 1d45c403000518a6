//! ipvsadm's layouts from fixed tables, and the JSON read back by serde_json.

use super::*;
use crate::sys::ipvs::{Destination, ServiceEntry, Tunnel};

const INFO: Info = Info {
    version: 0x010201,
    connection_table_size: 4096,
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn service(
    key: ServiceKey,
    scheduler: &str,
    flags: u32,
    timeout: u32,
    netmask: u8,
) -> ServiceEntry {
    ServiceEntry {
        service: Service {
            key,
            scheduler: scheduler.into(),
            flags,
            timeout,
            netmask,
        },
        stats: Stats::default(),
    }
}

fn real(
    address: &str,
    port: u16,
    forwarding: Forwarding,
    weight: u32,
    active: u32,
    inactive: u32,
) -> DestinationEntry {
    DestinationEntry {
        destination: Destination {
            address: ip(address),
            port,
            forwarding,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        },
        active_conns: active,
        inactive_conns: inactive,
        persistent_conns: 0,
        stats: Stats::default(),
    }
}

fn tcp(address: &str, port: u16) -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: ip(address),
        port,
    }
}

/// A table in the kernel's (hash) order, not ipvsadm's.
fn table() -> Vec<TableEntry> {
    vec![
        (
            service(
                ServiceKey::Fwmark {
                    family: Family::V6,
                    mark: 7,
                },
                "wlc",
                0,
                0,
                128,
            ),
            vec![real("2001:db8::5", 0, Forwarding::Route, 1, 0, 0)],
        ),
        (
            service(
                ServiceKey::Fwmark {
                    family: Family::V4,
                    mark: 7,
                },
                "sh",
                Service::PERSISTENT | Service::SH_FALLBACK | Service::SH_PORT,
                600,
                24,
            ),
            vec![real("198.51.100.21", 2525, Forwarding::Masquerade, 2, 5, 1)],
        ),
        (
            service(
                ServiceKey::Address {
                    protocol: Protocol::Udp,
                    address: ip("2001:db8::53"),
                    port: 53,
                },
                "rr",
                Service::PERSISTENT | Service::ONE_PACKET,
                300,
                64,
            ),
            vec![real(
                "2001:db8::101",
                53,
                Forwarding::Tunnel(Tunnel::default()),
                1,
                0,
                0,
            )],
        ),
        (
            service(tcp("10.0.0.1", 443), "lc", 0, 0, 32),
            vec![real("127.0.0.1", 443, Forwarding::Local, 1, 0, 0)],
        ),
        (
            service(tcp("192.0.2.100", 80), "wlc", 0, 0, 32),
            vec![
                real("192.0.2.22", 80, Forwarding::Route, 1, 0, 2),
                real("192.0.2.21", 80, Forwarding::Route, 3, 12, 40),
            ],
        ),
    ]
}

#[test]
fn plain_is_ipvsadm_ln() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.100:80 wlc
  -> 192.0.2.21:80                Route   3      12         40        
  -> 192.0.2.22:80                Route   1      0          2         
TCP  10.0.0.1:443 lc
  -> 127.0.0.1:443                Local   1      0          0         
UDP  [2001:db8::53]:53 rr persistent 300 mask 64 ops
  -> [2001:db8::101]:53           Tunnel  1      0          0         
FWM  7 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0
  -> 198.51.100.21:2525           Masq    2      5          1         
FWM  7 IPv6 wlc
  -> [2001:db8::5]:0              Route   1      0          0         
";
    assert_eq!(render(&INFO, &table(), View::Plain), expected);
}

#[test]
fn an_empty_table_is_the_header_and_the_titles() {
    let info = Info {
        version: 0x010203,
        connection_table_size: 1 << 20,
    };
    assert_eq!(
        render(&info, &[], View::Plain),
        "IP Virtual Server version 1.2.3 (size=1048576)\n\
         Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
    assert_eq!(
        render(&info, &[], View::Stats),
        "IP Virtual Server version 1.2.3 (size=1048576)\n\
         Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n"
    );
    assert_eq!(
        render(&info, &[], View::Rate),
        "IP Virtual Server version 1.2.3 (size=1048576)\n\
         Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n"
    );
}

#[test]
fn scheduler_flags_of_other_schedulers() {
    let mut entry = service(tcp("192.0.2.1", 80), "mh", Service::SH_PORT, 0, 32);
    let line = |entry: &ServiceEntry| {
        render(&INFO, &[(entry.clone(), Vec::new())], View::Plain)
            .lines()
            .nth(3)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(line(&entry), "TCP  192.0.2.1:80 mh (mh-port)");
    entry.service.scheduler = "rr".into();
    entry.service.flags = Service::SH_FALLBACK | Service::SCHED3;
    assert_eq!(line(&entry), "TCP  192.0.2.1:80 rr (flag-1,flag-3)");
    // sh knows no third flag: ipvsadm prints the parentheses empty.
    entry.service.scheduler = "sh".into();
    entry.service.flags = Service::SCHED3 | Service::PERSISTENT;
    entry.service.timeout = 300;
    assert_eq!(line(&entry), "TCP  192.0.2.1:80 sh () persistent 300");
    entry.service.key = ServiceKey::Address {
        protocol: Protocol::Sctp,
        address: ip("192.0.2.1"),
        port: 3868,
    };
    entry.service.flags = 0;
    assert_eq!(line(&entry), "SCTP 192.0.2.1:3868 sh");
}

fn stats(base: u64) -> Stats {
    Stats {
        conns: base,
        inpkts: base * 10,
        outpkts: base * 100,
        inbytes: base * 1000,
        outbytes: base * 10_000,
        cps: base,
        inpps: base * 10,
        outpps: base * 100,
        inbps: base * 1000,
        outbps: base * 10_000,
    }
}

#[test]
fn stats_and_rates_with_large_numbers() {
    let mut web = service(tcp("192.0.2.100", 80), "wlc", 0, 0, 32);
    web.stats = Stats {
        conns: 99_999_999,
        inpkts: 100_000_000,
        outpkts: 999_999_999,
        inbytes: 99_999_999_999,
        outbytes: 123_456_789_012_345,
        cps: 12,
        inpps: 345,
        outpps: 1_000_000_000,
        inbps: 100_000_000_000,
        outbps: 99_999_999_999_999,
    };
    let mut a = real("192.0.2.21", 80, Forwarding::Route, 1, 0, 0);
    a.stats = stats(123_456);
    let mut b = real(
        "2001:db8::21",
        80,
        Forwarding::Tunnel(Tunnel::default()),
        1,
        0,
        0,
    );
    b.stats = Stats {
        cps: 123_456_789,
        ..Stats::default()
    };
    let table = vec![(web, vec![b, a])];
    assert_eq!(
        render(&INFO, &table, View::Stats),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.100:80               99999999  100000K  999999K   99999M     123T
  -> 192.0.2.21:80                  123456  1234560 12345600  123456K    1234M
  -> [2001:db8::21]:80                   0        0        0        0        0
"
    );
    assert_eq!(
        render(&INFO, &table, View::Rate),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.0.2.100:80                     12      345    1000M     100G   99999G
  -> 192.0.2.21:80                  123456  1234560 12345600  123456K    1234M
  -> [2001:db8::21]:80            123456789        0        0        0        0
"
    );
    let mut huge = service(tcp("192.0.2.1", 1), "rr", 0, 0, 32);
    huge.stats.conns = 123_456_789_012_345_678;
    let text = render(&INFO, &[(huge, Vec::new())], View::Stats);
    assert!(
        text.contains("TCP  192.0.2.1:1                   123456T        0"),
        "{text}"
    );
}

/// What a writer into a buffer writes.
fn written(write: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    write(&mut out);
    out
}

#[test]
fn addresses_and_ports_as_inet_ntop_and_ipvsadm_write_them() {
    assert_eq!(
        written(|out| address_port(out, ip("::ffff:192.0.2.1"), 80)),
        "[::ffff:192.0.2.1]:80"
    );
    assert_eq!(
        written(|out| address_port(out, ip("::192.0.2.1"), 80)),
        "[::192.0.2.1]:80"
    );
    assert_eq!(written(|out| address_port(out, ip("::1"), 80)), "[::1]:80");
    assert_eq!(
        written(|out| address_port(out, ip("2001:db8:0:1::1"), 443)),
        "[2001:db8:0:1::1]:443"
    );
    assert_eq!(
        written(|out| address_port(out, ip("2001:db8::1:0:0:1"), 0)),
        "[2001:db8::1:0:0:1]:0"
    );
}

#[test]
fn the_order_is_ipvsadms_even_where_its_comparison_wraps() {
    let mut table = Vec::new();
    for (address, port) in [
        ("192.0.2.1", 80),
        ("10.0.0.1", 80),
        ("192.0.2.1", 22),
        ("192.0.2.2", 1),
    ] {
        table.push((service(tcp(address, port), "rr", 0, 0, 32), Vec::new()));
    }
    table.push((
        service(
            ServiceKey::Address {
                protocol: Protocol::Udp,
                address: ip("192.0.2.1"),
                port: 53,
            },
            "rr",
            0,
            0,
            32,
        ),
        Vec::new(),
    ));
    let order: Vec<String> = sorted(&table)
        .iter()
        .map(|(e, _)| written(|out| service_name(out, &e.service.key)))
        .collect();
    // TCP (6) before UDP (17); 192.0.2.x before 10.0.0.1: 0x0a000001 - 0xc0000201 wraps to a
    // positive int in ipvsadm's comparison.
    assert_eq!(
        order,
        [
            "TCP  192.0.2.1:22",
            "TCP  192.0.2.1:80",
            "TCP  192.0.2.2:1",
            "TCP  10.0.0.1:80",
            "UDP  192.0.2.1:53"
        ]
    );
}

#[test]
fn json_is_well_formed_and_complete() {
    let mut rows = table();
    rows[4].0.stats = stats(7);
    rows[4].1[1].stats = stats(u64::MAX / 10_000);
    rows[4].1[1].persistent_conns = 3;
    rows[0].0.service.scheduler = "we\"ird\\\n\u{1}".into();
    let text = render_json(&INFO, &rows);
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(json["version"], "1.2.1");
    assert_eq!(json["size"], 4096);
    let services = json["services"].as_array().unwrap();
    assert_eq!(services.len(), 5);
    let web = &services[0];
    assert_eq!(web["protocol"], "tcp");
    assert_eq!(web["address"], "192.0.2.100");
    assert_eq!(web["port"], 80);
    assert_eq!(web["family"], "inet");
    assert_eq!(web["scheduler"], "wlc");
    assert_eq!(web["persistence"], serde_json::Value::Null);
    assert_eq!(web["stats"]["in_bytes"], 7000);
    assert_eq!(web["rates"]["out_bytes"], 70_000);
    let first = &web["destinations"][0];
    assert_eq!(first["address"], "192.0.2.21");
    assert_eq!(first["forwarding"], "route");
    assert_eq!(first["weight"], 3);
    assert_eq!(first["active_connections"], 12);
    assert_eq!(first["inactive_connections"], 40);
    assert_eq!(first["persistent_connections"], 3);
    assert_eq!(first["upper_threshold"], 0);
    assert_eq!(first["stats"]["connections"], u64::MAX / 10_000);
    let dns = &services[2];
    assert_eq!(dns["family"], "inet6");
    assert_eq!(dns["persistence"]["timeout"], 300);
    assert_eq!(dns["persistence"]["prefix_len"], 64);
    assert_eq!(dns["one_packet"], true);
    assert_eq!(dns["destinations"][0]["forwarding"], "tunnel");
    assert_eq!(dns["destinations"][0]["tunnel"]["type"], "ipip");
    let mark = &services[3];
    assert_eq!(mark["fwmark"], 7);
    assert_eq!(mark["destinations"][0]["forwarding"], "masq");
    assert_eq!(services[4]["scheduler"], "we\"ird\\\n\u{1}");
    assert_eq!(services[1]["destinations"][0]["forwarding"], "local");
    let empty: serde_json::Value = serde_json::from_str(&render_json(&INFO, &[])).unwrap();
    assert_eq!(empty["services"], serde_json::json!([]));
}

#[test]
fn numbers_and_padding_as_printf_writes_them() {
    let mut digits = Digits::new();
    assert_eq!(digits.unsigned(0), "0");
    assert_eq!(digits.unsigned(u64::MAX), u64::MAX.to_string());
    assert_eq!(digits.signed(-1), "-1");
    assert_eq!(digits.signed(i64::MIN), i64::MIN.to_string());
    assert_eq!(digits.signed(65535), "65535");
    let mut out = String::new();
    left(&mut out, "Masq", 7);
    left(&mut out, "longer than that", 4);
    assert_eq!(out, format!("{:<7}{:<4}", "Masq", "longer than that"));
    let mut name = String::new();
    address_port(&mut name, ip("198.51.100.254"), 65535);
    assert_eq!(name, "198.51.100.254:65535");
}
