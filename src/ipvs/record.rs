//! The record of the IPVS services the director put in the kernel (the daemon keeps it in
//! /run/director/ipvs-managed, so that it survives a restart of the daemon but not a reboot,
//! like the table itself). A service in the record that the configuration no longer has is
//! removed; a service in neither belongs to someone else and is left alone.
//!
//! The format, one service per line, `#` starting a comment:
//!
//! ```text
//! tcp 192.0.2.100 80
//! udp 2001:db8::53 53
//! sctp 192.0.2.100 3868
//! fwmark inet 7
//! fwmark inet6 7
//! ```

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::Path;

use crate::sys::ipvs::{Family, Protocol, ServiceKey};

const HEADER: &str = "\
# The IPVS services the director created (written by the director; do not edit).
# One per line: tcp|udp|sctp ADDRESS PORT, or fwmark inet|inet6 MARK.
";

/// The line of one service.
pub fn line(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Address {
            protocol,
            address,
            port,
        } => {
            format!("{} {address} {port}", protocol.name())
        }
        ServiceKey::Fwmark { family, mark } => {
            let family = match family {
                Family::V4 => "inet",
                Family::V6 => "inet6",
            };
            format!("fwmark {family} {mark}")
        }
    }
}

fn parse_line(text: &str) -> Option<ServiceKey> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["fwmark", family, mark] => {
            let family = match *family {
                "inet" => Family::V4,
                "inet6" => Family::V6,
                _ => return None,
            };
            let mark: u32 = mark.parse().ok().filter(|&m| m != 0)?;
            Some(ServiceKey::Fwmark { family, mark })
        }
        [protocol, address, port] => {
            let protocol = match *protocol {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return None,
            };
            let address: IpAddr = address.parse().ok()?;
            Some(ServiceKey::Address {
                protocol,
                address,
                port: port.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// The services of a record, and a message for each line that could not be read (skipped).
pub fn parse(text: &str) -> (HashSet<ServiceKey>, Vec<String>) {
    let mut keys = HashSet::new();
    let mut problems = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        match parse_line(content) {
            Some(key) => {
                keys.insert(key);
            }
            None => problems.push(format!(
                "line {}: '{}' is not a service (like 'tcp 192.0.2.100 80' or 'fwmark inet 7'); skipped",
                number + 1,
                raw.escape_debug()
            )),
        }
    }
    (keys, problems)
}

/// The text of a record: the header, then the services in a stable order.
pub fn render(keys: &HashSet<ServiceKey>) -> String {
    let sorted: BTreeSet<&ServiceKey> = keys.iter().collect();
    let mut text = String::from(HEADER);
    for key in sorted {
        text.push_str(&line(key));
        text.push('\n');
    }
    text
}

/// Reads the record at `path`: a missing one is empty; an unreadable one is empty, with why;
/// bad lines are skipped, with why.
pub fn load(path: &Path) -> (HashSet<ServiceKey>, Vec<String>) {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let (keys, problems) = parse(&text);
            let problems = problems
                .into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect();
            (keys, problems)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (HashSet::new(), Vec::new()),
        Err(e) => (
            HashSet::new(),
            vec![format!(
                "cannot read {}: {e}; every service not in the configuration is taken as foreign",
                path.display()
            )],
        ),
    }
}

/// Writes the record atomically: to a temporary file beside it, then renamed over it, so that
/// a crash leaves the old record or the new one, never half of one.
pub fn save(path: &Path, keys: &HashSet<ServiceKey>) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(render(keys).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
