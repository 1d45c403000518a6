//! The pair in the lab: two director VMs with a `[pair]` section, heartbeat over eth1 and
//! the null-modem cable, the watchdog running. The primary takes the VIP, the backup stands
//! by; planned switch-overs move it; a cut heartbeat link changes nothing; an active whose
//! public link loses its carrier hands over; when the active is power-killed the standby
//! takes the VIP and the client reaches it there. Needs root; `scripts/test` runs it with
//! `--ignored`.

mod vm;

use std::time::{Duration, Instant};

use vm::lab::{in_ns, node_config, Nic, Node, PairSpec, CLIENT, VIP};
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);

/// A node's configuration: the lab's addresses, one virtual server on the VIP, the pair.
fn config(node: Node) -> String {
    let (role, peer) = match node {
        Node::A => ("primary", Node::B),
        Node::B => ("backup", Node::A),
    };
    let base = node_config(node, false).replace(
        &format!("hostname = \"lvs-{}\"\n", node.letter()),
        &format!("hostname = \"lvs-{}\"\nrole = \"{role}\"\n", node.letter()),
    );
    format!(
        r#"{base}
[[virtual_servers]]
name = "web"
vip = "{VIP}"
port = 80
scheduler = "rr"
forwarding = "dr"
real_servers = [ {{ name = "rs1", address = "192.0.2.21" }} ]

[pair]
peer = "{peer}"
key = "the lab pair's shared key"
keepalive = "100ms"
deadtime = "1s"
initdead = "4s"
ping_nodes = ["{CLIENT}"]
udp = {{ interface = "eth1" }}
serial = {{ device = "ttyS1", baud = 115200 }}
watchdog = {{ timeout = "10s" }}
"#,
        peer = peer.heartbeat(),
    )
}

fn holds_vip(pair: &mut vm::lab::Pair, node: Node) -> bool {
    pair.sh(node, "ip -4 -o addr show dev eth0", SHORT)
        .contains(&format!("inet {VIP}/32"))
}

/// Whether the client reaches the VIP (ARP, then an echo), within `tries` seconds.
fn client_reaches_vip(pair: &vm::lab::Pair, tries: u32) -> bool {
    (0..tries).any(|_| in_ns(pair.client(), &["ping", "-c", "1", "-W", "1", VIP]).0)
}

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root): run by scripts/test"]
fn the_pair_holds_the_vip_on_one_node_and_fails_over() {
    let dir = test_dir("pair");
    let mut spec = PairSpec::new("dpar", &dir);
    spec.config_a = config(Node::A);
    spec.config_b = config(Node::B);
    let mut pair = spec.boot();
    pair.wait_ready(BOOT);

    pair.logged(Node::A, "pair: watchdog running, timeout 10 s", SHORT);
    pair.logged(Node::A, "-> active", SHORT);
    pair.logged(Node::B, "-> standby", SHORT);
    assert!(holds_vip(&mut pair, Node::A), "A holds the VIP");
    assert!(!holds_vip(&mut pair, Node::B), "B does not");
    assert!(
        client_reaches_vip(&pair, 5),
        "the client reaches the VIP on A"
    );

    let status = pair.sh(Node::A, "director ctl status", SHORT);
    assert!(status.contains(") active for"), "{status}");
    assert!(status.contains("standby (alive)"), "{status}");
    assert!(status.contains("udp    last beat"), "{status}");

    // Planned switch-overs: release on A, then takeover on A again.
    let released = pair.sh(Node::A, "director ctl release", SHORT);
    assert!(released.starts_with("release asked"), "{released}");
    pair.logged(Node::B, "standby -> active: neither node active", SHORT);
    assert!(
        holds_vip(&mut pair, Node::B),
        "B holds the VIP after the release"
    );
    assert!(!holds_vip(&mut pair, Node::A));
    assert!(
        client_reaches_vip(&pair, 5),
        "the client reaches the VIP on B"
    );
    pair.sh(Node::A, "director ctl takeover", SHORT);
    pair.logged(Node::A, "standby -> active", SHORT);
    assert!(holds_vip(&mut pair, Node::A), "A holds the VIP again");

    // One heartbeat channel cut: a warning on both sides, no failover.
    pair.cut_link(Node::B, Nic::Eth1);
    pair.logged(Node::B, "heartbeat: no beat on udp", SHORT);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!pair
        .vm(Node::B)
        .console()
        .contains("standby -> active: the peer is silent"));
    assert!(holds_vip(&mut pair, Node::A));
    pair.restore_link(Node::B, Nic::Eth1);
    pair.logged(Node::B, "heartbeat: udp works again", SHORT);

    // The active's public link loses its carrier: it goes to fault and releases, the standby
    // takes over; with the carrier back it stands by, and takes the role back when asked.
    pair.cut_link(Node::A, Nic::Eth0);
    pair.logged(
        Node::A,
        "active -> fault: this node's links are down",
        SHORT,
    );
    pair.logged(Node::B, "standby -> active: the peer is in fault", SHORT);
    assert!(
        holds_vip(&mut pair, Node::B),
        "B holds the VIP while A's link is down"
    );
    pair.restore_link(Node::A, Nic::Eth0);
    pair.logged(Node::A, "fault -> standby", SHORT);
    pair.sh(Node::A, "director ctl takeover", SHORT);
    pair.logged(
        Node::B,
        "active -> standby: the peer asked to take over",
        SHORT,
    );
    assert!(holds_vip(&mut pair, Node::A), "A holds the VIP again");

    // The active loses power: the standby takes over and the client reaches the VIP there.
    let killed = Instant::now();
    pair.power_kill(Node::A);
    pair.logged(Node::B, "standby -> active: the peer is silent", SHORT);
    let detected = killed.elapsed();
    assert!(holds_vip(&mut pair, Node::B), "B holds the VIP");
    assert!(
        client_reaches_vip(&pair, 10),
        "the client reaches the VIP on B"
    );
    eprintln!(
        "B took over {:.2} s after A was killed (deadtime 1 s, TCG)",
        detected.as_secs_f64()
    );
}
