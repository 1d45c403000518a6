//! A test network on the host for VMs: a bridge, tap devices for the VMs' NICs, and network
//! namespaces as hosts on the bridge. Everything is named after the test and removed when the
//! lab is dropped, pass or fail. Needs root.

use std::process::Command;

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
        let start = std::time::Instant::now();
        loop {
            let shown = ip(&["-o", "link", "show", tap]);
            if shown.contains("LOWER_UP") {
                break;
            }
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

    /// A host: a namespace with one interface `eth0` on the bridge holding `address` (CIDR).
    pub fn host(&mut self, name: &str, address: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
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
        ns
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
