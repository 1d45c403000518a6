//! The kernel side of `Rtnl`, on neli's router: neli owns the NETLINK_ROUTE socket, the
//! sequence numbers, the ACKs and the ends of dumps. Every change asks for an ACK and waits for
//! it; every dump is read to its end; a refusal keeps its errno (`Nlmsgerr::error`). The
//! family headers and attributes are built and read here from raw bytes (the layouts of
//! rtnetlink.h, if_link.h, if_addr.h, neighbour.h), with every length checked: neli's typed
//! attribute readers panic on some inputs (a zero-length string), these never do.
//!
//! `LinkMonitor` is a plain non-blocking netlink socket in RTNLGRP_LINK (no neli thread), so
//! that tokio's `AsyncFd` can wait on it; its datagrams are split and read here too.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use neli::consts::nl::NlmF;
use neli::consts::rtnl::Rtm;
use neli::consts::socket::{Msg, NlFamily};
use neli::err::RouterError;
use neli::nl::NlPayload;
use neli::router::synchronous::NlRouter;
use neli::socket::NlSocket;
use neli::types::Buffer;
use neli::utils::Groups;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{Address, Link, LinkEvent, Neighbour, Route, Rtnl, RtnlError};

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

/// RTNLGRP_LINK: the multicast group of link changes.
const RTNLGRP_LINK: u32 = 1;

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The body of a request being built: family header, attributes (neli adds the netlink
/// header).
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new(family_header: &[u8]) -> Message {
        let mut bytes = family_header.to_vec();
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

    fn payload(self) -> NlPayload<Rtm, Buffer> {
        NlPayload::Payload(Buffer::from(self.bytes))
    }
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

/// strerror: "Invalid argument" (io::Error's text would add "(os error 22)").
fn errno_text(errno: i32) -> String {
    nix::errno::Errno::from_raw(errno).desc().to_string()
}

/// A refusal before the text of what was refused is known: naming the interface costs a dump
/// of the links, so that is only paid when something failed.
struct Refusal {
    errno: Option<i32>,
    message: String,
}

impl Refusal {
    /// A neli router error: the kernel's errno when it refused (the error message carries it
    /// negated).
    fn of<T, P>(e: RouterError<T, P>) -> Refusal
    where
        RouterError<T, P>: std::fmt::Display,
    {
        match e {
            RouterError::Nlmsgerr(err) => {
                let errno = err.error().saturating_neg();
                Refusal {
                    errno: Some(errno),
                    message: errno_text(errno),
                }
            }
            other => Refusal {
                errno: None,
                message: other.to_string(),
            },
        }
    }

    fn about(self, operation: impl Into<String>) -> RtnlError {
        RtnlError::new(operation, self.errno, self.message)
    }
}

/// The protocol of the routes the director adds when the `Route` names none.
const RTPROT_STATIC: u8 = 4;

/// rtnetlink through a neli router of its own.
pub struct KernelRtnl {
    router: NlRouter,
}

impl KernelRtnl {
    pub fn open() -> Result<KernelRtnl, RtnlError> {
        let (router, _) = NlRouter::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|e| Refusal::of(e).about("open a rtnetlink socket"))?;
        Ok(KernelRtnl { router })
    }

    /// Sends a change and waits for its ACK (or its refusal); errnos in `fine` mean done.
    fn change(
        &mut self,
        kind: Rtm,
        flags: NlmF,
        message: Message,
        fine: &[i32],
    ) -> Result<(), Refusal> {
        // Without ACK the kernel answers a success with nothing, and neli would wait forever.
        let replies = self
            .router
            .send::<Rtm, Buffer, Rtm, Buffer>(kind, flags | NlmF::ACK, message.payload())
            .map_err(Refusal::of)?;
        for reply in replies {
            match reply {
                Ok(_) => {}
                Err(RouterError::Nlmsgerr(err)) if fine.contains(&err.error().saturating_neg()) => {
                    return Ok(())
                }
                Err(e) => return Err(Refusal::of(e)),
            }
        }
        Ok(())
    }

    /// Sends a dump request and reads it to its end: (message type, body) of each answer.
    fn dump(
        &mut self,
        kind: Rtm,
        message: Message,
        operation: &str,
    ) -> Result<Vec<(Rtm, Vec<u8>)>, RtnlError> {
        let replies = self
            .router
            .send::<Rtm, Buffer, Rtm, Buffer>(kind, NlmF::DUMP, message.payload())
            .map_err(|e| Refusal::of(e).about(operation))?;
        let mut out = Vec::new();
        let mut failed = None;
        // Every answer is read even after a failure: a dump left half read would hand its
        // remaining messages to the next request.
        for reply in replies {
            match reply {
                Ok(answer) => {
                    if let NlPayload::Payload(body) = answer.nl_payload() {
                        out.push((*answer.nl_type(), body.as_ref().to_vec()));
                    }
                }
                Err(e) => {
                    failed.get_or_insert_with(|| Refusal::of(e).about(operation));
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The interface's name for an error message ("interface #7" when it has none).
    fn name_of(&mut self, index: u32) -> String {
        self.links()
            .ok()
            .and_then(|links| links.into_iter().find(|l| l.index == index))
            .map(|l| l.name)
            .unwrap_or_else(|| format!("interface #{index}"))
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

fn route_message(route: &Route, scope: u8, protocol: u8) -> Message {
    let family = family_of(route.destination);
    let mut message = Message::new(&rtmsg(family, route.prefix_len, protocol, scope));
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

/// "default via 192.0.2.1 dev eth0", "198.51.100.0/24 dev eth1".
fn route_text(route: &Route, rtnl: &mut KernelRtnl) -> String {
    let mut text = if route.prefix_len == 0 {
        "default".to_string()
    } else {
        format!("{}/{}", route.destination, route.prefix_len)
    };
    if let Some(gateway) = route.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if let Some(index) = route.device {
        text.push_str(&format!(" dev {}", rtnl.name_of(index)));
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
        let request = Message::new(&ifinfomsg(libc::AF_UNSPEC as u8, 0, 0, 0));
        let replies = self.dump(Rtm::Getlink, request, "list links")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == Rtm::Newlink)
            .filter_map(|(_, payload)| parse_link(payload))
            .collect())
    }

    fn set_up(&mut self, index: u32, up: bool) -> Result<(), RtnlError> {
        let flags = if up { IFF_UP } else { 0 };
        let request = Message::new(&ifinfomsg(libc::AF_UNSPEC as u8, index, flags, IFF_UP));
        self.change(Rtm::Newlink, NlmF::empty(), request, &[])
            .map_err(|r| {
                let state = if up { "up" } else { "down" };
                r.about(format!("set {} {state}", self.name_of(index)))
            })
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), RtnlError> {
        let request = Message::new(&ifinfomsg(libc::AF_UNSPEC as u8, index, 0, 0))
            .attribute(IFLA_MTU, &mtu.to_ne_bytes());
        self.change(Rtm::Newlink, NlmF::empty(), request, &[])
            .map_err(|r| r.about(format!("set the MTU of {} to {mtu}", self.name_of(index))))
    }

    fn addresses(&mut self) -> Result<Vec<Address>, RtnlError> {
        let request = Message::new(&[libc::AF_UNSPEC as u8, 0, 0, 0, 0, 0, 0, 0]);
        let replies = self.dump(Rtm::Getaddr, request, "list addresses")?;
        let mut addresses: Vec<Address> = replies
            .iter()
            .filter(|(kind, _)| *kind == Rtm::Newaddr)
            .filter_map(|(_, payload)| parse_address(payload))
            .collect();
        // The kernel labels every IPv4 address, with the link's name when nothing else was
        // asked for; `Address::label` is only the label that differs.
        if addresses.iter().any(|a| a.label.is_some()) {
            let links = self.links()?;
            for address in &mut addresses {
                let own_name = links
                    .iter()
                    .any(|l| l.index == address.index && Some(&l.name) == address.label.as_ref());
                if own_name {
                    address.label = None;
                }
            }
        }
        Ok(addresses)
    }

    fn add_address(&mut self, address: &Address) -> Result<(), RtnlError> {
        let bytes = octets(address.addr);
        let mut request = Message::new(&ifaddrmsg(address))
            .attribute(IFA_LOCAL, &bytes)
            .attribute(IFA_ADDRESS, &bytes);
        // Labels are an IPv4 notion; the kernel ignores IFA_LABEL for IPv6.
        if let (Some(label), true) = (&address.label, address.addr.is_ipv4()) {
            let mut label = label.as_bytes().to_vec();
            label.push(0);
            request = request.attribute(IFA_LABEL, &label);
        }
        self.change(
            Rtm::Newaddr,
            NlmF::CREATE | NlmF::EXCL,
            request,
            &[libc::EEXIST],
        )
        .map_err(|r| {
            r.about(format!(
                "add {}/{} to {}",
                address.addr,
                address.prefix_len,
                self.name_of(address.index)
            ))
        })
    }

    fn remove_address(&mut self, address: &Address) -> Result<(), RtnlError> {
        let bytes = octets(address.addr);
        let request = Message::new(&ifaddrmsg(address))
            .attribute(IFA_LOCAL, &bytes)
            .attribute(IFA_ADDRESS, &bytes);
        self.change(
            Rtm::Deladdr,
            NlmF::empty(),
            request,
            &[libc::EADDRNOTAVAIL, libc::ENOENT, libc::ESRCH],
        )
        .map_err(|r| {
            r.about(format!(
                "remove {}/{} from {}",
                address.addr,
                address.prefix_len,
                self.name_of(address.index)
            ))
        })
    }

    fn routes(&mut self) -> Result<Vec<Route>, RtnlError> {
        let request = Message::new(&rtmsg(libc::AF_UNSPEC as u8, 0, 0, 0));
        let replies = self.dump(Rtm::Getroute, request, "list routes")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == Rtm::Newroute)
            .filter_map(|(_, payload)| parse_route(payload))
            .collect())
    }

    fn add_route(&mut self, route: &Route) -> Result<(), RtnlError> {
        // A route through a gateway reaches beyond the link; one without is on the link.
        let scope = if route.gateway.is_some() {
            RT_SCOPE_UNIVERSE
        } else {
            RT_SCOPE_LINK
        };
        let protocol = if route.protocol == 0 {
            RTPROT_STATIC
        } else {
            route.protocol
        };
        let request = route_message(route, scope, protocol);
        self.change(
            Rtm::Newroute,
            NlmF::CREATE | NlmF::EXCL,
            request,
            &[libc::EEXIST],
        )
        .map_err(|r| {
            let text = route_text(route, self);
            r.about(format!("add route {text}"))
        })
    }

    fn remove_route(&mut self, route: &Route) -> Result<(), RtnlError> {
        // RT_SCOPE_NOWHERE and protocol 0 match a route of any scope and origin: the kernel
        // then matches on what is given (destination, length, gateway, output interface).
        let request = route_message(route, RT_SCOPE_NOWHERE, 0);
        self.change(
            Rtm::Delroute,
            NlmF::empty(),
            request,
            &[libc::ESRCH, libc::ENOENT],
        )
        .map_err(|r| {
            let text = route_text(route, self);
            r.about(format!("remove route {text}"))
        })
    }

    fn remove_neighbour(&mut self, index: u32, addr: IpAddr) -> Result<(), RtnlError> {
        // struct ndmsg: family, two pads, ifindex, state, flags, type.
        let mut header = [0u8; 12];
        header[0] = family_of(addr);
        header[4..8].copy_from_slice(&i32::try_from(index).unwrap_or(0).to_ne_bytes());
        let request = Message::new(&header).attribute(NDA_DST, &octets(addr));
        self.change(Rtm::Delneigh, NlmF::empty(), request, &[libc::ENOENT])
            .map_err(|r| {
                r.about(format!(
                    "forget the neighbour {addr} on {}",
                    self.name_of(index)
                ))
            })
    }

    fn neighbours(&mut self) -> Result<Vec<Neighbour>, RtnlError> {
        let request = Message::new(&[0u8; 12]);
        let replies = self.dump(Rtm::Getneigh, request, "list neighbours")?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == Rtm::Newneigh)
            .filter_map(|(_, payload)| parse_neighbour(payload))
            .collect())
    }
}

/// The length of a netlink message header (struct nlmsghdr).
const NLMSG_HDRLEN: usize = 16;

/// Room for any datagram the kernel sends: it sizes a multicast message to fit a page
/// (NLMSG_GOODSIZE, 8 KiB at most); anything shorter than a datagram would truncate it.
const DATAGRAM_ROOM: usize = 64 * 1024;

/// The socket's queue in the kernel, so that a burst of link changes (many VLANs coming up at
/// once) fits before the kernel drops some.
const SOCKET_QUEUE: usize = 1 << 20;

/// The netlink messages of a datagram: (type, body), up to the first one that does not fit.
fn netlink_messages(datagram: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while let (Some(len), Some(kind)) = (u32_at(rest, 0), u16_at(rest, 4)) {
        let len = len as usize;
        let Some(body) = rest.get(NLMSG_HDRLEN..len) else {
            break;
        };
        out.push((kind, body));
        rest = rest.get(align(len)..).unwrap_or(&[]);
    }
    out
}

/// The link changes in a datagram of the link group.
fn link_events(datagram: &[u8]) -> Vec<LinkEvent> {
    netlink_messages(datagram)
        .into_iter()
        .filter_map(|(kind, body)| {
            let removed = match kind {
                libc::RTM_NEWLINK => false,
                libc::RTM_DELLINK => true,
                _ => return None,
            };
            let link = parse_link(body)?;
            Some(LinkEvent {
                index: link.index,
                name: link.name,
                up: link.up,
                carrier: link.carrier,
                removed,
            })
        })
        .collect()
}

/// Link changes as the kernel announces them (RTNLGRP_LINK), on a non-blocking socket: wait
/// until it is readable (tokio's `AsyncFd`, poll) and take what is pending with
/// `read_events`, or let a thread of its own wait in `next`.
pub struct LinkMonitor {
    socket: NlSocket,
    datagram: Vec<u8>,
    /// Read from the socket but not handed out by `next` yet.
    pending: VecDeque<LinkEvent>,
}

impl LinkMonitor {
    pub fn open() -> Result<LinkMonitor, RtnlError> {
        let failed = |e: io::Error| {
            RtnlError::new("subscribe to link events", e.raw_os_error(), e.to_string())
        };
        let groups = Groups::new_groups(&[RTNLGRP_LINK]);
        let socket = NlSocket::connect(NlFamily::Route, None, groups).map_err(failed)?;
        socket.nonblock().map_err(failed)?;
        // Only makes an overflow rarer (the kernel caps it at rmem_max); `read_events`
        // recovers from one anyway.
        let _ = socket.set_recv_buffer_size(SOCKET_QUEUE);
        Ok(LinkMonitor {
            socket,
            datagram: vec![0; DATAGRAM_ROOM],
            pending: VecDeque::new(),
        })
    }

    /// Every link change pending, in order; empty when there is none. Never blocks.
    ///
    /// When the socket's queue overflowed (ENOBUFS) the kernel dropped changes: the current
    /// state of every link is then reported after the changes still queued, so the last event
    /// of each link is its state now (a link removed meanwhile is not reported).
    pub fn read_events(&mut self) -> Result<Vec<LinkEvent>, RtnlError> {
        let mut events: Vec<LinkEvent> = self.pending.drain(..).collect();
        let mut overflowed = false;
        loop {
            match self.socket.recv(&mut self.datagram[..], Msg::empty()) {
                // Only the kernel's announcements carry the group; anything else was sent to
                // this socket directly by a process.
                Ok((_, groups)) if groups.is_empty() => {}
                Ok((len, _)) => {
                    events.extend(link_events(self.datagram.get(..len).unwrap_or(&[])));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => overflowed = true,
                Err(e) => {
                    return Err(RtnlError::new(
                        "read link events",
                        e.raw_os_error(),
                        e.to_string(),
                    ))
                }
            }
        }
        if overflowed {
            let links = KernelRtnl::open()
                .and_then(|mut rtnl| rtnl.links())
                .map_err(|e| {
                    RtnlError::new("list links after lost link events", e.errno, e.message)
                })?;
            events.extend(links.into_iter().map(|link| LinkEvent {
                index: link.index,
                name: link.name,
                up: link.up,
                carrier: link.carrier,
                removed: false,
            }));
        }
        Ok(events)
    }

    /// The next link change, waiting at most `timeout`; `Ok(None)` when none came. For a
    /// thread of its own; async code waits on the descriptor and calls `read_events`.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<LinkEvent>, RtnlError> {
        // None: so far away that it is forever.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let events = self.read_events()?;
            if !events.is_empty() {
                self.pending.extend(events);
                continue;
            }
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // Rounded up: a wait rounded down to 0 ms would spin until the deadline.
                    let left = left.max(Duration::from_millis(1));
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, wait) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(RtnlError::new(
                        "wait for link events",
                        Some(e as i32),
                        e.desc(),
                    ))
                }
            }
        }
    }
}

