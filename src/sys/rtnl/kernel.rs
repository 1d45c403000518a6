//! The kernel side of `Rtnl`: a NETLINK_ROUTE socket. Every change asks for an ACK and waits
//! for it; every dump is read to NLMSG_DONE; a refusal keeps its errno. Messages are built and
//! read here byte by byte (the layouts of linux/netlink.h, rtnetlink.h, if_link.h,
//! if_addr.h, neighbour.h), with every length checked: nothing the kernel sends can make
//! this code index out of bounds.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Address, Link, LinkEvent, Neighbour, Route, Rtnl, RtnlError};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

const RTMGRP_LINK: u32 = 1;

const HEADER: usize = 16;

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A netlink message being built: header, family header, attributes.
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, family_header: &[u8]) -> Message {
        let mut bytes = vec![0u8; HEADER];
        bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
        bytes[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        bytes.extend_from_slice(family_header);
        bytes.resize(align(bytes.len()), 0);
        Message { bytes }
    }

    fn attribute(mut self, kind: u16, data: &[u8]) -> Message {
        let len = 4 + data.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(data);
        self.bytes.resize(align(self.bytes.len()), 0);
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.bytes
    }
}

/// One message received: its type and its payload (after the netlink header).
struct Received<'a> {
    kind: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Splits a datagram into its messages; a truncated tail ends the walk.
fn messages(buffer: &[u8]) -> Vec<Received<'_>> {
    let mut out = Vec::new();
    let mut rest = buffer;
    while rest.len() >= HEADER {
        let len = u32_at(rest, 0).unwrap_or(0) as usize;
        if len < HEADER || len > rest.len() {
            break;
        }
        out.push(Received {
            kind: u16_at(rest, 4).unwrap_or(0),
            seq: u32_at(rest, 8).unwrap_or(0),
            payload: &rest[HEADER..len],
        });
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    out
}

