//! The values of ldirectord.cf lines: addresses with ports, real server and fallback lines,
//! check types, schedulers, yes/no.

use std::net::IpAddr;

use super::{CheckType, Fallback, Real, Target, MAX_RANGE, PORT_NAMES};
use crate::config::import::ldirectord::{parse_ip, parse_number};
use crate::config::model::{Forwarding, Scheduler};

pub(super) fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

pub(super) fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("the value is empty".into())
    } else {
        Ok(value.to_string())
    }
}

pub(super) fn positive(value: &str, what: &str) -> Result<u64, String> {
    let n: u64 = parse_number(value, what)?;
    if n == 0 || n > u64::from(u32::MAX) {
        return Err(format!("'{value}' must be from 1 to {}", u32::MAX));
    }
    Ok(n)
}

pub(super) fn yes_no(value: &str) -> Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("'{value}' is not yes or no")),
    }
}

pub(super) fn parse_checktype(value: &str) -> Result<CheckType, String> {
    Ok(match value {
        "connect" => CheckType::Connect,
        "negotiate" => CheckType::Negotiate,
        "ping" => CheckType::Ping,
        "off" => CheckType::Off,
        "on" => CheckType::On,
        "external" => CheckType::External,
        "external-perl" => CheckType::ExternalPerl,
        _ if value.chars().all(|c| c.is_ascii_digit()) && !value.is_empty() => {
            CheckType::Combined(parse_number(value, "connect checks per negotiate check")?)
        }
        _ => {
            return Err(format!(
                "'{value}' is not connect, negotiate, ping, off, on, external, external-perl or a number"
            ))
        }
    })
}

pub(super) fn parse_scheduler(value: &str) -> Option<Scheduler> {
    Scheduler::from_name(value)
}

pub(super) fn parse_port(text: &str) -> Result<u16, String> {
    if let Some((_, port)) = PORT_NAMES.iter().find(|(name, _)| *name == text) {
        return Ok(*port);
    }
    parse_number(text, "a port or a service name")
}

/// `ADDRESS[:PORT]`, with IPv6 addresses in brackets (`[2001:db8::1]:80`).
pub(super) fn parse_host_port(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    if text.starts_with('[') {
        let (addr, rest) = match text.find(']') {
            Some(end) => text.split_at(end + 1),
            None => return Err(format!("'{text}' has no closing ']'")),
        };
        let addr = parse_ip(addr)?;
        return match rest.strip_prefix(':') {
            Some(port) => Ok((addr, Some(parse_port(port)?))),
            None if rest.is_empty() => Ok((addr, None)),
            None => Err(format!("'{text}': '{rest}' follows the address")),
        };
    }
    match text.rsplit_once(':') {
        // One colon: address and port. More: an IPv6 address written without brackets.
        Some((addr, port)) if !addr.contains(':') => Ok((parse_ip(addr)?, Some(parse_port(port)?))),
        _ => Ok((parse_ip(text)?, None)),
    }
}

pub(super) fn parse_virtual(value: &str, v6: bool) -> Result<Target, String> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        let mark: u32 = parse_number(value, "a firewall mark")?;
        if mark == 0 {
            return Err("firewall mark 0 marks nothing".into());
        }
        return Ok(Target::Mark(mark));
    }
    let (addr, port) = parse_host_port(value)?;
    if addr.is_ipv6() != v6 {
        return Err(format!(
            "{addr} is an IPv{} address: use `{}`",
            if v6 { 4 } else { 6 },
            if v6 { "virtual" } else { "virtual6" }
        ));
    }
    let port = port.ok_or_else(|| format!("'{value}' has no port (like {addr}:80)"))?;
    Ok(Target::Service(addr, port))
}

pub(super) fn parse_method(word: &str) -> Result<Forwarding, String> {
    match word {
        "gate" => Ok(Forwarding::Dr),
        "masq" => Ok(Forwarding::Nat),
        "ipip" => Ok(Forwarding::Tunnel),
        _ => Err(format!(
            "'{word}' is not a forwarding method (gate, masq or ipip)"
        )),
    }
}

