//! Health rounds against the recording fake: a failed real server leaves the kernel's table (or
//! drains at weight 0), comes back with its weight, the sorry server stands in while every
//! real server is down, and a configuration change does not undo any of it.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::config::from_toml;
use crate::scratch::Scratch;
use crate::sys::ipvs::{Change, FakeIpvs, Ipvs};

const WEB: &str = r#"
[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
scheduler = "wrr"
forwarding = "dr"
sorry_server = "192.0.2.30:80"
real_servers = [
  { name = "rs1", address = "192.0.2.21", weight = 3 },
  { name = "rs2", address = "192.0.2.22", weight = 1 },
]

[[virtual_servers]]
name = "app"
vip = "192.0.2.100"
port = 8080
forwarding = "nat"
sorry_server = "203.0.113.30:8000"
real_servers = [
  { name = "rs3", address = "203.0.113.21", port = 80 },
]
"#;

/// Health as a test sets it: the real servers down, their weights from checks, the virtual
/// servers whose sorry server is in.
#[derive(Default)]
struct Checks {
    down: RefCell<HashSet<&'static str>>,
    weights: RefCell<HashMap<&'static str, u32>>,
    sorry: RefCell<HashSet<&'static str>>,
}

impl Overrides for Checks {
    fn real_server(&self, _: &VirtualServer, rs: &RealServer) -> Option<Override> {
        if self.down.borrow().contains(rs.name.as_str()) {
            return Some(Override::Down);
        }
        self.weights
            .borrow()
            .get(rs.name.as_str())
            .map(|w| Override::Weight(*w))
    }

    fn sorry(&self, vs: &VirtualServer) -> bool {
        self.sorry.borrow().contains(vs.name.as_str())
    }
}

fn config(text: &str) -> Arc<Config> {
    Arc::new(from_toml(text).unwrap_or_else(|e| panic!("test configuration: {e}\n{text}")))
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn web() -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: ip("192.0.2.100"),
        port: 80,
    }
}

/// The kernel's real servers of `key`: (address, port, weight).
fn kernel(ipvs: &mut FakeIpvs, key: ServiceKey) -> Vec<(IpAddr, u16, u32)> {
    let mut destinations: Vec<(IpAddr, u16, u32)> = ipvs
        .destinations(&key)
        .expect("the service")
        .iter()
        .map(|d| {
            (
                d.destination.address,
                d.destination.port,
                d.destination.weight,
            )
        })
        .collect();
    destinations.sort();
    destinations
}

/// A reconciler that has applied `config` in a full round.
fn started(config: &Arc<Config>, checks: &Checks) -> (Reconciler, FakeIpvs, Scratch) {
    let scratch = Scratch::new("ipvs-health");
    let mut reconciler = Reconciler::new(&scratch.path().join("ipvs-managed"));
    let mut ipvs = FakeIpvs::default();
    let outcome = reconciler.round_from_with(&mut ipvs, config, true, None, checks);
    assert!(!outcome.retry, "{outcome:?}");
    (reconciler, ipvs, scratch)
}

fn applied(outcome: &Outcome) -> Vec<String> {
    outcome.applied.iter().map(ToString::to_string).collect()
}

#[test]
fn a_failed_real_server_leaves_and_comes_back_with_its_weight() {
    let cfg = config(WEB);
    let checks = Checks::default();
    let (mut reconciler, mut ipvs, _scratch) = started(&cfg, &checks);

    checks.down.borrow_mut().insert("rs1");
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    assert_eq!(outcome.round, Round::Incremental);
    assert_eq!(outcome.applied.len(), 1, "{:?}", applied(&outcome));
    assert!(matches!(
        outcome.applied[0],
        Change::RemoveDestination { service, address, port: 80 }
            if service == web() && address == ip("192.0.2.21")
    ));
    assert_eq!(kernel(&mut ipvs, web()), [(ip("192.0.2.22"), 80, 1)]);

    checks.down.borrow_mut().clear();
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    assert_eq!(outcome.applied.len(), 1, "{:?}", applied(&outcome));
    assert!(matches!(outcome.applied[0], Change::AddDestination(..)));
    assert_eq!(
        kernel(&mut ipvs, web()),
        [(ip("192.0.2.21"), 80, 3), (ip("192.0.2.22"), 80, 1)]
    );
    // The state kept is the kernel's: a full round finds nothing to do.
    let outcome = reconciler.round_from_with(&mut ipvs, &cfg, true, None, &checks);
    assert!(outcome.applied.is_empty(), "{:?}", applied(&outcome));
}