/// The attributes after a family header of `skip` bytes.
fn attributes(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = payload.get(align(skip)..).unwrap_or(&[]);
    while rest.len() >= 4 {
        let len = u16_at(rest, 0).unwrap_or(0) as usize;
        let kind = u16_at(rest, 2).unwrap_or(0) & 0x3fff;
        if len < 4 || len > rest.len() {
            break;
        }
        out.push((kind, &rest[4..len]));
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    out
}

fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A string attribute: up to its NUL, lossily decoded (an empty one is empty, not a panic).
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn ip(family: u8, bytes: &[u8]) -> Option<IpAddr> {
    match (i32::from(family), bytes.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        (libc::AF_INET6, 16) => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

fn mac(bytes: &[u8]) -> Option<[u8; 6]> {
    bytes.try_into().ok()
}

fn family_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// -1 from a system call as the error it means.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// A NETLINK_ROUTE socket, subscribed to `groups`.
fn open_socket(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut kind = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
    if nonblocking {
        kind |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = check(unsafe { libc::socket(libc::AF_NETLINK, kind, libc::NETLINK_ROUTE) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value before the fields are set.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups = groups;
    // SAFETY: `address` is a valid sockaddr_nl and its size is passed with it.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn receive(fd: RawFd, buffer: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the buffer is valid for writes of its length for the duration of the call.
    let n = unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// rtnetlink on a socket of its own.
pub struct KernelRtnl {
    fd: OwnedFd,
    seq: u32,
    buffer: Vec<u8>,
}

impl KernelRtnl {
    pub fn open() -> Result<KernelRtnl, RtnlError> {
        let fd = open_socket(0, false).map_err(|e| {
            RtnlError::new("open a rtnetlink socket", e.raw_os_error(), e.to_string())
        })?;
        Ok(KernelRtnl {
            fd,
            seq: 0,
            buffer: vec![0u8; 64 * 1024],
        })
    }

    fn send(&mut self, message: Message, operation: &str) -> Result<u32, RtnlError> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = message.finish(self.seq);
        // SAFETY: `bytes` is valid for reads of its length; the socket is ours.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            return Err(RtnlError::new(operation, e.raw_os_error(), e.to_string()));
        }
        Ok(self.seq)
    }

    /// Sends a change and waits for its ACK (or its refusal).
    fn change(&mut self, message: Message, operation: &str, fine: &[i32]) -> Result<(), RtnlError> {
        let seq = self.send(message, operation)?;
        loop {
            let n = receive(self.fd.as_raw_fd(), &mut self.buffer, 0)
                .map_err(|e| RtnlError::new(operation, e.raw_os_error(), e.to_string()))?;
            for message in messages(&self.buffer[..n]) {
                if message.seq != seq || message.kind != NLMSG_ERROR {
                    continue;
                }
                let code = i32_at(message.payload, 0).unwrap_or(-libc::EPROTO);
                if code == 0 || fine.contains(&-code) {
                    return Ok(());
                }
                return Err(RtnlError::new(operation, Some(-code), errno_text(-code)));
            }
        }
    }

    /// Sends a dump request and reads every message of it to NLMSG_DONE.
    fn dump(
        &mut self,
        message: Message,
        operation: &str,
    ) -> Result<Vec<(u16, Vec<u8>)>, RtnlError> {
        let seq = self.send(message, operation)?;
        let mut out = Vec::new();
        loop {
            let n = receive(self.fd.as_raw_fd(), &mut self.buffer, 0)
                .map_err(|e| RtnlError::new(operation, e.raw_os_error(), e.to_string()))?;
            let mut done = false;
            let mut failed = None;
            for message in messages(&self.buffer[..n]) {
                if message.seq != seq {
                    continue;
                }
                match message.kind {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let code = i32_at(message.payload, 0).unwrap_or(-libc::EPROTO);
                        if code != 0 {
                            failed = Some(-code);
                        }
                        done = true;
                    }
                    kind => out.push((kind, message.payload.to_vec())),
                }
            }
            // The rest of the datagram was read either way: the socket stays clean.
            if let Some(errno) = failed {
                return Err(RtnlError::new(operation, Some(errno), errno_text(errno)));
            }
            if done {
                return Ok(out);
            }
        }
    }

    fn index_text(&mut self, index: u32) -> String {
        match self.links() {
            Ok(links) => links
                .into_iter()
                .find(|l| l.index == index)
                .map(|l| l.name)
                .unwrap_or_else(|| format!("interface #{index}")),
            Err(_) => format!("interface #{index}"),
        }
    }
}

fn ifinfomsg(family: u8, index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut header = [0u8; 16];
    header[0] = family;
    header[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    header[8..12].copy_from_slice(&flags.to_ne_bytes());
    header[12..16].copy_from_slice(&change.to_ne_bytes());
    header
}

fn parse_link(payload: &[u8]) -> Option<Link> {
    let index = i32_at(payload, 4)?;
    let flags = u32_at(payload, 8)?;
    let attrs = attributes(payload, 16);
    Some(Link {
        index: u32::try_from(index).ok()?,
        name: find(&attrs, IFLA_IFNAME).map(text).unwrap_or_default(),
        mtu: find(&attrs, IFLA_MTU)
            .and_then(|v| u32_at(v, 0))
            .unwrap_or(0),
        up: flags & IFF_UP != 0,
        carrier: flags & IFF_LOWER_UP != 0,
        mac: find(&attrs, IFLA_ADDRESS).and_then(mac),
    })
}

/// IFA_F_NODAD: no duplicate address detection.
const IFA_F_NODAD: u8 = 0x02;

fn ifaddrmsg(address: &Address) -> [u8; 8] {
    let mut header = [0u8; 8];
    header[0] = family_of(address.addr);
    header[1] = address.prefix_len;
    // An IPv6 host address is a VIP moving between the pair's boxes: the peer may still answer
    // for it during a takeover, which would fail DAD and leave the VIP dead.
    if address.addr.is_ipv6() && address.prefix_len == 128 {
        header[2] = IFA_F_NODAD;
    }
    header[3] = RT_SCOPE_UNIVERSE;
    header[4..8].copy_from_slice(&address.index.to_ne_bytes());
    header
}

fn parse_address(payload: &[u8]) -> Option<Address> {
    let family = *payload.first()?;
    let prefix_len = *payload.get(1)?;
    let index = u32_at(payload, 4)?;
    let attrs = attributes(payload, 8);
    // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links (and
    // the only one IPv6 sends).
    let addr = find(&attrs, IFA_LOCAL)
        .or_else(|| find(&attrs, IFA_ADDRESS))
        .and_then(|bytes| ip(family, bytes))?;
    Some(Address {
        index,
        addr,
        prefix_len,
        label: find(&attrs, IFA_LABEL).map(text),
    })
}

fn rtmsg(family: u8, dst_len: u8, protocol: u8, scope: u8) -> [u8; 12] {
    let mut header = [0u8; 12];
    header[0] = family;
    header[1] = dst_len;
    header[4] = RT_TABLE_MAIN;
    header[5] = protocol;
    header[6] = scope;
    header[7] = RTN_UNICAST;
    header
}

fn parse_route(payload: &[u8]) -> Option<Route> {
    let family = *payload.first()?;
    let prefix_len = *payload.get(1)?;
    let table = *payload.get(4)?;
    let protocol = *payload.get(5)?;
    let kind = *payload.get(7)?;
    let attrs = attributes(payload, 12);
    let table = find(&attrs, RTA_TABLE)
        .and_then(|v| u32_at(v, 0))
        .unwrap_or(u32::from(table));
    if table != u32::from(RT_TABLE_MAIN) || kind != RTN_UNICAST {
        return None;
    }
    let destination = match find(&attrs, RTA_DST) {
        Some(bytes) => ip(family, bytes)?,
        None => match i32::from(family) {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        },
    };
    Some(Route {
        destination,
        prefix_len,
        gateway: find(&attrs, RTA_GATEWAY).and_then(|bytes| ip(family, bytes)),
        device: find(&attrs, RTA_OIF).and_then(|v| u32_at(v, 0)),
        protocol,
    })
}

fn route_message(kind: u16, flags: u16, route: &Route, scope: u8, protocol: u8) -> Message {
    let family = family_of(route.destination);
    let mut message = Message::new(
        kind,
        flags,
        &rtmsg(family, route.prefix_len, protocol, scope),
    );
    if route.prefix_len > 0 {
        message = message.attribute(RTA_DST, &octets(route.destination));
    }
    if let Some(gateway) = route.gateway {
        message = message.attribute(RTA_GATEWAY, &octets(gateway));
    }
    if let Some(index) = route.device {
        message = message.attribute(RTA_OIF, &index.to_ne_bytes());
    }
    message
}

fn route_text(route: &Route) -> String {
    let mut text = if route.prefix_len == 0 {
        "default".to_string()
    } else {
        format!("{}/{}", route.destination, route.prefix_len)
    };
    if let Some(gateway) = route.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    text
}

fn parse_neighbour(payload: &[u8]) -> Option<Neighbour> {
    let family = *payload.first()?;
    let index = u32::try_from(i32_at(payload, 4)?).ok()?;
    let state = u16_at(payload, 8)?;
    let attrs = attributes(payload, 12);
    Some(Neighbour {
        index,
        addr: find(&attrs, NDA_DST).and_then(|bytes| ip(family, bytes))?,
        mac: find(&attrs, NDA_LLADDR).and_then(mac),
        state,
    })
}

impl Rtnl for KernelRtnl {
    fn links(&mut self) -> Result<Vec<Link>, RtnlError> {
        let request = Message::new(
            RTM_GETLINK,
            NLM_F_DUMP,
            &ifinfomsg(libc::AF_UNSPEC as u8, 0, 0, 0),
        );
        let replies = self.dump(request, "list links")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWLINK)
            .filter_map(|(_, payload)| parse_link(payload))
            .collect())
    }

    fn set_up(&mut self, index: u32, up: bool) -> Result<(), RtnlError> {
        let name = self.index_text(index);
        let flags = if up { IFF_UP } else { 0 };
        let request = Message::new(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfomsg(libc::AF_UNSPEC as u8, index, flags, IFF_UP),
        );
        let operation = format!("set {name} {}", if up { "up" } else { "down" });
        self.change(request, &operation, &[])
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), RtnlError> {
        let name = self.index_text(index);
        let request = Message::new(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfomsg(libc::AF_UNSPEC as u8, index, 0, 0),
        )
        .attribute(IFLA_MTU, &mtu.to_ne_bytes());
        self.change(request, &format!("set the MTU of {name} to {mtu}"), &[])
    }

    fn addresses(&mut self) -> Result<Vec<Address>, RtnlError> {
        let request = Message::new(
            RTM_GETADDR,
            NLM_F_DUMP,
            &[libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0],
        );
        let replies = self.dump(request, "list addresses")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWADDR)
            .filter_map(|(_, payload)| parse_address(payload))
            .collect())
    }

    fn add_address(&mut self, address: &Address) -> Result<(), RtnlError> {
        let name = self.index_text(address.index);
        let bytes = octets(address.addr);
        let mut request = Message::new(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &ifaddrmsg(address),
        )
        .attribute(IFA_LOCAL, &bytes)
        .attribute(IFA_ADDRESS, &bytes);
        if let (Some(label), true) = (&address.label, address.addr.is_ipv4()) {
            let mut label = label.as_bytes().to_vec();
            label.push(0);
            request = request.attribute(IFA_LABEL, &label);
        }
        let operation = format!("add {}/{} to {name}", address.addr, address.prefix_len);
        self.change(request, &operation, &[libc::EEXIST])
    }

    fn remove_address(&mut self, address: &Address) -> Result<(), RtnlError> {
        let name = self.index_text(address.index);
        let bytes = octets(address.addr);
        let request = Message::new(RTM_DELADDR, NLM_F_ACK, &ifaddrmsg(address))
            .attribute(IFA_LOCAL, &bytes)
            .attribute(IFA_ADDRESS, &bytes);
        let operation = format!("remove {}/{} from {name}", address.addr, address.prefix_len);
        self.change(
            request,
            &operation,
            &[libc::EADDRNOTAVAIL, libc::ENOENT, libc::ESRCH],
        )
    }

    fn routes(&mut self) -> Result<Vec<Route>, RtnlError> {
        let request = Message::new(
            RTM_GETROUTE,
            NLM_F_DUMP,
            &rtmsg(libc::AF_UNSPEC as u8, 0, 0, 0),
        );
        let replies = self.dump(request, "list routes")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWROUTE)
            .filter_map(|(_, payload)| parse_route(payload))
            .collect())
    }

    fn add_route(&mut self, route: &Route) -> Result<(), RtnlError> {
        let scope = if route.gateway.is_some() {
            RT_SCOPE_UNIVERSE
        } else {
            RT_SCOPE_LINK
        };
        let request = route_message(
            RTM_NEWROUTE,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            route,
            scope,
            route.protocol,
        );
        let operation = format!("add route {}", route_text(route));
        self.change(request, &operation, &[libc::EEXIST])
    }

    fn remove_route(&mut self, route: &Route) -> Result<(), RtnlError> {
        // RT_SCOPE_NOWHERE and protocol 0 match a route of any scope and origin.
        let request = route_message(RTM_DELROUTE, NLM_F_ACK, route, RT_SCOPE_NOWHERE, 0);
        let operation = format!("remove route {}", route_text(route));
        self.change(request, &operation, &[libc::ESRCH, libc::ENOENT])
    }

    fn neighbours(&mut self) -> Result<Vec<Neighbour>, RtnlError> {
        let request = Message::new(RTM_GETNEIGH, NLM_F_DUMP, &[0u8; 12]);
        let replies = self.dump(request, "list neighbours")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWNEIGH)
            .filter_map(|(_, payload)| parse_neighbour(payload))
            .collect())
    }
}

