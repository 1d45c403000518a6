//! Importer for Red Hat Piranha's `lvs.cf` (lvs.cf(5), read by pulse, lvs and nanny): the
//! global section becomes the pair (primary is taken as this box, backup as its peer) and the
//! forwarding of every service; each `virtual NAME { ... }` block becomes a virtual server,
//! its `server NAME { ... }` blocks its real servers, and nanny's send/expect or
//! send_program its health check.
//!
//! Where the file is silent, Piranha's own defaults apply (those of its parser and of nanny),
//! so that the box behaves as the old director did. Every line with no equivalent here is a
//! `Note`; every line that cannot be read is an error, and all of them are reported together.

mod global;
mod service;
mod syntax;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use super::{ImportError, Imported, Note, Source};
use crate::config::types::Span;
use crate::config::Config;
use syntax::Stmt;

/// Reads an lvs.cf into a configuration (not yet validated).
pub fn import(source: Source<'_>) -> Result<Imported, ImportError> {
    let mut report = Report {
        file: source.name,
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let tree = syntax::parse(source.text, &mut report);
    let settings = global::read(&tree, &mut report);
    let mut config = Config::default();
    let mut names = HashSet::new();
    for stmt in tree.iter().filter(|s| s.block.is_some()) {
        match stmt.key.as_str() {
            "virtual" => {
                if let Some(vs) = service::virtual_server(stmt, &settings, &mut names, &mut report)
                {
                    config.virtual_servers.push(vs);
                }
            }
            "failover" => report.note(
                stmt.line,
                format!(
                    "`failover {}` ({}): failover services (pulse's `service = fos`) are not \
                     supported; the box balances virtual servers only",
                    stmt.name(),
                    stmt.span()
                ),
            ),
            kind => report.note(
                stmt.line,
                format!(
                    "`{kind} {}` ({}): not an lvs.cf block; not imported",
                    stmt.name(),
                    stmt.span()
                ),
            ),
        }
    }
    global::apply(settings, &mut config, &mut report);
    if !report.errors.is_empty() {
        report.errors.sort_by_key(|n| n.line);
        return Err(ImportError::Unreadable(report.errors));
    }
    report.notes.sort_by_key(|n| n.line);
    Ok(Imported {
        config,
        notes: report.notes,
    })
}

/// Where errors and notes are collected.
pub(super) struct Report<'a> {
    file: &'a str,
    errors: Vec<Note>,
    notes: Vec<Note>,
}

impl Report<'_> {
    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(Note::new(self.file, line, message));
    }

    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.notes.push(Note::new(self.file, line, message));
    }

    /// A directive that has no equivalent here, and why.
    fn unsupported(&mut self, stmt: &Stmt, why: &str) {
        self.note(
            stmt.line,
            format!("`{} = {}`: {why}", stmt.key, stmt.values.join(" ")),
        );
    }

    /// A directive not known at this place.
    fn unknown(&mut self, stmt: &Stmt, place: &str) {
        if stmt.block.is_some() {
            self.note(
                stmt.line,
                format!(
                    "`{} {}` ({}): not a block lvs.cf has {place}; not imported",
                    stmt.key,
                    stmt.name(),
                    stmt.span()
                ),
            );
        } else {
            self.note(
                stmt.line,
                format!(
                    "`{}`: not an lvs.cf directive {place}; not imported",
                    stmt.key
                ),
            );
        }
    }

    /// The one value of a setting. Piranha refuses extra words ("unexpected arguments"), and
    /// so does the importer: a value with spaces must be quoted.
    fn value<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s str> {
        if stmt.values.len() > 1 {
            self.error(
                stmt.line,
                format!(
                    "`{}` takes one value, not '{}' (quote a value that has spaces)",
                    stmt.key,
                    stmt.values.join(" ")
                ),
            );
            return None;
        }
        stmt.values.first().map(String::as_str)
    }

    /// A whole number from `min` to `max`.
    fn number(&mut self, stmt: &Stmt, min: u64, max: u64) -> Option<u64> {
        let text = self.value(stmt)?;
        match parse_whole(text) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                self.error(
                    stmt.line,
                    format!("`{}`: {text} is outside {min}..{max}", stmt.key),
                );
                None
            }
            None => {
                self.error(
                    stmt.line,
                    format!("`{}`: '{text}' is not a whole number", stmt.key),
                );
                None
            }
        }
    }

    /// A number of seconds (lvs.cf writes every time that way).
    fn seconds(&mut self, stmt: &Stmt, min: u64) -> Option<Span> {
        // A day is more than any timer of Piranha's; larger values are typos.
        self.number(stmt, min, 86_400)
            .map(|s| Span::from_millis(s * 1000))
    }

    /// Piranha's booleans are 0 and 1; the usual words are accepted too.
    fn flag(&mut self, stmt: &Stmt) -> Option<bool> {
        let text = self.value(stmt)?;
        match text.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => Some(true),
            "0" | "no" | "false" | "off" => Some(false),
            _ => {
                self.error(stmt.line, format!("`{}`: '{text}' is not 0 or 1", stmt.key));
                None
            }
        }
    }

    /// An address as written, without name resolution: the result of resolving would depend
    /// on the machine doing the import.
    fn address(&mut self, stmt: &Stmt, text: &str) -> Option<IpAddr> {
        let addr = text.parse().ok();
        if addr.is_none() {
            self.error(
                stmt.line,
                format!(
                    "`{}`: '{text}' is not an IP address (host names are not resolved at \
                     import: write the address)",
                    stmt.key
                ),
            );
        }
        addr
    }

    /// A dotted IPv4 netmask (`vip_nmask`, `pmask`, `nat_nmask`).
    fn netmask(&mut self, stmt: &Stmt) -> Option<Ipv4Addr> {
        let text = self.value(stmt)?;
        let mask = text.parse().ok();
        if mask.is_none() {
            self.error(
                stmt.line,
                format!(
                    "`{}`: '{text}' is not a netmask like 255.255.255.0",
                    stmt.key
                ),
            );
        }
        mask
    }

    /// Notes a setting given again in the same section: the last one counts, as in Piranha.
    fn repeated(&mut self, seen: &mut Vec<(String, usize)>, stmt: &Stmt) {
        if let Some((_, first)) = seen.iter().find(|(key, _)| *key == stmt.key) {
            let first = *first;
            self.note(
                first,
                format!(
                    "`{}` is given again on line {}; the later value is used",
                    stmt.key, stmt.line
                ),
            );
            seen.retain(|(key, _)| *key != stmt.key);
        }
        seen.push((stmt.key.clone(), stmt.line));
    }
}

/// Digits only (no sign), as Piranha's numbers are.
fn parse_whole(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests;
