//! The IPVS reconcile against the recording fake: the desired table from configurations, the
//! plans, full and incremental rounds, ownership, failures and their retry.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use super::*;
use crate::config::from_toml;
use crate::scratch::Scratch;
use crate::sys::ipvs::{Change, FakeIpvs, Ipvs, TunnelKind};

const WEB: &str = r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
scheduler = "wlc"
forwarding = "dr"
real_servers = [
  { name = "web1", address = "192.0.2.21", weight = 3 },
  { name = "web2", address = "192.0.2.22", weight = 1 },
]

[[virtual_servers]]
name = "api"
vip = "192.0.2.101"
port = 443
scheduler = "rr"
forwarding = "nat"
persistence = { timeout = "5m", netmask = "255.255.255.0" }
real_servers = [
  { name = "api1", address = "198.51.100.31", port = 8443, upper_threshold = 100, lower_threshold = 50 },
  { name = "api2", address = "198.51.100.32", enabled = false },
]
"#;

fn config(text: &str) -> Config {
    from_toml(text).unwrap_or_else(|e| panic!("test configuration: {e}\n{text}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn tcp(address: &str, port: u16) -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: ip(address),
        port,
    }
}

/// A reconciler whose record lives in a fresh scratch directory.
fn reconciler() -> (Reconciler, Scratch) {
    let scratch = Scratch::new("ipvs");
    let reconciler = Reconciler::new(&scratch.path().join("ipvs-managed"));
    (reconciler, scratch)
}

fn service<'a>(table: &'a Table, key: &ServiceKey) -> &'a Wanted {
    table
        .services
        .iter()
        .find(|w| w.service.key == *key)
        .unwrap_or_else(|| panic!("{key} is not in {table:#?}"))
}

/// The fake's table as the kernel would report it.
fn kernel(ipvs: &mut FakeIpvs) -> Vec<TableEntry> {
    ipvs.table().unwrap()
}

#[test]
fn every_scheduler_is_asked_for_by_its_kernel_name() {
    for (name, _) in Scheduler::ALL {
        let text = WEB.replace("scheduler = \"wlc\"", &format!("scheduler = \"{name}\""));
        let table = desired(&config(&text));
        assert_eq!(
            service(&table, &tcp("192.0.2.100", 80)).service.scheduler,
            name
        );
        // The kernel (the fake, which knows the stock modules) takes every one.
        let (mut reconciler, _scratch) = reconciler();
        let mut ipvs = FakeIpvs::default();
        let outcome = reconciler.full(&mut ipvs, &config(&text));
        assert!(outcome.failed.is_empty(), "{name}: {:?}", outcome.failed);
    }
}

#[test]
fn forwarding_methods_and_ports_as_ipvsadm_would_set_them() {
    let text = format!(
        "{WEB}\n{}",
        r#"
[[virtual_servers]]
name = "tun"
vip = "192.0.2.102"
port = 25
forwarding = "tunnel"
real_servers = [ { name = "t1", address = "203.0.113.5" } ]

[[virtual_servers]]
name = "all-ports"
vip = "192.0.2.103"
port = 0
forwarding = "dr"
persistence = { timeout = "1h" }
real_servers = [ { name = "a1", address = "192.0.2.31", port = 22 } ]
"#
    );
    let table = desired(&config(&text));
    let web = service(&table, &tcp("192.0.2.100", 80));
    assert_eq!(web.destinations[0].forwarding, Forwarding::Route);
    assert_eq!(
        web.destinations[0].port, 80,
        "a real server's port defaults to the VIP's"
    );
    assert_eq!(web.destinations[0].weight, 3);

    let api = service(&table, &tcp("192.0.2.101", 443));
    assert_eq!(api.destinations[0].forwarding, Forwarding::Masquerade);
    assert_eq!(api.destinations[0].port, 8443, "NAT may change the port");
    assert_eq!(
        (
            api.destinations[0].upper_threshold,
            api.destinations[0].lower_threshold
        ),
        (100, 50)
    );
    assert_eq!(api.destinations[1].port, 443);

    let tun = service(&table, &tcp("192.0.2.102", 25));
    assert_eq!(
        tun.destinations[0].forwarding,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Ipip,
            port: 0,
            flags: 0
        })
    );
    // Direct routing does not rewrite the packet: the port is the service's (0 here), as
    // ipvsadm forces it.
    let all = service(&table, &tcp("192.0.2.103", 0));
    assert_eq!(all.destinations[0].port, 0);
}

