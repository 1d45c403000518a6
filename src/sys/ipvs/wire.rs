//! The payloads of the IPVS generic-netlink family, as bytes and without a socket: the generic
//! header (command, version 1, reserved) and then the attributes, laid out as
//! include/uapi/linux/ip_vs.h numbers them and as the attribute policies of
//! net/netfilter/ipvs/ip_vs_ctl.c type them. Being pure, every layout is tested here without a
//! kernel (the build hosts have no IPVS). Every length is checked when reading: hostile or
//! truncated input is an error, never a panic. Integers are in host order, ports (and an IPv4
//! netmask) in network order, as the kernel reads them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    Destination, DestinationEntry, Family, Forwarding, Info, Protocol, Service, ServiceEntry,
    ServiceKey, Stats, SyncDaemon, SyncState, Timeouts, Tunnel, TunnelKind,
};

/// The generic-netlink family's name, resolved to its id through the controller.
pub const FAMILY_NAME: &str = "IPVS";
/// IPVS_GENL_VERSION.
pub const VERSION: u8 = 1;

// IPVS_CMD_*. IPVS_CMD_FLUSH (17) is left out on purpose: the table is never flushed.
pub const CMD_NEW_SERVICE: u8 = 1;
pub const CMD_SET_SERVICE: u8 = 2;
pub const CMD_DEL_SERVICE: u8 = 3;
pub const CMD_GET_SERVICE: u8 = 4;
pub const CMD_NEW_DEST: u8 = 5;
pub const CMD_SET_DEST: u8 = 6;
pub const CMD_DEL_DEST: u8 = 7;
pub const CMD_GET_DEST: u8 = 8;
pub const CMD_NEW_DAEMON: u8 = 9;
pub const CMD_DEL_DAEMON: u8 = 10;
pub const CMD_GET_DAEMON: u8 = 11;
pub const CMD_SET_CONFIG: u8 = 12;
pub const CMD_GET_CONFIG: u8 = 13;
/// Only the command of the answer to GET_INFO.
pub const CMD_SET_INFO: u8 = 14;
pub const CMD_GET_INFO: u8 = 15;
pub const CMD_ZERO: u8 = 16;

// IPVS_CMD_ATTR_*: the first level.
const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
const CMD_ATTR_DAEMON: u16 = 3;
const CMD_ATTR_TIMEOUT_TCP: u16 = 4;
const CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const CMD_ATTR_TIMEOUT_UDP: u16 = 6;

// IPVS_SVC_ATTR_*, inside CMD_ATTR_SERVICE.
const SVC_ATTR_AF: u16 = 1; // u16
const SVC_ATTR_PROTOCOL: u16 = 2; // u16
const SVC_ATTR_ADDR: u16 = 3; // union nf_inet_addr, 16 bytes
const SVC_ATTR_PORT: u16 = 4; // be16
const SVC_ATTR_FWMARK: u16 = 5; // u32
const SVC_ATTR_SCHED_NAME: u16 = 6; // NUL-terminated, < IP_VS_SCHEDNAME_MAXLEN
const SVC_ATTR_FLAGS: u16 = 7; // struct ip_vs_flags { u32 flags; u32 mask; }
const SVC_ATTR_TIMEOUT: u16 = 8; // u32, seconds
const SVC_ATTR_NETMASK: u16 = 9; // be32 mask (IPv4) or the prefix length as a u32 (IPv6)
const SVC_ATTR_STATS: u16 = 10; // nested, 32-bit counters
const SVC_ATTR_STATS64: u16 = 12; // nested, 64-bit counters

// IPVS_DEST_ATTR_*, inside CMD_ATTR_DEST.
const DEST_ATTR_ADDR: u16 = 1; // union nf_inet_addr
const DEST_ATTR_PORT: u16 = 2; // be16
const DEST_ATTR_FWD_METHOD: u16 = 3; // u32, IP_VS_CONN_F_* & IP_VS_CONN_F_FWD_MASK
const DEST_ATTR_WEIGHT: u16 = 4; // u32
const DEST_ATTR_U_THRESH: u16 = 5; // u32
const DEST_ATTR_L_THRESH: u16 = 6; // u32
const DEST_ATTR_ACTIVE_CONNS: u16 = 7; // u32
const DEST_ATTR_INACT_CONNS: u16 = 8; // u32
const DEST_ATTR_PERSIST_CONNS: u16 = 9; // u32
const DEST_ATTR_STATS: u16 = 10; // nested
const DEST_ATTR_ADDR_FAMILY: u16 = 11; // u16
const DEST_ATTR_STATS64: u16 = 12; // nested
const DEST_ATTR_TUN_TYPE: u16 = 13; // u8
const DEST_ATTR_TUN_PORT: u16 = 14; // be16
const DEST_ATTR_TUN_FLAGS: u16 = 15; // u16

