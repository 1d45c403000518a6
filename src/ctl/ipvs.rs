//! `director ctl ipvs`: the kernel's IPVS table in the layouts network engineers know from
//! `ipvsadm -Ln`, `ipvsadm -Ln --stats` and `ipvsadm -Ln --rate`, byte for byte, and as JSON.
//! Pure functions of what the kernel reported; the request wiring is elsewhere.
//!
//! The format rules, learnt from ipvsadm 1.31 (ipvsadm.c: list_all, print_title,
//! print_service_entry, print_largenum, print_sched_flags, fwd_name, protocol_name,
//! addrport_to_anyname; libipvs/libipvs.c: ipvs_cmp_services, ipvs_cmp_dests; libipvs/ip_vs.h:
//! NVERSION) and its man page ipvsadm(8). A later test diffs our text against the real
//! ipvsadm; each rule below names where it comes from so a mismatch is fixed fast.
//!
//! 1. First line (list_all): `IP Virtual Server version A.B.C (size=N)`, A.B.C the bytes of
//!    the version code (NVERSION: bits 16-23, 8-15, 0-7), N the connection table size.
//! 2. Titles (print_title), two lines each. Plain: `Prot LocalAddress:Port Scheduler Flags`
//!    and `  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn`. --stats and
//!    --rate: `Prot LocalAddress:Port` left-aligned in 33 columns, then five names each
//!    right-aligned in 8 after one space (Conns InPkts OutPkts InBytes OutBytes; CPS InPPS
//!    OutPPS InBPS OutBPS), and `  -> RemoteAddress:Port`.
//! 3. A service's name (print_service_entry): a firewall-mark one is `FWM  <mark>` (two
//!    spaces), followed by ` IPv6` for an IPv6 one; an address one is the protocol name (TCP,
//!    UDP, SCTP: protocol_name) left-aligned in 4, one space, and `addr:port`, an IPv6
//!    address in brackets `[addr]:port` (addrport_to_anyname with -n). The name of a
//!    non-IPv6 service is cut at 33 characters, a real server's at 28.
//! 4. Plain service line: `<name> <scheduler>`, then ` (<flags>)` when a scheduler flag is
//!    set (print_sched_flags: for sh `sh-fallback`, `sh-port`; for mh `mh-fallback`,
//!    `mh-port`; otherwise `flag-1`, `flag-2`, `flag-3`; comma-separated), then
//!    ` persistent <timeout>` when persistent, followed by ` mask <a.b.c.d>` (IPv4, when the
//!    mask is not 255.255.255.255) or ` mask <len>` (IPv6, when not 128); then ` ops` for
//!    one-packet scheduling.
//! 5. Plain real server line: `  -> ` then the `addr:port` left-aligned in 28, the forwarding
//!    method left-aligned in 7 (Masq, Local, Tunnel, Route: fwd_name), the weight (signed)
//!    left-aligned in 6, active and inactive connections each left-aligned in 10, so that the
//!    line ends in spaces, as ipvsadm's does.
//! 6. --stats: the service's name left-aligned in 33, then conns, inpkts, outpkts, inbytes,
//!    outbytes each as a large number (rule 8); a real server: `  -> ` and its name in 28,
//!    then the same five.
//! 7. --rate: the service as in rule 6 with cps, inpps, outpps, inbps, outbps; a real server:
//!    `  -> ` and its name in 28, then cps, inpps, outpps each as one space and the plain
//!    number right-aligned in 8 (never scaled), then inbps and outbps as large numbers.
//! 8. Large numbers (print_largenum, without --exact): below 100 000 000 right-aligned in 9;
//!    below 10^9, n/1000 right-aligned in 8 and `K`; below 10^11, n/10^6 and `M`; below
//!    10^14, n/10^9 and `G`; otherwise n/10^12 and `T` (integer division).
//! 9. Order (list_all sorts unless --nosort; glibc's qsort, a merge sort): services by
//!    firewall mark (0 for address services, so those come first), then family (AF_INET 2
//!    before AF_INET6 10), protocol number, address in 32-bit words from the most significant,
//!    then port; real servers by address words, then port (with the first real server's
//!    family deciding how many words). ipvsadm subtracts unsigned values and reads the
//!    difference as a signed int, so two addresses more than 2^31 apart compare "backwards"
//!    (10.0.0.1 after 192.0.2.1); we compute the same and sort with the same merge sort.
//! 10. IPv6 addresses as glibc's inet_ntop writes them (RFC 5952 compression; an IPv4-mapped
//!     or IPv4-compatible address ends in dotted quad).

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::sys::ipvs::{
    Destination, DestinationEntry, Family, Forwarding, Info, Protocol, Service, ServiceEntry,
    ServiceKey, Stats, TableEntry, TunnelKind,
};

