//! ICMP echo: whether hosts answer (the pair's ping nodes, upstream routers whose
//! reachability decides which node should be active). Raw ICMP sockets (CAP_NET_RAW): the
//! unprivileged ping sockets are off for root by default (net.ipv4.ping_group_range).
//! One round sends an echo request to every host and waits for the replies that carry this
//! pinger's identifier and the round's sequence number.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::{timeout_at, Instant};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Echo header and a little payload.
const ECHO_BYTES: usize = 16;

/// Raw ICMP sockets, one per family (IPv6 where the system has it).
pub struct Pinger {
    v4: AsyncFd<OwnedFd>,
    v6: Option<AsyncFd<OwnedFd>>,
    id: u16,
    sequence: u16,
}

impl Pinger {
    /// Needs CAP_NET_RAW; must be called inside a tokio runtime.
    pub fn open() -> io::Result<Pinger> {
        let v4 = raw(libc::AF_INET, libc::IPPROTO_ICMP)?;
        let v6 = match raw(libc::AF_INET6, libc::IPPROTO_ICMPV6) {
            Ok(fd) => Some(fd),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => None,
            Err(e) => return Err(e),
        };
        Ok(Pinger {
            v4,
            v6,
            // Told apart from other pingers on the box by the process id.
            id: (std::process::id() & 0xffff) as u16,
            sequence: 0,
        })
    }

    /// Which of `hosts` answer an echo request within `wait`, in their order.
    pub async fn round(&mut self, hosts: &[IpAddr], wait: Duration) -> Vec<bool> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut answered = vec![false; hosts.len()];
        for host in hosts {
            // A host that cannot be sent to (no route) simply does not answer.
            let _ = self.send(*host);
        }
        let end = Instant::now() + wait;
        let mut buffer = [0u8; 256];
        while answered.iter().any(|a| !a) {
            let v6 = async {
                match &self.v6 {
                    Some(fd) => fd.readable().await,
                    None => std::future::pending().await,
                }
            };
            let ready = timeout_at(end, async {
                tokio::select! {
                    ready = self.v4.readable() => ready.map(|g| (g, true)),
                    ready = v6 => ready.map(|g| (g, false)),
                }
            })
            .await;
            let Ok(Ok((mut guard, v4))) = ready else {
                break;
            };
            let fd = guard.get_inner().as_raw_fd();
            let read = guard.try_io(|_| receive(fd, &mut buffer));
            let Ok(Ok((len, from))) = read else {
                continue;
            };
            if let Some((id, sequence)) = echo_reply(&buffer[..len], v4) {
                if id == self.id && sequence == self.sequence {
                    for (host, a) in hosts.iter().zip(answered.iter_mut()) {
                        if *host == from {
                            *a = true;
                        }
                    }
                }
            }
        }
        answered
    }

    fn send(&self, host: IpAddr) -> io::Result<()> {
        let (fd, request) = match host {
            IpAddr::V4(_) => (self.v4.get_ref().as_raw_fd(), ECHO_REQUEST_V4),
            IpAddr::V6(_) => match &self.v6 {
                Some(fd) => (fd.get_ref().as_raw_fd(), ECHO_REQUEST_V6),
                None => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
            },
        };
        let mut packet = echo_request(request, self.id, self.sequence);
        if host.is_ipv4() {
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        // The kernel computes the ICMPv6 checksum itself.
        send_to(fd, &packet, host)
    }
}

/// An echo request (type `kind`) with its checksum field zero.
fn echo_request(kind: u8, id: u16, sequence: u16) -> [u8; ECHO_BYTES] {
    let mut packet = [0u8; ECHO_BYTES];
    packet[0] = kind;
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&sequence.to_be_bytes());
    packet[8..].copy_from_slice(b"director");
    packet
}

/// The identifier and sequence of an echo reply; IPv4 packets come with their IP header.
fn echo_reply(packet: &[u8], v4: bool) -> Option<(u16, u16)> {
    let icmp = if v4 {
        let header = usize::from(packet.first()? & 0x0f) * 4;
        packet.get(header..)?
    } else {
        packet
    };
    let reply = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    if icmp.len() < 8 || icmp[0] != reply {
        return None;
    }
    Some((
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
    ))
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn raw(family: i32, protocol: i32) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an OwnedFd names one open descriptor for as long as it lives, and the AsyncFd
    // owns it.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

fn send_to(fd: RawFd, packet: &[u8], host: IpAddr) -> io::Result<()> {
    let address: SocketAddr = match host {
        IpAddr::V4(ip) => SocketAddrV4::new(ip, 0).into(),
        IpAddr::V6(ip) => SocketAddrV6::new(ip, 0, 0, 0).into(),
    };
    let (name, len) = socket_address(address);
    // SAFETY: `packet` and `name` are valid for the lengths given, for the call.
    let sent = unsafe {
        libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&name as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<(usize, IpAddr)> {
    // SAFETY: zeroed sockaddr_storage is a valid value.
    let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buffer` and `name` are valid for the lengths given, for the call.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
            (&mut name as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = match i32::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let v4: libc::sockaddr_in = unsafe { mem::transmute_copy(&name) };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)))
        }
        _ => {
            // SAFETY: the kernel wrote a sockaddr_in6 otherwise (the socket is IPv6).
            let v6: libc::sockaddr_in6 = unsafe { mem::transmute_copy(&name) };
            IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr))
        }
    };
    Ok((n as usize, from))
}

fn socket_address(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: zeroed sockaddr_in6 is a valid value.
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_carries_id_sequence_and_a_valid_checksum() {
        let mut packet = echo_request(ECHO_REQUEST_V4, 0x1234, 7);
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        // A packet with its checksum sums to zero.
        assert_eq!(checksum(&packet), 0);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn replies_are_read_past_the_ip_header_and_requests_are_not_replies() {
        let mut reply = vec![0x45u8];
        reply.extend_from_slice(&[0; 19]);
        let mut icmp = echo_request(ECHO_REPLY_V4, 0xbeef, 3).to_vec();
        reply.append(&mut icmp);
        assert_eq!(echo_reply(&reply, true), Some((0xbeef, 3)));
        let request = echo_request(ECHO_REQUEST_V6, 1, 1);
        assert_eq!(echo_reply(&request, false), None);
        let reply6 = echo_request(ECHO_REPLY_V6, 1, 2);
        assert_eq!(echo_reply(&reply6, false), Some((1, 2)));
        assert_eq!(echo_reply(&[0x4f], true), None);
    }
}