// IPVS_DAEMON_ATTR_*, inside CMD_ATTR_DAEMON.
const DAEMON_ATTR_STATE: u16 = 1; // u32
const DAEMON_ATTR_MCAST_IFN: u16 = 2; // NUL-terminated, < IP_VS_IFNAME_MAXLEN
const DAEMON_ATTR_SYNC_ID: u16 = 3; // u32

// IPVS_STATS_ATTR_*, inside the STATS and STATS64 nests (u32 or u64 each; 11 is padding).
const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_OUTPKTS: u16 = 3;
const STATS_ATTR_INBYTES: u16 = 4;
const STATS_ATTR_OUTBYTES: u16 = 5;
const STATS_ATTR_CPS: u16 = 6;
const STATS_ATTR_INPPS: u16 = 7;
const STATS_ATTR_OUTPPS: u16 = 8;
const STATS_ATTR_INBPS: u16 = 9;
const STATS_ATTR_OUTBPS: u16 = 10;

// IPVS_INFO_ATTR_*, in the answer to GET_INFO.
const INFO_ATTR_VERSION: u16 = 1;
const INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

/// IP_VS_SCHEDNAME_MAXLEN and IP_VS_IFNAME_MAXLEN, both counting the NUL.
const NAME_MAX: usize = 16;
/// sizeof(union nf_inet_addr).
const INET_ADDR_LEN: usize = 16;
/// IP_VS_CONN_F_FWD_MASK.
const FWD_MASK: u32 = 0x0007;
/// The type bits of nla_type (NLA_F_NESTED and NLA_F_NET_BYTEORDER are above them).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Attributes as read: (type, data) each, borrowing the message.
type Attrs<'a> = Vec<(u16, &'a [u8])>;

/// A payload that cannot be built or read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn error<T>(message: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(message.into()))
}

/// A request to the family: one message, with what the kernel needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    NewService(Service),
    SetService(Service),
    DelService(ServiceKey),
    GetService(ServiceKey),
    /// A dump of every service.
    GetServices,
    NewDestination(ServiceKey, Destination),
    SetDestination(ServiceKey, Destination),
    DelDestination {
        service: ServiceKey,
        address: IpAddr,
        port: u16,
    },
    /// A dump of a service's destinations.
    GetDestinations(ServiceKey),
    /// The counters of one service, or of all.
    Zero(Option<ServiceKey>),
    GetInfo,
    SetConfig(Timeouts),
    GetConfig,
    NewDaemon(SyncDaemon),
    DelDaemon(SyncState),
    /// A dump of the running sync daemons.
    GetDaemons,
}

impl Request {
    pub fn command(&self) -> u8 {
        match self {
            Request::NewService(_) => CMD_NEW_SERVICE,
            Request::SetService(_) => CMD_SET_SERVICE,
            Request::DelService(_) => CMD_DEL_SERVICE,
            Request::GetService(_) | Request::GetServices => CMD_GET_SERVICE,
            Request::NewDestination(..) => CMD_NEW_DEST,
            Request::SetDestination(..) => CMD_SET_DEST,
            Request::DelDestination { .. } => CMD_DEL_DEST,
            Request::GetDestinations(_) => CMD_GET_DEST,
            Request::Zero(_) => CMD_ZERO,
            Request::GetInfo => CMD_GET_INFO,
            Request::SetConfig(_) => CMD_SET_CONFIG,
            Request::GetConfig => CMD_GET_CONFIG,
            Request::NewDaemon(_) => CMD_NEW_DAEMON,
            Request::DelDaemon(_) => CMD_DEL_DAEMON,
            Request::GetDaemons => CMD_GET_DAEMON,
        }
    }

