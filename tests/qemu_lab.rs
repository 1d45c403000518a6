//! The multi-VM test lab itself (no IPVS yet): two directors booted with their configurations
//! on the public, heartbeat and private bridges, their ttyS1 joined by a null-modem cable,
//! real servers and a client as namespaces, and the controls (pause, link cut, power kill).
//! Needs root; `scripts/test` runs it with `--ignored`.

mod vm;

use std::time::{Duration, Instant};

use vm::lab::{Nic, Node, PairSpec};
use vm::load::Tally;
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);

/// Pings `to` from `node` up to `tries` times, one second each; "up" or "down".
fn ping(pair: &mut vm::lab::Pair, node: Node, to: &str, tries: u32) -> String {
    pair.sh(
        node,
        &format!(
            "r=down; for i in $(seq 1 {tries}); do \
             if ping -c 1 -W 1 {to} >/dev/null 2>&1; then r=up; break; fi; done; echo $r"
        ),
        SHORT,
    )
}

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root): run by scripts/test"]
fn the_pair_lab_works() {
    let dir = test_dir("lab");
    let started = Instant::now();
    let mut pair = PairSpec::new("dlab", &dir).boot();
    pair.real_server_dr("rs1", "192.0.2.21");
    pair.real_server_nat("rs3", "203.0.113.21");
    pair.wait_ready(BOOT);
    eprintln!(
        "both directors ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each box has its addresses from its own configuration.
    for node in Node::BOTH {
        let addresses = pair.sh(node, "ip -4 -o addr show", SHORT);
        for address in [node.public(), node.heartbeat(), node.private()] {
            assert!(
                addresses.contains(&format!("inet {address}/24")),
                "{node:?} lacks {address}: {addresses}"
            );
        }
        // Its own configuration was imported (the daemon does not set the hostname yet).
        let config = pair.sh(node, "director config export", SHORT);
        let hostname = format!("hostname = \"lvs-{}\"", node.letter());
        assert!(config.contains(&hostname), "{node:?}: {config}");
    }
    let a = pair.sh(Node::A, "ip -4 -o addr show dev eth2", SHORT);
    assert!(
        a.contains("inet 203.0.113.1/24"),
        "A holds the NAT gateway: {a}"
    );

    // The null-modem cable: bytes written to A's ttyS1 come out of B's.
    pair.sh(
        Node::B,
        "stty -F /dev/ttyS1 raw -echo 115200 && (head -c 5 /dev/ttyS1 > /tmp/cable &)",
        SHORT,
    );
    pair.sh(
        Node::A,
        "stty -F /dev/ttyS1 raw -echo 115200 && printf hello > /dev/ttyS1",
        SHORT,
    );
    let got = pair.sh(
        Node::B,
        "for i in $(seq 1 50); do [ -s /tmp/cable ] && break; sleep 0.1; done; cat /tmp/cable",
        SHORT,
    );
    assert_eq!(got, "hello", "ttyS1 of A to ttyS1 of B");

    // The heartbeat network; the private network behind A.
    assert_eq!(ping(&mut pair, Node::A, &Node::B.heartbeat(), 5), "up");
    // (busybox wget's own -T timeout segfaults in this image: `timeout` bounds it instead.)
    let page = pair.sh(
        Node::A,
        "timeout 10 wget -q -O - http://203.0.113.21/",
        SHORT,
    );
    assert_eq!(page, "rs3", "A fetches the NAT real server's page");

    // The client reaches a direct-routing real server at its own address.
    let report = pair.load(
        "192.0.2.21:80",
        20,
        Duration::from_secs(20),
        Duration::from_millis(50),
    );
    assert!(
        report.successes == 20 && report.from("rs1") == 20,
        "{report}"
    );
    eprintln!("{report}");
    // A server stopped for a while during a load: refused connections, then answers again.
    let run = pair.start_load(
        "192.0.2.21:80",
        60,
        Duration::from_secs(30),
        Duration::from_millis(50),
    );
    std::thread::sleep(Duration::from_millis(500));
    pair.stop_http("rs1");
    std::thread::sleep(Duration::from_millis(1000));
    pair.start_http("rs1");
    let report = run.wait();
    eprintln!("{report}");
    assert!(
        report.failures > 0
            // (a connection the kernel queued just before the port closed is reset)
            && report.errors.keys().all(|kind| {
                kind == "connect: ConnectionRefused" || kind == "read: ConnectionReset"
            })
            && report.successes + report.failures == 60
            && report.from("rs1") == report.successes
            && !report.ended_failing
            && report.longest_outage >= Duration::from_millis(900)
            && report.longest_outage < Duration::from_secs(5),
        "{report}"
    );

    // A hang of B: A's pings go unanswered until B runs again.
    pair.pause(Node::B);
    assert_eq!(ping(&mut pair, Node::A, &Node::B.heartbeat(), 2), "down");
    pair.resume(Node::B);
    assert_eq!(ping(&mut pair, Node::A, &Node::B.heartbeat(), 10), "up");

    // A cut cable on B's eth1.
    pair.cut_link(Node::B, Nic::Eth1);
    assert_eq!(ping(&mut pair, Node::A, &Node::B.heartbeat(), 2), "down");
    pair.restore_link(Node::B, Nic::Eth1);
    assert_eq!(ping(&mut pair, Node::A, &Node::B.heartbeat(), 10), "up");

    // The watchdog device (i6300esb or softdog) appears once the late modules are in; looking
    // does not open it, so nothing starts the watchdog here.
    let watchdog = pair.sh(
        Node::A,
        "for i in $(seq 1 30); do [ -e /dev/watchdog ] && break; sleep 1; done; \
         ls /dev/watchdog",
        Duration::from_secs(60),
    );
    assert_eq!(watchdog, "/dev/watchdog");

    // Pulling B's plug ends its QEMU.
    let pid = pair.vm(Node::B).pid().expect("B's QEMU runs");
    pair.power_kill(Node::B);
    assert!(pair.vm(Node::B).pid().is_none());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "B's QEMU (pid {pid}) still exists"
    );
    assert_eq!(ping(&mut pair, Node::A, &Node::B.heartbeat(), 2), "down");
    eprintln!(
        "lab test done after {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The report's arithmetic, without a network: outages run from the last success before the
/// failures to the next success, or to the last failure when the load ends failing.
#[test]
fn a_load_report_measures_the_longest_outage() {
    let start = Instant::now();
    let ms = |n: u64| start + Duration::from_millis(n);
    let target = "192.0.2.100:80".parse().expect("an address");
    let refused = || Err("connect: ConnectionRefused".to_string());
    let mut tally = Tally::new(target, start);
    tally.record(ms(0), Ok("rs1".to_string()));
    tally.record(ms(100), refused());
    tally.record(ms(200), refused());
    tally.record(ms(300), Ok("rs2".to_string()));
    tally.record(ms(400), Ok("rs1".to_string()));
    tally.record(ms(500), refused());
    tally.record(ms(600), Ok("rs2".to_string()));
    let report = tally.finish(ms(700));
    assert_eq!(
        (report.requests, report.successes, report.failures),
        (7, 4, 3)
    );
    assert_eq!((report.from("rs1"), report.from("rs2")), (2, 2));
    assert_eq!(report.errors.get("connect: ConnectionRefused"), Some(&3));
    assert_eq!(report.longest_outage, Duration::from_millis(300));
    assert!(!report.ended_failing);
    let text = report.to_string();
    assert!(
        text.contains("7 requests") && text.contains("rs1 x2"),
        "{text}"
    );

    let mut tally = Tally::new(target, start);
    tally.record(ms(0), Ok("rs1".to_string()));
    tally.record(ms(100), refused());
    tally.record(ms(900), Err("read: TimedOut".to_string()));
    let report = tally.finish(ms(1000));
    assert!(report.ended_failing);
    assert_eq!(report.longest_outage, Duration::from_millis(900));
    assert!(report.to_string().contains("still failing"), "{report}");
}
