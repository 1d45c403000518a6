//! The reconcile logic against the recording fakes: what is added, removed, left alone.

use super::*;
use crate::config::from_toml;
use crate::sys::rtnl::FakeRtnl;
use crate::sys::sysctl::FakeSysctl;

const CONFIG: &str = r#"
[network]
ip_forward = true

[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.2/24", "2001:db8::2/64"]
mtu = 9000
arp_ignore = 1
arp_announce = 2

[[network.interfaces]]
name = "eth1"
addresses = ["198.51.100.2/24"]
rp_filter = 0

[[network.routes]]
to = "default"
via = "192.0.2.1"
device = "eth0"

[[network.routes]]
to = "default"
via = "2001:db8::1"

[[network.routes]]
to = "203.0.113.0/24"
via = "198.51.100.254"

[admin]
listen = "0.0.0.0"
port = 3636
allowed = []
"#;

fn config(text: &str) -> Config {
    from_toml(text).unwrap_or_else(|e| panic!("test configuration: {e}"))
}

fn sysctls() -> FakeSysctl {
    FakeSysctl::with(&[
        ("net/ipv4/ip_forward", "0"),
        ("net/ipv6/conf/all/forwarding", "0"),
        ("net/ipv4/conf/eth0/arp_ignore", "0"),
        ("net/ipv4/conf/eth0/arp_announce", "0"),
        ("net/ipv4/conf/eth1/rp_filter", "2"),
        ("net/ipv4/vs/conntrack", "0"),
        ("net/ipv4/vs/expire_nodest_conn", "0"),
        ("net/ipv4/vs/expire_quiescent_template", "0"),
    ])
}

/// Plans and applies `wanted` once against the fakes.
fn run(
    wanted: &Wanted,
    rtnl: &mut FakeRtnl,
    sysctl: &mut FakeSysctl,
    managed: &mut Managed,
) -> Report {
    let links = rtnl.links.clone();
    let addresses = rtnl.addresses.clone();
    let routes = rtnl.routes.clone();
    let actual = Actual {
        links: &links,
        addresses: &addresses,
        routes: &routes,
    };
    let plan = plan(wanted, &actual, sysctl, managed);
    apply(plan, rtnl, sysctl, managed)
}

#[test]
fn a_fresh_box_gets_everything_and_a_second_apply_changes_nothing() {
    let wanted = wanted(&config(CONFIG));
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    let mut sysctl = sysctls();
    let mut managed = Managed::default();
    let report = run(&wanted, &mut rtnl, &mut sysctl, &mut managed);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        rtnl.changes,
        vec![
            "up eth0",
            "mtu eth0 9000",
            "up eth1",
            "up lo",
            "add 192.0.2.2/24 eth0",
            "add 2001:db8::2/64 eth0",
            "add 198.51.100.2/24 eth1",
            "route add 0.0.0.0/0 via Some(192.0.2.1)",
            "route add ::/0 via Some(2001:db8::1)",
            "route add 203.0.113.0/24 via Some(198.51.100.254)",
        ]
    );
    assert_eq!(
        sysctl.writes,
        vec![
            "net/ipv4/ip_forward=1",
            "net/ipv6/conf/all/forwarding=1",
            "net/ipv4/conf/eth0/arp_ignore=1",
            "net/ipv4/conf/eth0/arp_announce=2",
            "net/ipv4/conf/eth1/rp_filter=0",
            "net/ipv4/vs/expire_nodest_conn=1",
            "net/ipv4/vs/expire_quiescent_template=1",
        ]
    );
    assert_eq!(managed.addresses.len(), 3);
    assert_eq!(managed.routes.len(), 3);

    rtnl.changes.clear();
    sysctl.writes.clear();
    let report = run(&wanted, &mut rtnl, &mut sysctl, &mut managed);
    assert!(report.done.is_empty(), "{report:?}");
    assert!(rtnl.changes.is_empty());
    assert!(sysctl.writes.is_empty());
}

