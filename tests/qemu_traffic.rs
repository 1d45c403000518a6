//! Real client traffic through the director in the lab: a client's HTTP requests to the VIP
//! reach the real servers by direct routing and by NAT, spread as the scheduler and the weights
//! say, and disabling a real server in the configuration moves new connections off it without
//! a single failed request. Director A holds the VIP (it has no pair); B runs beside it without
//! virtual servers. Needs root; `scripts/test` runs it with `--ignored`.

mod vm;

use std::time::Duration;

use vm::lab::{Node, PairSpec};
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);

const VIRTUAL_SERVERS: &str = r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
scheduler = "wrr"
forwarding = "dr"
real_servers = [
  { name = "rs1", address = "192.0.2.21", weight = 3 },
  { name = "rs2", address = "192.0.2.22", weight = 1 },
]

[[virtual_servers]]
name = "app"
vip = "192.0.2.100"
port = 8080
scheduler = "rr"
forwarding = "nat"
real_servers = [
  { name = "rs3", address = "203.0.113.21", port = 80 },
  { name = "rs4", address = "203.0.113.22", port = 80 },
]
"#;

#[test]
#[ignore = "boots two VMs under QEMU on bridges (root): run by scripts/test"]
fn client_traffic_reaches_the_real_servers_as_the_table_says() {
    let dir = test_dir("traffic");
    let mut spec = PairSpec::new("dtrf", &dir);
    spec.config_a.push_str(VIRTUAL_SERVERS);
    let mut pair = spec.boot();
    for (name, address) in [("rs1", "192.0.2.21"), ("rs2", "192.0.2.22")] {
        pair.real_server_dr(name, address);
    }
    for (name, address) in [("rs3", "203.0.113.21"), ("rs4", "203.0.113.22")] {
        pair.real_server_nat(name, address);
    }
    pair.wait_ready(BOOT);
    pair.logged(
        Node::A,
        "ipvs: table in force: 2 virtual server(s); 6 change(s) applied, 0 failed",
        SHORT,
    );
    let vip = pair.sh(Node::A, "ip -4 -o addr show dev eth0", SHORT);
    assert!(
        vip.contains("inet 192.0.2.100/32"),
        "A holds the VIP: {vip}"
    );

    // Direct routing, wrr 3:1: every request answered, three to rs1 for each one to rs2.
    let report = pair.load(
        "192.0.2.100:80",
        200,
        Duration::from_secs(120),
        Duration::from_millis(5),
    );
    eprintln!("direct routing, wrr 3:1:\n{report}");
    assert_eq!(report.failures, 0, "{report}");
    let (rs1, rs2) = (report.from("rs1"), report.from("rs2"));
    assert_eq!(rs1 + rs2, 200, "{report}");
    let ratio = f64::from(rs1) / f64::from(rs2.max(1));
    assert!(
        (2.5..=3.5).contains(&ratio),
        "wrr 3:1 gave {ratio:.2}: {report}"
    );

    // NAT, rr: both private real servers answer, in turn.
    let report = pair.load(
        "192.0.2.100:8080",
        100,
        Duration::from_secs(120),
        Duration::from_millis(5),
    );
    eprintln!("NAT, rr:\n{report}");
    assert_eq!(report.failures, 0, "{report}");
    let (rs3, rs4) = (report.from("rs3"), report.from("rs4"));
    assert_eq!(rs3 + rs4, 100, "{report}");
    assert!(rs3.abs_diff(rs4) <= 2, "rr gave {rs3}:{rs4}: {report}");

    // Disabling rs1 under load: not one request fails, and new connections go to rs2 only.
    let run = pair.start_load(
        "192.0.2.100:80",
        300,
        Duration::from_secs(120),
        Duration::from_millis(10),
    );
    std::thread::sleep(Duration::from_secs(1));
    pair.sh(
        Node::A,
        "director config set virtual_servers.web.real_servers.rs1.enabled false",
        SHORT,
    );
    pair.logged(
        Node::A,
        "ipvs: table in force: 2 virtual server(s); 1 change(s) applied, 0 failed (incremental",
        SHORT,
    );
    let during = run.wait();
    eprintln!("rs1 disabled under load:\n{during}");
    assert_eq!(during.failures, 0, "{during}");
    assert!(during.from("rs1") > 0, "the load began before: {during}");
    let after = pair.load(
        "192.0.2.100:80",
        50,
        Duration::from_secs(60),
        Duration::from_millis(5),
    );
    assert_eq!(after.failures, 0, "{after}");
    assert_eq!(after.from("rs2"), 50, "rs1 is drained: {after}");
    let table = pair.sh(Node::A, "director ctl ipvs", SHORT);
    assert!(
        table.contains("  -> 192.0.2.21:80                Route   0"),
        "{table}"
    );
}