    /// Sent with NLM_F_DUMP and answered by a dump that must be read to its end; the kernel
    /// has no single-message form of these.
    pub fn is_dump(&self) -> bool {
        matches!(
            self,
            Request::GetServices | Request::GetDestinations(_) | Request::GetDaemons
        )
    }

    /// The generic header and the attributes. Fails on what the kernel would refuse to parse:
    /// a name too long, a firewall mark 0, a netmask longer than the family's addresses.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut attrs = Attributes::default();
        match self {
            Request::NewService(service) | Request::SetService(service) => {
                attrs.nested(CMD_ATTR_SERVICE, service_attributes(service)?);
            }
            Request::DelService(key) | Request::GetService(key) => {
                attrs.nested(CMD_ATTR_SERVICE, key_attributes(key)?);
            }
            Request::GetServices | Request::GetInfo | Request::GetConfig | Request::GetDaemons => {}
            Request::NewDestination(key, destination)
            | Request::SetDestination(key, destination) => {
                attrs.nested(CMD_ATTR_SERVICE, key_attributes(key)?);
                attrs.nested(CMD_ATTR_DEST, destination_attributes(destination));
            }
            Request::DelDestination {
                service,
                address,
                port,
            } => {
                attrs.nested(CMD_ATTR_SERVICE, key_attributes(service)?);
                attrs.nested(CMD_ATTR_DEST, destination_key_attributes(*address, *port));
            }
            Request::GetDestinations(key) => {
                attrs.nested(CMD_ATTR_SERVICE, key_attributes(key)?);
            }
            Request::Zero(key) => {
                if let Some(key) = key {
                    attrs.nested(CMD_ATTR_SERVICE, key_attributes(key)?);
                }
            }
            Request::SetConfig(timeouts) => {
                attrs.u32(CMD_ATTR_TIMEOUT_TCP, timeouts.tcp);
                attrs.u32(CMD_ATTR_TIMEOUT_TCP_FIN, timeouts.tcp_fin);
                attrs.u32(CMD_ATTR_TIMEOUT_UDP, timeouts.udp);
            }
            Request::NewDaemon(daemon) => {
                let mut nest = Attributes::default();
                nest.u32(DAEMON_ATTR_STATE, daemon.state.number());
                nest.put(
                    DAEMON_ATTR_MCAST_IFN,
                    &name(&daemon.interface, "interface")?,
                );
                nest.u32(DAEMON_ATTR_SYNC_ID, daemon.sync_id);
                attrs.nested(CMD_ATTR_DAEMON, nest);
            }
            Request::DelDaemon(state) => {
                let mut nest = Attributes::default();
                nest.u32(DAEMON_ATTR_STATE, state.number());
                attrs.nested(CMD_ATTR_DAEMON, nest);
            }
        }
        Ok(message(self.command(), attrs))
    }

    /// Reads a request back, as the kernel would: the inverse of `encode`.
    pub fn decode(payload: &[u8]) -> Result<Request, WireError> {
        let (command, attrs) = split(payload)?;
        let service = find(&attrs, CMD_ATTR_SERVICE);
        let key = || match service {
            Some(nest) => decode_key(&parse(nest)?),
            None => error("no service attribute"),
        };
        let destination = || match find(&attrs, CMD_ATTR_DEST) {
            Some(nest) => Ok(parse(nest)?),
            None => error("no destination attribute"),
        };
        let daemon = || match find(&attrs, CMD_ATTR_DAEMON) {
            Some(nest) => Ok(parse(nest)?),
            None => error("no daemon attribute"),
        };
        Ok(match command {
            CMD_NEW_SERVICE | CMD_SET_SERVICE => {
                let nest = service.ok_or_else(|| WireError("no service attribute".into()))?;
                let service = decode_service(&parse(nest)?)?;
                if command == CMD_NEW_SERVICE {
                    Request::NewService(service)
                } else {
                    Request::SetService(service)
                }
            }
            CMD_DEL_SERVICE => Request::DelService(key()?),
            CMD_GET_SERVICE if service.is_none() => Request::GetServices,
            CMD_GET_SERVICE => Request::GetService(key()?),
            CMD_NEW_DEST | CMD_SET_DEST => {
                let key = key()?;
                let destination = decode_destination(&destination()?, key.family())?;
                if command == CMD_NEW_DEST {
                    Request::NewDestination(key, destination)
                } else {
                    Request::SetDestination(key, destination)
                }
            }
            CMD_DEL_DEST => {
                let key = key()?;
                let (address, port) = decode_destination_key(&destination()?, key.family())?;
                Request::DelDestination {
                    service: key,
                    address,
                    port,
                }
            }
            CMD_GET_DEST => Request::GetDestinations(key()?),
            CMD_ZERO if service.is_none() => Request::Zero(None),
            CMD_ZERO => Request::Zero(Some(key()?)),
            CMD_GET_INFO => Request::GetInfo,
            CMD_SET_CONFIG => Request::SetConfig(decode_timeouts(&attrs)?),
            CMD_GET_CONFIG => Request::GetConfig,
            CMD_NEW_DAEMON => Request::NewDaemon(decode_daemon_attributes(&daemon()?)?),
            CMD_DEL_DAEMON => Request::DelDaemon(decode_state(&daemon()?)?),
            CMD_GET_DAEMON => Request::GetDaemons,
            other => return error(format!("unknown IPVS command {other}")),
        })
    }
}