#[test]
fn a_quiescent_virtual_server_drains_a_failed_real_server() {
    let cfg = config(&WEB.replace(
        "forwarding = \"dr\"",
        "forwarding = \"dr\"\nquiescent = true",
    ));
    let checks = Checks::default();
    let (mut reconciler, mut ipvs, _scratch) = started(&cfg, &checks);
    checks.down.borrow_mut().insert("rs1");
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    assert_eq!(outcome.applied.len(), 1, "{:?}", applied(&outcome));
    assert!(matches!(
        &outcome.applied[0],
        Change::EditDestination(key, d) if *key == web() && d.weight == 0
    ));
    assert_eq!(
        kernel(&mut ipvs, web()),
        [(ip("192.0.2.21"), 80, 0), (ip("192.0.2.22"), 80, 1)]
    );
    checks.down.borrow_mut().clear();
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    assert!(matches!(
        &outcome.applied[..],
        [Change::EditDestination(_, d)] if d.weight == 3
    ));
}

#[test]
fn the_sorry_server_stands_in_while_every_real_server_is_down() {
    let cfg = config(WEB);
    let checks = Checks::default();
    let (mut reconciler, mut ipvs, _scratch) = started(&cfg, &checks);
    checks.down.borrow_mut().extend(["rs1", "rs2"]);
    checks.sorry.borrow_mut().insert("web");
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    // Added before the real servers go, so that the service never stands empty.
    assert_eq!(
        applied(&outcome),
        [
            "add real server 192.0.2.30:80 (weight 1) to tcp 192.0.2.100:80",
            "remove real server 192.0.2.21:80 from tcp 192.0.2.100:80",
            "remove real server 192.0.2.22:80 from tcp 192.0.2.100:80",
        ]
    );
    assert_eq!(kernel(&mut ipvs, web()), [(ip("192.0.2.30"), 80, 1)]);

    // One is back: the sorry server goes.
    checks.down.borrow_mut().remove("rs2");
    checks.sorry.borrow_mut().clear();
    reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    assert_eq!(kernel(&mut ipvs, web()), [(ip("192.0.2.22"), 80, 1)]);

    // A NAT sorry server keeps its own port; the other virtual server is not touched.
    checks.down.borrow_mut().insert("rs3");
    checks.sorry.borrow_mut().insert("app");
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["app"]);
    let app = ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: ip("192.0.2.100"),
        port: 8080,
    };
    assert_eq!(kernel(&mut ipvs, app), [(ip("203.0.113.30"), 8000, 1)]);
    assert!(
        applied(&outcome).iter().all(|c| c.contains(":8080")),
        "{:?}",
        applied(&outcome)
    );
}

#[test]
fn a_weight_from_a_check_is_one_edit() {
    let cfg = config(WEB);
    let checks = Checks::default();
    let (mut reconciler, mut ipvs, _scratch) = started(&cfg, &checks);
    ipvs.changes.clear();
    checks.weights.borrow_mut().insert("rs2", 9);
    let outcome = reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);
    assert!(matches!(
        &outcome.applied[..],
        [Change::EditDestination(key, d)] if *key == web() && d.weight == 9
    ));
    assert_eq!(ipvs.changes.len(), 1, "{:?}", ipvs.changes);
    assert!(ipvs.changes[0].starts_with("edit"), "{:?}", ipvs.changes);
}

#[test]
fn a_configuration_change_keeps_a_failed_real_server_out() {
    let cfg = config(WEB);
    let checks = Checks::default();
    let (mut reconciler, mut ipvs, _scratch) = started(&cfg, &checks);
    checks.down.borrow_mut().insert("rs1");
    reconciler.health_round(&mut ipvs, &cfg, &checks, &["web"]);

    // A new weight for rs2 and the scheduler: incremental rounds over "web" alone.
    let changed = config(&WEB.replace("weight = 1", "weight = 2"));
    let outcome = reconciler.round_from_with(&mut ipvs, &changed, false, None, &checks);
    assert_eq!(outcome.round, Round::Incremental);
    assert_eq!(applied(&outcome).len(), 1, "{:?}", applied(&outcome));
    assert_eq!(kernel(&mut ipvs, web()), [(ip("192.0.2.22"), 80, 2)]);
    // And a full round.
    let outcome = reconciler.round_from_with(&mut ipvs, &changed, true, None, &checks);
    assert!(outcome.applied.is_empty(), "{:?}", applied(&outcome));
    assert_eq!(kernel(&mut ipvs, web()), [(ip("192.0.2.22"), 80, 2)]);
    // A health round with a configuration not applied yet plans the whole table.
    let again = config(&WEB.replace("weight = 1", "weight = 4"));
    checks.down.borrow_mut().clear();
    let outcome = reconciler.health_round(&mut ipvs, &again, &checks, &["web"]);
    assert_eq!(applied(&outcome).len(), 2, "{:?}", applied(&outcome));
    assert_eq!(
        kernel(&mut ipvs, web()),
        [(ip("192.0.2.21"), 80, 3), (ip("192.0.2.22"), 80, 4)]
    );
    // Then again from that configuration, by the few-servers path.
    checks.down.borrow_mut().insert("rs2");
    let outcome = reconciler.health_round(&mut ipvs, &again, &checks, &["web"]);
    assert_eq!(applied(&outcome).len(), 1, "{:?}", applied(&outcome));
}
