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
    links: Vec<String>,
    namespaces: Vec<String>,
}

impl Lab {
    /// A lab whose devices start with `tag` (at most 6 characters, to fit IFNAMSIZ).
    pub fn new(tag: &str) -> Lab {
        assert!(tag.len() <= 6, "lab tag too long");
        let lab = Lab {
            tag: tag.to_string(),
            links: Vec::new(),
            namespaces: Vec::new(),
        };
        // Leftovers of a run that was killed.
        let _ = Command::new("ip")
            .args(["link", "del", &lab.bridge()])
            .output();
        lab
    }

    pub fn bridge(&self) -> String {
        format!("{}-br", self.tag)
    }

    /// Creates the bridge (up) if it is not there yet.
    fn ensure_bridge(&mut self) {
        let bridge = self.bridge();
        if !self.links.contains(&bridge) {
            ip(&["link", "add", &bridge, "type", "bridge"]);
            self.links.push(bridge.clone());
            ip(&["link", "set", &bridge, "up"]);
        }
    }

    /// A tap device on the bridge, for a VM's NIC.
    pub fn tap(&mut self, name: &str) -> String {
        self.ensure_bridge();
        let tap = format!("{}-{name}", self.tag);
        let _ = Command::new("ip").args(["link", "del", &tap]).output();
        ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.links.push(tap.clone());
        ip(&["link", "set", &tap, "master", &self.bridge()]);
        ip(&["link", "set", &tap, "up"]);
        tap
    }

    /// A tap device on no bridge (a NIC with a link but nobody else on it).
    pub fn lone_tap(&mut self, name: &str) -> String {
        let tap = format!("{}-{name}", self.tag);
        let _ = Command::new("ip").args(["link", "del", &tap]).output();
        ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.links.push(tap.clone());
        ip(&["link", "set", &tap, "up"]);
        tap
    }

    /// A host: a namespace with one interface `eth0` on the bridge holding `address` (CIDR).
    pub fn host(&mut self, name: &str, address: &str) -> String {
        self.ensure_bridge();
        let ns = format!("{}-{name}", self.tag);
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let outside = format!("{}-v{name}", self.tag);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        self.links.push(outside.clone());
        ip(&["link", "set", &outside, "master", &self.bridge()]);
        ip(&["link", "set", &outside, "up"]);
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
