//! rtnetlink and the network reconcile on the host kernel, inside network namespaces made for
//! each test, checked against `ip` as the reference. Needs root; `scripts/test` runs these with
//! `--ignored`.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use director::config::from_toml;
use director::net::{self, Actual, Managed};
use director::sys::rtnl::{Address, KernelRtnl, LinkMonitor, Route, Rtnl};
use director::sys::sysctl::ProcSys;

/// A namespace with a veth pair `va`/`vb` in it, removed when dropped.
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
        let ns = Netns { name };
        ip(&[
            "-n", &ns.name, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ip(&["-n", &ns.name, "link", "set", "vb", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a thread that has entered the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the namespace");
            f()
        })
        .join()
        .expect("the namespace thread panicked")
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

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn links_are_read_and_set_as_ip_sees_them() {
    let ns = Netns::new();
    let links = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, true).expect("up");
        rtnl.set_mtu(va, 1400).expect("mtu");
        let refused = rtnl.set_mtu(va, 70_000).expect_err("an impossible MTU");
        (rtnl.links().expect("links"), refused)
    });
    let (links, refused) = links;
    assert_eq!(refused.errno, Some(libc::EINVAL), "{refused}");
    assert!(
        refused.to_string().contains("MTU of va to 70000"),
        "{refused}"
    );
    let shown = ns.ip(&["-o", "link", "show", "va"]);
    assert!(shown.contains("mtu 1400"), "{shown}");
    assert!(
        shown.contains("state UP") || shown.contains(",UP"),
        "{shown}"
    );
    let va = links.iter().find(|l| l.name == "va").expect("va listed");
    assert_eq!(va.mtu, 1400);
    assert!(va.up);
    let mac: String = va
        .mac
        .map(|m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    assert!(
        shown.contains(&format!("link/ether {mac}")),
        "{mac} in {shown}"
    );
    assert!(links.iter().any(|l| l.name == "lo"));
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn addresses_and_routes_are_added_and_removed_idempotently() {
    let ns = Netns::new();
    let missing = ns.run(|| {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, true).expect("up");
        let v4 = Address {
            index: va,
            addr: "192.0.2.2".parse().unwrap(),
            prefix_len: 24,
            label: None,
        };
        let vip = Address {
            index: va,
            addr: "192.0.2.100".parse().unwrap(),
            prefix_len: 32,
            label: Some("va:1".into()),
        };
        let v6 = Address {
            index: va,
            addr: "2001:db8::2".parse().unwrap(),
            prefix_len: 64,
            label: None,
        };
        for address in [&v4, &vip, &v6, &v4] {
            rtnl.add_address(address).expect("add");
        }
        let listed = rtnl.addresses().expect("addresses");
        for address in [&v4, &vip, &v6] {
            assert!(
                listed
                    .iter()
                    .any(|a| a.addr == address.addr && a.prefix_len == address.prefix_len),
                "{address:?} not listed"
            );
        }
        assert!(listed
            .iter()
            .any(|a| a.addr == vip.addr && a.label.as_deref() == Some("va:1")));
        for (gateway, destination) in [("192.0.2.1", "0.0.0.0"), ("2001:db8::1", "::")] {
            let route = Route {
                destination: destination.parse().unwrap(),
                prefix_len: 0,
                gateway: Some(gateway.parse().unwrap()),
                device: Some(va),
                protocol: net::ROUTE_PROTOCOL,
            };
            rtnl.add_route(&route).expect("add route");
            rtnl.add_route(&route).expect("add route again");
        }
        let routes = rtnl.routes().expect("routes");
        assert!(routes.iter().any(|r| r.prefix_len == 0
            && r.gateway == Some("192.0.2.1".parse().unwrap())
            && r.protocol == net::ROUTE_PROTOCOL));
        // A missing interface is refused with ENODEV.
        let missing = rtnl
            .add_address(&Address {
                index: 9999,
                ..v4.clone()
            })
            .expect_err("no such interface");
        rtnl.remove_address(&vip).expect("remove");
        rtnl.remove_address(&vip).expect("remove again");
        missing
    });
    assert_eq!(missing.errno, Some(libc::ENODEV), "{missing}");
    let shown = ns.ip(&["-o", "addr", "show", "dev", "va"]);
    assert!(shown.contains("inet 192.0.2.2/24"), "{shown}");
    assert!(shown.contains("inet6 2001:db8::2/64"), "{shown}");
    assert!(!shown.contains("192.0.2.100"), "{shown}");
    let routes = ns.ip(&["route"]);
    assert!(
        routes.contains("default via 192.0.2.1 dev va proto static"),
        "{routes}"
    );
    let routes6 = ns.ip(&["-6", "route"]);
    assert!(
        routes6.contains("default via 2001:db8::1 dev va proto static"),
        "{routes6}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn a_dump_of_many_addresses_is_complete() {
    let ns = Netns::new();
    let count = ns.run(|| {
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
        rtnl.addresses()
            .expect("addresses")
            .iter()
            .filter(|a| a.index == va && a.addr.is_ipv4())
            .count()
    });
    assert_eq!(count, 300);
    // The socket is still in step after the long dump: the next request works.
    let links = ns.run(|| {
        KernelRtnl::open()
            .and_then(|mut r| r.links())
            .map(|l| l.len())
    });
    assert_eq!(links.ok(), Some(3));
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn carrier_changes_are_seen() {
    let ns = Netns::new();
    let name = ns.name.clone();
    let events = ns.run(move || {
        let mut rtnl = KernelRtnl::open().expect("rtnetlink");
        let va = index_of(&mut rtnl, "va");
        rtnl.set_up(va, true).expect("up");
        let monitor = LinkMonitor::open().expect("monitor");
        while let Ok(Some(_)) = monitor.next(Duration::from_millis(200)) {}
        let mut seen = Vec::new();
        let wait_for = |carrier: bool, seen: &mut Vec<_>| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Some(event) = monitor.next(Duration::from_millis(100)).expect("events") {
                    let found = event.name == "va" && event.carrier == carrier;
                    seen.push(event);
                    if found {
                        return;
                    }
                }
            }
        };
        ip(&["-n", &name, "link", "set", "vb", "down"]);
        wait_for(false, &mut seen);
        ip(&["-n", &name, "link", "set", "vb", "up"]);
        wait_for(true, &mut seen);
        seen
    });
    let down = events
        .iter()
        .position(|e| e.name == "va" && e.up && !e.carrier);
    let up = events
        .iter()
        .rposition(|e| e.name == "va" && e.up && e.carrier);
    assert!(down.is_some() && up > down, "{events:?}");
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