/// Which of ipvsadm's listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `ipvsadm -Ln`.
    Plain,
    /// `ipvsadm -Ln --stats`.
    Stats,
    /// `ipvsadm -Ln --rate`.
    Rate,
}

/// IP_VS_VERSION_CODE as text: 0x010201 is "1.2.1".
fn version(code: u32) -> String {
    format!(
        "{}.{}.{}",
        (code >> 16) & 0xff,
        (code >> 8) & 0xff,
        code & 0xff
    )
}

/// The table as `ipvsadm -Ln` (and its --stats and --rate) prints it.
pub fn render(info: &Info, table: &[TableEntry], view: View) -> String {
    // About what a service with two real servers takes: one allocation for most tables.
    let mut out = String::with_capacity(200 + table.len() * 180);
    // Rule 1.
    let _ = writeln!(
        out,
        "IP Virtual Server version {} (size={})",
        version(info.version),
        info.connection_table_size
    );
    // Rule 2.
    match view {
        View::Plain => out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        ),
        View::Stats => title(
            &mut out,
            ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"],
        ),
        View::Rate => title(&mut out, ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]),
    }
    let (mut name, mut dname) = (String::new(), String::new());
    for (entry, destinations) in sorted(table) {
        let service = &entry.service;
        service_name(&mut name, &service.key);
        match view {
            View::Plain => {
                out.push_str(&name);
                out.push(' ');
                out.push_str(&service.scheduler);
                service_flags(&mut out, service);
            }
            View::Stats => {
                let _ = write!(out, "{name:<33}");
                counters(&mut out, &entry.stats);
            }
            View::Rate => {
                let _ = write!(out, "{name:<33}");
                let s = &entry.stats;
                for n in [s.cps, s.inpps, s.outpps, s.inbps, s.outbps] {
                    large(&mut out, n);
                }
            }
        }
        out.push('\n');
        for d in destinations {
            let dest = &d.destination;
            dname.clear();
            address_port(&mut dname, dest.address, dest.port);
            if dest.address.is_ipv4() {
                dname.truncate(28);
            }
            match view {
                View::Plain => {
                    // "  -> {dname:<28} {forward:<7} {weight:<6} {active:<10} {inactive:<10}",
                    // written by hand: a large table has tens of thousands of these lines.
                    out.push_str("  -> ");
                    left(&mut out, &dname, 28);
                    out.push(' ');
                    left(&mut out, forwarding_name(dest.forwarding), 7);
                    out.push(' ');
                    // The kernel's weight is an int; ipvsadm prints it signed.
                    let weight = i32::from_ne_bytes(dest.weight.to_ne_bytes());
                    let mut digits = Digits::new();
                    left(&mut out, digits.signed(weight.into()), 6);
                    out.push(' ');
                    left(&mut out, digits.unsigned(d.active_conns.into()), 10);
                    out.push(' ');
                    left(&mut out, digits.unsigned(d.inactive_conns.into()), 10);
                    out.push('\n');
                }
                View::Stats => {
                    let _ = write!(out, "  -> {dname:<28}");
                    counters(&mut out, &d.stats);
                    out.push('\n');
                }
                View::Rate => {
                    let s = &d.stats;
                    let _ = write!(
                        out,
                        "  -> {dname:<28} {:>8} {:>8} {:>8}",
                        s.cps, s.inpps, s.outpps
                    );
                    large(&mut out, s.inbps);
                    large(&mut out, s.outbps);
                    out.push('\n');
                }
            }
        }
    }
    out
}

fn title(out: &mut String, names: [&str; 5]) {
    let _ = write!(out, "{:<33}", "Prot LocalAddress:Port");
    for name in names {
        let _ = write!(out, " {name:>8}");
    }
    out.push_str("\n  -> RemoteAddress:Port\n");
}

fn counters(out: &mut String, s: &Stats) {
    for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
        large(out, n);
    }
}

