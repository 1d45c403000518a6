//! Health checks acting on real traffic in the lab: director A checks two direct-routing real
//! servers over HTTP (every 1 s, timeout 1 s, fall 2, rise 2, re-entry 4 s) under a client's
//! load. A real server whose HTTP server stops leaves the kernel's table within interval x
//! fall + timeout (plus what the emulated machine adds, measured), and only the requests sent
//! to it before that fail; started again it comes back after rise successes and the re-entry
//! time, not before; with both down the sorry server answers, and it goes when one is back.
//! Needs root; `scripts/test` runs it with `--ignored`.

mod vm;

use std::time::{Duration, Instant};

use vm::lab::{Node, Pair, PairSpec};
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
const FALL: u32 = 2;
const RISE: u32 = 2;
const REENTRY: Duration = Duration::from_secs(4);
/// What software emulation may add to a detection: a check's connect and the IPVS round run
/// on an emulated CPU, and the console poll that sees the table has its own delay.
const MARGIN: Duration = Duration::from_secs(3);
/// The client's pace.
const PACE: Duration = Duration::from_millis(50);

const VIRTUAL_SERVERS: &str = r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
scheduler = "rr"
forwarding = "dr"
reentry = "4s"
sorry_server = "192.0.2.30:80"
check = { interval = "1s", timeout = "1s", fall = 2, rise = 2, http = { path = "/health" } }
real_servers = [
  { name = "rs1", address = "192.0.2.21" },
  { name = "rs2", address = "192.0.2.22" },
]
"#;

/// Waits until A's kernel table has (`present`) or lacks the real server `address`
/// (`ipvsadm -Ln` on A's console, as fast as the console answers); how long that took from
/// `since`.
fn until_table(pair: &mut Pair, address: &str, present: bool, since: Instant) -> Duration {
    let needle = format!("-> {address}:80 ");
    loop {
        let table = pair.sh(Node::A, "ipvsadm -Ln", SHORT);
        assert!(table.contains("IP Virtual Server"), "{table}");
        if table.contains(&needle) == present {
            return since.elapsed();
        }
        if since.elapsed() > Duration::from_secs(60) {
            panic!(
                "{address} {} the table in time:\n{table}",
                if present {
                    "never joined"
                } else {
                    "never left"
                }
            );
        }
    }
}

