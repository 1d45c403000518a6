//! Handing the connection table to the peer when this node releases the VIPs.
//!
//! The kernel's sync daemon sends a connection to the backups only once it has seen a few of
//! its packets, and gathers connections in a buffer it sends when full or about two seconds
//! old: at a planned switch-over the newest connections (a request whose handshake went through
//! this node) would be unknown to the new active, whose own TCP stack answers their next
//! packets with a reset. So a releasing node, once its VIPs are off, reads every connection of
//! its table (/proc/net/ip_vs_conn), whatever its state, and sends them as sync messages
//! (version 1, the kernel's own format) to the sync group on the heartbeat link, before its
//! beat tells the peer to take over: the peer's backup sync daemon enters them as it enters the
//! kernel's own.
//!
//! /proc/net/ip_vs_conn (the kernel's `ip_vs_conn_seq_show`), after a heading line:
//! ```text
//! TCP C0000264 9C40 C0000264 0050 C0000215 0050 ESTABLISHED     899
//! TCP 2001:0db8:0000:0000:0000:0000:0000:0001 9C40 2001:...:0064 0050 2001:...:0015 0050 SYN_RECV   59
//! ```
//! It does not say a connection's forwarding method or firewall mark: they come from the
//! service table (/proc/net/ip_vs), by the connection's virtual address or, for a firewall-mark
//! service, by its real server. Persistence templates (protocol `IP`) are not handed over.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::procfs::{ListedKey, ListedService};
use super::{Forwarding, Protocol};

/// Where the kernel's sync daemons meet (its defaults, which the director keeps).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const SYNC_PORT: u16 = 8848;
/// The largest sync message sent (within a 1500-byte MTU).
const MAX_MESSAGE: usize = 1400;
const HEADER: usize = 8;
const CONN_V4: usize = 36;
const CONN_V6: usize = 72;
const SYNC_VERSION: u8 = 1;
const STYPE_F_INET6: u8 = 1;
const F_NOOUTPUT: u32 = 0x0080;
const F_INACTIVE: u32 = 0x0100;
/// IP_VS_TCP_S_ESTABLISHED.
const TCP_ESTABLISHED: u16 = 1;
/// IP_VS_TCP_S_TIME_WAIT and IP_VS_TCP_S_CLOSE: finished connections; a late packet of one
/// that reaches the new active is answered with a reset that nobody waits for.
const TCP_FINISHED: [u16; 2] = [5, 6];
/// IP_VS_TCP_S_FIN_WAIT, CLOSE_WAIT, LAST_ACK: closing (with direct routing the director sees
/// only the client's side: FIN_WAIT is a client that has sent its FIN, which an HTTP client does
/// once it has read the whole answer). Most of a busy table; they go after the others, and
/// only within the budget.
const TCP_CLOSING: [u16; 3] = [4, 7, 8];
/// The most messages of closing connections sent: a burst larger than the peer's receive
/// buffer (about 200 KB by default) would be dropped there, the open connections with it.
const MAX_CLOSING_MESSAGES: usize = 48;

/// A connection of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub virtual_: SocketAddr,
    pub real: SocketAddr,
    /// The kernel's state number for the protocol.
    pub state: u16,
    /// Seconds before it expires.
    pub expires: u32,
}

/// The connections of /proc/net/ip_vs_conn this hands over (TCP and UDP, not finished;
/// templates and lines of another layout are left out).
pub fn parse_conns(text: &str) -> Vec<Conn> {
    text.lines().skip(1).filter_map(parse_conn).collect()
}

fn parse_conn(line: &str) -> Option<Conn> {
    let conn = read_conn(line)?;
    (conn.protocol != Protocol::Tcp || !TCP_FINISHED.contains(&conn.state)).then_some(conn)
}