/// One service of an answer to GET_SERVICE (a dump or a single reply; both are NEW_SERVICE).
pub fn decode_service_reply(payload: &[u8]) -> Result<ServiceEntry, WireError> {
    let attrs = reply(payload, CMD_NEW_SERVICE)?;
    let nest = parse(required(&attrs, CMD_ATTR_SERVICE, "service")?)?;
    Ok(ServiceEntry {
        service: decode_service(&nest)?,
        stats: decode_stats(&nest, SVC_ATTR_STATS64, SVC_ATTR_STATS)?,
    })
}

/// One destination of a GET_DEST dump. `family` is the service's: kernels before mixed-family
/// services do not say the destination's own.
pub fn decode_destination_reply(
    payload: &[u8],
    family: Family,
) -> Result<DestinationEntry, WireError> {
    let attrs = reply(payload, CMD_NEW_DEST)?;
    let nest = parse(required(&attrs, CMD_ATTR_DEST, "destination")?)?;
    let counter = |kind, what: &str| -> Result<u32, WireError> {
        find(&nest, kind).map_or(Ok(0), |v| u32_of(v, what))
    };
    Ok(DestinationEntry {
        destination: decode_destination(&nest, family)?,
        active_conns: counter(DEST_ATTR_ACTIVE_CONNS, "active connections")?,
        inactive_conns: counter(DEST_ATTR_INACT_CONNS, "inactive connections")?,
        persistent_conns: counter(DEST_ATTR_PERSIST_CONNS, "persistent connections")?,
        stats: decode_stats(&nest, DEST_ATTR_STATS64, DEST_ATTR_STATS)?,
    })
}

/// One daemon of a GET_DAEMON dump.
pub fn decode_daemon_reply(payload: &[u8]) -> Result<SyncDaemon, WireError> {
    let attrs = reply(payload, CMD_NEW_DAEMON)?;
    decode_daemon_attributes(&parse(required(&attrs, CMD_ATTR_DAEMON, "daemon")?)?)
}

/// The answer to GET_CONFIG. A timeout the kernel leaves out (its protocol is not built in)
/// reads as 0.
pub fn decode_config_reply(payload: &[u8]) -> Result<Timeouts, WireError> {
    decode_timeouts(&reply(payload, CMD_SET_CONFIG)?)
}

/// The answer to GET_INFO.
pub fn decode_info_reply(payload: &[u8]) -> Result<Info, WireError> {
    let attrs = reply(payload, CMD_SET_INFO)?;
    Ok(Info {
        version: u32_of(required(&attrs, INFO_ATTR_VERSION, "version")?, "version")?,
        connection_table_size: u32_of(
            required(&attrs, INFO_ATTR_CONN_TAB_SIZE, "table size")?,
            "table size",
        )?,
    })
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Netlink attributes being built: each a header (length, type; host order), the data, and
/// padding to 4 bytes. A nest is an attribute whose data are attributes; like the kernel's own
/// answers (nla_nest_start_noflag), it does not set NLA_F_NESTED.
#[derive(Default)]
struct Attributes {
    bytes: Vec<u8>,
}

impl Attributes {
    fn put(&mut self, kind: u16, data: &[u8]) {
        // Our attributes are a few dozen bytes: the length always fits.
        let len = (4 + data.len()) as u16;
        self.bytes.extend_from_slice(&len.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes.resize(align(self.bytes.len()), 0);
    }

    fn u8(&mut self, kind: u16, value: u8) {
        self.put(kind, &[value]);
    }

    fn u16(&mut self, kind: u16, value: u16) {
        self.put(kind, &value.to_ne_bytes());
    }

    fn be16(&mut self, kind: u16, value: u16) {
        self.put(kind, &value.to_be_bytes());
    }

    fn u32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_ne_bytes());
    }

    fn nested(&mut self, kind: u16, nest: Attributes) {
        self.put(kind, &nest.bytes);
    }
}