/// Waits until `director ctl status` on A shows every one of `needles`; returns it.
fn status_shows(pair: &mut Pair, needles: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let status = pair.sh(Node::A, "director ctl status", SHORT);
        if needles.iter().all(|needle| status.contains(needle)) {
            return status;
        }
        if start.elapsed() > SHORT {
            panic!("ctl status never showed {needles:?}:\n{status}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root): run by scripts/test"]
fn failed_real_servers_leave_come_back_and_the_sorry_server_stands_in() {
    let dir = test_dir("health");
    let mut spec = PairSpec::new("dhlt", &dir);
    spec.config_a.push_str(VIRTUAL_SERVERS);
    spec.test_tools = true;
    let mut pair = spec.boot();
    for (name, address) in [
        ("rs1", "192.0.2.21"),
        ("rs2", "192.0.2.22"),
        ("sorry", "192.0.2.30"),
    ] {
        pair.real_server_dr(name, address);
    }
    pair.wait_ready(BOOT);
    pair.logged(Node::A, "ipvs: table in force: 1 virtual server(s)", SHORT);
    status_shows(
        &mut pair,
        &["rs1 192.0.2.21:80 up since", "rs2 192.0.2.22:80 up since"],
    );
    let before = pair.load("192.0.2.100:80", 40, Duration::from_secs(60), PACE);
    eprintln!("both up:\n{before}");
    assert_eq!(before.failures, 0, "{before}");
    assert_eq!(before.from("rs1") + before.from("rs2"), 40, "{before}");

    // (a) rs1's HTTP server stops under the client's load.
    let run = pair.start_load("192.0.2.100:80", 400, Duration::from_secs(60), PACE);
    std::thread::sleep(Duration::from_secs(1));
    let stopped = Instant::now();
    pair.stop_http("rs1");
    let detection = until_table(&mut pair, "192.0.2.21", false, stopped);
    let bound = INTERVAL * FALL + TIMEOUT;
    eprintln!(
        "rs1 out of the table {:.2} s after its HTTP server stopped (interval x fall + timeout = {:.0} s, + {:.0} s margin)",
        detection.as_secs_f64(),
        bound.as_secs_f64(),
        MARGIN.as_secs_f64()
    );
    assert!(detection <= bound + MARGIN, "took {detection:?}");
    let during = run.wait();
    // The client sends one request every PACE: those sent while rs1 was still in the table
    // are the only ones that can have gone to it (about half of them, by rr).
    let window = u32::try_from(detection.as_millis() / PACE.as_millis())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    eprintln!(
        "rs1 stopped under load: {} of {} requests failed; {window} were sent while rs1 was in the table (rr: about half went to it)\n{during}",
        during.failures, during.requests
    );
    assert!(
        during.failures > 0,
        "the load covered the failure: {during}"
    );
    assert!(during.failures <= window, "{during}");
    assert!(!during.ended_failing, "{during}");
    let after = pair.load("192.0.2.100:80", 20, Duration::from_secs(30), PACE);
    assert_eq!(after.failures, 0, "{after}");
    assert_eq!(after.from("rs2"), 20, "{after}");
    let status = status_shows(
        &mut pair,
        &["rs1 192.0.2.21:80 down since", "rs2 192.0.2.22:80 up since"],
    );
    eprintln!("{status}");

    // (b) rs1 again: back after RISE successes and the re-entry time, not before.
    let started = Instant::now();
    pair.start_http("rs1");
    let back = until_table(&mut pair, "192.0.2.21", true, started);
    let most = INTERVAL * RISE + REENTRY + MARGIN;
    eprintln!(
        "rs1 back in the table {:.2} s after its HTTP server started (re-entry {:.0} s, at most rise x interval + re-entry + margin = {:.0} s)",
        back.as_secs_f64(),
        REENTRY.as_secs_f64(),
        most.as_secs_f64()
    );
    assert!(back >= REENTRY, "back before the re-entry time: {back:?}");
    assert!(back <= most, "took {back:?}");
    let both = pair.load("192.0.2.100:80", 20, Duration::from_secs(30), PACE);
    assert_eq!(both.failures, 0, "{both}");
    // rr alternates new connections, but a client port used again while IPVS still holds
    // the connection it named before (to rs2, while rs1 was out) goes where that one went:
    // each serves a fair share, not exactly half.
    assert!(both.from("rs1") >= 5 && both.from("rs2") >= 5, "rr: {both}");

    // (c) Both down: the sorry server answers; one back: the sorry server goes.
    let stopped = Instant::now();
    pair.stop_http("rs1");
    pair.stop_http("rs2");
    let sorry_in = until_table(&mut pair, "192.0.2.30", true, stopped);
    eprintln!(
        "both real servers stopped: sorry server in after {:.2} s",
        sorry_in.as_secs_f64()
    );
    assert!(sorry_in <= bound + MARGIN, "took {sorry_in:?}");
    let table = pair.sh(Node::A, "ipvsadm -Ln", SHORT);
    assert!(
        !table.contains("-> 192.0.2.21:80 ") && !table.contains("-> 192.0.2.22:80 "),
        "{table}"
    );
    let sorry = pair.load("192.0.2.100:80", 20, Duration::from_secs(30), PACE);
    eprintln!("both down:\n{sorry}");
    assert_eq!(sorry.failures, 0, "{sorry}");
    assert_eq!(sorry.from("sorry"), 20, "{sorry}");
    status_shows(&mut pair, &["sorry server 192.0.2.30:80: IN"]);

    let started = Instant::now();
    pair.start_http("rs2");
    let sorry_out = until_table(&mut pair, "192.0.2.30", false, started);
    eprintln!(
        "rs2 started: sorry server out after {:.2} s",
        sorry_out.as_secs_f64()
    );
    assert!(sorry_out >= REENTRY, "{sorry_out:?}");
    assert!(sorry_out <= most, "{sorry_out:?}");
    let last = pair.load("192.0.2.100:80", 20, Duration::from_secs(30), PACE);
    assert_eq!(last.failures, 0, "{last}");
    assert_eq!(last.from("rs2"), 20, "{last}");

    let status = status_shows(
        &mut pair,
        &[
            "rs1 192.0.2.21:80 down since",
            "rs2 192.0.2.22:80 up since",
            "sorry server 192.0.2.30:80: out",
        ],
    );
    eprintln!("{status}");
    let shown = pair.sh(Node::A, "director ctl ipvs --health", SHORT);
    eprintln!("{shown}");
    assert!(shown.contains("; in IPVS, weight 1"), "{shown}");
    assert!(shown.contains("; not in IPVS"), "{shown}");
    // Without flags, still ipvsadm's layout (connection counters aside: they move between the
    // two listings as connections expire).
    let without_counters = |text: &str| -> Vec<String> {
        text.lines()
            .map(|line| match line.strip_prefix("  -> ") {
                Some(rest) => rest
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
                None => line.to_string(),
            })
            .collect()
    };
    let plain = pair.sh(Node::A, "director ctl ipvs", SHORT);
    let reference = pair.sh(Node::A, "ipvsadm -Ln", SHORT);
    assert_eq!(without_counters(&plain), without_counters(&reference));
    for needle in [
        "health: rs1 192.0.2.21:80 of web is DOWN",
        "health: every real server of web is down: sorry server 192.0.2.30:80 in",
        "health: a real server of web is back: sorry server 192.0.2.30:80 out",
    ] {
        pair.logged(Node::A, needle, SHORT);
    }
}
