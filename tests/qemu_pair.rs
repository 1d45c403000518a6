//! The pair in the lab: two director VMs with a `[pair]` section, heartbeat over eth1 and
//! the null-modem cable, the watchdog running. The primary takes the VIP, the backup stands
//! by; planned switch-overs move it; a cut heartbeat link changes nothing; an active whose
//! public link loses its carrier hands over; when the active is power-killed the standby
//! takes the VIP and the client reaches it there, long-lived connections through it intact; a
//! cut serial cable or both channels cut, forged beats and line noise, a hung daemon reset by
//! its watchdog. Needs root; `scripts/test` runs it with
//! `--ignored`.

mod vm;

use std::time::{Duration, Instant};

use director::ha::message::{seal, Key};
use vm::lab::{
    dr_virtual_servers, in_ns, pair_node_config, pair_section, Nic, Node, PairSpec, VIP,
};
use vm::load::Streams;
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);

/// A node's configuration: the lab's addresses, one virtual server on the VIP, the pair.
fn config(node: Node) -> String {
    format!(
        "{base}\n{services}{pair}",
        base = pair_node_config(node),
        services = dr_virtual_servers(&[("web", 80), ("echo", 7)], &[("rs1", "192.0.2.21")]),
        pair = pair_section(node, "the lab pair's shared key", "100ms", "1s", "4s"),
    )
}

/// Three seconds later B has not taken over and A still holds the VIP.
fn no_failover(pair: &mut vm::lab::Pair) {
    std::thread::sleep(Duration::from_secs(3));
    assert!(!pair
        .vm(Node::B)
        .console()
        .contains("standby -> active: the peer is silent"));
    assert!(holds_vip(pair, Node::A));
}

/// The forged and garbage heartbeats `node` refused so far (from `ctl status`).
fn refused(pair: &mut vm::lab::Pair, node: Node) -> (u64, u64) {
    let status = pair.sh(node, "director ctl status", SHORT);
    let line = status
        .lines()
        .find(|l| l.contains("heartbeats:"))
        .unwrap_or_else(|| panic!("no heartbeats line in {status}"));
    let count = |what: &str| {
        line.split(", ")
            .chain(line.split(": "))
            .filter_map(|part| part.trim().strip_suffix(what))
            .filter_map(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok())
            .next()
            .unwrap_or(0)
    };
    (count("forged"), count("garbage"))
}

fn holds_vip(pair: &mut vm::lab::Pair, node: Node) -> bool {
    pair.sh(node, "ip -4 -o addr show dev eth0", SHORT)
        .contains(&format!("inet {VIP}/32"))
}

/// Whether the client reaches the VIP (ARP, then an echo), within `tries` seconds.
fn client_reaches_vip(pair: &vm::lab::Pair, tries: u32) -> bool {
    (0..tries).any(|_| in_ns(pair.client(), &["ping", "-c", "1", "-W", "1", VIP]).0)
}