fn read_conn(line: &str) -> Option<Conn> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 9 {
        return None;
    }
    let protocol = match fields[0] {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        _ => return None,
    };
    let address = |text: &str| -> Option<IpAddr> {
        if text.contains(':') {
            text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        } else if text.len() == 8 {
            u32::from_str_radix(text, 16)
                .ok()
                .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        } else {
            None
        }
    };
    let port = |text: &str| u16::from_str_radix(text, 16).ok();
    let at = |a: usize| Some(SocketAddr::new(address(fields[a])?, port(fields[a + 1])?));
    let client = at(1)?;
    let virtual_ = at(3)?;
    let real = at(5)?;
    if client.is_ipv4() != real.is_ipv4() || client.is_ipv4() != virtual_.is_ipv4() {
        return None;
    }
    let state = match protocol {
        Protocol::Tcp => tcp_state(fields[7])?,
        _ if fields[7] == "UDP" => 0,
        _ => return None,
    };
    Some(Conn {
        protocol,
        client,
        virtual_,
        real,
        state,
        expires: fields[8].parse().ok()?,
    })
}

/// The kernel's TCP state numbers (IP_VS_TCP_S_*) by the names it shows.
fn tcp_state(name: &str) -> Option<u16> {
    const NAMES: [&str; 11] = [
        "NONE",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "SYNACK",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u16)
}

/// How `conn` is forwarded and under which firewall mark (0: none), from the service table;
/// None when no service of the table has it.
fn service_of(conn: &Conn, services: &[ListedService]) -> Option<(Forwarding, u32)> {
    let real = |service: &ListedService| {
        service
            .destinations
            .iter()
            .find(|d| {
                // Port 0: the port each packet came to (a firewall-mark service).
                d.destination.address == conn.real.ip()
                    && (d.destination.port == conn.real.port() || d.destination.port == 0)
            })
            .map(|d| d.destination.forwarding)
    };
    let by_address = services.iter().find(|s| {
        s.key
            == ListedKey::Address {
                protocol: conn.protocol,
                address: conn.virtual_.ip(),
                port: conn.virtual_.port(),
            }
    });
    if let Some(service) = by_address {
        return real(service).map(|forwarding| (forwarding, 0));
    }
    services.iter().find_map(|s| match s.key {
        ListedKey::Fwmark(mark) => real(s).map(|forwarding| (forwarding, mark)),
        ListedKey::Address { .. } => None,
    })
}

fn flags(forwarding: Forwarding) -> u32 {
    match forwarding {
        Forwarding::Masquerade => 0,
        Forwarding::Local => 1,
        Forwarding::Tunnel(_) => 2 | F_NOOUTPUT,
        Forwarding::Route => 3 | F_NOOUTPUT,
    }
}

/// The sync messages (version 1) that carry `conns`, each within `MAX_MESSAGE` bytes; a
/// connection of no service in `services` is left out.
pub fn sync_messages(conns: &[Conn], services: &[ListedService], sync_id: u8) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut message = Vec::new();
    let mut count = 0u8;
    let mut close = |message: &mut Vec<u8>, count: &mut u8| {
        if *count > 0 {
            let size = u16::try_from(message.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes();
            message[2] = size[0];
            message[3] = size[1];
            message[4] = *count;
            messages.push(std::mem::take(message));
        }
        message.clear();
        *count = 0;
    };
    for conn in conns {
        let Some((forwarding, fwmark)) = service_of(conn, services) else {
            continue;
        };
        let len = if conn.client.is_ipv4() {
            CONN_V4
        } else {
            CONN_V6
        };
        if message.len().max(HEADER) + len > MAX_MESSAGE || count == u8::MAX {
            close(&mut message, &mut count);
        }
        if message.is_empty() {
            // reserved, sync id, size (set when closed), count, version, spare.
            message.extend_from_slice(&[0, sync_id, 0, 0, 0, SYNC_VERSION, 0, 0]);
            debug_assert_eq!(message.len(), HEADER);
        }
        let mut flags = flags(forwarding);
        if conn.protocol == Protocol::Tcp && conn.state != TCP_ESTABLISHED {
            flags |= F_INACTIVE;
        }
        message.push(if conn.client.is_ipv4() {
            0
        } else {
            STYPE_F_INET6
        });
        message.push(conn.protocol.number() as u8);
        message.extend_from_slice(&(len as u16).to_be_bytes());
        message.extend_from_slice(&flags.to_be_bytes());
        message.extend_from_slice(&conn.state.to_be_bytes());
        message.extend_from_slice(&conn.client.port().to_be_bytes());
        message.extend_from_slice(&conn.virtual_.port().to_be_bytes());
        message.extend_from_slice(&conn.real.port().to_be_bytes());
        message.extend_from_slice(&fwmark.to_be_bytes());
        message.extend_from_slice(&conn.expires.max(1).to_be_bytes());
        for address in [conn.client.ip(), conn.virtual_.ip(), conn.real.ip()] {
            match address {
                IpAddr::V4(a) => message.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => message.extend_from_slice(&a.octets()),
            }
        }
        count += 1;
    }
    close(&mut message, &mut count);
    messages
}

