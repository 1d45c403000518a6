//! Announcing a virtual IP on a link at takeover: gratuitous ARP for IPv4 and unsolicited
//! neighbour advertisements for IPv6, so that neighbours (routers, real servers, switches)
//! move their cache entry for the VIP to this box's MAC at once instead of after it expires.
//!
//! Frames are built whole by pure functions ([`arp_frame`], [`na_frame`]) and sent on an
//! AF_PACKET socket bound to the interface. Building the Ethernet frame ourselves, as
//! keepalived and iputils' arping do, means:
//! - the bytes on the wire are exactly the bytes the unit tests check, for both families;
//! - the NA goes out even while the kernel still holds the IPv6 VIP as tentative (DAD), or when
//!   the interface has no usable IPv6 source address: a raw ICMPv6 socket would let the kernel
//!   pick (or refuse) the source address at the worst moment, the takeover;
//! - one socket type, one send path, for both families.
//!
//! The sender is blocking and bounded in count and time; the daemon runs it in
//! `spawn_blocking`.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most frames (or request/reply pairs) one announcement may send: a takeover announces a few
/// times; a larger number is a configuration mistake, not a wish.
pub const MAX_COUNT: u32 = 64;
/// Longest pause between two rounds: keeps one announcement under `MAX_COUNT * MAX_SPACING`.
pub const MAX_SPACING: Duration = Duration::from_secs(10);

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet address of ff02::1 (RFC 2464 §7: 33:33 followed by the low 32 bits).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
/// RFC 4861 §7.1.2: a receiver drops any NA whose hop limit is not 255, the proof that it was
/// not forwarded from another link.
const ND_HOP_LIMIT: u8 = 255;
/// ICMPv6 NA header (type, code, checksum, flags, reserved: 8) + target (16) + option (8).
const NA_ICMP_LEN: usize = 32;
/// Ethernet (14) + IPv6 (40) + the NA.
pub const NA_FRAME_LEN: usize = 14 + 40 + NA_ICMP_LEN;
/// Ethernet (14) + ARP for IPv4 over Ethernet (28). The NIC pads it to the 60-byte minimum.
pub const ARP_FRAME_LEN: usize = 42;
/// IFNAMSIZ less the terminating NUL.
const MAX_INTERFACE_NAME: usize = 15;

/// An Ethernet hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` (the form of /sys/class/net/IF/address and of `ip link`),
    /// surrounding white space allowed.
    pub fn parse(text: &str) -> Option<MacAddr> {
        let mut mac = [0u8; 6];
        let mut parts = text.trim().split(':');
        for byte in mac.iter_mut() {
            let part = parts.next()?;
            // from_str_radix alone would take a sign ("+2").
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(MacAddr(mac))
    }

    /// Neither all zeroes nor a group address: a MAC a neighbour may cache for a unicast IP.
    pub fn is_unicast(&self) -> bool {
        self.0 != [0; 6] && self.0[0] & 1 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The ARP operation of one gratuitous ARP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// Operation 1, the RFC 5227 §3 "ARP Announcement": sender IP = target IP = the VIP,
    /// target MAC all zeroes (RFC 5227 says it is ignored and SHOULD be zero; iputils'
    /// `arping -U` puts ff:ff:ff:ff:ff:ff there, which receivers ignore just the same).
    Request,
    /// Operation 2, what `arping -A` sends: sender IP = target IP = the VIP and target MAC =
    /// sender MAC. Linux only treats a reply as gratuitous when the two MACs are equal.
    Reply,
}

impl ArpOp {
    fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        }
    }
}

/// Which gratuitous ARP forms an IPv4 announcement sends. Some neighbours only learn from
/// requests, others (older Cisco, some Windows) only from replies: `Both` covers every one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ArpForm {
    Request,
    Reply,
    #[default]
    Both,
}

impl ArpForm {
    fn ops(self) -> &'static [ArpOp] {
        match self {
            ArpForm::Request => &[ArpOp::Request],
            ArpForm::Reply => &[ArpOp::Reply],
            ArpForm::Both => &[ArpOp::Request, ArpOp::Reply],
        }
    }
}