/// Link changes as the kernel announces them (RTMGRP_LINK), on a non-blocking socket that an
/// event loop can wait on.
pub struct LinkMonitor {
    fd: OwnedFd,
    buffer: Vec<u8>,
}

impl LinkMonitor {
    pub fn open() -> Result<LinkMonitor, RtnlError> {
        let fd = open_socket(RTMGRP_LINK, true).map_err(|e| {
            RtnlError::new("subscribe to link events", e.raw_os_error(), e.to_string())
        })?;
        Ok(LinkMonitor {
            fd,
            buffer: vec![0u8; 64 * 1024],
        })
    }

    /// What is pending; empty when nothing is. Never blocks.
    pub fn read_events(&mut self) -> Result<Vec<LinkEvent>, RtnlError> {
        let mut events = Vec::new();
        loop {
            let n = match receive(self.fd.as_raw_fd(), &mut self.buffer, libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(events),
                // The kernel dropped events for us (ENOBUFS): report what arrived; the caller
                // re-reads the state anyway.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => {
                    return Err(RtnlError::new(
                        "read link events",
                        e.raw_os_error(),
                        e.to_string(),
                    ))
                }
            };
            for message in messages(&self.buffer[..n]) {
                if message.kind != RTM_NEWLINK && message.kind != RTM_DELLINK {
                    continue;
                }
                if let Some(link) = parse_link(message.payload) {
                    events.push(LinkEvent {
                        index: link.index,
                        name: link.name,
                        up: link.up,
                        carrier: link.carrier,
                        removed: message.kind == RTM_DELLINK,
                    });
                }
            }
        }
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let bytes = Message::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(0, 7, IFF_UP, IFF_UP))
            .attribute(IFLA_MTU, &9000u32.to_ne_bytes())
            .attribute(IFLA_IFNAME, b"eth0\0")
            .finish(42);
        assert_eq!(bytes.len(), 16 + 16 + 8 + 12);
        assert_eq!(u32_at(&bytes, 0), Some(52));
        assert_eq!(u16_at(&bytes, 4), Some(RTM_NEWLINK));
        assert_eq!(u16_at(&bytes, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(u32_at(&bytes, 8), Some(42));
        let link = parse_link(&bytes[16..]).unwrap();
        assert_eq!(link.index, 7);
        assert_eq!(link.mtu, 9000);
        assert_eq!(link.name, "eth0");
        assert!(link.up);
        assert!(!link.carrier);
    }

    #[test]
    fn truncated_or_hostile_input_is_skipped_not_trusted() {
        assert!(messages(&[0u8; 10]).is_empty());
        let mut bogus = vec![0u8; 32];
        bogus[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&bogus).is_empty());
        // An attribute claiming more than there is, and a zero-length name.
        let mut payload = ifinfomsg(0, 1, 0, 0).to_vec();
        payload.extend_from_slice(&4u16.to_ne_bytes());
        payload.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        payload.extend_from_slice(&200u16.to_ne_bytes());
        payload.extend_from_slice(&IFLA_MTU.to_ne_bytes());
        let link = parse_link(&payload).unwrap();
        assert_eq!(link.name, "");
        assert_eq!(link.mtu, 0);
        assert!(parse_address(&[2, 24]).is_none());
        assert!(parse_route(&[]).is_none());
        assert!(parse_neighbour(&[10; 3]).is_none());
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = messages(&junk);
            let _ = attributes(&junk, 4);
            let _ = parse_link(&junk);
            let _ = parse_address(&junk);
            let _ = parse_route(&junk);
        }
    }

    #[test]
    fn routes_of_other_tables_are_left_out() {
        let mut payload = rtmsg(libc::AF_INET as u8, 24, 2, 0).to_vec();
        let mut attrs = Message::new(0, 0, &[]);
        attrs = attrs.attribute(RTA_DST, &[192, 0, 2, 0]);
        payload.extend_from_slice(&attrs.bytes[HEADER..]);
        let route = parse_route(&payload).unwrap();
        assert_eq!(route.destination, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(route.prefix_len, 24);
        payload[4] = 255;
        assert!(parse_route(&payload).is_none());
    }
}