#[test]
fn what_the_director_did_not_add_is_left_alone() {
    let wanted = wanted(&config(CONFIG));
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    let foreign = [
        Address {
            index: 1,
            addr: "127.0.0.1".parse().unwrap(),
            prefix_len: 8,
            label: None,
        },
        Address {
            index: 2,
            addr: "192.0.2.77".parse().unwrap(),
            prefix_len: 24,
            label: None,
        },
        Address {
            index: 2,
            addr: "fe80::5054:ff:fe00:2".parse().unwrap(),
            prefix_len: 64,
            label: None,
        },
    ];
    rtnl.addresses.extend(foreign.iter().cloned());
    // A route the kernel made for a connected network, and one an administrator added.
    let connected = Route {
        destination: "192.0.2.0".parse().unwrap(),
        prefix_len: 24,
        gateway: None,
        device: Some(2),
        protocol: 2,
    };
    let other = Route {
        destination: "198.51.100.128".parse().unwrap(),
        prefix_len: 25,
        gateway: Some("198.51.100.1".parse().unwrap()),
        device: Some(3),
        protocol: 4,
    };
    rtnl.routes.extend([connected.clone(), other.clone()]);
    let mut managed = Managed::default();
    let report = run(&wanted, &mut rtnl, &mut sysctls(), &mut managed);
    assert!(report.is_clean(), "{report:?}");
    for address in &foreign {
        assert!(rtnl.addresses.contains(address), "{address:?} was removed");
    }
    assert!(rtnl.routes.contains(&connected));
    assert!(rtnl.routes.contains(&other));
    assert!(!rtnl
        .changes
        .iter()
        .any(|c| c.starts_with("del") || c.starts_with("route del")));
}

#[test]
fn an_address_removed_by_hand_comes_back_and_a_dropped_one_goes() {
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    let mut sysctl = sysctls();
    let mut managed = Managed::default();
    run(
        &wanted(&config(CONFIG)),
        &mut rtnl,
        &mut sysctl,
        &mut managed,
    );

    rtnl.addresses
        .retain(|a| a.addr != "198.51.100.2".parse::<IpAddr>().unwrap());
    rtnl.changes.clear();
    run(
        &wanted(&config(CONFIG)),
        &mut rtnl,
        &mut sysctl,
        &mut managed,
    );
    assert_eq!(rtnl.changes, vec!["add 198.51.100.2/24 eth1"]);

    // The configuration drops the IPv6 address and route, moves eth1 and drops the network
    // route.
    let changed = CONFIG
        .replace(", \"2001:db8::2/64\"", "")
        .replace(
            "[[network.routes]]\nto = \"default\"\nvia = \"2001:db8::1\"\n",
            "",
        )
        .replace("198.51.100.2/24", "198.51.100.3/24")
        .replace(
            "[[network.routes]]\nto = \"203.0.113.0/24\"\nvia = \"198.51.100.254\"\n",
            "",
        );
    rtnl.changes.clear();
    let report = run(
        &wanted(&config(&changed)),
        &mut rtnl,
        &mut sysctl,
        &mut managed,
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        rtnl.changes,
        vec![
            "route del ::/0 via Some(2001:db8::1)",
            "route del 203.0.113.0/24 via Some(198.51.100.254)",
            "del 2001:db8::2/64 eth0",
            "del 198.51.100.2/24 eth1",
            "add 198.51.100.3/24 eth1",
        ]
    );
    assert_eq!(
        Managed::parse(&managed.render()),
        managed,
        "the record reads back"
    );
}