/// The same descriptor for the monitor's whole life, closed only when the monitor is dropped:
/// what `AsyncFd::register` asks of its caller.
impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to `self.socket`, which closes it only when dropped;
        // the borrow cannot outlive `self`, so it cannot outlive the descriptor.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let bytes = Message::new(&ifinfomsg(0, 7, IFF_UP, IFF_UP))
            .attribute(IFLA_MTU, &9000u32.to_ne_bytes())
            .attribute(IFLA_IFNAME, b"eth0\0")
            .bytes;
        assert_eq!(bytes.len(), 16 + 8 + 12);
        assert_eq!(u16_at(&bytes, 16), Some(8));
        assert_eq!(u16_at(&bytes, 18), Some(IFLA_MTU));
        let link = parse_link(&bytes).unwrap();
        assert_eq!(link.index, 7);
        assert_eq!(link.mtu, 9000);
        assert_eq!(link.name, "eth0");
        assert!(link.up);
        assert!(!link.carrier);
    }

    #[test]
    fn truncated_or_hostile_input_is_skipped_not_trusted() {
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
            let _ = attributes(&junk, 4);
            let _ = parse_link(&junk);
            let _ = parse_address(&junk);
            let _ = parse_route(&junk);
        }
    }

    #[test]
    fn routes_of_other_tables_are_left_out() {
        let mut payload = rtmsg(libc::AF_INET as u8, 24, 2, 0).to_vec();
        let attrs = Message::new(&[]).attribute(RTA_DST, &[192, 0, 2, 0]);
        payload.extend_from_slice(&attrs.bytes);
        let route = parse_route(&payload).unwrap();
        assert_eq!(route.destination, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(route.prefix_len, 24);
        payload[4] = 255;
        assert!(parse_route(&payload).is_none());
    }

    /// A netlink message: header (length, type, flags, sequence, port) and body.
    fn netlink_message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut bytes = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend_from_slice(body);
        bytes.resize(align(bytes.len()), 0);
        bytes
    }

    #[test]
    fn a_datagram_of_the_link_group_becomes_events() {
        let up = Message::new(&ifinfomsg(0, 3, IFF_UP | IFF_LOWER_UP, 0))
            .attribute(IFLA_IFNAME, b"eth1\0")
            .bytes;
        let gone = Message::new(&ifinfomsg(0, 4, 0, 0))
            .attribute(IFLA_IFNAME, b"eth2\0")
            .bytes;
        let mut datagram = netlink_message(libc::RTM_NEWLINK, &up);
        // Not a link message: skipped.
        datagram.extend(netlink_message(
            libc::RTM_NEWADDR,
            &[2, 24, 0, 0, 3, 0, 0, 0],
        ));
        datagram.extend(netlink_message(libc::RTM_DELLINK, &gone));
        // A last message claiming more than the datagram holds ends the reading.
        let mut cut = netlink_message(libc::RTM_NEWLINK, &up);
        cut.truncate(20);
        datagram.extend(cut);
        assert_eq!(
            link_events(&datagram),
            vec![
                LinkEvent {
                    index: 3,
                    name: "eth1".into(),
                    up: true,
                    carrier: true,
                    removed: false,
                },
                LinkEvent {
                    index: 4,
                    name: "eth2".into(),
                    up: false,
                    carrier: false,
                    removed: true,
                },
            ]
        );
    }

    #[test]
    fn hostile_datagrams_give_no_events_and_no_panic() {
        assert!(link_events(&[]).is_empty());
        // A length shorter than the header would never advance.
        let mut stuck = netlink_message(libc::RTM_NEWLINK, &[]);
        stuck[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(netlink_messages(&stuck).is_empty());
        // A link message with a body too short for its header.
        assert!(link_events(&netlink_message(libc::RTM_NEWLINK, &[0; 7])).is_empty());
        for len in 0..96 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 53 % 251) as u8).collect();
            let _ = link_events(&junk);
        }
    }

    #[test]
    fn a_refusal_names_the_operation_and_the_error() {
        let refusal = Refusal {
            errno: Some(libc::EINVAL),
            message: errno_text(libc::EINVAL),
        };
        let error = refusal.about("set the MTU of eth0 to 70000");
        assert_eq!(error.errno, Some(22));
        assert_eq!(
            error.to_string(),
            "set the MTU of eth0 to 70000: Invalid argument"
        );
    }
}