#[test]
fn firewall_mark_services_of_both_families() {
    let table = desired(&config(
        r#"
[[virtual_servers]]
name = "mark4"
fwmark = 7
scheduler = "sh"
forwarding = "nat"
real_servers = [ { name = "m1", address = "198.51.100.21", port = 2525 }, { name = "m2", address = "198.51.100.22" } ]

[[virtual_servers]]
name = "mark6"
fwmark = 7
family = "inet6"
forwarding = "dr"
persistence = { timeout = "30s", prefix_len = 64 }
real_servers = [ { name = "n1", address = "2001:db8::101" } ]
"#,
    ));
    let v4 = service(
        &table,
        &ServiceKey::Fwmark {
            family: Family::V4,
            mark: 7,
        },
    );
    assert_eq!(v4.service.netmask, 32);
    assert_eq!((v4.service.flags, v4.service.timeout), (0, 0));
    assert_eq!(v4.destinations[0].port, 2525);
    assert_eq!(
        v4.destinations[1].port, 0,
        "a firewall-mark service has port 0"
    );
    let v6 = service(
        &table,
        &ServiceKey::Fwmark {
            family: Family::V6,
            mark: 7,
        },
    );
    assert_eq!(
        (v6.service.flags, v6.service.timeout, v6.service.netmask),
        (Service::PERSISTENT, 30, 64)
    );
    assert_eq!(v6.destinations[0].port, 0);

    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let outcome = reconciler.full(
        &mut ipvs,
        &config(
            "[[virtual_servers]]\nname = \"m\"\nfwmark = 9\nfamily = \"inet6\"\n\
             real_servers = [ { name = \"a\", address = \"2001:db8::5\" } ]\n",
        ),
    );
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(
        ipvs.changes,
        [
            "add service fwmark 9 (IPv6) wlc",
            "add destination 2001:db8::5 port 0 to fwmark 9 (IPv6) weight 1",
        ]
    );
}

#[test]
fn persistence_and_its_granularity() {
    let table = desired(&config(&format!(
        "{WEB}\n{}",
        r#"
[[virtual_servers]]
name = "v6"
vip = "2001:db8::80"
port = 80
persistence = { timeout = "10m" }
real_servers = [ { name = "a", address = "2001:db8::81" } ]

[[virtual_servers]]
name = "v4-default"
vip = "192.0.2.104"
port = 80
persistence = { timeout = "2m" }
"#
    )));
    let api = &service(&table, &tcp("192.0.2.101", 443)).service;
    assert_eq!(
        (api.flags, api.timeout, api.netmask),
        (Service::PERSISTENT, 300, 24)
    );
    let web = &service(&table, &tcp("192.0.2.100", 80)).service;
    assert_eq!((web.flags, web.timeout, web.netmask), (0, 0, 32));
    let v6 = &service(&table, &tcp("2001:db8::80", 80)).service;
    assert_eq!(
        (v6.flags, v6.timeout, v6.netmask),
        (Service::PERSISTENT, 600, 128)
    );
    let v4 = &service(&table, &tcp("192.0.2.104", 80)).service;
    assert_eq!((v4.timeout, v4.netmask), (120, 32));
}

