//! Importer for Linux-HA directors: ldirectord's `ldirectord.cf` (virtual services, real
//! servers, health checks) together with heartbeat's `ha.cf`, `haresources` and `authkeys`
//! from the same folder (the pair, this box's role, the VIP devices and the shared key).
//!
//! The defaults are ldirectord's and heartbeat's own, so that a file that relied on them
//! behaves on the box as it did before. Every line with no equivalent here becomes a `Note`;
//! every line that cannot be read is an error, and all of them are reported together.

mod cf;
mod heartbeat;

use std::net::IpAddr;

use super::{ImportError, Imported, Note, Source};
use crate::config::Config;

/// Imports `source` (ldirectord.cf); `sibling` gives heartbeat's files beside it.
pub fn import(
    source: Source<'_>,
    sibling: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, ImportError> {
    let mut report = Report::default();
    let mut virtual_servers = cf::read(source.name, source.text, &mut report);
    let ha = heartbeat::read(sibling, &mut report);

    // haresources brings the VIPs up on named devices; the box does that per virtual server.
    for vip in &ha.vips {
        let mut matched = false;
        for vs in virtual_servers
            .iter_mut()
            .filter(|vs| vs.vip == Some(vip.addr))
        {
            matched = true;
            if let Some(device) = &vip.device {
                vs.device = Some(device.clone());
            }
        }
        if !matched {
            report.note(
                heartbeat::HARESOURCES,
                vip.line,
                format!(
                    "VIP {} has no virtual service in {}: the box only brings up the VIPs of its \
                     virtual servers, so this address is not imported",
                    vip.addr, source.name
                ),
            );
        }
    }

    let mut config = Config {
        virtual_servers,
        pair: ha.pair,
        ..Config::default()
    };
    if let Some(hostname) = ha.hostname {
        config.node.hostname = hostname;
    }
    if let Some(role) = ha.role {
        config.node.role = role;
    }

    let order = [
        source.name,
        heartbeat::HA_CF,
        heartbeat::HARESOURCES,
        heartbeat::AUTHKEYS,
    ];
    let rank = |note: &Note| {
        order
            .iter()
            .position(|f| *f == note.file)
            .unwrap_or(order.len())
    };
    if !report.errors.is_empty() {
        report.errors.sort_by_key(|n| (rank(n), n.line));
        return Err(ImportError::Unreadable(report.errors));
    }
    report.notes.sort_by_key(|n| (rank(n), n.line));
    Ok(Imported {
        config,
        notes: report.notes,
    })
}

/// Errors (lines that cannot be read) and notes (lines with no equivalent) of all files.
#[derive(Default)]
struct Report {
    errors: Vec<Note>,
    notes: Vec<Note>,
}

impl Report {
    fn error(&mut self, file: &str, line: usize, message: impl Into<String>) {
        self.errors.push(Note::new(file, line, message));
    }

    fn note(&mut self, file: &str, line: usize, message: impl Into<String>) {
        self.notes.push(Note::new(file, line, message));
    }
}

/// The text of a line before its comment. Both formats start comments with `#`; a `#` inside
/// double quotes (an ldirectord receive string) or glued to a word is kept.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut previous_is_space = true;
    for (at, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && previous_is_space => return line.get(..at).unwrap_or(line),
            _ => {}
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

/// An address as written, without name resolution: the box never resolves names at import,
/// because the result would depend on the machine doing the import.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().map_err(|_| {
        format!("'{text}' is not an IP address (host names are not resolved at import: write the address)")
    })
}

/// A whole number, as both formats write them.
fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("'{text}' is not a number ({what})"));
    }
    text.parse()
        .map_err(|_| format!("'{text}' is out of range ({what})"))
}

#[cfg(test)]
mod tests;
