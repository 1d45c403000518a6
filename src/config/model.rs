//! The typed configuration of a director box: what every part of the product reads. Pure data;
//! the rules that make a configuration valid are in `validate`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::types::{Prefix, Span};

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: Node,
    #[serde(default)]
    pub network: Network,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_servers: Vec<VirtualServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<Pair>,
    #[serde(default)]
    pub admin: Admin,
}

/// This box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub hostname: String,
    /// Which role this box prefers when both boxes are up.
    #[serde(default)]
    pub role: RolePreference,
    #[serde(default)]
    pub console: SerialPort,
}

impl Default for Node {
    fn default() -> Node {
        Node {
            hostname: "director".into(),
            role: RolePreference::default(),
            console: SerialPort::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolePreference {
    /// Active whenever it can be (Piranha's primary).
    Primary,
    /// Standby while the primary is up.
    Backup,
    /// Whoever is active stays active.
    #[default]
    Equal,
}

/// A serial line: a device in /dev and its speed (8N1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialPort {
    pub device: String,
    pub baud: u32,
}

impl Default for SerialPort {
    fn default() -> SerialPort {
        SerialPort {
            device: "ttyS0".into(),
            baud: 115_200,
        }
    }
}

/// Interfaces, routes and the kernel's network settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// net.ipv4.ip_forward (and IPv6 forwarding): needed for NAT.
    #[serde(default = "yes")]
    pub ip_forward: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub ipvs: IpvsKnobs,
}

impl Default for Network {
    fn default() -> Network {
        Network {
            ip_forward: true,
            interfaces: Vec::new(),
            routes: Vec::new(),
            ipvs: IpvsKnobs::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Prefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// net.ipv4.conf.<if>.arp_ignore (0-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_ignore: Option<u8>,
    /// net.ipv4.conf.<if>.arp_announce (0-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arp_announce: Option<u8>,
    /// net.ipv4.conf.<if>.rp_filter (0 off, 1 strict, 2 loose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_filter: Option<u8>,
}

/// A route; `to = "default"` is a default route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub to: RouteTarget,
    pub via: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RouteTarget {
    Default,
    Net(Prefix),
}

impl TryFrom<String> for RouteTarget {
    type Error = String;
    fn try_from(text: String) -> Result<RouteTarget, String> {
        if text == "default" {
            Ok(RouteTarget::Default)
        } else {
            text.parse().map(RouteTarget::Net).map_err(|e| {
                format!("{e}; a route goes to \"default\" or to a network like 203.0.113.0/24")
            })
        }
    }
}

impl From<RouteTarget> for String {
    fn from(target: RouteTarget) -> String {
        match target {
            RouteTarget::Default => "default".into(),
            RouteTarget::Net(prefix) => prefix.to_string(),
        }
    }
}

/// The net.ipv4.vs.* settings the director manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsKnobs {
    /// net.ipv4.vs.conntrack: keep netfilter connection tracking for IPVS connections.
    #[serde(default)]
    pub conntrack: bool,
    /// net.ipv4.vs.expire_nodest_conn: drop connections whose real server was removed.
    #[serde(default = "yes")]
    pub expire_nodest_conn: bool,
    /// net.ipv4.vs.expire_quiescent_template: end persistence to a quiesced real server.
    #[serde(default = "yes")]
    pub expire_quiescent_template: bool,
    /// Connection timeouts (ipvsadm --set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_timeout: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcpfin_timeout: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_timeout: Option<Span>,
    /// The director owns the kernel's whole IPVS table: a service it did not create (by
    /// ipvsadm, another daemon) is removed. When false, such services are reported and left
    /// alone, and the director removes only the services it created itself.
    #[serde(default)]
    pub owns_table: bool,
}

impl Default for IpvsKnobs {
    fn default() -> IpvsKnobs {
        IpvsKnobs {
            conntrack: false,
            expire_nodest_conn: true,
            expire_quiescent_template: true,
            tcp_timeout: None,
            tcpfin_timeout: None,
            udp_timeout: None,
            owns_table: false,
        }
    }
}

/// A virtual service: a VIP and port (or a firewall mark) balanced over real servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The virtual IP; absent for a firewall-mark service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<IpAddr>,
    /// The port; 0 with persistence means every port (Piranha's "port 0").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// The address family of a firewall-mark service (with a VIP it follows the VIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub scheduler: Scheduler,
    #[serde(default)]
    pub forwarding: Forwarding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Where the VIP lives, with an optional label: `eth0` or `eth0:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// A failed real server gets weight 0 (existing connections drain) instead of removal.
    #[serde(default)]
    pub quiescent: bool,
    /// How long a recovered real server must stay healthy before it returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reentry: Option<Span>,
    /// Taken into service when every real server is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<RealServer>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// Every IPVS scheduler of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    #[default]
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Mh,
    Fo,
    Ovf,
    Twos,
}

impl Scheduler {
    /// Every scheduler by its kernel name.
    pub const ALL: [(&'static str, Scheduler); 14] = [
        ("rr", Scheduler::Rr),
        ("wrr", Scheduler::Wrr),
        ("lc", Scheduler::Lc),
        ("wlc", Scheduler::Wlc),
        ("lblc", Scheduler::Lblc),
        ("lblcr", Scheduler::Lblcr),
        ("dh", Scheduler::Dh),
        ("sh", Scheduler::Sh),
        ("sed", Scheduler::Sed),
        ("nq", Scheduler::Nq),
        ("mh", Scheduler::Mh),
        ("fo", Scheduler::Fo),
        ("ovf", Scheduler::Ovf),
        ("twos", Scheduler::Twos),
    ];

    /// The scheduler the kernel calls `name` (case-insensitive, as the old tools read it).
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Scheduler::ALL
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, scheduler)| *scheduler)
    }

    /// The kernel names, for messages: "rr, wrr, ...".
    pub fn names() -> String {
        Scheduler::ALL
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How packets reach the real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Masquerading: the director rewrites addresses; replies come back through it.
    Nat,
    /// Direct routing (gatewaying): the real servers answer the client themselves.
    #[default]
    Dr,
    /// IP-in-IP (or GUE/GRE) tunnel to the real servers.
    Tunnel,
}

/// Client affinity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    pub timeout: Span,
    /// Clients are grouped by this mask (IPv4 netmask or IPv6 prefix length); all of a
    /// client's connections go to one real server by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
}

/// A real server behind a virtual server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    pub name: String,
    pub address: IpAddr,
    /// Defaults to the virtual server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default = "one")]
    pub weight: u32,
    /// Stop sending new connections above this many (0: no limit).
    #[serde(default)]
    pub upper_threshold: u32,
    /// Resume below this many (0: at the upper threshold).
    #[serde(default)]
    pub lower_threshold: u32,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn one() -> u32 {
    1
}

/// A health check of the real servers of a virtual server: timing, and exactly one kind
/// (`tcp`, `http`, `send_expect` or `program`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub interval: Span,
    pub timeout: Span,
    /// Successes in a row to come back.
    #[serde(default = "one")]
    pub rise: u32,
    /// Failures in a row to go down.
    #[serde(default = "one")]
    pub fall: u32,
    /// Check this port instead of the real server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The least weight a check may give a real server (`http.weight_header`, a program's
    /// `weight=N` line); a lower one is raised to it. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_weight: Option<u32>,
    /// The most weight a check may give a real server; a higher one is lowered to it.
    /// Default 65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_expect: Option<SendExpectCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramCheck>,
}

impl Check {
    /// The weights a check may give, `min_weight..=max_weight` with their defaults.
    pub fn weight_bounds(&self) -> (u32, u32) {
        (
            self.min_weight.unwrap_or(0),
            self.max_weight.unwrap_or(MAX_WEIGHT),
        )
    }
}

/// The highest weight a real server can have.
pub const MAX_WEIGHT: u32 = 65535;

/// A port that accepts TCP connections: a SYN answered by a SYN-ACK (see `health::syn`).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {}

/// An HTTP or HTTPS GET.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    #[serde(default)]
    pub tls: bool,
    /// Certificate verification for HTTPS.
    #[serde(default = "yes")]
    pub verify: bool,
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Acceptable status codes; empty means 200.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<u16>,
    /// A regular expression the body must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// The certificates (PEM file) that HTTPS verification trusts. The box has no system CA
    /// bundle: `verify = true` needs this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// A response header whose whole-number value becomes the real server's weight (within
    /// the check's `min_weight` and `max_weight`): load feedback, like Piranha's rup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_header: Option<String>,
}

/// Piranha's send/expect: send a string (escapes \n \r \t \\), match the answer against
/// `expect`, a regular expression (whose own syntax gives \n \r \t \\ the same meaning).
/// Over UDP the answer is one datagram; over TCP what arrives until it matches, the server
/// closes, or 64 KiB. Without `send` a TCP check reads the server's banner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendExpectCheck {
    #[serde(default)]
    pub protocol: CheckProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// An external program; exit status 0 is healthy. In `args`, `%h` becomes the real server's
/// address, `%p` the checked port and `%%` a `%`. A line `weight=N` in its output is a weight
/// (as `http.weight_header`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramCheck {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl SendExpectCheck {
    /// What to send, with its escapes turned into the bytes they stand for.
    pub fn send_bytes(&self) -> Result<Vec<u8>, String> {
        self.send.as_deref().map_or(Ok(Vec::new()), unescape)
    }
}

/// Piranha's escapes in a send string: `\n`, `\r`, `\t` and `\\`. Any other backslash is a
/// mistake (a backslash itself is written `\\`), reported rather than guessed at.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                return Err(format!(
                    "'\\{other}' is not one of the escapes \\n \\r \\t \\\\ (write a backslash as \\\\)"
                ))
            }
            None => {
                return Err(
                    "ends in a lone backslash (write a backslash as \\\\)".to_string()
                )
            }
        }
    }
    Ok(out)
}

fn slash() -> String {
    "/".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckProtocol {
    #[default]
    Tcp,
    Udp,
}

/// The pair of directors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// The peer's address on the heartbeat link (eth1).
    pub peer: IpAddr,
    /// The shared key of the heartbeat, at least 16 characters.
    pub key: String,
    /// Higher wins when both prefer the same role.
    #[serde(default = "hundred")]
    pub priority: u8,
    /// Heartbeat over UDP on the heartbeat link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpChannel>,
    /// Heartbeat over a serial cable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialPort>,
    pub keepalive: Span,
    pub deadtime: Span,
    /// Log a warning when the peer is late by this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warntime: Option<Span>,
    /// How long to wait for the peer after boot before taking over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initdead: Option<Span>,
    /// The preferred node takes the role back when it returns.
    #[serde(default)]
    pub auto_failback: bool,
    /// Upstream hosts whose reachability decides who should be active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ping_nodes: Vec<IpAddr>,
    /// What a node does when every heartbeat channel is silent.
    #[serde(default)]
    pub when_isolated: Isolation,
    /// Gratuitous ARPs / neighbour advertisements sent on takeover.
    #[serde(default = "five")]
    pub announce_count: u32,
    #[serde(default = "announce_spacing")]
    pub announce_spacing: Span,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<Watchdog>,
    /// IPVS connection synchronisation to the standby.
    #[serde(default = "yes")]
    pub connection_sync: bool,
    #[serde(default = "sync_id")]
    pub sync_id: u8,
}

fn hundred() -> u8 {
    100
}

fn five() -> u32 {
    5
}

/// The IPVS sync daemon's id when a configuration names none (the importers use it too).
pub fn sync_id() -> u8 {
    1
}

fn announce_spacing() -> Span {
    Span::from_millis(200)
}

/// The UDP heartbeat channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpChannel {
    #[serde(default = "eth1")]
    pub interface: String,
    #[serde(default = "heartbeat_port")]
    pub port: u16,
    #[serde(default)]
    pub mode: UdpMode,
    /// The group for `mode = "multicast"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
}

fn eth1() -> String {
    "eth1".into()
}

/// heartbeat's registered port.
fn heartbeat_port() -> u16 {
    694
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UdpMode {
    #[default]
    Unicast,
    Broadcast,
    Multicast,
}

/// What a node does when it hears nothing from its peer on any channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// The node that reaches more ping nodes is active; a node that reaches none gives up.
    #[default]
    PingNodesDecide,
    /// The node with the higher priority stays or becomes active; the other never takes over.
    HigherPriorityStays,
}

/// The hardware watchdog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    #[serde(default = "watchdog_device")]
    pub device: String,
    pub timeout: Span,
    /// Require the watchdog to reset a hung box before the peer's deadtime ends.
    #[serde(default)]
    pub strict_fencing: bool,
}

fn watchdog_device() -> String {
    "/dev/watchdog".into()
}

/// The HTTPS admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: IpAddr,
    pub port: u16,
    /// Sources allowed to connect; others are refused before the TLS handshake.
    pub allowed: Vec<Prefix>,
    /// PBKDF2-HMAC-SHA256 hash of the admin password (`pbkdf2-sha256$ITER$SALT$HASH`);
    /// never the password itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            listen: IpAddr::from([0, 0, 0, 0]),
            port: 3636,
            allowed: Vec::new(),
            password_hash: None,
        }
    }
}