#[test]
fn disabled_servers_and_health_overrides() {
    let mut cfg = config(WEB);
    cfg.virtual_servers[0].real_servers[1].upper_threshold = 0;
    cfg.virtual_servers[0].real_servers[1].lower_threshold = 5;
    let table = desired(&cfg);
    // A disabled real server is drained (weight 0), a disabled virtual server absent.
    let api = service(&table, &tcp("192.0.2.101", 443));
    assert_eq!(api.destinations[1].weight, 0);
    // Without an upper threshold the lower one is 0 (the kernel refuses lower > upper).
    let web = service(&table, &tcp("192.0.2.100", 80));
    assert_eq!(web.destinations[1].lower_threshold, 0);
    cfg.virtual_servers[1].enabled = false;
    assert_eq!(
        desired(&cfg).keys(),
        HashSet::from([tcp("192.0.2.100", 80)])
    );

    struct Health;
    impl Overrides for Health {
        fn real_server(&self, vs: &VirtualServer, rs: &RealServer) -> Option<Override> {
            match (vs.name.as_str(), rs.name.as_str()) {
                ("web", "web1") => Some(Override::Down),
                ("web", "web2") => Some(Override::Weight(7)),
                ("api", "api1") => Some(Override::Quiesce),
                ("api", "api2") => Some(Override::Weight(9)),
                _ => None,
            }
        }
    }
    let cfg = config(WEB);
    let table = desired_with(&cfg, &Health);
    let web = service(&table, &tcp("192.0.2.100", 80));
    assert_eq!(web.destinations.len(), 1, "a failed server is removed");
    assert_eq!(web.destinations[0].weight, 7);
    let api = service(&table, &tcp("192.0.2.101", 443));
    assert_eq!(api.destinations[0].weight, 0, "quiesced");
    assert_eq!(
        api.destinations[1].weight, 0,
        "disabled wins over a check's weight"
    );
    // A quiescent virtual server keeps a failed real server at weight 0.
    let mut quiescent = cfg.clone();
    quiescent.virtual_servers[0].quiescent = true;
    let table = desired_with(&quiescent, &Health);
    assert_eq!(
        service(&table, &tcp("192.0.2.100", 80)).destinations[0].weight,
        0
    );
}

