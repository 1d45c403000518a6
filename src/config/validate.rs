//! The rules a configuration must follow. Every problem is reported with the path of the field
//! it concerns, all at once, so that a whole file can be corrected in one go.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use super::model::*;
use super::types::{Prefix, Span};

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: `virtual_servers[0].real_servers[2].port`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of `config`; empty when it is valid.
pub fn validate(config: &Config) -> Vec<Problem> {
    let mut rules = Rules::default();
    rules.node(&config.node);
    rules.network(&config.network);
    let own: Vec<IpAddr> = config
        .network
        .interfaces
        .iter()
        .flat_map(|i| i.addresses.iter().map(|p| p.addr))
        .collect();
    let interfaces: Vec<&str> = config
        .network
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    rules.virtual_servers(&config.virtual_servers, &interfaces);
    if let Some(pair) = &config.pair {
        rules.pair(pair, &own, &interfaces, &config.node.console);
    }
    rules.admin(&config.admin);
    rules.problems
}

const BAUDS: &[u32] = &[
    9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600,
];

#[derive(Default)]
struct Rules {
    problems: Vec<Problem>,
}

impl Rules {
    fn bad(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn node(&mut self, node: &Node) {
        if let Err(why) = check_hostname(&node.hostname) {
            self.bad("node.hostname", why);
        }
        self.serial_port("node.console", &node.console);
    }

    fn serial_port(&mut self, path: &str, port: &SerialPort) {
        if !port.device.starts_with("tty") || port.device.contains('/') {
            self.bad(
                format!("{path}.device"),
                format!("'{}' is not a terminal name like ttyS0", port.device),
            );
        }
        if !BAUDS.contains(&port.baud) {
            self.bad(
                format!("{path}.baud"),
                format!("{} is not a supported speed ({BAUDS:?})", port.baud),
            );
        }
    }

    fn network(&mut self, network: &Network) {
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, iface) in network.interfaces.iter().enumerate() {
            let path = format!("network.interfaces[{i}]");
            if let Err(why) = check_ifname(&iface.name) {
                self.bad(format!("{path}.name"), why);
            }
            if !names.insert(iface.name.as_str()) {
                self.bad(
                    format!("{path}.name"),
                    format!("interface '{}' is configured twice", iface.name),
                );
            }
            for (j, prefix) in iface.addresses.iter().enumerate() {
                if !addresses.insert(prefix.addr) {
                    self.bad(
                        format!("{path}.addresses[{j}]"),
                        format!("address {} is configured twice", prefix.addr),
                    );
                }
                if prefix.addr.is_unspecified() || prefix.addr.is_multicast() {
                    self.bad(
                        format!("{path}.addresses[{j}]"),
                        format!("{prefix} is not a host address"),
                    );
                }
            }
            if let Some(mtu) = iface.mtu {
                let min = if iface.addresses.iter().any(|p| p.addr.is_ipv6()) {
                    1280
                } else {
                    68
                };
                if !(min..=65535).contains(&mtu) {
                    self.bad(
                        format!("{path}.mtu"),
                        format!("{mtu} is outside {min}..65535"),
                    );
                }
            }
            self.small(&path, "arp_ignore", iface.arp_ignore, &[0, 1, 2, 3, 8]);
            self.small(&path, "arp_announce", iface.arp_announce, &[0, 1, 2]);
            self.small(&path, "rp_filter", iface.rp_filter, &[0, 1, 2]);
        }
        let mut defaults = HashSet::new();
        for (i, route) in network.routes.iter().enumerate() {
            let path = format!("network.routes[{i}]");
            let target_v4 = match route.to {
                RouteTarget::Default => {
                    if !defaults.insert(route.via.is_ipv4()) {
                        self.bad(
                            format!("{path}.to"),
                            format!(
                                "a second default route for {}",
                                if route.via.is_ipv4() { "IPv4" } else { "IPv6" }
                            ),
                        );
                    }
                    route.via.is_ipv4()
                }
                RouteTarget::Net(prefix) => prefix.addr.is_ipv4(),
            };
            if target_v4 != route.via.is_ipv4() {
                self.bad(
                    format!("{path}.via"),
                    format!("gateway {} is not of the route's address family", route.via),
                );
            }
            if let Some(device) = &route.device {
                if !names.contains(device.as_str()) {
                    self.bad(
                        format!("{path}.device"),
                        format!("interface '{device}' is not configured"),
                    );
                }
            }
            let on_link = network
                .interfaces
                .iter()
                .filter(|i| route.device.as_ref().is_none_or(|d| *d == i.name))
                .flat_map(|i| i.addresses.iter())
                .any(|p| p.contains(route.via));
            let link_local_v6 =
                matches!(route.via, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if !network.interfaces.is_empty() && !on_link && !link_local_v6 {
                self.bad(
                    format!("{path}.via"),
                    format!(
                        "gateway {} is in no network of the configured interfaces",
                        route.via
                    ),
                );
            }
        }
        for (name, span) in [
            ("tcp_timeout", network.ipvs.tcp_timeout),
            ("tcpfin_timeout", network.ipvs.tcpfin_timeout),
            ("udp_timeout", network.ipvs.udp_timeout),
        ] {
            if let Some(span) = span {
                self.whole_seconds(&format!("network.ipvs.{name}"), span, 1);
                self.at_most_31_days(&format!("network.ipvs.{name}"), span);
            }
        }
    }

    fn small(&mut self, path: &str, field: &str, value: Option<u8>, allowed: &[u8]) {
        if let Some(value) = value {
            if !allowed.contains(&value) {
                self.bad(
                    format!("{path}.{field}"),
                    format!("{value} is not one of {allowed:?}"),
                );
            }
        }
    }

    fn whole_seconds(&mut self, path: &str, span: Span, min_secs: u64) {
        if span.as_millis() % 1000 != 0 || span.as_millis() < min_secs * 1000 {
            self.bad(
                path,
                format!("{span} must be a whole number of seconds, at least {min_secs}s"),
            );
        }
    }

    /// The kernel keeps IPVS timeouts in jiffies in an unsigned int: a longer one wraps and
    /// reads back as another value. ipvsadm takes at most 31 days (its MAX_TIMEOUT) for
    /// `--persistent` and `--set`; so do we.
    fn at_most_31_days(&mut self, path: &str, span: Span) {
        const MAX: Span = Span::from_millis(31 * 86_400_000);
        if span > MAX {
            self.bad(path, format!("{span} is longer than 31 days (744h)"));
        }
    }

    fn virtual_servers(&mut self, servers: &[VirtualServer], interfaces: &[&str]) {
        let mut names = HashSet::new();
        let mut services = HashSet::new();
        for (i, vs) in servers.iter().enumerate() {
            let path = format!("virtual_servers[{i}]");
            if vs.name.trim().is_empty() {
                self.bad(format!("{path}.name"), "a virtual server needs a name");
            } else if !names.insert(vs.name.as_str()) {
                self.bad(
                    format!("{path}.name"),
                    format!("virtual server '{}' is defined twice", vs.name),
                );
            }
            let family_v4 = match (vs.vip, vs.fwmark) {
                (Some(_), Some(_)) => {
                    self.bad(
                        format!("{path}.fwmark"),
                        "a virtual server has a vip or a fwmark, not both",
                    );
                    None
                }
                (None, None) => {
                    self.bad(
                        format!("{path}.vip"),
                        "a virtual server needs a vip (with a port) or a fwmark",
                    );
                    None
                }
                (Some(vip), None) => {
                    if vip.is_unspecified() || vip.is_multicast() {
                        self.bad(format!("{path}.vip"), format!("{vip} cannot be a VIP"));
                    }
                    if let Some(family) = vs.family {
                        if (family == Family::Inet) != vip.is_ipv4() {
                            self.bad(
                                format!("{path}.family"),
                                format!("{family:?} does not match the VIP {vip}"),
                            );
                        }
                    }
                    match vs.port {
                        None => self.bad(
                            format!("{path}.port"),
                            "a VIP service needs a port (0 means all ports, with persistence)",
                        ),
                        Some(0) if vs.persistence.is_none() => self.bad(
                            format!("{path}.port"),
                            "port 0 (all ports) needs persistence",
                        ),
                        Some(_) => {}
                    }
                    if !services.insert(format!("{vip}:{:?}/{:?}", vs.port, vs.protocol)) {
                        self.bad(
                            format!("{path}.vip"),
                            format!(
                                "another virtual server already serves {vip} port {} {}",
                                vs.port.unwrap_or(0),
                                format!("{:?}", vs.protocol).to_lowercase()
                            ),
                        );
                    }
                    Some(vip.is_ipv4())
                }
                (None, Some(mark)) => {
                    if mark == 0 {
                        self.bad(format!("{path}.fwmark"), "firewall mark 0 marks nothing");
                    }
                    if vs.port.is_some() {
                        self.bad(
                            format!("{path}.port"),
                            "a firewall-mark service has no port (the mark selects the packets)",
                        );
                    }
                    let v4 = vs.family != Some(Family::Inet6);
                    if !services.insert(format!("fwmark {mark} {v4}")) {
                        self.bad(
                            format!("{path}.fwmark"),
                            format!("another virtual server already uses firewall mark {mark}"),
                        );
                    }
                    Some(v4)
                }
            };
            if let Some(p) = &vs.persistence {
                self.persistence(&format!("{path}.persistence"), p, family_v4);
            }
            if let Some(device) = &vs.device {
                let base = device.split(':').next().unwrap_or(device);
                if check_ifname(base).is_err() || (device.contains(':') && device.len() > 15) {
                    self.bad(
                        format!("{path}.device"),
                        format!("'{device}' is not an interface name or label like eth0:1"),
                    );
                } else if !interfaces.is_empty() && !interfaces.contains(&base) {
                    self.bad(
                        format!("{path}.device"),
                        format!("interface '{base}' is not configured"),
                    );
                }
            }
            if let (Some(sorry), Some(v4)) = (vs.sorry_server, family_v4) {
                if sorry.is_ipv4() != v4 {
                    self.bad(
                        format!("{path}.sorry_server"),
                        format!("{sorry} is not of the service's address family"),
                    );
                }
            }
            if let Some(check) = &vs.check {
                self.check(&format!("{path}.check"), check, vs);
            }
            self.real_servers(&path, vs, family_v4);
        }
    }

    fn persistence(&mut self, path: &str, p: &Persistence, family_v4: Option<bool>) {
        self.whole_seconds(&format!("{path}.timeout"), p.timeout, 1);
        self.at_most_31_days(&format!("{path}.timeout"), p.timeout);
        if let Some(mask) = p.netmask {
            let contiguous = match mask {
                IpAddr::V4(m) => {
                    let bits = u32::from(m);
                    bits.leading_ones() + bits.trailing_zeros() == 32
                }
                IpAddr::V6(_) => false,
            };
            if !contiguous {
                self.bad(
                    format!("{path}.netmask"),
                    format!("{mask} is not an IPv4 netmask like 255.255.255.0"),
                );
            }
            if family_v4 == Some(false) {
                self.bad(
                    format!("{path}.netmask"),
                    "an IPv6 service groups clients by prefix_len, not netmask",
                );
            }
        }
        if let Some(len) = p.prefix_len {
            if family_v4 == Some(true) {
                self.bad(
                    format!("{path}.prefix_len"),
                    "an IPv4 service groups clients by netmask, not prefix_len",
                );
            } else if len > 128 {
                self.bad(format!("{path}.prefix_len"), format!("{len} is over 128"));
            } else if len == 0 {
                // The kernel refuses an IPv6 persistence prefix of 0 (ip_vs_add_service).
                self.bad(
                    format!("{path}.prefix_len"),
                    "0 groups nothing: a prefix length goes from 1 to 128",
                );
            }
        }
    }

    fn real_servers(&mut self, path: &str, vs: &VirtualServer, family_v4: Option<bool>) {
        let mut names = HashSet::new();
        let mut endpoints = HashSet::new();
        for (j, rs) in vs.real_servers.iter().enumerate() {
            let path = format!("{path}.real_servers[{j}]");
            if rs.name.trim().is_empty() {
                self.bad(format!("{path}.name"), "a real server needs a name");
            } else if !names.insert(rs.name.as_str()) {
                self.bad(
                    format!("{path}.name"),
                    format!("real server '{}' is defined twice", rs.name),
                );
            }
            let port = rs.port.or(vs.port);
            if !endpoints.insert((rs.address, port)) {
                self.bad(
                    format!("{path}.address"),
                    format!(
                        "real server {} port {} is listed twice",
                        rs.address,
                        port.unwrap_or(0)
                    ),
                );
            }
            if family_v4.is_some_and(|v4| v4 != rs.address.is_ipv4()) {
                self.bad(
                    format!("{path}.address"),
                    format!("{} is not of the service's address family", rs.address),
                );
            }
            if Some(rs.address) == vs.vip {
                self.bad(
                    format!("{path}.address"),
                    "a real server cannot be the VIP itself",
                );
            }
            if vs.forwarding != Forwarding::Nat {
                if let (Some(rport), Some(vport)) = (rs.port, vs.port) {
                    if rport != vport && vport != 0 {
                        self.bad(
                            format!("{path}.port"),
                            format!(
                                "{} forwarding cannot change the port ({vport} to {rport}); use nat",
                                format!("{:?}", vs.forwarding).to_lowercase()
                            ),
                        );
                    }
                }
            }
            if rs.weight > 65535 {
                self.bad(
                    format!("{path}.weight"),
                    format!("{} is over 65535", rs.weight),
                );
            }
            if rs.upper_threshold > 0 && rs.lower_threshold > rs.upper_threshold {
                self.bad(
                    format!("{path}.lower_threshold"),
                    format!(
                        "{} is above the upper threshold {}",
                        rs.lower_threshold, rs.upper_threshold
                    ),
                );
            }
        }
    }

    fn check(&mut self, path: &str, check: &Check, vs: &VirtualServer) {
        let kinds = [
            check.tcp.is_some(),
            check.http.is_some(),
            check.send_expect.is_some(),
            check.program.is_some(),
        ]
        .iter()
        .filter(|&&k| k)
        .count();
        if kinds != 1 {
            self.bad(
                path,
                format!(
                    "a check has exactly one of tcp, http, send_expect, program ({kinds} given)"
                ),
            );
        }
        if check.interval.as_millis() == 0 {
            self.bad(format!("{path}.interval"), "must be more than 0");
        }
        if check.timeout.as_millis() == 0 {
            self.bad(format!("{path}.timeout"), "must be more than 0");
        } else if check.timeout > check.interval {
            self.bad(
                format!("{path}.timeout"),
                format!(
                    "{} is longer than the interval {}",
                    check.timeout, check.interval
                ),
            );
        }
        for (field, value) in [("rise", check.rise), ("fall", check.fall)] {
            if value == 0 {
                self.bad(format!("{path}.{field}"), "must be at least 1");
            }
        }
        let (min_weight, max_weight) = check.weight_bounds();
        if max_weight > MAX_WEIGHT {
            self.bad(
                format!("{path}.max_weight"),
                format!("{max_weight} is over {MAX_WEIGHT}"),
            );
        }
        if min_weight > max_weight {
            self.bad(
                format!("{path}.min_weight"),
                format!("{min_weight} is above the max_weight {max_weight}"),
            );
        }
        // Only a program can check a real server without a port (it may not need one).
        let portless = vs.port.is_none_or(|p| p == 0)
            && vs
                .real_servers
                .iter()
                .any(|rs| rs.port.is_none_or(|p| p == 0));
        if check.port.is_none_or(|p| p == 0) && check.program.is_none() && portless {
            self.bad(
                format!("{path}.port"),
                "some real servers have no port (a firewall-mark or all-ports service): the check needs a port",
            );
        }
        if let Some(http) = &check.http {
            self.http_check(&format!("{path}.http"), http);
        }
        if let Some(se) = &check.send_expect {
            if let Err(why) = se.send_bytes() {
                self.bad(format!("{path}.send_expect.send"), why);
            }
            if let Some(expect) = &se.expect {
                self.regex(&format!("{path}.send_expect.expect"), expect);
            }
        }
        if let Some(http) = &check.http {
            if !http.path.starts_with('/') {
                self.bad(
                    format!("{path}.http.path"),
                    format!("'{}' does not start with /", http.path),
                );
            }
            for (k, code) in http.status.iter().enumerate() {
                if !(100..=599).contains(code) {
                    self.bad(
                        format!("{path}.http.status[{k}]"),
                        format!("{code} is not an HTTP status code"),
                    );
                }
            }
        }
        if let Some(se) = &check.send_expect {
            if se.protocol == CheckProtocol::Udp && se.send.is_none() {
                self.bad(
                    format!("{path}.send_expect.send"),
                    "a UDP check must send something to get an answer",
                );
            }
        }
        if let Some(program) = &check.program {
            if !program.path.starts_with('/') {
                self.bad(
                    format!("{path}.program.path"),
                    format!("'{}' is not an absolute path", program.path),
                );
            }
        }
    }

    fn http_check(&mut self, path: &str, http: &HttpCheck) {
        if let Some(expect) = &http.expect {
            self.regex(&format!("{path}.expect"), expect);
        }
        if let Some(host) = &http.host {
            if let Err(why) = check_http_host(host) {
                self.bad(format!("{path}.host"), why);
            }
        }
        match (&http.ca, http.tls, http.verify) {
            (Some(_), false, _) => {
                self.bad(format!("{path}.ca"), "a CA file is only for tls = true");
            }
            (Some(_), true, false) => self.bad(
                format!("{path}.ca"),
                "a CA file is only for verify = true (certificates are not verified)",
            ),
            (Some(ca), true, true) if !ca.starts_with('/') => {
                self.bad(
                    format!("{path}.ca"),
                    format!("'{ca}' is not an absolute path"),
                );
            }
            (None, true, true) => self.bad(
                format!("{path}.verify"),
                "verifying certificates needs the CA that signed them (ca = \"/data/ca.pem\"): \
                 the box has no system CA bundle; or set verify = false",
            ),
            _ => {}
        }
        if let Some(header) = &http.weight_header {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if header.is_empty() || !header.chars().all(token) {
                self.bad(
                    format!("{path}.weight_header"),
                    format!("'{header}' is not an HTTP header name like X-Weight"),
                );
            }
        }
    }

    fn regex(&mut self, path: &str, pattern: &str) {
        if let Err(e) = regex_lite::Regex::new(pattern) {
            self.bad(
                path,
                format!("/{pattern}/ is not a regular expression: {e}"),
            );
        }
    }

    fn pair(&mut self, pair: &Pair, own: &[IpAddr], interfaces: &[&str], console: &SerialPort) {
        if own.contains(&pair.peer) {
            self.bad(
                "pair.peer",
                format!("{} is this node's own address", pair.peer),
            );
        }
        if pair.key.chars().count() < 16 {
            self.bad(
                "pair.key",
                "the shared key must have at least 16 characters",
            );
        }
        if pair.udp.is_none() && pair.serial.is_none() {
            self.bad(
                "pair",
                "the pair needs a heartbeat channel: udp, serial or both",
            );
        }
        if let Some(udp) = &pair.udp {
            if !interfaces.is_empty() && !interfaces.contains(&udp.interface.as_str()) {
                self.bad(
                    "pair.udp.interface",
                    format!("interface '{}' is not configured", udp.interface),
                );
            }
            if udp.port == 0 {
                self.bad("pair.udp.port", "port 0 cannot be listened on");
            }
            match (udp.mode, udp.group) {
                (UdpMode::Multicast, None) => {
                    self.bad("pair.udp.group", "multicast needs a group address")
                }
                (UdpMode::Multicast, Some(group)) if !group.is_multicast() => self.bad(
                    "pair.udp.group",
                    format!("{group} is not a multicast address"),
                ),
                (UdpMode::Unicast | UdpMode::Broadcast, Some(_)) => {
                    self.bad("pair.udp.group", "a group is only for mode = \"multicast\"")
                }
                _ => {}
            }
        }
        if let Some(serial) = &pair.serial {
            self.serial_port("pair.serial", serial);
            if serial.device == console.device {
                self.bad(
                    "pair.serial.device",
                    format!("{} is the console", serial.device),
                );
            }
        }
        if pair.keepalive.as_millis() == 0 {
            self.bad("pair.keepalive", "must be more than 0");
        }
        if pair.deadtime <= pair.keepalive {
            self.bad(
                "pair.deadtime",
                format!(
                    "{} is not longer than the keepalive {}: the peer would be declared dead between two heartbeats",
                    pair.deadtime, pair.keepalive
                ),
            );
        }
        if let Some(warn) = pair.warntime {
            if warn <= pair.keepalive || warn >= pair.deadtime {
                self.bad(
                    "pair.warntime",
                    format!(
                        "{warn} must lie between the keepalive {} and the deadtime {}",
                        pair.keepalive, pair.deadtime
                    ),
                );
            }
        }
        if let Some(initdead) = pair.initdead {
            if initdead < pair.deadtime {
                self.bad(
                    "pair.initdead",
                    format!("{initdead} is shorter than the deadtime {}", pair.deadtime),
                );
            }
        }
        if pair.announce_count == 0 {
            self.bad("pair.announce_count", "at least one announcement is sent");
        }
        let mut pings = HashSet::new();
        for (i, node) in pair.ping_nodes.iter().enumerate() {
            if !pings.insert(node) {
                self.bad(
                    format!("pair.ping_nodes[{i}]"),
                    format!("{node} is listed twice"),
                );
            }
        }
        if pair.when_isolated == Isolation::PingNodesDecide && pair.ping_nodes.is_empty() {
            self.bad(
                "pair.when_isolated",
                "ping_nodes_decide needs ping_nodes (or use higher_priority_stays)",
            );
        }
        if let Some(watchdog) = &pair.watchdog {
            if !watchdog.device.starts_with("/dev/") {
                self.bad(
                    "pair.watchdog.device",
                    format!("'{}' is not a device in /dev", watchdog.device),
                );
            }
            self.whole_seconds("pair.watchdog.timeout", watchdog.timeout, 1);
            if watchdog.strict_fencing && watchdog.timeout >= pair.deadtime {
                self.bad(
                    "pair.watchdog.timeout",
                    format!(
                        "{} does not fire before the peer's deadtime {} ends (strict_fencing)",
                        watchdog.timeout, pair.deadtime
                    ),
                );
            }
        }
    }

    fn admin(&mut self, admin: &Admin) {
        if admin.port == 0 {
            self.bad("admin.port", "port 0 cannot be listened on");
        }
        if let Some(hash) = &admin.password_hash {
            if !hash.starts_with("pbkdf2-sha256$") || hash.split('$').count() != 4 {
                self.bad(
                    "admin.password_hash",
                    "not a pbkdf2-sha256$ITERATIONS$SALT$HASH value (passwords are never stored plain)",
                );
            }
        }
        let mut seen: HashSet<Prefix> = HashSet::new();
        for (i, net) in admin.allowed.iter().enumerate() {
            if !seen.insert(*net) {
                self.bad(
                    format!("admin.allowed[{i}]"),
                    format!("{net} is listed twice"),
                );
            }
        }
    }
}

fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("'{name}' must have 1 to 253 characters"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "'{name}' is not a host name (letters, digits and inner dashes, dot-separated)"
            ));
        }
    }
    Ok(())
}

/// An HTTP Host: a host name or an address, with an optional port (`www.example.net`,
/// `192.0.2.10:8080`, `[2001:db8::1]:443`).
fn check_http_host(host: &str) -> Result<(), String> {
    let bad = || format!("'{host}' is not a host name or address, with an optional :port");
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after {
            "" => return Ok(()),
            _ => (None, after.strip_prefix(':').ok_or_else(bad)?),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => (Some(name), port),
            _ => (Some(host), ""),
        }
    };
    if !port.is_empty() && port.parse::<u16>().is_err() {
        return Err(bad());
    }
    match name {
        Some(name) if name.parse::<IpAddr>().is_err() && check_hostname(name).is_err() => {
            Err(bad())
        }
        _ => Ok(()),
    }
}

fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Err(format!(
            "'{name}' is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
        ))
    } else {
        Ok(())
    }
}