/// `ADDRESS[:PORT] [gate|masq|ipip]`; gate when the method is left out, as in ldirectord.
pub(super) fn parse_fallback(value: &str, line: usize) -> Result<Fallback, String> {
    let mut words = value.split_whitespace();
    let (addr, port) = parse_host_port(words.next().unwrap_or(""))?;
    let method = match words.next() {
        Some(word) => parse_method(word)?,
        None => Forwarding::Dr,
    };
    if let Some(extra) = words.next() {
        return Err(format!("'{extra}' follows the forwarding method"));
    }
    Ok(Fallback {
        addr,
        port,
        method,
        line,
    })
}

/// `ADDRESS[->ADDRESS][:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"]`.
pub(super) fn parse_real(value: &str, line: usize) -> Result<Vec<Real>, String> {
    let value = value.trim();
    let (target, rest) = value
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("'{value}' has no forwarding method (gate, masq or ipip)"))?;
    let rest = rest.trim_start();
    let (method, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let method = parse_method(method)?;
    let mut rest = rest.trim_start();
    let mut weight = 1;
    if rest.starts_with(|c: char| c.is_ascii_digit()) {
        let (digits, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        weight = parse_number(digits, "a weight")?;
        rest = after.trim_start();
    }
    let probe = if rest.is_empty() {
        None
    } else {
        Some(parse_probe(rest)?)
    };

    let (first, last, port) = match target.split_once("->") {
        Some((first, rest)) => {
            let (last, port) = parse_host_port(rest)?;
            (parse_ip(first)?, Some(last), port)
        }
        None => {
            let (addr, port) = parse_host_port(target)?;
            (addr, None, port)
        }
    };
    // Port 0 or none: the virtual service's port (for a firewall mark: the packet's own).
    let port = port.filter(|&p| p != 0);
    let addresses = match (first, last) {
        (first, None) => vec![first],
        (IpAddr::V4(a), Some(IpAddr::V4(b))) => {
            let (a, b) = (u32::from(a), u32::from(b));
            if a > b {
                return Err(format!(
                    "the range {first}->{} runs backwards",
                    IpAddr::from(b.to_be_bytes())
                ));
            }
            if b - a >= MAX_RANGE {
                return Err(format!("the range has more than {MAX_RANGE} addresses"));
            }
            (a..=b).map(|n| IpAddr::from(n.to_be_bytes())).collect()
        }
        _ => return Err("address ranges are for IPv4 only".into()),
    };
    Ok(addresses
        .into_iter()
        .map(|addr| Real {
            line,
            addr,
            port,
            method,
            weight,
            probe: probe.clone(),
        })
        .collect())
}

/// `"REQUEST", "RECEIVE"` (or separated by a space) at the end of a real line.
pub(super) fn parse_probe(text: &str) -> Result<(String, String), String> {
    let quoted = |s: &str| -> Option<(String, usize)> {
        let inner = s.strip_prefix('"')?;
        let end = inner.find('"')?;
        Some((inner.get(..end)?.to_string(), end + 2))
    };
    let bad = || format!("'{text}' is not a quoted \"request\", \"receive\" pair");
    let (request, used) = quoted(text).ok_or_else(bad)?;
    let rest = text.get(used..).unwrap_or("");
    let rest = rest
        .trim_start()
        .strip_prefix(',')
        .unwrap_or(rest)
        .trim_start();
    let (receive, used) = quoted(rest).ok_or_else(bad)?;
    let trailing = rest.get(used..).unwrap_or("").trim();
    if !trailing.is_empty() {
        return Err(format!(
            "'{trailing}' follows the request and receive strings"
        ));
    }
    Ok((request, receive))
}

/// `checkcommand`: ldirectord hands it to the shell, so it is split into the program and its
/// arguments as the shell would split plain words: on white space, except inside single or
/// double quotes, which are removed; a backslash outside single quotes keeps the next character.
pub(super) fn parse_command(value: &str) -> Result<(String, Vec<String>), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                started = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("the quote {q} in '{value}' is not closed"));
    }
    if started {
        words.push(word);
    }
    let mut words = words.into_iter();
    let path = words
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("'{value}' names no program"))?;
    Ok((path, words.collect()))
}
