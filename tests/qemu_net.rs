//! The booted image owns its network: eth0/eth1 configured from a provisioned director.toml,
//! forwarding and the ARP settings as configured, reachable from a host on the same bridge,
//! and a missing interface reported while the rest applies. Needs root (bridge, taps,
//! namespaces); `scripts/test` runs it with `--ignored`.

mod vm;

use std::time::Duration;

use vm::lab::{in_ns, Lab};
use vm::{test_dir, Boot, Vm};

const BOOT: Duration = Duration::from_secs(90);
const SHORT: Duration = Duration::from_secs(20);
const READY: &str = "INFO  daemon: ready";

const CONFIG: &str = r#"
[node]
hostname = "lvs-net"

[network]
ip_forward = true

[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.2/24", "2001:db8::2/64"]
mtu = 1400
arp_ignore = 1
arp_announce = 2

[[network.interfaces]]
name = "eth1"
addresses = ["198.51.100.2/24"]
rp_filter = 0

[[network.interfaces]]
name = "eth2"
addresses = ["203.0.113.2/24"]

[[network.routes]]
to = "default"
via = "192.0.2.1"

[admin]
listen = "0.0.0.0"
port = 3636
allowed = []
"#;

#[test]
#[ignore = "boots the image under QEMU on a bridge (root): run by scripts/test"]
fn the_box_configures_its_network_and_is_reachable() {
    let dir = test_dir("network");
    let config = dir.join("director.toml");
    std::fs::write(&config, CONFIG).expect("write the configuration");
    let mut lab = Lab::new("dnet");
    let eth0 = lab.tap("t0");
    let eth1 = lab.tap("t1");
    let client = lab.host("client", "192.0.2.10/24");

    let mut vm = Vm::boot(
        &dir,
        Boot {
            no_reboot: true,
            no_data: true,
            config: Some(config),
            taps: Some((eth0.clone(), eth1)),
            ..Boot::default()
        },
    );
    lab.plug(&eth0);
    vm.wait_for(READY, BOOT);
    vm.wait_for("network: eth0: add 192.0.2.2/24", BOOT);
    vm.wait_for("interface eth2 does not exist", BOOT);
    vm.wait_for("network: configured", BOOT);

    // The kernel's view inside the box, read with busybox as the reference.
    let eth0 = vm.sh("ip addr show dev eth0", SHORT);
    assert!(eth0.contains("mtu 1400"), "{eth0}");
    assert!(eth0.contains("inet 192.0.2.2/24"), "{eth0}");
    assert!(eth0.contains("inet6 2001:db8::2/64"), "{eth0}");
    assert!(eth0.contains(",UP,"), "{eth0}");
    let eth1 = vm.sh("ip addr show dev eth1", SHORT);
    assert!(eth1.contains("inet 198.51.100.2/24"), "{eth1}");
    let routes = vm.sh("ip route", SHORT);
    assert!(
        routes.contains("default via 192.0.2.1 dev eth0"),
        "{routes}"
    );
    for (key, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv6/conf/all/forwarding", "1"),
        ("net/ipv4/conf/eth0/arp_ignore", "1"),
        ("net/ipv4/conf/eth0/arp_announce", "2"),
        ("net/ipv4/conf/eth1/rp_filter", "0"),
        ("net/ipv4/vs/expire_nodest_conn", "1"),
    ] {
        assert_eq!(
            vm.sh(&format!("cat /proc/sys/{key}"), SHORT),
            value,
            "{key}"
        );
    }

    // A host on the bridge reaches eth0, and the box reaches it.
    let (ok, out) = in_ns(&client, &["ping", "-c", "3", "-W", "2", "192.0.2.2"]);
    assert!(ok, "the client cannot reach the box: {out}");
    let out = vm.sh(
        "ping -c 2 -W 2 192.0.2.10 >/dev/null && echo reached",
        SHORT,
    );
    assert_eq!(out, "reached");

    // What differs is shown; an address removed by hand comes back at the next apply.
    let net = vm.sh("director ctl net", SHORT);
    assert!(net.contains("! interface eth2 does not exist"), "{net}");
    assert!(!net.contains("! eth0"), "{net}");
    vm.sh("ip addr del 198.51.100.2/24 dev eth1", SHORT);
    let net = vm.sh("director ctl net", SHORT);
    assert!(net.contains("! eth1: add 198.51.100.2/24"), "{net}");
    let applied = vm.sh("director ctl net apply", SHORT);
    assert!(applied.contains("eth1: add 198.51.100.2/24"), "{applied}");
    assert!(vm
        .sh("ip addr show dev eth1", SHORT)
        .contains("inet 198.51.100.2/24"));
    // A second apply has nothing to do.
    let again = vm.sh("director ctl net apply", SHORT);
    assert!(!again.contains(": add "), "{again}");

    vm.send("director poweroff");
    vm.wait_exit(SHORT);
}
