//! IPVS, the kernel's load balancer, through its generic-netlink family "IPVS": the virtual
//! services, their real servers (destinations), the protocol timeouts and the connection sync
//! daemons, behind a trait so that the reconcile logic is tested with a recording fake. The
//! types here know nothing of the product's configuration; `wire` lays them out as the kernel
//! reads and writes them. The table is never flushed, so no flush is offered.

use std::fmt;
use std::net::IpAddr;

pub mod handover;
pub mod kernel;
pub mod procfs;
pub mod wire;

/// The address family of a service or a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The longest prefix of an address of this family.
    pub fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// The transport protocols IPVS balances, by their IPPROTO numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(number: u16) -> Option<Protocol> {
        match number {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// "tcp", "udp", "sctp".
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// What identifies a virtual service to the kernel: an address, or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// The family is the address's.
    Address {
        protocol: Protocol,
        address: IpAddr,
        port: u16,
    },
    /// Packets marked by netfilter; the mark is never 0 (0 means "no mark" to the kernel).
    Fwmark { family: Family, mark: u32 },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Address { address, .. } => Family::of(*address),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Address {
                protocol,
                address: IpAddr::V6(address),
                port,
            } => write!(f, "{} [{address}]:{port}", protocol.name()),
            ServiceKey::Address {
                protocol,
                address,
                port,
            } => write!(f, "{} {address}:{port}", protocol.name()),
            ServiceKey::Fwmark {
                family: Family::V4,
                mark,
            } => write!(f, "fwmark {mark}"),
            ServiceKey::Fwmark {
                family: Family::V6,
                mark,
            } => write!(f, "fwmark {mark} (IPv6)"),
        }
    }
}

/// A virtual service as it is asked of the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    /// The scheduler's kernel name: "wlc", "rr", ... (at most 15 bytes).
    pub scheduler: String,
    /// IP_VS_SVC_F_* bits (`Service::PERSISTENT`, ...). The kernel's own HASHED bit is never
    /// part of it.
    pub flags: u32,
    /// Persistence in seconds, meaningful with `PERSISTENT`.
    pub timeout: u32,
    /// The persistence granularity as a prefix length: IPv4 0..=32 (the kernel keeps a mask),
    /// IPv6 1..=128 (the kernel keeps the length itself).
    pub netmask: u8,
}

impl Service {
    /// IP_VS_SVC_F_PERSISTENT: a client keeps its real server for `timeout` seconds.
    pub const PERSISTENT: u32 = 0x0001;
    /// IP_VS_SVC_F_HASHED: kernel state, reported but never asked for.
    pub const HASHED: u32 = 0x0002;
    /// IP_VS_SVC_F_ONEPACKET: every UDP datagram is scheduled on its own.
    pub const ONE_PACKET: u32 = 0x0004;
    /// IP_VS_SVC_F_SCHED1, the `sh` scheduler's fallback to another server.
    pub const SH_FALLBACK: u32 = 0x0008;
    /// IP_VS_SVC_F_SCHED2, the `sh` scheduler hashes the source port too.
    pub const SH_PORT: u32 = 0x0010;
    /// IP_VS_SVC_F_SCHED3, the third scheduler flag.
    pub const SCHED3: u32 = 0x0020;

    /// A service without persistence and with the full netmask, as ipvsadm makes it.
    pub fn new(key: ServiceKey, scheduler: &str) -> Service {
        Service {
            key,
            scheduler: scheduler.to_string(),
            flags: 0,
            timeout: 0,
            netmask: key.family().max_prefix(),
        }
    }
}

/// The tunnel encapsulation of a tunnelled real server (IP_VS_CONN_F_TUNNEL_TYPE_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunnelKind {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelKind {
    pub fn number(self) -> u8 {
        match self {
            TunnelKind::Ipip => 0,
            TunnelKind::Gue => 1,
            TunnelKind::Gre => 2,
        }
    }

    pub fn from_number(number: u8) -> Option<TunnelKind> {
        match number {
            0 => Some(TunnelKind::Ipip),
            1 => Some(TunnelKind::Gue),
            2 => Some(TunnelKind::Gre),
            _ => None,
        }
    }
}