/// What to announce, where, how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The interface the VIP lives on (`eth0`).
    pub interface: String,
    /// The VIP: IPv4 gives gratuitous ARP, IPv6 unsolicited neighbour advertisements.
    pub address: IpAddr,
    /// Rounds to send, 1..=[`MAX_COUNT`]. With [`ArpForm::Both`] a round is a request and a
    /// reply, back to back.
    pub count: u32,
    /// Pause between two rounds, at most [`MAX_SPACING`]; none after the last.
    pub spacing: Duration,
    /// IPv4 only: which ARP forms a round sends.
    pub arp_form: ArpForm,
    /// IPv6 only: the NA's router flag. Set it when this box routes for the VIP's link, or
    /// neighbours that took it for a router stop using it as one.
    pub router: bool,
    /// The MAC to announce; `None` takes the interface's own from sysfs.
    pub mac: Option<MacAddr>,
}

impl Announcement {
    /// An announcement with the usual settings: the interface's MAC, both ARP forms, router
    /// flag clear.
    pub fn new(interface: &str, address: IpAddr, count: u32, spacing: Duration) -> Announcement {
        Announcement {
            interface: interface.to_string(),
            address,
            count,
            spacing,
            arp_form: ArpForm::default(),
            router: false,
            mac: None,
        }
    }
}

/// What an announcement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Frames handed to the kernel (requests and replies counted apart).
    pub frames: u32,
    /// The MAC the frames announced.
    pub mac: MacAddr,
    /// The interface's index the socket was bound to.
    pub ifindex: u32,
}

/// A failed announcement: the interface, the operation, and the cause with its errno.
#[derive(Debug)]
pub enum AnnounceError {
    /// The name cannot be an interface (empty, too long, `/`, NUL, `.` or `..`).
    InterfaceName { interface: String },
    /// The address cannot be announced (unspecified, multicast, broadcast, loopback).
    Address { interface: String, address: IpAddr },
    /// `count` is 0 or over [`MAX_COUNT`], or `spacing` over [`MAX_SPACING`].
    Bounds {
        interface: String,
        count: u32,
        spacing: Duration,
    },
    /// Reading the interface's MAC from sysfs failed.
    ReadMac {
        interface: String,
        path: PathBuf,
        source: io::Error,
    },
    /// The interface has no usable Ethernet address (not Ethernet-like, or all zeroes).
    NoMac {
        interface: String,
        path: PathBuf,
        text: String,
    },
    /// A MAC was given that is zero or a group address.
    BadMac { interface: String, mac: MacAddr },
    /// if_nametoindex failed: usually the interface does not exist (ENODEV).
    InterfaceIndex {
        interface: String,
        source: io::Error,
    },
    /// socket(AF_PACKET, SOCK_RAW) failed: usually no CAP_NET_RAW (EPERM).
    Socket {
        interface: String,
        source: io::Error,
    },
    /// bind to the interface's index failed.
    Bind {
        interface: String,
        source: io::Error,
    },
    /// sendto failed (ENETDOWN when the link is down, ENOBUFS when its queue is full), or
    /// the kernel took less than the whole frame.
    Send {
        interface: String,
        address: IpAddr,
        frame: u32,
        source: io::Error,
    },
}