#[test]
fn a_fresh_kernel_gets_everything_and_a_second_round_changes_nothing() {
    let (mut reconciler, scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let cfg = config(WEB);
    let outcome = reconciler.full(&mut ipvs, &cfg);
    assert_eq!(outcome.round, Round::Full);
    assert!(outcome.failed.is_empty() && outcome.problems.is_empty() && !outcome.retry);
    assert_eq!(
        ipvs.changes,
        [
            "add service tcp 192.0.2.100:80 wlc",
            "add service tcp 192.0.2.101:443 rr",
            "add destination 192.0.2.21 port 80 to tcp 192.0.2.100:80 weight 3",
            "add destination 192.0.2.22 port 80 to tcp 192.0.2.100:80 weight 1",
            "add destination 198.51.100.31 port 8443 to tcp 192.0.2.101:443 weight 1",
            "add destination 198.51.100.32 port 443 to tcp 192.0.2.101:443 weight 0",
        ]
    );
    assert_eq!(outcome.applied.len(), 6);
    // What the kernel reports is the desired table, field for field.
    let reported: Vec<_> = kernel(&mut ipvs);
    assert_eq!(reported, desired(&cfg).entries());
    let record = std::fs::read_to_string(scratch.path().join("ipvs-managed")).unwrap();
    assert!(
        record.ends_with("tcp 192.0.2.100 80\ntcp 192.0.2.101 443\n"),
        "{record}"
    );

    ipvs.changes.clear();
    let again = reconciler.full(&mut ipvs, &cfg);
    assert!(again.applied.is_empty() && !again.retry, "{again:?}");
    let incremental = reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(incremental.round, Round::Incremental);
    assert!(incremental.applied.is_empty());
    assert!(ipvs.changes.is_empty(), "{:?}", ipvs.changes);
}

#[test]
fn a_scheduler_change_is_one_edit_and_a_weight_change_is_one_edit() {
    for incremental in [false, true] {
        let (mut reconciler, _scratch) = reconciler();
        let mut ipvs = FakeIpvs::default();
        let mut cfg = config(WEB);
        reconciler.full(&mut ipvs, &cfg);
        ipvs.changes.clear();
        cfg.virtual_servers[0].scheduler = Scheduler::Rr;
        cfg.virtual_servers[0].real_servers[0].weight = 5;
        let outcome = if incremental {
            reconciler.incremental(&mut ipvs, &cfg)
        } else {
            reconciler.full(&mut ipvs, &cfg)
        };
        let mut service = Service::new(tcp("192.0.2.100", 80), "rr");
        service.flags = 0;
        let destination = Destination {
            address: ip("192.0.2.21"),
            port: 80,
            forwarding: Forwarding::Route,
            weight: 5,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        assert_eq!(
            outcome.applied,
            [
                Change::EditService(service),
                Change::EditDestination(tcp("192.0.2.100", 80), destination),
            ]
        );
        assert_eq!(
            ipvs.changes,
            [
                "edit service tcp 192.0.2.100:80 rr",
                "edit destination 192.0.2.21 port 80 of tcp 192.0.2.100:80 weight 5",
            ]
        );
        // Persistence edited in place too, never removed and added.
        ipvs.changes.clear();
        cfg.virtual_servers[1].persistence = None;
        reconciler.incremental(&mut ipvs, &cfg);
        assert_eq!(ipvs.changes, ["edit service tcp 192.0.2.101:443 rr"]);
    }
}

#[test]
fn removed_real_servers_and_services_go_and_the_record_follows() {
    let (mut reconciler, scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let mut cfg = config(WEB);
    reconciler.full(&mut ipvs, &cfg);
    ipvs.changes.clear();
    cfg.virtual_servers[0].real_servers.remove(1);
    cfg.virtual_servers.remove(1);
    let outcome = reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(
        ipvs.changes,
        [
            "remove destination 192.0.2.22 port 80 from tcp 192.0.2.100:80",
            "remove service tcp 192.0.2.101:443",
        ]
    );
    assert!(!outcome.retry);
    let record = std::fs::read_to_string(scratch.path().join("ipvs-managed")).unwrap();
    assert!(record.ends_with("# One per line: tcp|udp|sctp ADDRESS PORT, or fwmark inet|inet6 MARK.\ntcp 192.0.2.100 80\n"), "{record}");

    // A daemon restarted with the same record removes what it created and the configuration
    // no longer has, and leaves the rest alone.
    let foreign = Service::new(tcp("192.0.2.50", 80), "rr");
    ipvs.add_service(&foreign).unwrap();
    ipvs.changes.clear();
    let mut restarted = Reconciler::new(&scratch.path().join("ipvs-managed"));
    let outcome = restarted.full(&mut ipvs, &Config::default());
    assert_eq!(ipvs.changes, ["remove service tcp 192.0.2.100:80"]);
    assert_eq!(outcome.foreign, [tcp("192.0.2.50", 80)]);
}

#[test]
fn foreign_services_are_left_alone_unless_the_director_owns_the_table() {
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let foreign = tcp("192.0.2.50", 80);
    ipvs.add_service(&Service::new(foreign, "rr")).unwrap();
    let real = Destination {
        address: ip("192.0.2.51"),
        port: 80,
        forwarding: Forwarding::Masquerade,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    ipvs.add_destination(&foreign, &real).unwrap();
    ipvs.changes.clear();

    let mut cfg = config(WEB);
    let outcome = reconciler.full(&mut ipvs, &cfg);
    assert_eq!(outcome.foreign, [foreign]);
    assert_eq!(
        outcome.foreign_lines(),
        ["not the director's: tcp 192.0.2.50:80, left alone"]
    );
    assert!(!ipvs.changes.iter().any(|c| c.contains("192.0.2.50")));
    // Still reported by the incremental rounds that follow.
    assert_eq!(reconciler.incremental(&mut ipvs, &cfg).foreign, [foreign]);

    cfg.network.ipvs.owns_table = true;
    ipvs.changes.clear();
    let outcome = reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(outcome.round, Round::Full, "taking the table over reads it");
    assert_eq!(ipvs.changes, ["remove service tcp 192.0.2.50:80"]);
    assert!(outcome.foreign.is_empty());
}

#[test]
fn a_change_behind_the_directors_back_is_corrected_by_the_next_full_round() {
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let cfg = config(WEB);
    reconciler.full(&mut ipvs, &cfg);
    // As by ipvsadm: a weight changed, a real server deleted, one added, a scheduler changed.
    let web = tcp("192.0.2.100", 80);
    let mut drained = kernel(&mut ipvs)[0].1[0].destination.clone();
    drained.weight = 0;
    ipvs.edit_destination(&web, &drained).unwrap();
    ipvs.remove_destination(&web, ip("192.0.2.22"), 80).unwrap();
    let mut stranger = drained.clone();
    stranger.address = ip("192.0.2.99");
    ipvs.add_destination(&web, &stranger).unwrap();
    ipvs.edit_service(&Service::new(tcp("192.0.2.101", 443), "lc"))
        .unwrap();
    ipvs.changes.clear();

    let outcome = reconciler.full(&mut ipvs, &cfg);
    assert_eq!(
        ipvs.changes,
        [
            "edit service tcp 192.0.2.101:443 rr",
            "add destination 192.0.2.22 port 80 to tcp 192.0.2.100:80 weight 1",
            "edit destination 192.0.2.21 port 80 of tcp 192.0.2.100:80 weight 3",
            "remove destination 192.0.2.99 port 80 from tcp 192.0.2.100:80",
        ]
    );
    assert!(!outcome.retry);
    let mut reported = kernel(&mut ipvs);
    for (_, destinations) in &mut reported {
        destinations.sort_by_key(|d| (d.destination.address, d.destination.port));
    }
    assert_eq!(reported, desired(&cfg).entries());
}

#[test]
fn a_refused_change_is_reported_with_its_entry_and_retried() {
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let mut cfg = config(WEB);
    reconciler.full(&mut ipvs, &cfg);
    // The kernel refuses the new weight (as it refuses a real server it has no route to).
    ipvs.refuse = vec![("edit destination 192.0.2.21".into(), libc::EINVAL)];
    cfg.virtual_servers[0].real_servers[0].weight = 4;
    cfg.virtual_servers[0].real_servers[1].weight = 2;
    let outcome = reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(
        outcome.failed[0].change.to_string(),
        "edit real server 192.0.2.21:80 (weight 4) of tcp 192.0.2.100:80"
    );
    assert_eq!(
        outcome.failed[0].to_string(),
        format!(
            "edit real server 192.0.2.21:80 (weight 4) of tcp 192.0.2.100:80: {}",
            std::io::Error::from_raw_os_error(libc::EINVAL)
        )
    );
    assert_eq!(outcome.failed[0].error.errno, Some(libc::EINVAL));
    assert_eq!(outcome.applied.len(), 1, "the rest is applied regardless");
    assert!(outcome.retry);
    assert!(!outcome.applied.contains(&outcome.failed[0].change));

    // The next round reads the kernel and retries exactly what is still different.
    ipvs.changes.clear();
    let again = reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(again.round, Round::Full);
    assert!(ipvs.changes.is_empty(), "refused again: {:?}", ipvs.changes);
    assert_eq!(again.failed.len(), 1);
    ipvs.refuse.clear();
    let third = reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(third.round, Round::Full);
    assert_eq!(
        ipvs.changes,
        ["edit destination 192.0.2.21 port 80 of tcp 192.0.2.100:80 weight 4"]
    );
    assert!(!third.retry);
    assert_eq!(
        reconciler.incremental(&mut ipvs, &cfg).round,
        Round::Incremental
    );
}

#[test]
fn a_refused_new_service_is_not_taken_as_the_directors() {
    let (mut reconciler, scratch) = reconciler();
    let mut ipvs = FakeIpvs {
        refuse: vec![("add service tcp 192.0.2.101".into(), libc::ENOMEM)],
        ..FakeIpvs::default()
    };
    let outcome = reconciler.full(&mut ipvs, &config(WEB));
    // The service and its two real servers fail; the other service goes in.
    assert_eq!(outcome.failed.len(), 3, "{:?}", outcome.failed);
    assert_eq!(outcome.applied.len(), 3);
    let record = std::fs::read_to_string(scratch.path().join("ipvs-managed")).unwrap();
    assert!(!record.contains("192.0.2.101"), "{record}");
    assert_eq!(
        reconciler.owned(),
        Some(&HashSet::from([tcp("192.0.2.100", 80)]))
    );
}

#[test]
fn the_record_is_read_tolerantly_and_written_atomically() {
    let text = "# comment\n\ntcp 192.0.2.100 80\nudp 2001:db8::53 53 # dns\nfwmark inet 7\n\
                fwmark inet6 8\nsctp 192.0.2.1 3868\nbogus line\ntcp 192.0.2.300 80\nfwmark inet 0\n";
    let (keys, problems) = record::parse(text);
    assert_eq!(keys.len(), 5);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("line 8: 'bogus line'"),
        "{}",
        problems[0]
    );
    assert_eq!(record::parse(&record::render(&keys)).0, keys);

    let scratch = Scratch::new("ipvs-record");
    let path = scratch.path().join("run/director/ipvs-managed");
    assert_eq!(record::load(&path), (HashSet::new(), Vec::new()));
    record::save(&path, &keys).unwrap();
    assert_eq!(record::load(&path).0, keys);
    assert!(!scratch
        .path()
        .join("run/director/ipvs-managed.new")
        .exists());

    // A bad line in the file is reported by the round, and the round goes on.
    std::fs::write(&path, "tcp 192.0.2.100 80\nnonsense\n").unwrap();
    let mut reconciler = Reconciler::new(&path);
    let mut ipvs = FakeIpvs::default();
    let outcome = reconciler.full(&mut ipvs, &config(WEB));
    assert_eq!(outcome.problems.len(), 1, "{:?}", outcome.problems);
    assert!(outcome.problems[0].contains("line 2: 'nonsense'"));
    assert!(outcome.retry);
    assert_eq!(outcome.applied.len(), 6);
    let rewritten = std::fs::read_to_string(&path).unwrap();
    assert!(!rewritten.contains("nonsense"), "{rewritten}");
    assert!(!reconciler.full(&mut ipvs, &config(WEB)).retry);
}

#[test]
fn timeouts_are_set_when_the_kernels_differ() {
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let mut cfg = config(WEB);
    reconciler.full(&mut ipvs, &cfg);
    assert!(!ipvs.changes.iter().any(|c| c.starts_with("timeouts")));
    cfg.network.ipvs.tcpfin_timeout = Some("30s".parse().unwrap());
    cfg.network.ipvs.udp_timeout = Some("5m".parse().unwrap());
    ipvs.changes.clear();
    reconciler.incremental(&mut ipvs, &cfg);
    assert_eq!(ipvs.changes, ["timeouts 900 30 300"]);
    ipvs.changes.clear();
    reconciler.full(&mut ipvs, &cfg);
    reconciler.incremental(&mut ipvs, &cfg);
    assert!(ipvs.changes.is_empty(), "{:?}", ipvs.changes);
    // Changed behind the director's back: a full round puts it back.
    ipvs.timeouts.tcp_fin = 120;
    reconciler.full(&mut ipvs, &cfg);
    assert_eq!(ipvs.changes, ["timeouts 900 30 300"]);
    // A refusal is a problem, and the next round is full.
    ipvs.timeouts.tcp_fin = 120;
    ipvs.refuse = vec![("set timeouts".into(), libc::EPERM)];
    let outcome = reconciler.full(&mut ipvs, &cfg);
    assert!(outcome.retry && outcome.problems[0].contains("timeouts"));
    assert_eq!(reconciler.incremental(&mut ipvs, &cfg).round, Round::Full);
}

#[test]
fn the_plan_adds_and_edits_services_then_real_servers_then_removes_services() {
    let cfg = config(WEB);
    let mut actual = desired(&cfg).entries();
    // The kernel has an old service of ours and lacks "api"; "web" has an old scheduler.
    actual.retain(|(e, _)| e.service.key != tcp("192.0.2.101", 443));
    actual[0].0.service.scheduler = "lc".into();
    actual[0].0.service.flags |= Service::HASHED;
    let old = Service::new(tcp("192.0.2.1", 22), "rr");
    actual.push((
        ServiceEntry {
            service: old,
            stats: Stats::default(),
        },
        Vec::new(),
    ));
    let owned = HashSet::from([tcp("192.0.2.1", 22)]);
    let plan = plan(&desired(&cfg), &actual, &owned, false);
    let kinds: Vec<&str> = plan
        .changes
        .iter()
        .map(|c| match c {
            Change::AddService(_) => "add service",
            Change::EditService(_) => "edit service",
            Change::RemoveService(_) => "remove service",
            Change::AddDestination(..) => "add destination",
            Change::EditDestination(..) => "edit destination",
            Change::RemoveDestination { .. } => "remove destination",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "edit service",
            "add service",
            "add destination",
            "add destination",
            "remove service"
        ]
    );
    assert!(plan.foreign.is_empty());
    assert!(!plan
        .changes
        .iter()
        .any(|c| matches!(c, Change::RemoveService(k) if *k != tcp("192.0.2.1", 22))));
}

#[test]
fn one_weight_in_ten_thousand_services_is_one_edit() {
    let mut text = String::new();
    for i in 0..10_000u32 {
        let (a, b) = (i / 250, i % 250 + 1);
        text.push_str(&format!(
            "[[virtual_servers]]\nname = \"s{i}\"\nvip = \"10.{a}.{b}.1\"\nport = 80\n\
             real_servers = [ {{ name = \"a\", address = \"10.{a}.{b}.2\" }}, \
             {{ name = \"b\", address = \"10.{a}.{b}.3\" }} ]\n"
        ));
    }
    let mut cfg: Config = toml::from_str(&text).unwrap();
    let before = desired(&cfg).entries();
    cfg.virtual_servers[6789].real_servers[1].weight = 4;
    let after = desired(&cfg);
    let owned = after.keys();
    let start = Instant::now();
    let plan = plan(&after, &before, &owned, false);
    let took = start.elapsed();
    let start = Instant::now();
    let again = super::plan(&after, &before, &owned, false);
    let warm = start.elapsed();
    assert_eq!(again, plan);
    println!("planning one change in 10,000 services took {took:?} ({warm:?} warm)");
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    assert!(matches!(
        &plan.changes[0],
        Change::EditDestination(key, d)
            if *key == tcp("10.27.40.1", 80) && d.address == ip("10.27.40.3") && d.weight == 4
    ));

    // The same through the reconciler: one change sent to the kernel.
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    cfg.virtual_servers[6789].real_servers[1].weight = 1;
    assert_eq!(reconciler.full(&mut ipvs, &cfg).applied.len(), 30_000);
    ipvs.changes.clear();
    cfg.virtual_servers[6789].real_servers[1].weight = 4;
    let start = Instant::now();
    let outcome = reconciler.incremental(&mut ipvs, &cfg);
    println!(
        "an incremental round of one change in 10,000 services took {:?}",
        start.elapsed()
    );
    assert_eq!(outcome.round, Round::Incremental);
    assert_eq!(
        ipvs.changes,
        ["edit destination 10.27.40.3 port 80 of tcp 10.27.40.1:80 weight 4"]
    );
}

/// 1,000 services with two real servers each.
fn many(weight_of_v500: u32, v501_vip: &str) -> String {
    let mut text = String::new();
    for i in 0..1000 {
        let vip = if i == 501 {
            v501_vip.to_string()
        } else {
            format!("192.0.2.{}", i / 40 + 1)
        };
        let weight = if i == 500 { weight_of_v500 } else { 1 };
        text.push_str(&format!(
            "[[virtual_servers]]\nname = \"v{i}\"\nvip = \"{vip}\"\nport = {}\n\
             real_servers = [{{ name = \"a\", address = \"198.51.100.1\", weight = {weight} }}, \
             {{ name = \"b\", address = \"198.51.100.2\" }}]\n\n",
            1000 + i % 40
        ));
    }
    text
}

#[test]
fn a_change_to_a_few_virtual_servers_is_planned_from_those_alone() {
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let first = std::sync::Arc::new(config(&many(1, "192.0.2.13")));
    let outcome = reconciler.round_from(&mut ipvs, &first, true, None);
    assert_eq!(outcome.applied.len(), 3000);
    assert!(!outcome.retry);

    // One weight: one edit, without reading the kernel.
    ipvs.changes.clear();
    let second = std::sync::Arc::new(config(&many(7, "192.0.2.13")));
    let outcome = reconciler.round_from(&mut ipvs, &second, false, None);
    assert_eq!(outcome.round, Round::Incremental);
    assert_eq!(outcome.applied.len(), 1, "{:?}", outcome.applied);
    assert!(matches!(
        &outcome.applied[0],
        Change::EditDestination(key, d) if *key == tcp("192.0.2.13", 1020) && d.weight == 7
    ));

    // A new VIP for another one: its old service goes, the new one comes, and the record
    // follows.
    let third = std::sync::Arc::new(config(&many(7, "203.0.113.9")));
    let outcome = reconciler.round_from(&mut ipvs, &third, false, None);
    let applied: Vec<String> = outcome.applied.iter().map(ToString::to_string).collect();
    assert_eq!(applied.len(), 4, "{applied:?}");
    assert!(
        applied[0].starts_with("add service tcp 203.0.113.9:1021"),
        "{applied:?}"
    );
    assert!(
        applied[3].starts_with("remove service tcp 192.0.2.13:1021"),
        "{applied:?}"
    );
    let record = std::fs::read_to_string(_scratch.path().join("ipvs-managed")).unwrap();
    assert!(record.contains("tcp 203.0.113.9 1021"), "{record}");
    assert!(!record.contains("tcp 192.0.2.13 1021"), "{record}");

    // The state it kept is the kernel's: a full round finds nothing to do, and another small
    // change is again one edit.
    let outcome = reconciler.round_from(&mut ipvs, &third, true, None);
    assert!(outcome.applied.is_empty(), "{:?}", outcome.applied);
    let fourth = std::sync::Arc::new(config(&many(2, "203.0.113.9")));
    let outcome = reconciler.round_from(&mut ipvs, &fourth, false, None);
    assert_eq!(outcome.applied.len(), 1);
    assert_eq!(
        kernel(&mut ipvs).len(),
        1000,
        "the kernel has every service once"
    );
}

#[test]
fn a_delta_that_joins_the_two_configurations_spares_comparing_them() {
    use crate::config::delta::{Delta, Difference};
    use std::sync::Arc;
    let (mut reconciler, _scratch) = reconciler();
    let mut ipvs = FakeIpvs::default();
    let first = Arc::new(config(&many(1, "192.0.2.13")));
    reconciler.round_from(&mut ipvs, &first, true, None);
    ipvs.changes.clear();

    // v500's weight and v501's VIP both change, but the delta names v500 alone: only what it
    // names is looked at, which shows that the configurations were not compared.
    let second = Arc::new(config(&many(7, "203.0.113.9")));
    let mut difference = Difference::between(&first, &second);
    assert_eq!(difference.virtual_servers, Some(vec![500, 501]));
    difference.virtual_servers = Some(vec![500]);
    let delta = Delta {
        from: Arc::downgrade(&first),
        to: Arc::downgrade(&second),
        difference: Some(difference),
    };
    let outcome = reconciler.round_from(&mut ipvs, &second, false, Some(&delta));
    assert_eq!(outcome.round, Round::Incremental);
    assert_eq!(outcome.applied.len(), 1, "{:?}", outcome.applied);
    assert!(matches!(
        &outcome.applied[0],
        Change::EditDestination(key, d) if *key == tcp("192.0.2.13", 1020) && d.weight == 7
    ));

    // A delta between other configurations is not trusted: the configurations are compared
    // (v500's weight again; v501 is alike in both).
    let third = Arc::new(config(&many(8, "203.0.113.9")));
    let stale = Delta {
        from: Arc::downgrade(&first),
        to: Arc::downgrade(&third),
        difference: Some(Difference {
            elsewhere: false,
            virtual_servers: Some(vec![]),
        }),
    };
    let outcome = reconciler.round_from(&mut ipvs, &third, false, Some(&stale));
    assert_eq!(outcome.applied.len(), 1, "{:?}", outcome.applied);

    // The full round reads the kernel and puts right what the lying delta hid.
    let outcome = reconciler.round_from(&mut ipvs, &third, true, None);
    let applied: Vec<String> = outcome.applied.iter().map(ToString::to_string).collect();
    assert_eq!(applied.len(), 4, "{applied:?}");
    assert!(
        applied[0].starts_with("add service tcp 203.0.113.9:1021"),
        "{applied:?}"
    );
}