/// Rule 8.
fn large(out: &mut String, n: u64) {
    let _ = match n {
        0..100_000_000 => write!(out, "{n:>9}"),
        100_000_000..1_000_000_000 => write!(out, "{:>8}K", n / 1_000),
        1_000_000_000..100_000_000_000 => write!(out, "{:>8}M", n / 1_000_000),
        100_000_000_000..100_000_000_000_000 => write!(out, "{:>8}G", n / 1_000_000_000),
        _ => write!(out, "{:>8}T", n / 1_000_000_000_000),
    };
}

/// Rule 4, after the scheduler.
fn service_flags(out: &mut String, service: &Service) {
    let sched_bits = Service::SH_FALLBACK | Service::SH_PORT | Service::SCHED3;
    if service.flags & sched_bits != 0 {
        let names: [(u32, &str); 3] = match service.scheduler.as_str() {
            "sh" => [
                (Service::SH_FALLBACK, "sh-fallback"),
                (Service::SH_PORT, "sh-port"),
                (0, ""),
            ],
            "mh" => [
                (Service::SH_FALLBACK, "mh-fallback"),
                (Service::SH_PORT, "mh-port"),
                (0, ""),
            ],
            _ => [
                (Service::SH_FALLBACK, "flag-1"),
                (Service::SH_PORT, "flag-2"),
                (Service::SCHED3, "flag-3"),
            ],
        };
        let set: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| service.flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        let _ = write!(out, " ({})", set.join(","));
    }
    if service.flags & Service::PERSISTENT != 0 {
        let _ = write!(out, " persistent {}", service.timeout);
        match service.key.family() {
            Family::V4 if service.netmask != 32 => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(service.netmask.min(32)))
                    .unwrap_or(0);
                let _ = write!(out, " mask {}", Ipv4Addr::from(mask));
            }
            Family::V6 if service.netmask != 128 => {
                let _ = write!(out, " mask {}", service.netmask);
            }
            _ => {}
        }
    }
    if service.flags & Service::ONE_PACKET != 0 {
        out.push_str(" ops");
    }
}

/// Rule 3.
/// The service's name, written over `name` (one buffer serves a whole table).
fn service_name(name: &mut String, key: &ServiceKey) {
    name.clear();
    match key {
        ServiceKey::Fwmark {
            family: Family::V4,
            mark,
        } => {
            let _ = write!(name, "FWM  {mark}");
        }
        ServiceKey::Fwmark {
            family: Family::V6,
            mark,
        } => {
            let _ = write!(name, "FWM  {mark} IPv6");
        }
        ServiceKey::Address {
            protocol,
            address,
            port,
        } => {
            let protocol = match protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
            };
            let _ = write!(name, "{protocol:<4} ");
            address_port(name, *address, *port);
            if address.is_ipv4() {
                name.truncate(33);
            }
        }
    }
}

fn address_port(out: &mut String, address: IpAddr, port: u16) {
    let mut digits = Digits::new();
    match address {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.unsigned(octet.into()));
            }
        }
        IpAddr::V6(a) => {
            out.push('[');
            out.push_str(&inet6(a));
            out.push(']');
        }
    }
    out.push(':');
    out.push_str(digits.unsigned(port.into()));
}

/// `text` and spaces after it up to `width` (as `{:<width}` for ASCII text).
fn left(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    for _ in text.len()..width {
        out.push(' ');
    }
}

/// Decimal digits of a number, without the formatting machinery.
struct Digits([u8; 20]);

impl Digits {
    fn new() -> Digits {
        Digits([0; 20])
    }

    fn unsigned(&mut self, n: u64) -> &str {
        let at = self.fill(n);
        std::str::from_utf8(&self.0[at..]).unwrap_or("?")
    }

    fn signed(&mut self, n: i64) -> &str {
        let mut at = self.fill(n.unsigned_abs());
        if n < 0 {
            at -= 1;
            self.0[at] = b'-';
        }
        std::str::from_utf8(&self.0[at..]).unwrap_or("?")
    }

    /// Writes the digits of `n` at the end; where they start. Room is left for a sign: u64
    /// has at most 20 digits, i64's magnitude 19.
    fn fill(&mut self, mut n: u64) -> usize {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 || at == 0 {
                return at;
            }
        }
    }
}