impl AnnounceError {
    /// The errno behind the failure, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            AnnounceError::ReadMac { source, .. }
            | AnnounceError::InterfaceIndex { source, .. }
            | AnnounceError::Socket { source, .. }
            | AnnounceError::Bind { source, .. }
            | AnnounceError::Send { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnounceError::InterfaceName { interface } => {
                write!(f, "announce: {interface:?} is not a valid interface name")
            }
            AnnounceError::Address { interface, address } => {
                write!(f, "announce on {interface}: {address} cannot be announced")
            }
            AnnounceError::Bounds {
                interface,
                count,
                spacing,
            } => write!(
                f,
                "announce on {interface}: count {count} spaced {spacing:?} is out of bounds \
                 (1..={MAX_COUNT}, at most {MAX_SPACING:?})"
            ),
            AnnounceError::ReadMac {
                interface,
                path,
                source,
            } => write!(
                f,
                "announce on {interface}: read MAC from {}: {source}",
                path.display()
            ),
            AnnounceError::NoMac {
                interface,
                path,
                text,
            } => write!(
                f,
                "announce on {interface}: no Ethernet address in {} ({:?})",
                path.display(),
                text.trim()
            ),
            AnnounceError::BadMac { interface, mac } => {
                write!(f, "announce on {interface}: {mac} is not a unicast MAC")
            }
            AnnounceError::InterfaceIndex { interface, source } => {
                write!(f, "announce on {interface}: interface index: {source}")
            }
            AnnounceError::Socket { interface, source } => {
                write!(f, "announce on {interface}: open packet socket: {source}")
            }
            AnnounceError::Bind { interface, source } => {
                write!(f, "announce on {interface}: bind packet socket: {source}")
            }
            AnnounceError::Send {
                interface,
                address,
                frame,
                source,
            } => write!(
                f,
                "announce {address} on {interface}: send frame {frame}: {source}"
            ),
        }
    }
}

