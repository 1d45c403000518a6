//! `virtual_server_group`: named lists of addresses, address ranges, networks and firewall
//! marks that `virtual_server group NAME` serves with one set of real servers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::syntax::Stmt;
use super::Report;
use crate::config::model::Family;

/// A group expands to one virtual server per address; more than this from one range is
/// surely a mistake for a box that lists its services one by one, and is an error.
const MAX_RANGE: u128 = 256;

/// What a `virtual_server` header or a group line stands for.
#[derive(Clone, Debug)]
pub(super) enum Member {
    Vip { addr: IpAddr, port: Option<u16> },
    Mark { mark: u32, family: Option<Family> },
}

pub(super) struct Group {
    pub members: Vec<Member>,
}

/// Every `virtual_server_group`, by name.
pub(super) fn groups(tree: &[Stmt], report: &mut Report) -> HashMap<String, Group> {
    let mut groups = HashMap::new();
    for stmt in tree
        .iter()
        .filter(|s| s.keyword() == "virtual_server_group")
    {
        let Some(name) = report.value(stmt) else {
            continue;
        };
        if !report.needs_block(stmt) {
            continue;
        }
        let mut members = Vec::new();
        for entry in stmt.body() {
            members.extend(group_entry(entry, report));
        }
        if groups.insert(name.to_string(), Group { members }).is_some() {
            report.note(
                stmt.line,
                format!("`virtual_server_group {name}` is defined again; this definition is used"),
            );
        }
    }
    groups
}

/// One line of a group: `fwmark N [inet|inet6]` or `ADDRESS[-END|/LEN] [PORT]`.
fn group_entry(entry: &Stmt, report: &mut Report) -> Vec<Member> {
    if entry.keyword() == "fwmark" {
        let Some(mark) = report
            .value_at(entry, 0)
            .and_then(|v| mark(entry, v, report))
        else {
            return Vec::new();
        };
        let family = match entry.arg(1) {
            None => None,
            Some(text) => family(entry, text, report),
        };
        report.extra(entry, 2);
        return vec![Member::Mark { mark, family }];
    }
    let text = entry.keyword();
    let port = entry.arg(0).and_then(|p| report.port(entry, p));
    report.extra(entry, 1);
    match expand(text) {
        Ok(addrs) => addrs
            .into_iter()
            .map(|addr| Member::Vip { addr, port })
            .collect(),
        Err(Expand::Malformed) => {
            report.error(
                entry.line,
                format!(
                    "'{text}' is not an address, a range (192.0.2.1-10) or a network \
                     (192.0.2.8/29), nor `fwmark N`"
                ),
            );
            Vec::new()
        }
        Err(Expand::TooMany(count)) => {
            // Dropping the line would silently lose its services: the file must say which.
            report.error(
                entry.line,
                format!(
                    "'{text}' holds {count} addresses, more than the {MAX_RANGE} one range may \
                     have (each becomes a virtual server): split it, or list the services you \
                     need"
                ),
            );
            Vec::new()
        }
    }
}

enum Expand {
    Malformed,
    TooMany(u128),
}

/// The addresses of `192.0.2.1`, `192.0.2.1-10`, `192.0.2.250-192.0.3.10`, `192.0.2.8/29`
/// (and the IPv6 forms, whose short range end is hexadecimal).
fn expand(text: &str) -> Result<Vec<IpAddr>, Expand> {
    let (first, last) = if let Some((addr, len)) = text.split_once('/') {
        let addr: IpAddr = addr.parse().map_err(|_| Expand::Malformed)?;
        let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
        let len: u32 = len
            .parse()
            .ok()
            .filter(|&l| l <= bits)
            .ok_or(Expand::Malformed)?;
        let host_bits = bits - len;
        let size = 1u128.checked_shl(host_bits).unwrap_or(0);
        if size == 0 || size > MAX_RANGE {
            return Err(Expand::TooMany(size.max(MAX_RANGE + 1)));
        }
        let base = to_number(addr) & !(size - 1);
        (from_number(addr, base), from_number(addr, base + size - 1))
    } else if let Some((start, end)) = text.split_once('-') {
        let start: IpAddr = start.parse().map_err(|_| Expand::Malformed)?;
        let end = match end.parse::<IpAddr>() {
            Ok(end) if end.is_ipv4() == start.is_ipv4() => end,
            Ok(_) => return Err(Expand::Malformed),
            Err(_) => {
                // The short form replaces the last part: a decimal byte or a hex group.
                let (part, mask) = match start {
                    IpAddr::V4(_) => (
                        u128::from(end.parse::<u8>().map_err(|_| Expand::Malformed)?),
                        0xff,
                    ),
                    IpAddr::V6(_) => (
                        u128::from(u16::from_str_radix(end, 16).map_err(|_| Expand::Malformed)?),
                        0xffff,
                    ),
                };
                from_number(start, (to_number(start) & !mask) | part)
            }
        };
        (start, end)
    } else {
        let addr: IpAddr = text.parse().map_err(|_| Expand::Malformed)?;
        (addr, addr)
    };
    let (low, high) = (to_number(first), to_number(last));
    if high < low {
        return Err(Expand::Malformed);
    }
    // A whole IPv6 space would not fit in a u128 count.
    let count = (high - low).saturating_add(1);
    if count > MAX_RANGE {
        return Err(Expand::TooMany(count));
    }
    Ok((low..=high).map(|n| from_number(first, n)).collect())
}

fn to_number(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `n` as an address of the family of `like`.
fn from_number(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

pub(super) fn mark(stmt: &Stmt, text: &str, report: &mut Report) -> Option<u32> {
    report
        .number_in(stmt, text, 1, u64::from(u32::MAX))
        .and_then(|n| u32::try_from(n).ok())
}

pub(super) fn family(stmt: &Stmt, text: &str, report: &mut Report) -> Option<Family> {
    match text {
        "inet" => Some(Family::Inet),
        "inet6" => Some(Family::Inet6),
        _ => {
            report.error(
                stmt.line,
                format!("`{}`: '{text}' is not inet or inet6", stmt.keyword()),
            );
            None
        }
    }
}