/// genlmsghdr (cmd, version, reserved u16), then the attributes.
fn message(command: u8, attrs: Attributes) -> Vec<u8> {
    let mut bytes = vec![command, VERSION, 0, 0];
    bytes.extend_from_slice(&attrs.bytes);
    bytes
}

fn family_number(family: Family) -> u16 {
    match family {
        Family::V4 => libc::AF_INET as u16,
        Family::V6 => libc::AF_INET6 as u16,
    }
}

fn family_from(number: u16) -> Result<Family, WireError> {
    match i32::from(number) {
        libc::AF_INET => Ok(Family::V4),
        libc::AF_INET6 => Ok(Family::V6),
        _ => error(format!("unknown address family {number}")),
    }
}

/// An address as union nf_inet_addr: 16 bytes, an IPv4 address in the first 4.
fn inet_addr(address: IpAddr) -> [u8; INET_ADDR_LEN] {
    let mut bytes = [0u8; INET_ADDR_LEN];
    match address {
        IpAddr::V4(a) => bytes[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => bytes = a.octets(),
    }
    bytes
}

/// A scheduler or interface name: NUL-terminated, shorter than the kernel's 16-byte buffers.
fn name(text: &str, what: &str) -> Result<Vec<u8>, WireError> {
    if text.is_empty() || text.len() >= NAME_MAX || text.contains('\0') {
        return error(format!(
            "{what} name {text:?} must be 1 to {} bytes without NUL",
            NAME_MAX - 1
        ));
    }
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    Ok(bytes)
}

fn key_attributes(key: &ServiceKey) -> Result<Attributes, WireError> {
    let mut attrs = Attributes::default();
    attrs.u16(SVC_ATTR_AF, family_number(key.family()));
    match key {
        ServiceKey::Address {
            protocol,
            address,
            port,
        } => {
            attrs.u16(SVC_ATTR_PROTOCOL, protocol.number());
            attrs.put(SVC_ATTR_ADDR, &inet_addr(*address));
            attrs.be16(SVC_ATTR_PORT, *port);
        }
        // The kernel takes a mark of 0 for "no mark" and would look the service up by an
        // address it was not given.
        ServiceKey::Fwmark { mark: 0, .. } => return error("firewall mark 0"),
        ServiceKey::Fwmark { mark, .. } => attrs.u32(SVC_ATTR_FWMARK, *mark),
    }
    Ok(attrs)
}

fn service_attributes(service: &Service) -> Result<Attributes, WireError> {
    let mut attrs = key_attributes(&service.key)?;
    attrs.put(SVC_ATTR_SCHED_NAME, &name(&service.scheduler, "scheduler")?);
    // struct ip_vs_flags: the mask says which bits to set; all of them, as ipvsadm does, so
    // the service's flags are exactly these (the kernel keeps its HASHED bit itself).
    let mut flags = (service.flags & !Service::HASHED).to_ne_bytes().to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    attrs.put(SVC_ATTR_FLAGS, &flags);
    attrs.u32(SVC_ATTR_TIMEOUT, service.timeout);
    attrs.put(
        SVC_ATTR_NETMASK,
        &netmask(service.key.family(), service.netmask)?,
    );
    Ok(attrs)
}

/// IPv4: the mask in network order (svc->netmask is a __be32). IPv6: the prefix length as a
/// host-order u32 (the kernel casts the same field to a length, 1..=128).
fn netmask(family: Family, prefix: u8) -> Result<[u8; 4], WireError> {
    match family {
        Family::V4 if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            Ok(mask.to_be_bytes())
        }
        Family::V6 if (1..=128).contains(&prefix) => Ok(u32::from(prefix).to_ne_bytes()),
        _ => error(format!("netmask /{prefix} for {family:?}")),
    }
}