impl std::error::Error for AnnounceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AnnounceError::ReadMac { source, .. }
            | AnnounceError::InterfaceIndex { source, .. }
            | AnnounceError::Socket { source, .. }
            | AnnounceError::Bind { source, .. }
            | AnnounceError::Send { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A gratuitous ARP frame for `vip` from `mac`, Ethernet broadcast, in the form `op`.
pub fn arp_frame(op: ArpOp, mac: MacAddr, vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    // Ethernet: broadcast, so every neighbour on the segment sees it.
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // ARP: hardware Ethernet (1), protocol IPv4, address lengths 6 and 4.
    f[14..16].copy_from_slice(&1u16.to_be_bytes());
    f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&op.code().to_be_bytes());
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&vip.octets());
    let target_mac = match op {
        ArpOp::Request => [0u8; 6],
        ArpOp::Reply => mac.0,
    };
    f[32..38].copy_from_slice(&target_mac);
    f[38..42].copy_from_slice(&vip.octets());
    f
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `vip` from `mac`, to all
/// nodes (ff02::1), override set, solicited clear, router as given, with the target
/// link-layer address option.
///
/// The IPv6 source is the VIP itself, as the Linux kernel does for its own unsolicited NAs
/// (`ndisc_send_na` uses the target as source) and keepalived does: it is an address of the
/// interface once the VIP is up (RFC 4861 §7.2.2 asks no more), and it needs no look-up of
/// the link-local address, which a box may not have (addr_gen_mode none). The daemon adds
/// VIPs with IFA_F_NODAD so that the source is not a tentative address.
pub fn na_frame(mac: MacAddr, vip: Ipv6Addr, router: bool) -> Vec<u8> {
    let mut f = vec![0u8; NA_FRAME_LEN];
    f[0..6].copy_from_slice(&ALL_NODES_MAC);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    // IPv6: version 6, traffic class and flow label 0.
    f[14] = 0x60;
    f[18..20].copy_from_slice(&(NA_ICMP_LEN as u16).to_be_bytes());
    f[20] = IPPROTO_ICMPV6;
    f[21] = ND_HOP_LIMIT;
    f[22..38].copy_from_slice(&vip.octets());
    f[38..54].copy_from_slice(&ALL_NODES.octets());
    // ICMPv6 NA: checksum (56..58) filled in last.
    f[54] = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
    f[55] = 0;
    // Override so that neighbours replace the old box's MAC; never solicited, which a
    // receiver drops when sent to a multicast address (RFC 4861 §7.1.2).
    f[58] = NA_FLAG_OVERRIDE | if router { NA_FLAG_ROUTER } else { 0 };
    f[62..78].copy_from_slice(&vip.octets());
    f[78] = ND_OPT_TARGET_LINK_LAYER_ADDRESS;
    f[79] = 1; // length in units of 8 octets
    f[80..86].copy_from_slice(&mac.0);
    let checksum = icmpv6_checksum(&vip, &ALL_NODES, &f[54..]);
    f[56..58].copy_from_slice(&checksum.to_be_bytes());
    f
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `message`, whose checksum field is zero: the
/// one's complement of the one's complement sum over the RFC 8200 §8.1 pseudo-header
/// (source, destination, upper-layer length, next header) and the message.
fn icmpv6_checksum(source: &Ipv6Addr, destination: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let high = u64::from(pair[0]) << 8;
            let low = pair.get(1).copied().map_or(0, u64::from);
            sum += high | low;
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends the announcement: `count` rounds `spacing` apart on `a.interface`, taking the MAC
/// from `<sysfs>/class/net/<interface>/address` unless `a.mac` gives one. Blocks for about
/// `(count - 1) * spacing`; stops at the first failure, which names the frame.
pub fn announce(a: &Announcement, sysfs: &Path) -> Result<Sent, AnnounceError> {
    announce_while(a, sysfs, || true)
}

/// `announce`, with the rounds after the first sent only while `go_on` says so (a node that
/// has released the VIP since must not claim it again).
pub fn announce_while(
    a: &Announcement,
    sysfs: &Path,
    go_on: impl Fn() -> bool,
) -> Result<Sent, AnnounceError> {
    let interface = a.interface.as_str();
    validate(a)?;
    let mac = match a.mac {
        Some(mac) if mac.is_unicast() => mac,
        Some(mac) => {
            return Err(AnnounceError::BadMac {
                interface: interface.to_string(),
                mac,
            })
        }
        None => interface_mac(interface, sysfs)?,
    };
    let ifindex = interface_index(interface)?;
    let socket = PacketSocket::bind(interface, ifindex)?;

    let frames: Vec<(u16, [u8; 6], Vec<u8>)> = match a.address {
        IpAddr::V4(vip) => a
            .arp_form
            .ops()
            .iter()
            .map(|&op| (ETHERTYPE_ARP, BROADCAST, arp_frame(op, mac, vip).to_vec()))
            .collect(),
        IpAddr::V6(vip) => vec![(ETHERTYPE_IPV6, ALL_NODES_MAC, na_frame(mac, vip, a.router))],
    };

    let mut sent = 0u32;
    for round in 0..a.count {
        if round > 0 {
            std::thread::sleep(a.spacing);
            if !go_on() {
                break;
            }
        }
        for (ethertype, destination, frame) in &frames {
            socket
                .send(frame, *ethertype, destination)
                .map_err(|source| AnnounceError::Send {
                    interface: interface.to_string(),
                    address: a.address,
                    frame: sent + 1,
                    source,
                })?;
            sent += 1;
        }
    }
    Ok(Sent {
        frames: sent,
        mac,
        ifindex,
    })
}

/// Announcing, as the HA executor asks for it: the kernel implementation and a recording fake
/// share the checks, so the executor is tested without root.
pub trait Announcer: Send + Sync {
    fn announce(&self, a: &Announcement) -> Result<Sent, AnnounceError>;
}

/// The real announcer: packet sockets, MACs from the sysfs under `sysfs` (`/sys` on the box).
#[derive(Clone, Debug)]
pub struct KernelAnnouncer {
    pub sysfs: PathBuf,
}

impl Announcer for KernelAnnouncer {
    fn announce(&self, a: &Announcement) -> Result<Sent, AnnounceError> {
        announce(a, &self.sysfs)
    }
}

/// A fake that knows some interfaces and their MACs, refuses what `announce` refuses (an
/// unknown interface with ENODEV), sends nothing, and records every announcement it accepted.
#[cfg(test)]
#[derive(Default)]
pub struct FakeAnnouncer {
    pub interfaces: Vec<(String, MacAddr)>,
    pub announced: std::sync::Mutex<Vec<Announcement>>,
}

#[cfg(test)]
impl Announcer for FakeAnnouncer {
    fn announce(&self, a: &Announcement) -> Result<Sent, AnnounceError> {
        validate(a)?;
        let position = self
            .interfaces
            .iter()
            .position(|(name, _)| *name == a.interface);
        let Some(position) = position else {
            return Err(AnnounceError::InterfaceIndex {
                interface: a.interface.clone(),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            });
        };
        let mac = a.mac.unwrap_or(self.interfaces[position].1);
        let per_round = match a.address {
            IpAddr::V4(_) => a.arp_form.ops().len() as u32,
            IpAddr::V6(_) => 1,
        };
        if let Ok(mut announced) = self.announced.lock() {
            announced.push(a.clone());
        }
        Ok(Sent {
            frames: a.count * per_round,
            mac,
            ifindex: position as u32 + 1,
        })
    }
}

/// Refuses, before touching the system, what cannot be meant: a name the kernel would not
/// give an interface (its dev_valid_name rules; `eth0:1` is an address label, not an
/// interface) and that could escape the sysfs directory, an address no neighbour caches, an
/// unbounded run.
fn validate(a: &Announcement) -> Result<(), AnnounceError> {
    let name = a.interface.as_str();
    if name.is_empty()
        || name.len() > MAX_INTERFACE_NAME
        || name == "."
        || name == ".."
        || name.contains(['/', ':', '\0'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(AnnounceError::InterfaceName {
            interface: name.to_string(),
        });
    }
    let announceable = match a.address {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_loopback())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast() || v6.is_loopback()),
    };
    if !announceable {
        return Err(AnnounceError::Address {
            interface: name.to_string(),
            address: a.address,
        });
    }
    if a.count == 0 || a.count > MAX_COUNT || a.spacing > MAX_SPACING {
        return Err(AnnounceError::Bounds {
            interface: name.to_string(),
            count: a.count,
            spacing: a.spacing,
        });
    }
    Ok(())
}

/// The interface's MAC as sysfs reports it.
pub fn interface_mac(interface: &str, sysfs: &Path) -> Result<MacAddr, AnnounceError> {
    let path = sysfs.join("class/net").join(interface).join("address");
    let text = std::fs::read_to_string(&path).map_err(|source| AnnounceError::ReadMac {
        interface: interface.to_string(),
        path: path.clone(),
        source,
    })?;
    match MacAddr::parse(&text) {
        Some(mac) if mac.is_unicast() => Ok(mac),
        _ => Err(AnnounceError::NoMac {
            interface: interface.to_string(),
            path,
            text,
        }),
    }
}

fn interface_index(interface: &str) -> Result<u32, AnnounceError> {
    let name = CString::new(interface).map_err(|_| AnnounceError::InterfaceName {
        interface: interface.to_string(),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(AnnounceError::InterfaceIndex {
            interface: interface.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(index)
}

/// Turns the -1 of a failed system call into the errno it left.
fn syscall<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A send-only AF_PACKET socket on one interface.
struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    fn bind(interface: &str, ifindex: u32) -> Result<PacketSocket, AnnounceError> {
        let ifindex_c = i32::try_from(ifindex).map_err(|_| AnnounceError::InterfaceIndex {
            interface: interface.to_string(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        // Protocol 0: the socket receives nothing, so no frame queues up in it while it
        // only sends.
        // SAFETY: plain system call with constant arguments; no memory is passed.
        let raw = syscall(unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })
        .map_err(|source| AnnounceError::Socket {
            interface: interface.to_string(),
            source,
        })?;
        // SAFETY: `raw` is a descriptor socket() just returned; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let address = link_address(ifindex_c, 0, &[0; 6]);
        // SAFETY: `address` is a fully initialised sockaddr_ll and the length passed is its
        // size; the kernel only reads it.
        syscall(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(|source| AnnounceError::Bind {
            interface: interface.to_string(),
            source,
        })?;
        Ok(PacketSocket {
            fd,
            ifindex: ifindex_c,
        })
    }

    /// Sends one whole Ethernet frame. The address repeats the ethertype so that the kernel
    /// tags the frame with the right protocol (the socket was bound with none).
    fn send(&self, frame: &[u8], ethertype: u16, destination: &[u8; 6]) -> io::Result<()> {
        let address = link_address(self.ifindex, ethertype, destination);
        // A signal may interrupt a blocking send; a few retries are enough, an endless loop
        // is never wanted.
        for _ in 0..3 {
            // SAFETY: `frame` is valid for `frame.len()` bytes and `address` is a fully
            // initialised sockaddr_ll of the length passed; the kernel only reads both.
            let result = syscall(unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast::<libc::c_void>(),
                    frame.len(),
                    0,
                    (&address as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            });
            match result {
                Ok(n) if n as usize == frame.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("sent {n} of {} bytes", frame.len()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EINTR))
    }
}

fn link_address(ifindex: i32, ethertype: u16, destination: &[u8; 6]) -> libc::sockaddr_ll {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(destination);
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ethertype.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    const MAC: MacAddr = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    fn vip6() -> Ipv6Addr {
        "2001:db8::10".parse().unwrap()
    }

    fn be16(bytes: &[u8]) -> u16 {
        u16::from_be_bytes([bytes[0], bytes[1]])
    }

    /// Checks every byte common to both ARP forms.
    fn check_arp_common(f: &[u8; 42], op: u16) {
        assert_eq!(&f[0..6], &[0xff; 6], "Ethernet destination is broadcast");
        assert_eq!(&f[6..12], &MAC.0, "Ethernet source is the sender MAC");
        assert_eq!(be16(&f[12..14]), 0x0806, "ethertype ARP");
        assert_eq!(be16(&f[14..16]), 1, "hardware type Ethernet");
        assert_eq!(be16(&f[16..18]), 0x0800, "protocol type IPv4");
        assert_eq!(f[18], 6, "hardware address length");
        assert_eq!(f[19], 4, "protocol address length");
        assert_eq!(be16(&f[20..22]), op, "operation");
        assert_eq!(&f[22..28], &MAC.0, "sender hardware address");
        assert_eq!(
            &f[28..32],
            &[192, 0, 2, 10],
            "sender protocol address is the VIP"
        );
        assert_eq!(
            &f[38..42],
            &[192, 0, 2, 10],
            "target protocol address is the VIP"
        );
    }

    #[test]
    fn arp_request_form_is_an_rfc5227_announcement() {
        let f = arp_frame(ArpOp::Request, MAC, VIP4);
        check_arp_common(&f, 1);
        assert_eq!(&f[32..38], &[0; 6], "target hardware address zero");
    }

    #[test]
    fn arp_reply_form_is_what_arping_a_sends() {
        let f = arp_frame(ArpOp::Reply, MAC, VIP4);
        check_arp_common(&f, 2);
        assert_eq!(&f[32..38], &MAC.0, "target hardware address = sender's");
    }

    #[test]
    fn arp_frame_is_exactly_these_bytes() {
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
            192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 192, 0, 2, 10,
        ];
        assert_eq!(arp_frame(ArpOp::Request, MAC, VIP4), expected);
    }

    /// The one's complement sum of the pseudo-header and the message, written apart from
    /// the module's: summing 16-bit words of one concatenated buffer with 32-bit carries.
    fn independent_sum(frame: &[u8]) -> u16 {
        let mut buffer = Vec::new();
        buffer.extend_from_slice(&frame[22..38]); // source
        buffer.extend_from_slice(&frame[38..54]); // destination
        let length = frame.len() as u32 - 54;
        buffer.extend_from_slice(&length.to_be_bytes());
        buffer.extend_from_slice(&[0, 0, 0, 58]);
        buffer.extend_from_slice(&frame[54..]);
        if buffer.len() % 2 == 1 {
            buffer.push(0);
        }
        let mut sum: u32 = 0;
        for i in (0..buffer.len()).step_by(2) {
            sum = sum.wrapping_add(u32::from(buffer[i]) * 256 + u32::from(buffer[i + 1]));
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn na_frame_fields_flags_and_option() {
        let f = na_frame(MAC, vip6(), false);
        assert_eq!(f.len(), 86);
        // Ethernet
        assert_eq!(
            &f[0..6],
            &[0x33, 0x33, 0, 0, 0, 1],
            "all-nodes multicast MAC"
        );
        assert_eq!(&f[6..12], &MAC.0);
        assert_eq!(be16(&f[12..14]), 0x86dd);
        // IPv6
        assert_eq!(f[14] >> 4, 6, "version");
        assert_eq!(
            u32::from_be_bytes([f[14], f[15], f[16], f[17]]) & 0x0fff_ffff,
            0,
            "traffic class and flow label"
        );
        assert_eq!(be16(&f[18..20]), 32, "payload length");
        assert_eq!(f[20], 58, "next header ICMPv6");
        assert_eq!(f[21], 255, "hop limit");
        assert_eq!(&f[22..38], &vip6().octets(), "source is the VIP");
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(&f[38..54], &all_nodes.octets(), "destination ff02::1");
        // ICMPv6 NA
        assert_eq!(f[54], 136, "type neighbour advertisement");
        assert_eq!(f[55], 0, "code");
        assert_eq!(f[58] & 0x80, 0, "router clear");
        assert_eq!(f[58] & 0x40, 0, "solicited clear");
        assert_eq!(f[58] & 0x20, 0x20, "override set");
        assert_eq!(f[58] & 0x1f, 0, "reserved bits");
        assert_eq!(&f[59..62], &[0, 0, 0], "reserved");
        assert_eq!(&f[62..78], &vip6().octets(), "target");
        // Target link-layer address option
        assert_eq!(f[78], 2, "option type");
        assert_eq!(f[79], 1, "option length in 8-octet units");
        assert_eq!(&f[80..86], &MAC.0, "option MAC");
    }

    #[test]
    fn na_router_flag_as_given() {
        let f = na_frame(MAC, vip6(), true);
        assert_eq!(f[58], 0x80 | 0x20);
        assert_eq!(independent_sum(&f), 0xffff);
    }

    #[test]
    fn na_checksum_matches_an_independent_computation() {
        for vip in [
            "2001:db8::10",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::1",
        ] {
            let vip: Ipv6Addr = vip.parse().unwrap();
            let f = na_frame(MAC, vip, false);
            // A correct checksum makes the sum over everything, itself included, 0xffff.
            assert_eq!(independent_sum(&f), 0xffff, "{vip}");
            // And it equals the complement of the sum with the field zeroed.
            let mut zeroed = f.clone();
            zeroed[56..58].copy_from_slice(&[0, 0]);
            assert_eq!(be16(&f[56..58]), !independent_sum(&zeroed), "{vip}");
        }
    }

    #[test]
    fn checksum_of_an_odd_length_message_pads_with_zero() {
        // By hand: pseudo-header words 0x0000 (addresses), 0x0000 0x0001 (length 1),
        // 0x0000 0x003a (next header); the message 0x01 padded to 0x0100.
        // Sum 0x013b, complement 0xfec4.
        let zero = Ipv6Addr::UNSPECIFIED;
        assert_eq!(icmpv6_checksum(&zero, &zero, &[1]), 0xfec4);
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(MacAddr::parse("02:11:22:33:44:55\n"), Some(MAC));
        assert_eq!(MacAddr::parse("02:11:22:33:44"), None);
        assert_eq!(MacAddr::parse("02:11:22:33:44:55:66"), None);
        assert_eq!(MacAddr::parse("02:11:22:33:44:5"), None);
        assert_eq!(MacAddr::parse("02:11:22:33:44:zz"), None);
        assert_eq!(MacAddr::parse("+2:11:22:33:44:55"), None);
        assert_eq!(MacAddr::parse(""), None);
        assert_eq!(MacAddr::parse("é"), None);
        assert_eq!(MAC.to_string(), "02:11:22:33:44:55");
        assert!(!MacAddr([0; 6]).is_unicast());
        assert!(!MacAddr([1, 0, 0, 0, 0, 0]).is_unicast());
    }

    #[test]
    fn mac_comes_from_sysfs_root() {
        let dir = Scratch::new("announce-sysfs");
        let net = dir.path().join("class/net/eth7");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("address"), "02:11:22:33:44:55\n").unwrap();
        assert_eq!(interface_mac("eth7", dir.path()).unwrap(), MAC);

        std::fs::write(net.join("address"), "00:00:00:00:00:00\n").unwrap();
        let e = interface_mac("eth7", dir.path()).unwrap_err();
        assert!(matches!(e, AnnounceError::NoMac { .. }), "{e}");
        assert!(e.to_string().contains("eth7"), "{e}");

        let e = interface_mac("eth8", dir.path()).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().contains("eth8"), "{e}");
    }

    #[test]
    fn refuses_before_touching_the_system() {
        let dir = Scratch::new("announce-refuse");
        let good = Announcement::new("eth0", VIP4.into(), 3, Duration::from_millis(10));
        let cases = [
            Announcement {
                interface: String::new(),
                ..good.clone()
            },
            Announcement {
                interface: "../../etc".into(),
                ..good.clone()
            },
            Announcement {
                interface: "a-very-long-interface".into(),
                ..good.clone()
            },
            Announcement {
                interface: "eth\0".into(),
                ..good.clone()
            },
            Announcement {
                address: Ipv4Addr::UNSPECIFIED.into(),
                ..good.clone()
            },
            Announcement {
                address: Ipv4Addr::BROADCAST.into(),
                ..good.clone()
            },
            Announcement {
                address: "ff02::1".parse().unwrap(),
                ..good.clone()
            },
            Announcement {
                count: 0,
                ..good.clone()
            },
            Announcement {
                count: MAX_COUNT + 1,
                ..good.clone()
            },
            Announcement {
                spacing: Duration::from_secs(3600),
                ..good.clone()
            },
            Announcement {
                mac: Some(MacAddr([0xff; 6])),
                ..good.clone()
            },
        ];
        for case in &cases {
            let e = announce(case, dir.path()).unwrap_err();
            assert!(
                !matches!(
                    e,
                    AnnounceError::ReadMac { .. } | AnnounceError::InterfaceIndex { .. }
                ),
                "{case:?} got past validation: {e}"
            );
        }
        // A valid request with no sysfs entry fails on reading the MAC, naming it.
        let e = announce(&good, dir.path()).unwrap_err();
        assert!(matches!(e, AnnounceError::ReadMac { .. }), "{e}");
        assert!(e.to_string().contains("eth0"), "{e}");
    }

    #[test]
    fn missing_interface_is_enodev() {
        let a = Announcement {
            mac: Some(MAC),
            ..Announcement::new("nosuchif9", VIP4.into(), 1, Duration::ZERO)
        };
        let e = announce(&a, Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(e, AnnounceError::InterfaceIndex { .. }), "{e}");
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert!(e.to_string().contains("nosuchif9"), "{e}");
    }

    #[test]
    fn fake_announcer_records_and_refuses_like_the_kernel_one() {
        let fake = FakeAnnouncer {
            interfaces: vec![("eth0".into(), MAC)],
            ..FakeAnnouncer::default()
        };
        let a = Announcement::new("eth0", VIP4.into(), 3, Duration::from_millis(10));
        let sent = fake.announce(&a).unwrap();
        assert_eq!((sent.frames, sent.mac, sent.ifindex), (6, MAC, 1));
        let e = fake
            .announce(&Announcement::new("eth1", VIP4.into(), 1, Duration::ZERO))
            .unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        let e = fake
            .announce(&Announcement::new("eth0:1", VIP4.into(), 1, Duration::ZERO))
            .unwrap_err();
        assert!(matches!(e, AnnounceError::InterfaceName { .. }), "{e}");
        assert_eq!(*fake.announced.lock().unwrap(), vec![a]);
    }

    #[test]
    fn syscall_helper_maps_minus_one_only() {
        assert_eq!(syscall(3i32).unwrap(), 3);
        assert_eq!(syscall(0isize).unwrap(), 0);
        assert!(syscall(-1i32).is_err());
    }
}