/// Rule 10: as glibc's inet_ntop. Rust writes RFC 5952 too, but writes an IPv4-compatible
/// address (::a.b.c.d, deprecated) in hexadecimal where glibc writes a dotted quad.
fn inet6(address: Ipv6Addr) -> String {
    let s = address.segments();
    if s[..6] == [0; 6] && s[6] != 0 {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return format!("::{}", Ipv4Addr::new(a, b, c, d));
    }
    address.to_string()
}

fn forwarding_name(forwarding: Forwarding) -> &'static str {
    match forwarding {
        Forwarding::Masquerade => "Masq",
        Forwarding::Local => "Local",
        Forwarding::Tunnel(_) => "Tunnel",
        Forwarding::Route => "Route",
    }
}

/// An address as libipvs holds it (union nf_inet_addr): four 32-bit words, most significant
/// first; an IPv4 address in the first, the others zero.
fn words(address: IpAddr) -> [u32; 4] {
    match address {
        IpAddr::V4(a) => [u32::from(a), 0, 0, 0],
        IpAddr::V6(a) => {
            let b = u128::from(a);
            [
                (b >> 96) as u32,
                (b >> 64) as u32,
                (b >> 32) as u32,
                b as u32,
            ]
        }
    }
}

/// `a - b` as C computes it into an int from two unsigned values.
fn c_diff(a: u32, b: u32) -> i32 {
    i32::from_ne_bytes(a.wrapping_sub(b).to_ne_bytes())
}

/// Compares addresses as ipvsadm does: four words when the first is IPv6, one otherwise.
fn compare_addresses(a: IpAddr, b: IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let count = if a.is_ipv6() { 4 } else { 1 };
    wa.iter()
        .zip(wb.iter())
        .take(count)
        .map(|(x, y)| c_diff(*x, *y))
        .find(|r| *r != 0)
        .unwrap_or(0)
}

