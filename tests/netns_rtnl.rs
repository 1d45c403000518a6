//! rtnetlink and the network reconcile on the host kernel, inside network namespaces made for
//! each test, checked against `ip -j` (iproute2's JSON) as the reference. Needs root;
//! `scripts/test` runs these with `--ignored`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use director::config::from_toml;
use director::net::{self, Actual, Managed};
use director::sys::rtnl::{Address, KernelRtnl, LinkEvent, LinkMonitor, Route, Rtnl, RtnlError};
use director::sys::sysctl::ProcSys;
use serde_json::Value;

/// A namespace with a veth pair `va`/`vb` in it (`vb` up, `va` down, neither with an IPv6
/// link-local address, so that what the kernel holds only changes when a test changes it),
/// removed when dropped, also when the test failed.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dirtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        // From here on the guard removes the namespace whatever happens.
        let ns = Netns { name };
        ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        for link in ["va", "vb"] {
            ns.ip(&["link", "set", link, "addrgenmode", "none"]);
        }
        ns.ip(&["link", "set", "vb", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip -j ...`, parsed.
    fn ip_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let text = self.ip(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {text}"))
    }

    /// Runs `f` on a thread that has entered the namespace (setns changes only the calling
    /// thread, so the test's own thread stays where it is).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the namespace");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn index_of(rtnl: &mut KernelRtnl, name: &str) -> u32 {
    rtnl.links()
        .expect("links")
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.index)
        .unwrap_or_else(|| panic!("no link {name}"))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

fn number(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == flag))
}

fn mac_text(mac: Option<[u8; 6]>) -> String {
    mac.map(|m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
    .unwrap_or_default()
}

fn address(index: u32, addr: &str, prefix_len: u8, label: Option<&str>) -> Address {
    Address {
        index,
        addr: addr.parse().expect("an address"),
        prefix_len,
        label: label.map(String::from),
    }
}

/// The addresses as ip lists them: (index, address, prefix length, label when it is not the
/// link's name).
fn ip_addresses(ns: &Netns) -> BTreeSet<(u32, IpAddr, u8, Option<String>)> {
    let mut out = BTreeSet::new();
    for link in ns.ip_json(&["addr", "show"]).as_array().expect("a list") {
        let index = number(link, "ifindex") as u32;
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let label = info["label"]
                .as_str()
                .filter(|l| *l != text(link, "ifname"))
                .map(String::from);
            out.insert((
                index,
                text(info, "local").parse().expect("an address"),
                number(info, "prefixlen") as u8,
                label,
            ));
        }
    }
    out
}

fn our_addresses(addresses: &[Address]) -> BTreeSet<(u32, IpAddr, u8, Option<String>)> {
    addresses
        .iter()
        .map(|a| (a.index, a.addr, a.prefix_len, a.label.clone()))
        .collect()
}

/// The unicast routes of the main table as ip lists them: (destination, gateway, device).
fn ip_routes(ns: &Netns) -> BTreeSet<(String, Option<IpAddr>, String, String)> {
    let mut out = BTreeSet::new();
    for family in ["-4", "-6"] {
        let routes = ns.ip_json(&[family, "route", "show", "table", "main"]);
        for route in routes.as_array().expect("a list") {
            if route.get("type").is_some_and(|t| t != "unicast") {
                continue;
            }
            let mut dst = text(route, "dst").to_string();
            if dst != "default" && !dst.contains('/') {
                dst.push_str(if family == "-4" { "/32" } else { "/128" });
            }
            out.insert((
                dst,
                route["gateway"]
                    .as_str()
                    .map(|g| g.parse().expect("a gateway")),
                text(route, "dev").to_string(),
                text(route, "protocol").to_string(),
            ));
        }
    }
    out
}

fn our_routes(
    routes: &[Route],
    names: &[(u32, String)],
) -> BTreeSet<(String, Option<IpAddr>, String, String)> {
    let protocol = |p: u8| match p {
        2 => "kernel".to_string(),
        3 => "boot".to_string(),
        4 => "static".to_string(),
        other => other.to_string(),
    };
    routes
        .iter()
        .map(|r| {
            let dst = if r.prefix_len == 0 {
                "default".to_string()
            } else {
                format!("{}/{}", r.destination, r.prefix_len)
            };
            let dev = names
                .iter()
                .find(|(i, _)| Some(*i) == r.device)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            (dst, r.gateway, dev, protocol(r.protocol))
        })
        .collect()
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn links_are_listed_as_ip_lists_them() {
    let ns = Netns::new();
    ns.ip(&["link", "set", "va", "up", "mtu", "1450"]);
    let links = ns.run(|| {
        KernelRtnl::open()
            .and_then(|mut r| r.links())
            .expect("links")
    });
    let shown = ns.ip_json(&["link", "show"]);
    let shown = shown.as_array().expect("a list");
    assert_eq!(links.len(), shown.len(), "{links:?} against {shown:?}");
    for theirs in shown {
        let name = text(theirs, "ifname");
        let ours = links
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {links:?}"));
        assert_eq!(u64::from(ours.index), number(theirs, "ifindex"), "{name}");
        assert_eq!(u64::from(ours.mtu), number(theirs, "mtu"), "{name}");
        assert_eq!(ours.up, has_flag(theirs, "UP"), "{name} up");
        assert_eq!(ours.carrier, has_flag(theirs, "LOWER_UP"), "{name} carrier");
        assert_eq!(mac_text(ours.mac), text(theirs, "address"), "{name} MAC");
    }
    let va = links.iter().find(|l| l.name == "va").expect("va");
    assert!(va.up && va.carrier && va.mtu == 1450, "{va:?}");
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn set_up_and_set_mtu_are_seen_by_ip() {
    let ns = Netns::new();
    let show = |ns: &Netns| ns.ip_json(&["link", "show", "va"])[0].clone();
    assert!(!has_flag(&show(&ns), "UP"));
    ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, true).expect("up");
        rtnl.set_mtu(va, 1400).expect("mtu");
    });
    let va = show(&ns);
    assert!(has_flag(&va, "UP"), "{va}");
    assert_eq!(number(&va, "mtu"), 1400);
    ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, false).expect("down");
        rtnl.set_up(va, false).expect("down again");
        rtnl.set_mtu(va, 9000).expect("mtu");
    });
    let va = show(&ns);
    assert!(!has_flag(&va, "UP"), "{va}");
    assert_eq!(number(&va, "mtu"), 9000);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn an_impossible_mtu_is_refused_with_its_errno() {
    let ns = Netns::new();
    let refusals = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        let refusals: Vec<RtnlError> = [70_000, 10]
            .into_iter()
            .map(|mtu| rtnl.set_mtu(va, mtu).expect_err("an impossible MTU"))
            .collect();
        // The socket is still in step after a refusal.
        rtnl.set_mtu(va, 1280).expect("a possible MTU");
        refusals
    });
    for (refused, mtu) in refusals.iter().zip([70_000, 10]) {
        assert_eq!(refused.errno, Some(libc::EINVAL), "{refused}");
        assert_eq!(
            refused.to_string(),
            format!("set the MTU of va to {mtu}: Invalid argument")
        );
    }
    assert_eq!(number(&ns.ip_json(&["link", "show", "va"])[0], "mtu"), 1280);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn addresses_are_added_and_removed_twice_as_ip_sees_them() {
    let ns = Netns::new();
    let (va, listed) = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, true).expect("up");
        let wanted = [
            address(va, "192.0.2.2", 24, None),
            address(va, "192.0.2.100", 32, Some("va:1")),
            address(va, "2001:db8::2", 64, None),
            address(va, "2001:db8::100", 128, None),
        ];
        for a in wanted.iter().chain(wanted.iter()) {
            rtnl.add_address(a).unwrap_or_else(|e| panic!("{e}"));
        }
        (va, rtnl.addresses().expect("addresses"))
    });
    let ip_sees = ip_addresses(&ns);
    assert_eq!(our_addresses(&listed), ip_sees);
    for (addr, len, label) in [
        ("192.0.2.2", 24, None),
        ("192.0.2.100", 32, Some("va:1".to_string())),
        ("2001:db8::2", 64, None),
        ("2001:db8::100", 128, None),
    ] {
        let wanted = (va, addr.parse().unwrap(), len, label);
        assert!(ip_sees.contains(&wanted), "{wanted:?} not in {ip_sees:?}");
    }

    ns.run(move || {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        for _ in 0..2 {
            for a in [
                address(va, "192.0.2.100", 32, Some("va:1")),
                address(va, "2001:db8::100", 128, None),
            ] {
                rtnl.remove_address(&a).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });
    let left: Vec<String> = ip_addresses(&ns)
        .into_iter()
        .map(|(_, a, len, _)| format!("{a}/{len}"))
        .collect();
    // Loopback is down in a new namespace, so only va's addresses are there.
    assert_eq!(left, ["192.0.2.2/24", "2001:db8::2/64"]);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn routes_are_added_and_removed_twice_as_ip_sees_them() {
    let ns = Netns::new();
    let va_routes = |va: u32| {
        [
            Route {
                destination: "0.0.0.0".parse().unwrap(),
                prefix_len: 0,
                gateway: Some("192.0.2.1".parse().unwrap()),
                device: Some(va),
                protocol: 0,
            },
            Route {
                destination: "::".parse().unwrap(),
                prefix_len: 0,
                gateway: Some("2001:db8::1".parse().unwrap()),
                device: Some(va),
                protocol: 0,
            },
            // On the link: no gateway, link scope.
            Route {
                destination: "198.51.100.0".parse().unwrap(),
                prefix_len: 24,
                gateway: None,
                device: Some(va),
                protocol: net::ROUTE_PROTOCOL,
            },
        ]
    };
    let (routes, names) = ns.run(move || {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, true).expect("up");
        rtnl.add_address(&address(va, "192.0.2.2", 24, None))
            .expect("v4");
        rtnl.add_address(&address(va, "2001:db8::2", 64, None))
            .expect("v6");
        for route in va_routes(va).iter().chain(va_routes(va).iter()) {
            rtnl.add_route(route).unwrap_or_else(|e| panic!("{e}"));
        }
        let names: Vec<(u32, String)> = rtnl
            .links()
            .expect("links")
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        (rtnl.routes().expect("routes"), names)
    });
    let ip_sees = ip_routes(&ns);
    assert_eq!(our_routes(&routes, &names), ip_sees);
    let gw4 = Some("192.0.2.1".parse().unwrap());
    let gw6 = Some("2001:db8::1".parse().unwrap());
    for wanted in [
        ("default".to_string(), gw4, "va".into(), "static".into()),
        ("default".to_string(), gw6, "va".into(), "static".into()),
    ] {
        assert!(ip_sees.contains(&wanted), "{wanted:?} not in {ip_sees:?}");
    }
    let on_link = ns.ip_json(&["route", "show", "198.51.100.0/24"]);
    assert_eq!(text(&on_link[0], "scope"), "link", "{on_link}");
    let default = ns.ip_json(&["route", "show", "default"]);
    assert!(default[0].get("scope").is_none(), "universe: {default}");

    ns.run(move || {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        for _ in 0..2 {
            for route in va_routes(va) {
                rtnl.remove_route(&route).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    });
    let left = ip_routes(&ns);
    assert!(
        left.iter().all(|(dst, gateway, _, _)| dst != "default"
            && !dst.starts_with("198.51.100.")
            && gateway.is_none()),
        "{left:?}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn a_missing_interface_is_refused_with_enodev() {
    let ns = Netns::new();
    let refusals = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let missing = address(9999, "192.0.2.2", 24, None);
        vec![
            rtnl.add_address(&missing).expect_err("no such interface"),
            rtnl.set_up(9999, true).expect_err("no such interface"),
        ]
    });
    assert_eq!(refusals[0].errno, Some(libc::ENODEV), "{}", refusals[0]);
    assert_eq!(
        refusals[0].to_string(),
        "add 192.0.2.2/24 to interface #9999: No such device"
    );
    assert_eq!(refusals[1].errno, Some(libc::ENODEV), "{}", refusals[1]);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn neighbours_are_listed_and_forgotten_in_both_families() {
    let ns = Netns::new();
    ns.ip(&["link", "set", "va", "up"]);
    for (addr, mac) in [
        ("192.0.2.9", "02:00:00:00:00:09"),
        ("2001:db8::9", "02:00:00:00:00:0a"),
    ] {
        ns.ip(&[
            "neigh",
            "add",
            addr,
            "lladdr",
            mac,
            "dev",
            "va",
            "nud",
            "permanent",
        ]);
    }
    let (va, neighbours, after) = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        let neighbours = rtnl.neighbours().expect("neighbours");
        // Forgotten, and forgetting one that is not there is fine.
        for _ in 0..2 {
            for addr in ["192.0.2.9", "2001:db8::9"] {
                rtnl.remove_neighbour(va, addr.parse().unwrap())
                    .unwrap_or_else(|e| panic!("forget {addr}: {e}"));
            }
        }
        (va, neighbours, rtnl.neighbours().expect("neighbours"))
    });
    assert!(after.iter().all(|n| n.index != va), "left on va: {after:?}");
    for (addr, mac) in [
        ("192.0.2.9", [2, 0, 0, 0, 0, 9]),
        ("2001:db8::9", [2, 0, 0, 0, 0, 10]),
    ] {
        let addr: IpAddr = addr.parse().unwrap();
        let found = neighbours
            .iter()
            .find(|n| n.addr == addr)
            .unwrap_or_else(|| panic!("{addr} not in {neighbours:?}"));
        assert_eq!(found.index, va);
        assert_eq!(found.mac, Some(mac));
        assert_eq!(found.state, 0x80, "NUD_PERMANENT");
    }
}

/// Link events until one for `va` with this carrier, for at most 5 s, through tokio's AsyncFd
/// as the daemon would wait.
fn wait_for_carrier(
    runtime: &tokio::runtime::Runtime,
    monitor: &mut tokio::io::unix::AsyncFd<LinkMonitor>,
    carrier: bool,
    seen: &mut Vec<LinkEvent>,
) -> bool {
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let Ok(ready) = tokio::time::timeout_at(deadline, monitor.readable_mut()).await else {
                return false;
            };
            let mut ready = ready.expect("readable");
            let events = ready.get_inner_mut().read_events().expect("events");
            if events.is_empty() {
                ready.clear_ready();
            }
            let found = events
                .iter()
                .any(|e| e.name == "va" && e.up && e.carrier == carrier);
            seen.extend(events);
            if found {
                return true;
            }
        }
    })
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn carrier_changes_are_seen() {
    let ns = Netns::new();
    let name = ns.name.clone();
    let (down, up, seen) = ns.run(move || {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        let mut monitor = LinkMonitor::open().expect("monitor");
        let flags =
            nix::fcntl::fcntl(monitor.as_fd(), nix::fcntl::FcntlArg::F_GETFL).expect("flags");
        assert_ne!(flags & libc::O_NONBLOCK, 0, "the socket does not block");
        let start = Instant::now();
        assert_eq!(monitor.read_events().expect("nothing yet"), vec![]);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "it never waits"
        );
        assert!(monitor.as_raw_fd() >= 0);

        rtnl.set_up(va, true).expect("up");
        let mut seen = Vec::new();
        // `next`, for a thread of its own.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let event = monitor.next(Duration::from_millis(200)).expect("events");
            if let Some(event) = event {
                let done = event.name == "va" && event.up && event.carrier;
                seen.push(event);
                if done {
                    break;
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut monitor = runtime
            .block_on(async {
                // SAFETY: the monitor owns its socket and keeps the same descriptor open until
                // it is dropped, which happens only with the AsyncFd.
                unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        monitor,
                        tokio::io::Interest::READABLE,
                    )
                }
            })
            .map_err(|e| e.to_string())
            .expect("AsyncFd");
        ip(&["-n", &name, "link", "set", "vb", "down"]);
        let down = wait_for_carrier(&runtime, &mut monitor, false, &mut seen);
        ip(&["-n", &name, "link", "set", "vb", "up"]);
        let up = wait_for_carrier(&runtime, &mut monitor, true, &mut seen);
        (down, up, seen)
    });
    assert!(down, "no carrier loss seen in 5 s: {seen:?}");
    assert!(up, "no carrier seen in 5 s: {seen:?}");
    let lost = seen
        .iter()
        .position(|e| e.name == "va" && e.up && !e.carrier);
    let back = seen
        .iter()
        .rposition(|e| e.name == "va" && e.up && e.carrier);
    assert!(lost.is_some() && back > lost, "{seen:?}");
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn a_dump_of_many_addresses_is_complete() {
    let ns = Netns::new();
    let (count, links) = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        for i in 0..300u32 {
            let addr = IpAddr::from([198, 51, (100 + i / 250) as u8, (1 + i % 250) as u8]);
            rtnl.add_address(&Address {
                index: va,
                addr,
                prefix_len: 32,
                label: None,
            })
            .expect("add");
        }
        let count = rtnl
            .addresses()
            .expect("addresses")
            .iter()
            .filter(|a| a.index == va && a.addr.is_ipv4())
            .count();
        // The same socket is still in step after the long dump: the next request works.
        (count, rtnl.links().map(|l| l.len()))
    });
    assert_eq!(count, 300);
    assert_eq!(links.ok(), Some(3));
    let shown = ns.ip_json(&["-4", "addr", "show", "dev", "va"]);
    assert_eq!(shown[0]["addr_info"].as_array().map(Vec::len), Some(300));
}

const CONFIG: &str = r#"
[network]
ip_forward = true

[[network.interfaces]]
name = "va"
addresses = ["192.0.2.2/24", "2001:db8::2/64"]
mtu = 1400
arp_ignore = 1
arp_announce = 2

[[network.routes]]
to = "default"
via = "192.0.2.1"

[admin]
listen = "0.0.0.0"
port = 3636
allowed = []
"#;

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn the_network_is_applied_once_and_restored_after_a_hand_edit() {
    let ns = Netns::new();
    let record = std::env::temp_dir().join(format!("{}-managed", ns.name));
    let name = ns.name.clone();
    let rec = record.clone();
    let (first, second, third) = ns.run(move || {
        let config = from_toml(CONFIG).expect("config");
        let wanted = net::wanted(&config);
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let mut sysctl = ProcSys::new(std::path::Path::new("/proc/sys"));
        let mut managed = Managed::load(&rec);
        let mut once = |rtnl: &mut KernelRtnl, managed: &mut Managed| {
            let links = rtnl.links().expect("links");
            let addresses = rtnl.addresses().expect("addresses");
            let routes = rtnl.routes().expect("routes");
            let actual = Actual {
                links: &links,
                addresses: &addresses,
                routes: &routes,
            };
            let plan = net::plan(&wanted, &actual, &sysctl, managed);
            let report = net::apply(plan, rtnl, &mut sysctl, managed);
            managed.save(&rec).expect("save the record");
            report
        };
        let first = once(&mut rtnl, &mut managed);
        let second = once(&mut rtnl, &mut managed);
        ip(&["-n", &name, "addr", "del", "192.0.2.2/24", "dev", "va"]);
        let third = once(&mut rtnl, &mut managed);
        (first, second, third)
    });
    let _ = std::fs::remove_file(&record);
    // The IPVS settings do not exist on this kernel (no ip_vs): reported, nothing else.
    assert!(first.failed.is_empty(), "{first:?}");
    assert!(
        first.done.contains(&"va: add 192.0.2.2/24".to_string()),
        "{first:?}"
    );
    assert!(
        second.done.is_empty(),
        "a second apply changed {:?}",
        second.done
    );
    // Taking the address away by hand also took the route through it; both come back.
    assert!(
        third.done.contains(&"va: add 192.0.2.2/24".to_string()),
        "{third:?}"
    );
    let shown = ns.ip(&["-o", "addr", "show", "dev", "va"]);
    assert!(shown.contains("inet 192.0.2.2/24"), "{shown}");
    assert!(ns.ip(&["-o", "link", "show", "va"]).contains("mtu 1400"));
    assert!(ns.ip(&["route"]).contains("default via 192.0.2.1 dev va"));
    let forwarding = ns.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"));
    assert_eq!(forwarding.ok().as_deref().map(str::trim), Some("1"));
    let arp = ns.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/conf/va/arp_ignore"));
    assert_eq!(arp.ok().as_deref().map(str::trim), Some("1"));
}