/// Whether `conn` is closing (sent last, if at all).
fn closing(conn: &Conn) -> bool {
    conn.protocol == Protocol::Tcp && TCP_CLOSING.contains(&conn.state)
}

/// The messages to send, open connections first: all the open ones, then at most
/// `MAX_CLOSING_MESSAGES` of closing ones.
pub fn hand_over_messages(conns: &[Conn], services: &[ListedService], sync_id: u8) -> Vec<Vec<u8>> {
    let (closing, open): (Vec<Conn>, Vec<Conn>) = conns.iter().partition(|c| closing(c));
    let mut messages = sync_messages(&open, services, sync_id);
    messages.extend(
        sync_messages(&closing, services, sync_id)
            .into_iter()
            .take(MAX_CLOSING_MESSAGES),
    );
    messages
}

/// What a hand-over did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandedOver {
    /// Connections read from the table (finished ones left out).
    pub read: usize,
    pub sent: usize,
    /// How long reading the table took.
    pub reading: Duration,
}

/// Reads this node's connection table and sends it to the sync group on `interface`: reading
/// stops at `budget` (a huge table is cut short: the rest relies on the kernel's own sync); the
/// open connections then all go, the closing ones while within the budget.
pub fn hand_over(interface: &str, sync_id: u8, budget: Duration) -> Result<HandedOver, String> {
    let started = Instant::now();
    let services = std::fs::read_to_string("/proc/net/ip_vs")
        .map_err(|e| format!("/proc/net/ip_vs: {e}"))
        .and_then(|text| super::procfs::parse(&text))?;
    // Read line by line, so that a huge table is cut at the budget rather than read whole.
    let table = std::fs::File::open("/proc/net/ip_vs_conn")
        .map_err(|e| format!("/proc/net/ip_vs_conn: {e}"))?;
    let mut conns = Vec::new();
    for (i, line) in std::io::BufRead::lines(std::io::BufReader::new(table)).enumerate() {
        let line = line.map_err(|e| format!("/proc/net/ip_vs_conn: {e}"))?;
        if i > 0 {
            conns.extend(parse_conn(&line));
        }
        if i % 1024 == 0 && started.elapsed() > budget {
            break;
        }
    }
    let reading = started.elapsed();
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    crate::ha::run::bind_to_device(&socket, interface).map_err(|e| e.to_string())?;
    socket.set_multicast_ttl_v4(1).map_err(|e| e.to_string())?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(|e| e.to_string())?;
    let mut sent = 0;
    let open = conns.iter().filter(|c| !closing(c)).count();
    for message in hand_over_messages(&conns, &services, sync_id) {
        if sent >= open && started.elapsed() > budget {
            break;
        }
        socket
            .send_to(&message, (SYNC_GROUP, SYNC_PORT))
            .map_err(|e| format!("sending to {SYNC_GROUP}:{SYNC_PORT}: {e}"))?;
        sent += usize::from(message[4]);
    }
    Ok(HandedOver {
        read: conns.len(),
        sent,
        reading,
    })
}

/// The bytes waiting in this node's backup sync daemon's socket (bound to the sync group and
/// port), from /proc/net/udp (the kernel's `udp4_format_sock`: `sl local rem st tx:rx ...`,
/// addresses as the host-order hex of the network-order value, ports as plain hex). None when
/// no such socket is listed (no backup daemon).
pub fn sync_backlog(udp_table: &str) -> Option<u64> {
    let group = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(SYNC_GROUP.octets()),
        SYNC_PORT
    );
    let mut found = None;
    for line in udp_table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(queues)) = (fields.get(1), fields.get(4)) else {
            continue;
        };
        if !local.eq_ignore_ascii_case(&group) {
            continue;
        }
        let rx = queues
            .split_once(':')
            .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok());
        if let Some(rx) = rx {
            found = Some(found.unwrap_or(0) + rx);
        }
    }
    found
}