/// A change made on either node reaches the other over the heartbeat link: the virtual
/// servers move, each box keeps its own name and addresses, and both say what they run.
fn replication(pair: &mut vm::lab::Pair) {
    // Provisioned alike: the same shared part on both.
    for node in [Node::A, Node::B] {
        let status = pair.sh(node, "director ctl status", SHORT);
        assert!(
            status.contains("configuration: revision 1, shared part serial 1"),
            "{status}"
        );
        assert!(status.contains("the same as the peer's"), "{status}");
    }
    let started = Instant::now();
    let set = pair.sh(
        Node::A,
        "director config --author alice set virtual_servers.web.scheduler wlc",
        SHORT,
    );
    assert_eq!(set, "revision 2");
    pair.logged(
        Node::B,
        "pair: took the peer's configuration (serial 2",
        SHORT,
    );
    println!(
        "replication: A's change in force on B {:.2} s after it was made (the shell's round trip included)",
        started.elapsed().as_secs_f64()
    );
    let shown = pair.sh(Node::B, "director config show", SHORT);
    assert!(shown.contains("scheduler = \"wlc\""), "{shown}");
    assert!(
        shown.contains("hostname = \"lvs-b\""),
        "B keeps its name: {shown}"
    );
    assert!(shown.contains("# revision 2: "), "{shown}");
    assert!(shown.contains("by peer "), "{shown}");
    let deadline = Instant::now() + SHORT;
    while !pair
        .sh(Node::B, "director ctl ipvs", SHORT)
        .contains(&format!("{VIP}:80 wlc"))
    {
        assert!(
            Instant::now() < deadline,
            "B's IPVS table never had the change"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // And back: a change on the standby reaches the active.
    let set = pair.sh(
        Node::B,
        "director config --author bob set virtual_servers.echo.scheduler lc",
        SHORT,
    );
    assert_eq!(set, "revision 3");
    pair.logged(
        Node::A,
        "pair: took the peer's configuration (serial 3",
        SHORT,
    );
    let shown = pair.sh(Node::A, "director config show", SHORT);
    assert!(shown.contains("scheduler = \"lc\""), "{shown}");
    assert!(shown.contains("scheduler = \"wlc\""), "{shown}");
    assert!(
        shown.contains("hostname = \"lvs-a\""),
        "A keeps its name: {shown}"
    );
    for node in [Node::A, Node::B] {
        let wanted = "configuration: revision 3, shared part serial 3";
        let deadline = Instant::now() + SHORT;
        loop {
            let status = pair.sh(node, "director ctl status", SHORT);
            if status.contains(wanted) && status.contains("the same as the peer's") {
                assert!(status.contains("revision 3 (shared serial 3"), "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "{node:?}: {status}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // The control plane's change did not move the VIP.
    assert!(holds_vip(pair, Node::A));
}

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root): run by scripts/test"]
fn the_pair_holds_the_vip_on_one_node_and_fails_over() {
    let dir = test_dir("pair");
    let mut spec = PairSpec::new("dpar", &dir);
    spec.config_a = config(Node::A);
    spec.config_b = config(Node::B);
    let mut pair = spec.boot();
    pair.real_server_dr("rs1", "192.0.2.21");
    pair.start_echo("rs1", 7);
    pair.wait_ready(BOOT);

    pair.logged(Node::A, "pair: watchdog running, timeout 4 s", SHORT);
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

    // Planned switch-overs: release on A, then takeover on A again. Connections opened just
    // before the release (which the kernel's sync daemon may not have sent yet: it batches
    // for up to 2 s) go on through B: A hands its table over as it releases.
    let mut streams = Streams::open(pair.client(), &format!("{VIP}:7"), 5)
        .expect("open connections through the VIP");
    assert_eq!(streams.exchange(Duration::from_secs(2)), 5);
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
    pair.logged(Node::A, "handed ", SHORT);
    assert_eq!(
        streams.exchange(Duration::from_secs(3)),
        5,
        "the connections opened on A go on through B"
    );
    drop(streams);
    pair.sh(Node::A, "director ctl takeover", SHORT);
    pair.logged(Node::A, "standby -> active", SHORT);
    assert!(holds_vip(&mut pair, Node::A), "A holds the VIP again");

    replication(&mut pair);

    // One heartbeat channel cut: a warning on both sides, no failover.
    pair.cut_link(Node::B, Nic::Eth1);
    pair.logged(Node::B, "heartbeat: no beat on udp", SHORT);
    no_failover(&mut pair);
    pair.restore_link(Node::B, Nic::Eth1);
    pair.logged(Node::B, "heartbeat: udp works again", SHORT);

    // The serial cable cut: the same.
    let mark = pair.mark(Node::B);
    pair.cut_serial();
    pair.logged_after(Node::B, mark, "heartbeat: no beat on serial", SHORT);
    no_failover(&mut pair);
    pair.restore_serial();
    pair.logged_after(Node::B, mark, "heartbeat: serial works again", SHORT);

    // Forged, garbage and truncated beats on UDP from a stranger on the heartbeat network,
    // and noise on the cable toward B: refused and counted, nothing changes.
    let before = refused(&mut pair, Node::B);
    let stranger = pair.heartbeat_host("stranger", "198.51.100.50/24");
    std::thread::spawn(move || {
        vm::lab::enter_netns(&stranger).expect("enter the stranger's namespace");
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a socket");
        let to = (Node::B.heartbeat(), 694);
        let wrong = Key::new(b"a key that is not the pair's key");
        let forged = seal(&wrong, &[0x80]).expect("a sealed message");
        for _ in 0..3 {
            socket
                .send_to(b"not a heartbeat at all", &to)
                .expect("send");
            socket.send_to(&forged, &to).expect("send");
            socket.send_to(&forged[..12], &to).expect("send");
        }
    })
    .join()
    .expect("the stranger's thread");
    let mut noise = vec![0x55u8; 300];
    noise.extend_from_slice(b"\x00\x03\x01\x02\x00");
    pair.serial_noise(Node::B, &noise);
    std::thread::sleep(Duration::from_secs(2));
    let after = refused(&mut pair, Node::B);
    assert!(
        after.0 >= before.0 + 3,
        "forged beats counted: {before:?} -> {after:?}"
    );
    assert!(
        after.1 >= before.1 + 7,
        "garbage counted (6 on UDP, some on serial): {before:?} -> {after:?}"
    );
    assert!(holds_vip(&mut pair, Node::A));
    assert!(!holds_vip(&mut pair, Node::B));

    // Both cut (when_isolated = ping_nodes_decide, the default): B still reaches its ping
    // node, so it takes over, and A, reaching it too, stays active: both hold the VIP, as
    // documented. Joined again, the higher-ranked A keeps the role and B stands by.
    let (mark_a, mark_b) = (pair.mark(Node::A), pair.mark(Node::B));
    pair.cut_serial();
    pair.cut_link(Node::B, Nic::Eth1);
    pair.logged_after(
        Node::B,
        mark_b,
        "standby -> active: the peer is silent on every channel",
        SHORT,
    );
    assert!(holds_vip(&mut pair, Node::B), "isolated B takes the VIP");
    assert!(holds_vip(&mut pair, Node::A), "isolated A keeps the VIP");
    pair.restore_serial();
    pair.restore_link(Node::B, Nic::Eth1);
    pair.logged_after(Node::B, mark_b, "active -> standby", SHORT);
    assert!(holds_vip(&mut pair, Node::A), "A keeps the VIP once joined");
    assert!(!holds_vip(&mut pair, Node::B), "B gives it up");
    assert!(!pair
        .vm(Node::A)
        .console()
        .get(mark_a..)
        .unwrap_or("")
        .contains("active -> standby"));

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

    // The active loses power: the standby takes over and the client reaches the VIP there;
    // long-lived connections through the VIP keep working (the IPVS sync daemon gave B their
    // state).
    let mut streams = Streams::open(pair.client(), &format!("{VIP}:7"), 10)
        .expect("open long-lived connections through the VIP");
    for _ in 0..5 {
        assert_eq!(streams.exchange(Duration::from_secs(2)), 10);
        std::thread::sleep(Duration::from_millis(200));
    }
    // The kernel's sync master sends a buffer that is not full after at most 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let mark = pair.mark(Node::B);
    let killed = Instant::now();
    pair.power_kill(Node::A);
    pair.logged_after(
        Node::B,
        mark,
        "standby -> active: the peer is silent",
        SHORT,
    );
    let detected = killed.elapsed();
    assert!(holds_vip(&mut pair, Node::B), "B holds the VIP");
    assert!(
        client_reaches_vip(&pair, 10),
        "the client reaches the VIP on B"
    );
    let kept = streams.exchange(Duration::from_secs(10));
    assert_eq!(
        kept, 10,
        "long-lived connections working after the failover"
    );
    eprintln!(
        "B took over {:.2} s after A was killed (deadtime 1 s, TCG)",
        detected.as_secs_f64()
    );

    // A boots again and stands by. Then B's daemon hangs (stopped, the kernel still running
    // and answering for the VIP): A takes over after the deadtime, and B's watchdog, no longer
    // petted, resets B within its timeout; both held the VIP in between.
    pair.restart(Node::A);
    pair.logged(Node::A, vm::lab::READY, BOOT);
    pair.logged(Node::A, "-> standby", SHORT);
    let (mark_a, mark_b) = (pair.mark(Node::A), pair.mark(Node::B));
    let stopped = pair.sh(
        Node::B,
        "for p in $(pidof director); do [ $p != 1 ] && kill -STOP $p && echo stopped $p; done",
        SHORT,
    );
    assert!(stopped.contains("stopped"), "{stopped}");
    let hung = Instant::now();
    pair.logged_after(
        Node::A,
        mark_a,
        "standby -> active: the peer is silent",
        SHORT,
    );
    let both_from = hung.elapsed();
    pair.logged_after(Node::B, mark_b, "Linux version", SHORT);
    let reset = hung.elapsed();
    assert!(holds_vip(&mut pair, Node::A), "A holds the VIP");
    assert!(
        client_reaches_vip(&pair, 10),
        "the client reaches the VIP on A"
    );
    pair.logged_after(Node::B, mark_b, "-> standby", BOOT);
    eprintln!(
        "hung daemon on B: A took over after {:.2} s, B's watchdog (4 s) reset it after {:.2} s: both held the VIP (and answered ARP for it) for {:.2} s",
        both_from.as_secs_f64(),
        reset.as_secs_f64(),
        (reset - both_from).as_secs_f64()
    );
}
