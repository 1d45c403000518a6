//! A test network on the host for VMs: a bridge, tap devices for the VMs' NICs, and network
//! namespaces as hosts on the bridge (`Lab`); and on top of it the pair lab (`Pair`): two
//! directors on a public, a heartbeat and a private network, a client, real servers, and the
//! controls to break things. Everything is named after the test and removed when the lab is
//! dropped, pass or fail. Needs root.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

use super::http::{EchoServer, HttpServer};
use super::load::{Load, LoadReport, LoadRun};
use super::{Boot, Serial2, Vm};

/// Runs `ip` with these arguments; panics with its message when it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command inside namespace `ns`; returns (success, stdout + stderr).
pub fn in_ns(ns: &str, command: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(command)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Moves the calling thread (only it) into the named network namespace (`ip netns add NAME`).
/// Sockets it opens afterwards live in that namespace, whichever thread uses them later.
pub fn enter_netns(ns: &str) -> io::Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("setns {path}: {e}")))
}

pub struct Lab {
    tag: String,
    /// The namespace that holds the bridge: a fresh one, so the host's firewall (bridged
    /// traffic goes through iptables where br_netfilter is loaded) never sees the lab.
    switch: String,
    links: Vec<String>,
    namespaces: Vec<String>,
}

impl Lab {
    /// A lab whose devices start with `tag` (at most 6 characters, to fit IFNAMSIZ).
    pub fn new(tag: &str) -> Lab {
        assert!(tag.len() <= 6, "lab tag too long");
        let switch = format!("{tag}-sw");
        let _ = Command::new("ip").args(["netns", "del", &switch]).output();
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        Lab {
            tag: tag.to_string(),
            switch: switch.clone(),
            links: Vec::new(),
            namespaces: vec![switch],
        }
    }

    /// A tap device for a VM's NIC, in the host's namespace where QEMU opens it; `plug` moves it
    /// onto the bridge once QEMU holds it.
    pub fn tap(&mut self, name: &str) -> String {
        let tap = format!("{}-{name}", self.tag);
        let _ = Command::new("ip").args(["link", "del", &tap]).output();
        ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.links.push(tap.clone());
        ip(&["link", "set", &tap, "up"]);
        tap
    }

    /// Moves `tap` onto the bridge when QEMU has opened it (its carrier comes up), waiting at
    /// most 60 s.
    pub fn plug(&mut self, tap: &str) {
        self.plug_checking(tap, || {});
    }