fn prefix_of(family: Family, bytes: &[u8]) -> Result<u8, WireError> {
    let raw: [u8; 4] = array(bytes, "netmask")?;
    match family {
        Family::V4 => {
            let mask = u32::from_be_bytes(raw);
            let prefix = mask.leading_ones();
            if mask.checked_shl(prefix).unwrap_or(0) != 0 {
                return error(format!("non-contiguous netmask {}", Ipv4Addr::from(mask)));
            }
            Ok(prefix as u8)
        }
        Family::V6 => match u32::from_ne_bytes(raw) {
            prefix @ 0..=128 => Ok(prefix as u8),
            prefix => error(format!("IPv6 netmask /{prefix}")),
        },
    }
}

fn destination_key_attributes(address: IpAddr, port: u16) -> Attributes {
    let mut attrs = Attributes::default();
    attrs.put(DEST_ATTR_ADDR, &inet_addr(address));
    attrs.be16(DEST_ATTR_PORT, port);
    // Said always: a destination may be of another family than its service (tunnels).
    attrs.u16(DEST_ATTR_ADDR_FAMILY, family_number(Family::of(address)));
    attrs
}

fn destination_attributes(destination: &Destination) -> Attributes {
    let mut attrs = destination_key_attributes(destination.address, destination.port);
    attrs.u32(DEST_ATTR_FWD_METHOD, destination.forwarding.code());
    attrs.u32(DEST_ATTR_WEIGHT, destination.weight);
    attrs.u32(DEST_ATTR_U_THRESH, destination.upper_threshold);
    attrs.u32(DEST_ATTR_L_THRESH, destination.lower_threshold);
    // Only a tunnel has them; kernels before 5.2 do not know them and ignore them.
    if let Forwarding::Tunnel(tunnel) = destination.forwarding {
        attrs.u8(DEST_ATTR_TUN_TYPE, tunnel.kind.number());
        attrs.be16(DEST_ATTR_TUN_PORT, tunnel.port);
        attrs.u16(DEST_ATTR_TUN_FLAGS, tunnel.flags);
    }
    attrs
}

/// The attributes after a generic header: (type, data) each, lengths checked.
fn parse(bytes: &[u8]) -> Result<Attrs<'_>, WireError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    // Fewer than 4 bytes left is padding, as the kernel's nla_for_each_attr reads it.
    while let [l0, l1, t0, t1, body @ ..] = rest {
        let len = usize::from(u16::from_ne_bytes([*l0, *l1]));
        let kind = u16::from_ne_bytes([*t0, *t1]) & NLA_TYPE_MASK;
        let data = len.checked_sub(4).and_then(|n| body.get(..n));
        let Some(data) = data else {
            return error(format!(
                "attribute {kind} claims {len} bytes where {} remain",
                rest.len()
            ));
        };
        out.push((kind, data));
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    Ok(out)
}

fn split(payload: &[u8]) -> Result<(u8, Attrs<'_>), WireError> {
    match payload {
        [command, _version, _, _, attrs @ ..] => Ok((*command, parse(attrs)?)),
        _ => error(format!(
            "{} bytes: shorter than a generic header",
            payload.len()
        )),
    }
}

fn reply(payload: &[u8], expected: u8) -> Result<Attrs<'_>, WireError> {
    let (command, attrs) = split(payload)?;
    if command != expected {
        return error(format!("command {command} where {expected} was expected"));
    }
    Ok(attrs)
}

fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

fn required<'a>(attrs: &[(u16, &'a [u8])], kind: u16, what: &str) -> Result<&'a [u8], WireError> {
    find(attrs, kind).ok_or_else(|| WireError(format!("no {what} attribute")))
}

fn array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], WireError> {
    bytes.try_into().map_err(|_| {
        WireError(format!(
            "{what}: {} bytes where {N} were expected",
            bytes.len()
        ))
    })
}

fn u16_of(bytes: &[u8], what: &str) -> Result<u16, WireError> {
    Ok(u16::from_ne_bytes(array(bytes, what)?))
}