#[test]
fn a_default_route_the_configuration_replaces_goes() {
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    let old_default = Route {
        destination: "0.0.0.0".parse().unwrap(),
        prefix_len: 0,
        gateway: Some("192.0.2.254".parse().unwrap()),
        device: Some(2),
        protocol: 3,
    };
    // Router advertisements' default route (protocol 9) is not the director's to remove.
    let ra_default = Route {
        destination: "::".parse().unwrap(),
        prefix_len: 0,
        gateway: Some("fe80::1".parse().unwrap()),
        device: Some(2),
        protocol: 9,
    };
    rtnl.routes
        .extend([old_default.clone(), ra_default.clone()]);
    let mut managed = Managed::default();
    run(
        &wanted(&config(CONFIG)),
        &mut rtnl,
        &mut sysctls(),
        &mut managed,
    );
    assert!(!rtnl.routes.contains(&old_default));
    assert!(rtnl.routes.contains(&ra_default));
}

#[test]
fn a_missing_interface_and_an_impossible_mtu_are_reported_and_the_rest_applied() {
    let text = CONFIG.replace(
        "[[network.routes]]\nto = \"default\"\nvia = \"192.0.2.1\"",
        "[[network.interfaces]]\nname = \"eth2\"\naddresses = [\"203.0.113.2/24\"]\n\n[[network.routes]]\nto = \"default\"\nvia = \"192.0.2.1\"",
    );
    let wanted = wanted(&config(&text));
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    // The driver of these links takes no jumbo frames.
    rtnl.max_mtu = Some(1500);
    let mut sysctl = sysctls();
    let report = run(&wanted, &mut rtnl, &mut sysctl, &mut Managed::default());
    assert_eq!(
        report.problems,
        vec!["interface eth2 does not exist: its addresses, MTU and settings are not applied"]
    );
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(
        report.failed[0],
        "eth0: MTU 1500 -> 9000: set the MTU of eth0 to 9000: Invalid argument"
    );
    // Everything else is in place.
    assert!(rtnl.changes.contains(&"add 192.0.2.2/24 eth0".to_string()));
    assert!(rtnl
        .changes
        .contains(&"add 198.51.100.2/24 eth1".to_string()));
    assert!(sysctl.writes.contains(&"net/ipv4/ip_forward=1".to_string()));
}

#[test]
fn settings_of_an_unloaded_module_are_reported() {
    let wanted = wanted(&config(CONFIG));
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    let mut sysctl = sysctls();
    sysctl.values.retain(|k, _| !k.starts_with("net/ipv4/vs/"));
    let report = run(&wanted, &mut rtnl, &mut sysctl, &mut Managed::default());
    assert_eq!(report.problems.len(), 3, "{report:?}");
    assert!(report.problems[0].starts_with("net.ipv4.vs.conntrack does not exist"));
}

#[test]
fn a_route_through_a_missing_interface_is_reported() {
    let text = CONFIG
        .replace("device = \"eth0\"", "device = \"eth2\"")
        .replace(
            "[[network.routes]]\nto = \"default\"\nvia = \"192.0.2.1\"",
            "[[network.interfaces]]\nname = \"eth2\"\naddresses = [\"192.0.2.9/24\"]\n\n[[network.routes]]\nto = \"default\"\nvia = \"192.0.2.1\"",
        );
    let report = run(
        &wanted(&config(&text)),
        &mut FakeRtnl::with_links(&["lo", "eth0", "eth1"]),
        &mut sysctls(),
        &mut Managed::default(),
    );
    assert_eq!(
        report.problems,
        vec![
            "interface eth2 does not exist: its addresses, MTU and settings are not applied",
            "route default via 192.0.2.1 dev eth2: interface eth2 does not exist; not added"
        ]
    );
}

#[test]
fn the_managed_record_skips_what_it_cannot_read() {
    let managed = Managed::parse(
        "address eth0 192.0.2.2/24\naddress eth0 nonsense\nroute 0.0.0.0/0 192.0.2.1 -\nroute x y z\n",
    );
    assert_eq!(managed.addresses.len(), 1);
    assert_eq!(managed.routes.len(), 1);
    assert_eq!(
        managed.routes.iter().next().map(|r| r.device.clone()),
        Some(None)
    );
}