    /// `plug`, calling `check` while waiting (it panics when QEMU is gone, say).
    pub fn plug_checking(&mut self, tap: &str, mut check: impl FnMut()) {
        let start = Instant::now();
        loop {
            let shown = ip(&["-o", "link", "show", tap]);
            if shown.contains("LOWER_UP") {
                break;
            }
            check();
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "QEMU never opened {tap}: {shown}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ip(&["link", "set", tap, "netns", &self.switch]);
        ip(&["-n", &self.switch, "link", "set", tap, "master", "br0"]);
        ip(&["-n", &self.switch, "link", "set", tap, "up"]);
    }

    /// Takes `tap` (plugged, its QEMU gone) off the bridge and makes it afresh in the host's
    /// namespace, for a new QEMU to open; `plug` then puts it back.
    pub fn renew_tap(&mut self, tap: &str) {
        let _ = Command::new("ip")
            .args(["-n", &self.switch, "link", "del", tap])
            .output();
        let _ = Command::new("ip").args(["link", "del", tap]).output();
        ip(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        ip(&["link", "set", tap, "up"]);
    }

    /// A host: a namespace with one interface `eth0` on the bridge holding `address` (CIDR).
    pub fn host(&mut self, name: &str, address: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        self.host_in(&ns, name, address);
        ns
    }

    /// A host in namespace `ns` (made here, removed with the lab), its bridge port named after
    /// `name`.
    pub fn host_in(&mut self, ns: &str, name: &str, address: &str) {
        let ns = ns.to_string();
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let port = format!("p-{name}");
        ip(&[
            "-n",
            &self.switch,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        ip(&["-n", &self.switch, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &self.switch, "link", "set", &port, "up"]);
        ip(&["-n", &ns, "addr", "add", address, "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// The namespace that holds this lab's bridge `br0`.
    pub fn switch(&self) -> &str {
        &self.switch
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for link in self.links.iter().rev() {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
    }
}

/// The public network: clients, the VIPs, direct-routing real servers, the directors' eth0.
pub const PUBLIC_NET: &str = "192.0.2.0/24";
/// The heartbeat network between the directors' eth1.
pub const HEARTBEAT_NET: &str = "198.51.100.0/24";
/// The private network of NAT real servers, on the directors' eth2.
pub const PRIVATE_NET: &str = "203.0.113.0/24";
/// The virtual IP the lab's real servers answer for.
pub const VIP: &str = "192.0.2.100";
/// The client's address on the public network.
pub const CLIENT: &str = "192.0.2.10";
/// The NAT real servers' default gateway: a floating address of the active director.
pub const NAT_GATEWAY: &str = "203.0.113.1";
/// What the daemon prints once it runs and the network is applied: the console is quiet after.
pub const READY: &str = "INFO  daemon: network: configured";

/// One of the two directors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    A,
    B,
}

impl Node {
    pub const BOTH: [Node; 2] = [Node::A, Node::B];

    fn index(self) -> usize {
        match self {
            Node::A => 0,
            Node::B => 1,
        }
    }

    /// "a" or "b": in device and directory names.
    pub fn letter(self) -> &'static str {
        match self {
            Node::A => "a",
            Node::B => "b",
        }
    }

    fn host_part(self) -> u8 {
        match self {
            Node::A => 2,
            Node::B => 3,
        }
    }

    /// eth0's address on the public network.
    pub fn public(self) -> String {
        format!("192.0.2.{}", self.host_part())
    }

    /// eth1's address on the heartbeat network.
    pub fn heartbeat(self) -> String {
        format!("198.51.100.{}", self.host_part())
    }

    /// eth2's address on the private network.
    pub fn private(self) -> String {
        format!("203.0.113.{}", self.host_part())
    }

    /// MAC prefix: eth0 = prefix:01, eth1 = :02, eth2 = :03.
    pub fn mac_prefix(self) -> String {
        format!("52:54:00:d1:{:02x}", 0xa + self.index())
    }
}

/// A director's NICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nic {
    /// eth0, on the public network.
    Eth0,
    /// eth1, on the heartbeat network.
    Eth1,
    /// eth2, on the private network.
    Eth2,
}

impl Nic {
    fn index(self) -> u8 {
        match self {
            Nic::Eth0 => 0,
            Nic::Eth1 => 1,
            Nic::Eth2 => 2,
        }
    }
}

/// A director.toml for `node` with the lab's addresses (no virtual servers, no pair); with
/// `nat_gateway` eth2 also holds the real servers' gateway address.
pub fn node_config(node: Node, nat_gateway: bool) -> String {
    let gateway = if nat_gateway {
        format!(", \"{NAT_GATEWAY}/24\"")
    } else {
        String::new()
    };
    format!(
        r#"[node]
hostname = "lvs-{letter}"

[network]
ip_forward = true

[[network.interfaces]]
name = "eth0"
addresses = ["{public}/24"]

[[network.interfaces]]
name = "eth1"
addresses = ["{heartbeat}/24"]

[[network.interfaces]]
name = "eth2"
addresses = ["{private}/24"{gateway}]

[admin]
listen = "0.0.0.0"
port = 3636
allowed = []
"#,
        letter = node.letter(),
        public = node.public(),
        heartbeat = node.heartbeat(),
        private = node.private(),
    )
}

/// `node_config` for a pair: A is the primary, B the backup (`node.role`).
pub fn pair_node_config(node: Node) -> String {
    let role = match node {
        Node::A => "primary",
        Node::B => "backup",
    };
    node_config(node, false).replace(
        &format!("hostname = \"lvs-{}\"\n", node.letter()),
        &format!("hostname = \"lvs-{}\"\nrole = \"{role}\"\n", node.letter()),
    )
}

/// The `[pair]` section of `node` in the lab: its peer over eth1 and the serial cable on
/// ttyS1, the client as ping node, the watchdog; timings as given (`"100ms"`, `"4s"`).
pub fn pair_section(
    node: Node,
    key: &str,
    keepalive: &str,
    deadtime: &str,
    watchdog: &str,
) -> String {
    format!(
        r#"
[pair]
peer = "{peer}"
key = "{key}"
keepalive = "{keepalive}"
deadtime = "{deadtime}"
initdead = "4s"
ping_nodes = ["{CLIENT}"]
udp = {{ interface = "eth1" }}
serial = {{ device = "ttyS1", baud = 115200 }}
watchdog = {{ timeout = "{watchdog}" }}
"#,
        peer = other(node).heartbeat(),
    )
}

/// The other node of the pair.
pub fn other(node: Node) -> Node {
    match node {
        Node::A => Node::B,
        Node::B => Node::A,
    }
}

/// `[[virtual_servers]]` sections: one per (name, port) on the VIP, direct routing, round
/// robin, each with all of `real_servers` (name, address).
pub fn dr_virtual_servers(services: &[(&str, u16)], real_servers: &[(&str, &str)]) -> String {
    let servers: Vec<String> = real_servers
        .iter()
        .map(|(name, address)| format!("{{ name = \"{name}\", address = \"{address}\" }}"))
        .collect();
    let servers = servers.join(", ");
    services
        .iter()
        .map(|(name, port)| {
            format!(
                "\n[[virtual_servers]]\nname = \"{name}\"\nvip = \"{VIP}\"\nport = {port}\nscheduler = \"rr\"\nforwarding = \"dr\"\nreal_servers = [ {servers} ]\n"
            )
        })
        .collect()
}

/// How to build a pair lab; `PairSpec::new` fills in the defaults.
pub struct PairSpec {
    /// Names everything: namespaces `TAG-sw…`, `TAG-client`, `TAG-rs1`, taps `TAGp-a`, …
    /// (at most 4 characters).
    pub tag: String,
    /// Where the VMs keep their files (`a/`, `b/`: console log, data disk, sockets).
    pub dir: PathBuf,
    /// director.toml of A and of B, provisioned at boot.
    pub config_a: String,
    pub config_b: String,
    /// The VIPs direct-routing real servers hold on lo.
    pub vips: Vec<String>,
    /// QEMU exits instead of rebooting (a watchdog reset then ends the VM).
    pub no_reboot: bool,
    /// Boot the test image (with Debian's ipvsadm, to read the kernel's table independently).
    pub test_tools: bool,
    /// Boot the test image with Debian's keepalived (the benchmark's reference).
    pub keepalived: bool,
    /// Guest memory in MB, when not qemu/run's default.
    pub memory: Option<u32>,
}

impl PairSpec {
    /// A on 192.0.2.2 (holding the NAT gateway), B on 192.0.2.3, VIP 192.0.2.100.
    pub fn new(tag: &str, dir: &Path) -> PairSpec {
        PairSpec {
            tag: tag.to_string(),
            dir: dir.to_path_buf(),
            config_a: node_config(Node::A, true),
            config_b: node_config(Node::B, false),
            vips: vec![VIP.to_string()],
            no_reboot: false,
            test_tools: false,
            keepalived: false,
            memory: None,
        }
    }

    /// Makes the networks and the client and starts both VMs (in parallel: `Pair::wait_ready`
    /// waits for their boot to finish).
    pub fn boot(self) -> Pair {
        Pair::boot(self)
    }
}

/// A real server: a namespace with an HTTP server that names it, and an echo server once
/// asked for.
struct RealServer {
    ns: String,
    http: Option<HttpServer>,
    echo: Option<EchoServer>,
}

/// Two director VMs, A and B, on three bridges (public: eth0, heartbeat: eth1, private: eth2),
/// their ttyS1 joined by a null-modem cable; a client and real servers as namespaces. All of it
/// (QEMU processes, HTTP servers, namespaces, taps) is removed when the pair is dropped.
pub struct Pair {
    // Dropped in this order: the servers and VMs before the networks they sit on.
    servers: BTreeMap<String, RealServer>,
    vms: Vec<Vm>,
    /// The null-modem cable between the VMs' ttyS1.
    cable: Cable,
    /// How each VM was booted, its directory and its taps (eth0, eth1, eth2): `restart` boots
    /// it again the same way.
    boots: Vec<(PathBuf, Boot, [String; 3])>,
    client: String,
    vips: Vec<String>,
    tag: String,
    public: Lab,
    heartbeat: Lab,
    private: Lab,
}

impl Pair {
    fn boot(spec: PairSpec) -> Pair {
        let tag = spec.tag;
        assert!(
            !tag.is_empty() && tag.len() <= 4,
            "pair tag {tag:?}: 1 to 4 characters (device names are short)"
        );
        let mut public = Lab::new(&format!("{tag}p"));
        let mut heartbeat = Lab::new(&format!("{tag}h"));
        let mut private = Lab::new(&format!("{tag}v"));
        let client = format!("{tag}-client");
        public.host_in(&client, "client", &format!("{CLIENT}/24"));

        let ends = [spec.dir.join("a-ttyS1.sock"), spec.dir.join("b-ttyS1.sock")];
        let mut vms = Vec::new();
        let mut boots = Vec::new();
        for node in Node::BOTH {
            let dir = spec.dir.join(node.letter());
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create the VM's directory");
            let config = dir.join("director.toml");
            let text = match node {
                Node::A => &spec.config_a,
                Node::B => &spec.config_b,
            };
            fs::write(&config, text).expect("write the VM's director.toml");
            let eth = [
                public.tap(node.letter()),
                heartbeat.tap(node.letter()),
                private.tap(node.letter()),
            ];
            let serial2 = Serial2::Listen(ends[node.index()].clone());
            let boot = Boot {
                no_reboot: spec.no_reboot,
                test_tools: spec.test_tools,
                keepalived: spec.keepalived,
                memory: spec.memory,
                config: Some(config),
                taps: Some((eth[0].clone(), eth[1].clone())),
                tap2: Some(eth[2].clone()),
                mac_prefix: Some(node.mac_prefix()),
                serial2: Some(serial2),
                ..Boot::default()
            };
            vms.push(Vm::boot(&dir, boot.clone()));
            boots.push((dir, boot, eth));
        }
        for (vm, (_, _, eth)) in vms.iter_mut().zip(&boots) {
            public.plug_checking(&eth[0], || vm.check_running());
            heartbeat.plug_checking(&eth[1], || vm.check_running());
            private.plug_checking(&eth[2], || vm.check_running());
        }
        let cable = Cable::join(ends);
        Pair {
            servers: BTreeMap::new(),
            vms,
            cable,
            boots,
            client,
            vips: spec.vips,
            tag,
            public,
            heartbeat,
            private,
        }
    }

    /// Waits until both directors have booted and applied their network.
    pub fn wait_ready(&mut self, timeout: Duration) {
        for vm in &mut self.vms {
            vm.wait_for(READY, timeout);
        }
    }

    /// The VM of `node`.
    pub fn vm(&mut self, node: Node) -> &mut Vm {
        &mut self.vms[node.index()]
    }

    /// Waits until `node`'s console shows `needle` anywhere (not only after the last
    /// command, as `Vm::wait_for` looks); fails the test after `timeout`.
    pub fn logged(&mut self, node: Node, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.vm(node).console().contains(needle) {
            if start.elapsed() > timeout {
                self.vm(node)
                    .fail(&format!("director {node:?} never logged `{needle}`"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where `node`'s console is now: `logged_after` looks only past it.
    pub fn mark(&mut self, node: Node) -> usize {
        self.vm(node).console().len()
    }

    /// `logged`, for a line that comes after `mark`.
    pub fn logged_after(&mut self, node: Node, mark: usize, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self
            .vm(node)
            .console()
            .get(mark..)
            .unwrap_or("")
            .contains(needle)
        {
            if start.elapsed() > timeout {
                self.vm(node).fail(&format!(
                    "director {node:?} never logged `{needle}` (after the mark)"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a shell command on `node`'s console and returns its output.
    pub fn sh(&mut self, node: Node, command: &str, timeout: Duration) -> String {
        self.vm(node).sh(command, timeout)
    }

    /// Pulls `node`'s plug: QEMU is killed at once.
    pub fn power_kill(&mut self, node: Node) {
        self.vm(node).power_kill();
    }

    /// Powers `node` on again after `power_kill` (killing it first if it still runs): the same
    /// taps, cable, data disk and configuration disk. The console log so far is kept as
    /// `console-N.log`. Returns once QEMU holds its NICs; `wait_ready` waits for the boot.
    pub fn restart(&mut self, node: Node) {
        let i = node.index();
        self.vms[i].power_kill();
        let (dir, boot, eth) = self.boots[i].clone();
        let mut n = 1;
        while dir.join(format!("console-{n}.log")).exists() {
            n += 1;
        }
        let _ = fs::rename(
            dir.join("console.log"),
            dir.join(format!("console-{n}.log")),
        );
        self.public.renew_tap(&eth[0]);
        self.heartbeat.renew_tap(&eth[1]);
        self.private.renew_tap(&eth[2]);
        let mut vm = Vm::boot(&dir, boot);
        self.public.plug_checking(&eth[0], || vm.check_running());
        self.heartbeat.plug_checking(&eth[1], || vm.check_running());
        self.private.plug_checking(&eth[2], || vm.check_running());
        self.vms[i] = vm;
    }

    /// Freezes `node` (a hang: nothing runs, nothing answers) until `resume`.
    pub fn pause(&mut self, node: Node) {
        self.vm(node).pause();
    }

    pub fn resume(&mut self, node: Node) {
        self.vm(node).resume();
    }

    /// Unplugs `node`'s `nic` (the guest sees no carrier) until `restore_link`.
    pub fn cut_link(&mut self, node: Node, nic: Nic) {
        self.vm(node).set_link(nic.index(), false);
    }

    pub fn restore_link(&mut self, node: Node, nic: Nic) {
        self.vm(node).set_link(nic.index(), true);
    }

    /// Cuts the null-modem cable (bytes sent on either end are lost) until `restore_serial`.
    pub fn cut_serial(&self) {
        self.cable.cut.store(true, Ordering::Relaxed);
    }

    pub fn restore_serial(&self) {
        self.cable.cut.store(false, Ordering::Relaxed);
    }

    /// Writes `bytes` into `node`'s end of the cable, as line noise would.
    pub fn serial_noise(&self, node: Node, bytes: &[u8]) {
        if let Ok(mut queue) = self.cable.noise.lock() {
            queue.push((node.index(), bytes.to_vec()));
        }
    }

    /// A host on the heartbeat network (a namespace named after the pair's tag and `name`),
    /// `address` with its prefix. Returns its namespace.
    pub fn heartbeat_host(&mut self, name: &str, address: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        self.heartbeat.host_in(&ns, name, address);
        ns
    }

    /// The line of `node`'s `command` output that starts with `prefix` (a token the console
    /// printed, a fingerprint).
    pub fn console_line(&mut self, node: Node, command: &str, prefix: &str) -> String {
        let said = self.sh(node, command, Duration::from_secs(30));
        said.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{command}: no line starting {prefix:?} in {said:?}"))
            .to_string()
    }

    /// The client's namespace (192.0.2.10 on the public network).
    pub fn client(&self) -> &str {
        &self.client
    }

    /// A real server for direct routing on the public network: `address` (/24 unless given),
    /// the VIPs on lo (/32), ARP for them neither answered nor announced, HTTP on port 80
    /// answering `name`. Returns its namespace.
    pub fn real_server_dr(&mut self, name: &str, address: &str) -> String {
        let ns = self.server_ns(name);
        self.public.host_in(&ns, name, &with_prefix(address));
        for vip in &self.vips {
            ip(&["-n", &ns, "addr", "add", &format!("{vip}/32"), "dev", "lo"]);
        }
        for (key, value) in [
            ("all/arp_ignore", "1"),
            ("all/arp_announce", "2"),
            ("eth0/arp_ignore", "1"),
            ("eth0/arp_announce", "2"),
            ("lo/arp_ignore", "1"),
            ("lo/arp_announce", "2"),
        ] {
            let path = format!("/proc/sys/net/ipv4/conf/{key}");
            let (ok, out) = in_ns(&ns, &["sh", "-c", &format!("echo {value} > {path}")]);
            assert!(ok, "{ns}: set {path}: {out}");
        }
        self.add_server(name, ns)
    }

    /// A real server for NAT on the private network: `address` (/24 unless given), default
    /// route via the NAT gateway 203.0.113.1, HTTP on port 80 answering `name`. Returns its
    /// namespace.
    pub fn real_server_nat(&mut self, name: &str, address: &str) -> String {
        let ns = self.server_ns(name);
        self.private.host_in(&ns, name, &with_prefix(address));
        ip(&["-n", &ns, "route", "add", "default", "via", NAT_GATEWAY]);
        self.add_server(name, ns)
    }

    fn server_ns(&self, name: &str) -> String {
        assert!(
            !self.servers.contains_key(name),
            "real server {name} exists already"
        );
        format!("{}-{name}", self.tag)
    }

    fn add_server(&mut self, name: &str, ns: String) -> String {
        self.servers.insert(
            name.to_string(),
            RealServer {
                ns: ns.clone(),
                http: None,
                echo: None,
            },
        );
        self.start_http(name);
        ns
    }

    fn server(&mut self, name: &str) -> &mut RealServer {
        self.servers
            .get_mut(name)
            .unwrap_or_else(|| panic!("no real server {name}"))
    }

    /// Stops `name`'s HTTP server: its port refuses connections.
    pub fn stop_http(&mut self, name: &str) {
        if let Some(mut http) = self.server(name).http.take() {
            http.stop();
        }
    }

    /// Starts `name`'s HTTP server (again).
    pub fn start_http(&mut self, name: &str) {
        let server = self.server(name);
        if server.http.is_none() {
            let http = HttpServer::start(&server.ns, name, 80)
                .unwrap_or_else(|e| panic!("start the HTTP server of {name}: {e}"));
            server.http = Some(http);
        }
    }

    /// Starts an echo server on `name`'s `port` (every line comes back): the far end of
    /// long-lived client connections.
    pub fn start_echo(&mut self, name: &str, port: u16) {
        let server = self.server(name);
        if server.echo.is_none() {
            let echo = EchoServer::start(&server.ns, name, port)
                .unwrap_or_else(|e| panic!("start the echo server of {name}: {e}"));
            server.echo = Some(echo);
        }
    }

    /// Requests `name`'s HTTP server has answered.
    pub fn served(&mut self, name: &str) -> u64 {
        self.server(name)
            .http
            .as_ref()
            .map_or(0, HttpServer::served)
    }

    /// Starts a client load from the client namespace (see `Load`); it ends by itself.
    pub fn start_load(
        &self,
        target: &str,
        requests: u32,
        max_duration: Duration,
        interval: Duration,
    ) -> LoadRun {
        LoadRun::start(
            &self.client,
            Load::new(target, requests, max_duration, interval),
        )
        .unwrap_or_else(|e| panic!("start a load from {}: {e}", self.client))
    }

    /// Runs a client load to its end and returns the report.
    pub fn load(
        &self,
        target: &str,
        requests: u32,
        max_duration: Duration,
        interval: Duration,
    ) -> LoadReport {
        self.start_load(target, requests, max_duration, interval)
            .wait()
    }

    /// The namespaces holding the three bridges: public, heartbeat, private.
    pub fn switches(&self) -> [&str; 3] {
        [
            self.public.switch(),
            self.heartbeat.switch(),
            self.private.switch(),
        ]
    }

    /// Real servers: (name, namespace).
    pub fn real_servers(&self) -> Vec<(String, String)> {
        self.servers
            .iter()
            .map(|(name, server)| (name.clone(), server.ns.clone()))
            .collect()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // HTTP servers and VMs first, while the networks they use still exist.
        self.servers.clear();
        for vm in &mut self.vms {
            vm.power_kill();
        }
    }
}

/// Bytes for one end of the cable (0: A, 1: B).
type Noise = (usize, Vec<u8>);

/// The null-modem cable: each VM's ttyS1 listens on a unix socket, and a thread joins the two,
/// copying bytes both ways unless cut. A VM booted again is joined again.
struct Cable {
    cut: Arc<AtomicBool>,
    /// Bytes to write to an end (0: A, 1: B), as line noise would.
    noise: Arc<Mutex<Vec<Noise>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Cable {
    fn join(ends: [PathBuf; 2]) -> Cable {
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let noise = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let cut = Arc::clone(&cut);
            let stop = Arc::clone(&stop);
            let noise = Arc::clone(&noise);
            std::thread::spawn(move || relay(&ends, &cut, &noise, &stop))
        };
        Cable {
            cut,
            noise,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies between the two ends until stopped, connecting (again) to an end that is not (or no
/// longer) there; polls every millisecond.
fn relay(ends: &[PathBuf; 2], cut: &AtomicBool, noise: &Mutex<Vec<Noise>>, stop: &AtomicBool) {
    let mut sockets: [Option<UnixStream>; 2] = [None, None];
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        for (i, end) in ends.iter().enumerate() {
            if sockets[i].is_none() {
                sockets[i] = UnixStream::connect(end)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .ok();
            }
        }
        let queued: Vec<Noise> = noise
            .lock()
            .map(|mut queue| queue.drain(..).collect())
            .unwrap_or_default();
        for (to, bytes) in queued {
            if let Some(socket) = sockets[to].as_mut() {
                let _ = socket.write_all(&bytes);
            }
        }
        for from in 0..2 {
            let Some(socket) = sockets[from].as_mut() else {
                continue;
            };
            match socket.read(&mut buf) {
                Ok(0) => sockets[from] = None,
                Ok(n) => {
                    if !cut.load(Ordering::Relaxed) {
                        if let Some(to) = sockets[1 - from].as_mut() {
                            if to.write_all(&buf[..n]).is_err() {
                                sockets[1 - from] = None;
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => sockets[from] = None,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn with_prefix(address: &str) -> String {
    if address.contains('/') {
        address.to_string()
    } else {
        format!("{address}/24")
    }
}