/// How a tunnelled real server is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// The UDP port of a GUE tunnel (0 for the others).
    pub port: u16,
    /// IP_VS_TUNNEL_ENCAP_FLAG_* bits (`Tunnel::CSUM`, `Tunnel::REMCSUM`).
    pub flags: u16,
}

impl Tunnel {
    pub const CSUM: u16 = 1 << 0;
    pub const REMCSUM: u16 = 1 << 1;
}

/// How packets reach a real server: the IP_VS_CONN_F_* forwarding methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forwarding {
    /// IP_VS_CONN_F_MASQ (0): NAT.
    Masquerade,
    /// IP_VS_CONN_F_LOCALNODE (1): the director serves it itself.
    Local,
    /// IP_VS_CONN_F_TUNNEL (2).
    Tunnel(Tunnel),
    /// IP_VS_CONN_F_DROUTE (3): direct routing.
    Route,
}

impl Forwarding {
    pub fn code(self) -> u32 {
        match self {
            Forwarding::Masquerade => 0,
            Forwarding::Local => 1,
            Forwarding::Tunnel(_) => 2,
            Forwarding::Route => 3,
        }
    }
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub address: IpAddr,
    pub port: u16,
    pub forwarding: Forwarding,
    /// 0 drains the server: no new connections, the old ones carry on.
    pub weight: u32,
    /// Connections above which the server gets no more (0: no limit).
    pub upper_threshold: u32,
    /// Connections below which an overloaded server is used again.
    pub lower_threshold: u32,
}

/// The counters of a service or a destination (the 64-bit statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    /// Rates, per second.
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A service as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
}

/// A destination as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationEntry {
    pub destination: Destination,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Stats,
}

/// Connection timeouts in seconds; 0 leaves a timeout as it is (the kernel's rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// The role of a connection sync daemon (IP_VS_STATE_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncState {
    Master,
    Backup,
}

impl SyncState {
    pub fn number(self) -> u32 {
        match self {
            SyncState::Master => 1,
            SyncState::Backup => 2,
        }
    }

    pub fn from_number(number: u32) -> Option<SyncState> {
        match number {
            1 => Some(SyncState::Master),
            2 => Some(SyncState::Backup),
            _ => None,
        }
    }
}

/// A connection sync daemon: the master sends the connection table, the backup receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    pub state: SyncState,
    /// The interface it multicasts on (at most 15 bytes).
    pub interface: String,
    pub sync_id: u32,
}

/// What the kernel says of its IPVS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// IP_VS_VERSION_CODE: 0x010201 is 1.2.1.
    pub version: u32,
    pub connection_table_size: u32,
}

/// A refused or failed IPVS operation, with what it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsError {
    /// What was attempted: "add service tcp 192.0.2.100:80".
    pub operation: String,
    /// The kernel's errno, when it answered with one.
    pub errno: Option<i32>,
    pub message: String,
}

impl IpvsError {
    pub fn new(
        operation: impl Into<String>,
        errno: Option<i32>,
        message: impl Into<String>,
    ) -> IpvsError {
        IpvsError {
            operation: operation.into(),
            errno,
            message: message.into(),
        }
    }
}

impl fmt::Display for IpvsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl std::error::Error for IpvsError {}

/// One change to the table, as `Ipvs::apply` takes them in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    AddService(Service),
    EditService(Service),
    RemoveService(ServiceKey),
    AddDestination(ServiceKey, Destination),
    EditDestination(ServiceKey, Destination),
    RemoveDestination {
        service: ServiceKey,
        address: IpAddr,
        port: u16,
    },
}

impl Change {
    /// The service the change concerns.
    pub fn service(&self) -> &ServiceKey {
        match self {
            Change::AddService(service) | Change::EditService(service) => &service.key,
            Change::RemoveService(key)
            | Change::AddDestination(key, _)
            | Change::EditDestination(key, _)
            | Change::RemoveDestination { service: key, .. } => key,
        }
    }
}