/// ipvs_cmp_services.
fn compare_services(a: &TableEntry, b: &TableEntry) -> i32 {
    let fields = |key: &ServiceKey| -> (u32, i32, i32, IpAddr, i32) {
        let af = match key.family() {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        };
        match *key {
            ServiceKey::Fwmark { mark, family } => {
                let zero = match family {
                    Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                (mark, af, 0, zero, 0)
            }
            ServiceKey::Address {
                protocol,
                address,
                port,
            } => (
                0,
                af,
                i32::from(protocol.number()),
                address,
                i32::from(port),
            ),
        }
    };
    let (m1, af1, p1, a1, port1) = fields(&a.0.service.key);
    let (m2, af2, p2, a2, port2) = fields(&b.0.service.key);
    [
        c_diff(m1, m2),
        af1 - af2,
        p1 - p2,
        compare_addresses(a1, a2),
        port1 - port2,
    ]
    .into_iter()
    .find(|r| *r != 0)
    .unwrap_or(0)
}

/// ipvs_cmp_dests.
fn compare_destinations(a: &DestinationEntry, b: &DestinationEntry) -> i32 {
    let (a, b) = (&a.destination, &b.destination);
    match compare_addresses(a.address, b.address) {
        0 => i32::from(a.port) - i32::from(b.port),
        r => r,
    }
}

/// glibc's merge sort (msort_with_tmp): halves of n/2 and n - n/2, merged taking from the
/// first half while the comparison is <= 0. The same steps as ipvsadm's qsort, so the same
/// order even where ipvsadm's comparison is not a consistent order.
fn merge_sort<T: Copy>(items: &mut [T], compare: &dyn Fn(&T, &T) -> i32) {
    let n = items.len();
    if n <= 1 {
        return;
    }
    let (left, right) = items.split_at_mut(n / 2);
    merge_sort(left, compare);
    merge_sort(right, compare);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if compare(&left[i], &right[j]) <= 0 {
            merged.push(left[i]);
            i += 1;
        } else {
            merged.push(right[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&left[i..]);
    merged.extend_from_slice(&right[j..]);
    items.copy_from_slice(&merged);
}

/// Rule 9: the table in ipvsadm's order. References are sorted, never the entries: a merge
/// sort moves every element once per level, and 10,000 services with their real servers
/// are costly to copy fourteen times over.
fn sorted(table: &[TableEntry]) -> Vec<(&ServiceEntry, Vec<&DestinationEntry>)> {
    let mut services: Vec<&TableEntry> = table.iter().collect();
    merge_sort(&mut services, &|a: &&TableEntry, b: &&TableEntry| {
        compare_services(a, b)
    });
    services
        .into_iter()
        .map(|(entry, destinations)| {
            let mut destinations: Vec<&DestinationEntry> = destinations.iter().collect();
            merge_sort(
                &mut destinations,
                &|a: &&DestinationEntry, b: &&DestinationEntry| compare_destinations(a, b),
            );
            (entry, destinations)
        })
        .collect()
}

/// The table as JSON: `{"version": "1.2.1", "size": 4096, "services": [...]}`, each service
/// with its key, scheduler, flags, persistence, counters and rates, and its real servers
/// (address, port, forwarding, weight, thresholds, connections, counters, rates); in
/// ipvsadm's order.
pub fn render_json(info: &Info, table: &[TableEntry]) -> String {
    render_json_with(info, table, &|_, _| None)
}

/// `render_json`, each real server with `"health":` and the JSON `health` gives for it (none:
/// no such key).
pub fn render_json_with(
    info: &Info,
    table: &[TableEntry],
    health: &dyn Fn(&ServiceKey, &Destination) -> Option<String>,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"version\":\"{}\",\"size\":{},\"services\":[",
        version(info.version),
        info.connection_table_size
    );
    for (i, (entry, destinations)) in sorted(table).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let service = &entry.service;
        out.push('{');
        match service.key {
            ServiceKey::Address {
                protocol,
                address,
                port,
            } => {
                let protocol = protocol.name();
                let _ = write!(
                    out,
                    "\"family\":\"{}\",\"protocol\":\"{protocol}\",\"address\":\"{address}\",\"port\":{port},",
                    family_name(service.key.family())
                );
            }
            ServiceKey::Fwmark { family, mark } => {
                let _ = write!(
                    out,
                    "\"family\":\"{}\",\"fwmark\":{mark},",
                    family_name(family)
                );
            }
        }
        out.push_str("\"scheduler\":");
        json_string(&mut out, &service.scheduler);
        let _ = write!(out, ",\"flags\":{},\"persistence\":", service.flags);
        if service.flags & Service::PERSISTENT != 0 {
            let _ = write!(
                out,
                "{{\"timeout\":{},\"prefix_len\":{}}}",
                service.timeout, service.netmask
            );
        } else {
            out.push_str("null");
        }
        let _ = write!(
            out,
            ",\"one_packet\":{}",
            service.flags & Service::ONE_PACKET != 0
        );
        json_stats(&mut out, &entry.stats);
        out.push_str(",\"destinations\":[");
        for (j, d) in destinations.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let dest = &d.destination;
            let _ = write!(
                out,
                "{{\"address\":\"{}\",\"port\":{},\"forwarding\":\"{}\"",
                dest.address,
                dest.port,
                forwarding_name(dest.forwarding).to_lowercase()
            );
            if let Forwarding::Tunnel(tunnel) = dest.forwarding {
                let kind = match tunnel.kind {
                    TunnelKind::Ipip => "ipip",
                    TunnelKind::Gue => "gue",
                    TunnelKind::Gre => "gre",
                };
                let _ = write!(
                    out,
                    ",\"tunnel\":{{\"type\":\"{kind}\",\"port\":{},\"flags\":{}}}",
                    tunnel.port, tunnel.flags
                );
            }
            let _ = write!(
                out,
                ",\"weight\":{},\"upper_threshold\":{},\"lower_threshold\":{},\
                 \"active_connections\":{},\"inactive_connections\":{},\"persistent_connections\":{}",
                dest.weight,
                dest.upper_threshold,
                dest.lower_threshold,
                d.active_conns,
                d.inactive_conns,
                d.persistent_conns
            );
            json_stats(&mut out, &d.stats);
            if let Some(health) = health(&service.key, dest) {
                let _ = write!(out, ",\"health\":{health}");
            }
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    out
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "inet",
        Family::V6 => "inet6",
    }
}

fn json_stats(out: &mut String, s: &Stats) {
    let _ = write!(
        out,
        ",\"stats\":{{\"connections\":{},\"in_packets\":{},\"out_packets\":{},\"in_bytes\":{},\"out_bytes\":{}}}\
         ,\"rates\":{{\"connections\":{},\"in_packets\":{},\"out_packets\":{},\"in_bytes\":{},\"out_bytes\":{}}}",
        s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes, s.cps, s.inpps, s.outpps, s.inbps, s.outbps
    );
}

/// A JSON string: quotes, backslashes and control characters escaped.
pub(crate) fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