#[test]
fn the_description_marks_what_differs() {
    let wanted = wanted(&config(CONFIG));
    let mut rtnl = FakeRtnl::with_links(&["lo", "eth0", "eth1"]);
    let mut sysctl = sysctls();
    let mut managed = Managed::default();
    let describe_now = |rtnl: &FakeRtnl, sysctl: &FakeSysctl, managed: &Managed| {
        let actual = Actual {
            links: &rtnl.links,
            addresses: &rtnl.addresses,
            routes: &rtnl.routes,
        };
        let plan = plan(&wanted, &actual, sysctl, managed);
        describe(&wanted, &actual, sysctl, &plan)
    };
    let before = describe_now(&rtnl, &sysctl, &managed);
    assert!(
        before.contains("differs from the configuration\n"),
        "{before}"
    );
    assert!(before.contains("! eth0: MTU 1500 -> 9000\n"), "{before}");
    assert!(
        before.contains("! net.ipv4.ip_forward = 1 (now 0)\n"),
        "{before}"
    );
    run(&wanted, &mut rtnl, &mut sysctl, &mut managed);
    let after = describe_now(&rtnl, &sysctl, &managed);
    assert!(after.ends_with("matches the configuration\n"), "{after}");
    assert!(
        after.contains("  eth0     up, carrier  mtu 9000  52:54:00:00:00:02\n"),
        "{after}"
    );
    assert!(after.contains("           192.0.2.2/24\n"), "{after}");
    assert!(
        after.contains("  default via 192.0.2.1 dev eth0  (static)\n"),
        "{after}"
    );
    assert!(
        after.contains("  net.ipv4.conf.eth0.arp_ignore = 1\n"),
        "{after}"
    );
}

#[test]
fn a_box_without_a_pair_holds_its_vips() {
    let text = format!(
        "{CONFIG}\n[[virtual_servers]]\nname = \"web\"\nvip = \"192.0.2.100\"\nport = 80\n\
         \n[[virtual_servers]]\nname = \"dns\"\nvip = \"198.51.100.53\"\nport = 53\n\
         device = \"eth0:1\"\n\n[[virtual_servers]]\nname = \"off\"\nvip = \"192.0.2.101\"\n\
         port = 80\nenabled = false\n"
    );
    let wanted = wanted(&config(&text));
    let eth0 = wanted.links.iter().find(|l| l.name == "eth0").unwrap();
    assert!(eth0
        .addresses
        .contains(&("192.0.2.100".parse().unwrap(), 32)));
    assert!(eth0
        .addresses
        .contains(&("198.51.100.53".parse().unwrap(), 32)));
    assert!(!eth0
        .addresses
        .iter()
        .any(|(a, _)| a.to_string() == "192.0.2.101"));
}

#[test]
fn only_a_virtual_server_s_vip_device_or_state_concern_the_network() {
    let old = crate::config::from_toml(
        "[[virtual_servers]]\nname = \"web\"\nvip = \"192.0.2.10\"\nport = 80\nreal_servers = [{ name = \"a\", address = \"198.51.100.1\" }]\n",
    )
    .expect("a configuration");
    let mut new = old.clone();
    new.virtual_servers[0].real_servers[0].weight = 9;
    new.virtual_servers[0].scheduler = crate::config::model::Scheduler::Rr;
    assert!(!crate::net::concerns_network(&old, &new, &[0]));
    for change in [
        |vs: &mut crate::config::model::VirtualServer| vs.enabled = false,
        |vs: &mut crate::config::model::VirtualServer| vs.vip = "192.0.2.11".parse().ok(),
        |vs: &mut crate::config::model::VirtualServer| vs.device = Some("eth1".into()),
    ] {
        let mut new = old.clone();
        change(&mut new.virtual_servers[0]);
        assert!(crate::net::concerns_network(&old, &new, &[0]));
    }
    // A position neither has: taken as a change that counts.
    assert!(crate::net::concerns_network(&old, &new, &[1]));
}