impl fmt::Display for Change {
    /// "add service tcp 192.0.2.100:80 (wlc)", "edit real server 192.0.2.21:80 of tcp ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = |f: &mut fmt::Formatter<'_>, address: &IpAddr, port: u16| match address {
            IpAddr::V6(a) => write!(f, "[{a}]:{port}"),
            IpAddr::V4(a) => write!(f, "{a}:{port}"),
        };
        match self {
            Change::AddService(s) => write!(f, "add service {} ({})", s.key, s.scheduler),
            Change::EditService(s) => write!(f, "edit service {} ({})", s.key, s.scheduler),
            Change::RemoveService(key) => write!(f, "remove service {key}"),
            Change::AddDestination(key, d) => {
                f.write_str("add real server ")?;
                server(f, &d.address, d.port)?;
                write!(f, " (weight {}) to {key}", d.weight)
            }
            Change::EditDestination(key, d) => {
                f.write_str("edit real server ")?;
                server(f, &d.address, d.port)?;
                write!(f, " (weight {}) of {key}", d.weight)
            }
            Change::RemoveDestination {
                service,
                address,
                port,
            } => {
                f.write_str("remove real server ")?;
                server(f, address, *port)?;
                write!(f, " from {service}")
            }
        }
    }
}

/// A service with its destinations, as the kernel reports them.
pub type TableEntry = (ServiceEntry, Vec<DestinationEntry>);

/// What the IPVS reconcile asks of the kernel. Adding what exists (EEXIST) and removing what
/// is gone (ESRCH, ENOENT) are not errors, so that a change can be applied again safely.
pub trait Ipvs {
    fn info(&mut self) -> Result<Info, IpvsError>;
    fn services(&mut self) -> Result<Vec<ServiceEntry>, IpvsError>;
    fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError>;
    fn add_service(&mut self, service: &Service) -> Result<(), IpvsError>;
    fn edit_service(&mut self, service: &Service) -> Result<(), IpvsError>;
    fn remove_service(&mut self, service: &ServiceKey) -> Result<(), IpvsError>;
    fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), IpvsError>;
    fn edit_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), IpvsError>;
    fn remove_destination(
        &mut self,
        service: &ServiceKey,
        address: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError>;
    /// Zeroes the counters of one service, or of all when `None`.
    fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), IpvsError>;
    fn timeouts(&mut self) -> Result<Timeouts, IpvsError>;
    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), IpvsError>;
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError>;
    fn start_daemon(&mut self, daemon: &SyncDaemon) -> Result<(), IpvsError>;
    fn stop_daemon(&mut self, state: SyncState) -> Result<(), IpvsError>;

    /// Applies `changes` in order, each on its own (a refused one does not stop the rest), as
    /// fast as the kernel takes them; one result per change, in the same order. The kernel
    /// client sends them in batches without waiting for each answer.
    fn apply(&mut self, changes: &[Change]) -> Vec<Result<(), IpvsError>> {
        changes
            .iter()
            .map(|change| match change {
                Change::AddService(service) => self.add_service(service),
                Change::EditService(service) => self.edit_service(service),
                Change::RemoveService(key) => self.remove_service(key),
                Change::AddDestination(key, destination) => self.add_destination(key, destination),
                Change::EditDestination(key, destination) => {
                    self.edit_destination(key, destination)
                }
                Change::RemoveDestination {
                    service,
                    address,
                    port,
                } => self.remove_destination(service, *address, *port),
            })
            .collect()
    }

    /// Every service with its destinations, for a listing: what `ipvsadm -Ln` shows (services
    /// in full; of the destinations address, port, forwarding method, weight and connection
    /// counts). Thresholds, tunnel details and per-destination counters may be left out, so it
    /// is never planned against. The same as `table` unless the kernel has a faster way.
    fn listing(&mut self) -> Result<Vec<TableEntry>, IpvsError> {
        self.table()
    }

    /// Every service with its destinations.
    fn table(&mut self) -> Result<Vec<TableEntry>, IpvsError> {
        let mut table = Vec::new();
        for entry in self.services()? {
            let destinations = self.destinations(&entry.service.key)?;
            table.push((entry, destinations));
        }
        Ok(table)
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
pub use fake::FakeIpvs;