fn be16_of(bytes: &[u8], what: &str) -> Result<u16, WireError> {
    Ok(u16::from_be_bytes(array(bytes, what)?))
}

fn u32_of(bytes: &[u8], what: &str) -> Result<u32, WireError> {
    Ok(u32::from_ne_bytes(array(bytes, what)?))
}

/// A counter of either statistics nest: the 32-bit one mixes u32 and u64 counters.
fn counter_of(bytes: &[u8]) -> Result<u64, WireError> {
    match bytes.len() {
        4 => Ok(u64::from(u32_of(bytes, "counter")?)),
        _ => Ok(u64::from_ne_bytes(array(bytes, "counter")?)),
    }
}

/// A NUL-terminated name; one without its NUL, or empty, is refused rather than trusted.
fn text_of(bytes: &[u8], what: &str) -> Result<String, WireError> {
    match bytes.iter().position(|&b| b == 0) {
        Some(0) | None => error(format!("{what}: not a NUL-terminated name")),
        Some(end) => Ok(String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()),
    }
}

/// An address of `family` out of union nf_inet_addr (an IPv4 one may come as 4 bytes).
fn address_of(family: Family, bytes: &[u8], what: &str) -> Result<IpAddr, WireError> {
    match (family, bytes.len()) {
        (Family::V4, 4..=INET_ADDR_LEN) => {
            let octets: [u8; 4] = array(bytes.get(..4).unwrap_or(&[]), what)?;
            Ok(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        (Family::V6, INET_ADDR_LEN) => Ok(IpAddr::V6(Ipv6Addr::from(array::<16>(bytes, what)?))),
        (_, len) => error(format!("{what}: {len} bytes for an {family:?} address")),
    }
}

fn decode_key(attrs: &[(u16, &[u8])]) -> Result<ServiceKey, WireError> {
    let family = family_from(u16_of(required(attrs, SVC_ATTR_AF, "family")?, "family")?)?;
    if let Some(mark) = find(attrs, SVC_ATTR_FWMARK) {
        return match u32_of(mark, "firewall mark")? {
            0 => error("firewall mark 0"),
            mark => Ok(ServiceKey::Fwmark { family, mark }),
        };
    }
    let number = u16_of(required(attrs, SVC_ATTR_PROTOCOL, "protocol")?, "protocol")?;
    let protocol = Protocol::from_number(number)
        .ok_or_else(|| WireError(format!("unknown protocol {number}")))?;
    Ok(ServiceKey::Address {
        protocol,
        address: address_of(
            family,
            required(attrs, SVC_ATTR_ADDR, "address")?,
            "address",
        )?,
        port: be16_of(required(attrs, SVC_ATTR_PORT, "port")?, "port")?,
    })
}

fn decode_service(attrs: &[(u16, &[u8])]) -> Result<Service, WireError> {
    let key = decode_key(attrs)?;
    let flags: [u8; 8] = array(required(attrs, SVC_ATTR_FLAGS, "flags")?, "flags")?;
    let (flags, _mask) = flags.split_at(4);
    Ok(Service {
        key,
        scheduler: text_of(
            required(attrs, SVC_ATTR_SCHED_NAME, "scheduler")?,
            "scheduler",
        )?,
        flags: u32_of(flags, "flags")? & !Service::HASHED,
        timeout: u32_of(required(attrs, SVC_ATTR_TIMEOUT, "timeout")?, "timeout")?,
        netmask: prefix_of(key.family(), required(attrs, SVC_ATTR_NETMASK, "netmask")?)?,
    })
}

/// The 64-bit counters, or the 32-bit ones from a kernel that has no others.
fn decode_stats(attrs: &[(u16, &[u8])], wide: u16, narrow: u16) -> Result<Stats, WireError> {
    let Some(nest) = find(attrs, wide).or_else(|| find(attrs, narrow)) else {
        return Ok(Stats::default());
    };
    let mut stats = Stats::default();
    for (kind, value) in parse(nest)? {
        let field = match kind {
            STATS_ATTR_CONNS => &mut stats.conns,
            STATS_ATTR_INPKTS => &mut stats.inpkts,
            STATS_ATTR_OUTPKTS => &mut stats.outpkts,
            STATS_ATTR_INBYTES => &mut stats.inbytes,
            STATS_ATTR_OUTBYTES => &mut stats.outbytes,
            STATS_ATTR_CPS => &mut stats.cps,
            STATS_ATTR_INPPS => &mut stats.inpps,
            STATS_ATTR_OUTPPS => &mut stats.outpps,
            STATS_ATTR_INBPS => &mut stats.inbps,
            STATS_ATTR_OUTBPS => &mut stats.outbps,
            // IPVS_STATS_ATTR_PAD, which aligns the u64s, and counters of later kernels.
            _ => continue,
        };
        *field = counter_of(value)?;
    }
    Ok(stats)
}

fn decode_destination_key(
    attrs: &[(u16, &[u8])],
    service_family: Family,
) -> Result<(IpAddr, u16), WireError> {
    let family = match find(attrs, DEST_ATTR_ADDR_FAMILY) {
        Some(value) => family_from(u16_of(value, "destination family")?)?,
        None => service_family,
    };
    let address = required(attrs, DEST_ATTR_ADDR, "destination address")?;
    Ok((
        address_of(family, address, "destination address")?,
        be16_of(required(attrs, DEST_ATTR_PORT, "port")?, "port")?,
    ))
}

fn decode_destination(
    attrs: &[(u16, &[u8])],
    service_family: Family,
) -> Result<Destination, WireError> {
    let (address, port) = decode_destination_key(attrs, service_family)?;
    let u32_attr = |kind, what: &str| u32_of(required(attrs, kind, what)?, what);
    let forwarding = match u32_attr(DEST_ATTR_FWD_METHOD, "forwarding")? & FWD_MASK {
        0 => Forwarding::Masquerade,
        1 => Forwarding::Local,
        2 => {
            let kind = match find(attrs, DEST_ATTR_TUN_TYPE) {
                Some(&[number]) => TunnelKind::from_number(number)
                    .ok_or_else(|| WireError(format!("unknown tunnel type {number}")))?,
                Some(other) => return error(format!("tunnel type of {} bytes", other.len())),
                None => TunnelKind::Ipip,
            };
            let port =
                find(attrs, DEST_ATTR_TUN_PORT).map_or(Ok(0), |v| be16_of(v, "tunnel port"))?;
            let flags =
                find(attrs, DEST_ATTR_TUN_FLAGS).map_or(Ok(0), |v| u16_of(v, "tunnel flags"))?;
            Forwarding::Tunnel(Tunnel { kind, port, flags })
        }
        3 => Forwarding::Route,
        other => return error(format!("forwarding method {other}")),
    };
    Ok(Destination {
        address,
        port,
        forwarding,
        weight: u32_attr(DEST_ATTR_WEIGHT, "weight")?,
        upper_threshold: u32_attr(DEST_ATTR_U_THRESH, "upper threshold")?,
        lower_threshold: u32_attr(DEST_ATTR_L_THRESH, "lower threshold")?,
    })
}

fn decode_state(attrs: &[(u16, &[u8])]) -> Result<SyncState, WireError> {
    let number = u32_of(required(attrs, DAEMON_ATTR_STATE, "state")?, "state")?;
    SyncState::from_number(number).ok_or_else(|| WireError(format!("daemon state {number}")))
}

fn decode_daemon_attributes(attrs: &[(u16, &[u8])]) -> Result<SyncDaemon, WireError> {
    Ok(SyncDaemon {
        state: decode_state(attrs)?,
        interface: text_of(
            required(attrs, DAEMON_ATTR_MCAST_IFN, "interface")?,
            "interface",
        )?,
        sync_id: u32_of(required(attrs, DAEMON_ATTR_SYNC_ID, "sync id")?, "sync id")?,
    })
}

fn decode_timeouts(attrs: &[(u16, &[u8])]) -> Result<Timeouts, WireError> {
    let timeout = |kind, what: &str| find(attrs, kind).map_or(Ok(0), |v| u32_of(v, what));
    Ok(Timeouts {
        tcp: timeout(CMD_ATTR_TIMEOUT_TCP, "tcp timeout")?,
        tcp_fin: timeout(CMD_ATTR_TIMEOUT_TCP_FIN, "tcp fin timeout")?,
        udp: timeout(CMD_ATTR_TIMEOUT_UDP, "udp timeout")?,
    })
}

#[cfg(test)]
mod tests;