/// Waits, at most `budget`, until the backup sync daemon has taken in what is queued for it
/// (the connections a releasing peer just handed over, sent before its beat): a node taking
/// over at once would otherwise meet their next packets before its table has them (its real-time
/// pair thread runs before the kernel's sync thread) and answer them with resets. Returns how
/// long it waited and whether the queue emptied; None when no backup sync daemon listens.
pub fn wait_taken_in(budget: Duration) -> Option<(Duration, bool)> {
    let started = Instant::now();
    loop {
        let backlog = std::fs::read_to_string("/proc/net/udp")
            .ok()
            .and_then(|text| sync_backlog(&text));
        match backlog {
            None => return None,
            Some(0) => {
                // The last message dequeued may still be in the sync thread's hands (the
                // caller's real-time thread preempts it): let it run.
                std::thread::sleep(Duration::from_millis(1));
                return Some((started.elapsed(), true));
            }
            Some(_) if started.elapsed() >= budget => return Some((started.elapsed(), false)),
            Some(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ipvs::procfs::parse;

    const SERVICES: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0000264:0050 rr
  -> C0000215:0050      Route   1      0          0
UDP  C0000264:0035 rr
  -> C6336401:0035      Masq    1      0          0
FWM  00000007 lc
  -> C0000216:0000      Tunnel  1      0          0
";

    const CONNS: &str =
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP CB007105 9C40 C0000264 0050 C0000215 0050 ESTABLISHED     899\n\
TCP CB007106 9C41 C0000264 0050 C0000215 0050 SYN_RECV         59\n\
UDP CB007105 D431 C0000264 0035 C6336401 0035 UDP             299\n\
TCP CB007107 1F90 C0000265 01BB C0000216 01BB ESTABLISHED     120\n\
IP  CB007105 0000 C0000264 0050 C0000215 0050 NONE            359\n\
TCP CB007109 9C43 C0000264 0050 C0000215 0050 TIME_WAIT       119\n\
TCP CB007108 9C42 C00002FF 0050 C0000215 0050 ESTABLISHED     899\n\
garbage\n";

    #[test]
    fn the_sync_daemons_backlog_is_read_from_the_udp_table() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  120: 510000E0:2290 00000000:0000 07 00000000:00000A40 00:00000000 00000000     0        0 0 2 0000000000000000 0
  121: 00000000:2290 00000000:0000 07 00000000:00000100 00:00000000 00000000     0        0 0 2 0000000000000000 0
  122: 0100A8C0:0D05 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 0000000000000000 0
";
        // Only the socket bound to 224.0.0.81:8848 counts (the heartbeat socket on any address
        // and another port do not).
        assert_eq!(sync_backlog(table), Some(0xA40));
        let empty = table.replace("00000000:00000A40", "00000000:00000000");
        assert_eq!(sync_backlog(&empty), Some(0));
        let without: String = table.lines().filter(|l| !l.contains("510000E0")).collect();
        assert_eq!(sync_backlog(&without), None);
        assert_eq!(sync_backlog("garbage\n 1: 510000E0:2290 x"), None);
    }

    #[test]
    fn the_table_is_read_as_the_kernel_writes_it() {
        let conns = parse_conns(CONNS);
        // The template, the finished connection and the garbage are left out.
        assert_eq!(conns.len(), 5);
        assert_eq!(
            conns[0],
            Conn {
                protocol: Protocol::Tcp,
                client: "203.0.113.5:40000".parse().unwrap(),
                virtual_: "192.0.2.100:80".parse().unwrap(),
                real: "192.0.2.21:80".parse().unwrap(),
                state: 1,
                expires: 899,
            }
        );
        assert_eq!(conns[1].state, 3);
        assert_eq!(conns[2].protocol, Protocol::Udp);
        let v6 = parse_conns(
            "head\nTCP 2001:0db8:0000:0000:0000:0000:0000:0001 9C40 2001:0db8:0000:0000:0000:0000:0000:0064 0050 2001:0db8:0000:0000:0000:0000:0000:0015 0050 FIN_WAIT          7\n",
        );
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].client, "[2001:db8::1]:40000".parse().unwrap());
        assert_eq!(v6[0].state, 4);
    }

    #[test]
    fn the_messages_are_the_kernels_version_1() {
        let services = parse(SERVICES).unwrap();
        let conns = parse_conns(CONNS);
        let messages = sync_messages(&conns, &services, 42);
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        // Four connections: the one to a VIP of no service is left out.
        assert_eq!(m.len(), HEADER + 4 * CONN_V4);
        assert_eq!(&m[..2], &[0, 42]);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        assert_eq!(m[4], 4);
        assert_eq!(m[5], 1);
        let conn = |i: usize| &m[HEADER + i * CONN_V4..HEADER + (i + 1) * CONN_V4];
        let first = conn(0);
        assert_eq!(first[0], 0);
        assert_eq!(first[1], 6);
        assert_eq!(u16::from_be_bytes([first[2], first[3]]), 36);
        // Direct routing, no output, established.
        assert_eq!(u32::from_be_bytes(first[4..8].try_into().unwrap()), 0x83);
        assert_eq!(u16::from_be_bytes([first[8], first[9]]), 1);
        assert_eq!(u16::from_be_bytes([first[10], first[11]]), 40000);
        assert_eq!(u16::from_be_bytes([first[12], first[13]]), 80);
        assert_eq!(u16::from_be_bytes([first[14], first[15]]), 80);
        assert_eq!(u32::from_be_bytes(first[16..20].try_into().unwrap()), 0);
        assert_eq!(u32::from_be_bytes(first[20..24].try_into().unwrap()), 899);
        assert_eq!(&first[24..28], &[203, 0, 113, 5]);
        assert_eq!(&first[28..32], &[192, 0, 2, 100]);
        assert_eq!(&first[32..36], &[192, 0, 2, 21]);
        // Half-open: inactive.
        assert_eq!(u32::from_be_bytes(conn(1)[4..8].try_into().unwrap()), 0x183);
        // NAT for the UDP service.
        assert_eq!(u32::from_be_bytes(conn(2)[4..8].try_into().unwrap()), 0);
        // The firewall-mark service's tunnel, and its mark.
        assert_eq!(u32::from_be_bytes(conn(3)[4..8].try_into().unwrap()), 0x82);
        assert_eq!(u32::from_be_bytes(conn(3)[16..20].try_into().unwrap()), 7);
    }

    #[test]
    fn a_large_table_goes_in_messages_that_fit() {
        let services = parse(SERVICES).unwrap();
        let conn = parse_conns(CONNS)[0];
        let conns: Vec<Conn> = (0..1000u16)
            .map(|i| Conn {
                client: SocketAddr::new(conn.client.ip(), i),
                ..conn
            })
            .collect();
        let messages = sync_messages(&conns, &services, 0);
        let per = (MAX_MESSAGE - HEADER) / CONN_V4;
        assert_eq!(messages.len(), 1000usize.div_ceil(per));
        let total: usize = messages.iter().map(|m| usize::from(m[4])).sum();
        assert_eq!(total, 1000);
        assert!(messages.iter().all(
            |m| m.len() <= MAX_MESSAGE && u16::from_be_bytes([m[2], m[3]]) as usize == m.len()
        ));
        assert!(sync_messages(&[], &services, 0).is_empty());
    }

    #[test]
    fn open_connections_go_first_and_closing_ones_are_capped() {
        let services = parse(SERVICES).unwrap();
        let conn = parse_conns(CONNS)[0];
        let many = |state: u16, n: u16| -> Vec<Conn> {
            (0..n)
                .map(|i| Conn {
                    client: SocketAddr::new(conn.client.ip(), i),
                    state,
                    ..conn
                })
                .collect()
        };
        let per = (MAX_CLOSING_MESSAGES + 10) * ((MAX_MESSAGE - HEADER) / CONN_V4);
        let mut conns = many(4, u16::try_from(per).unwrap());
        conns.extend(many(1, 3));
        let messages = hand_over_messages(&conns, &services, 0);
        // The three open ones first, then the capped closing ones.
        assert_eq!(messages[0][4], 3);
        assert_eq!(messages.len(), 1 + MAX_CLOSING_MESSAGES);
        assert_eq!(
            u16::from_be_bytes([messages[1][HEADER + 8], messages[1][HEADER + 9]]),
            4
        );
    }
}
