//! Importer for keepalived.conf (keepalived(8), keepalived.conf(5)): the LVS part
//! (`virtual_server`, `virtual_server_group`, `real_server` and its checkers) becomes the
//! virtual servers, the VRRP part (`vrrp_instance`) becomes the pair and the devices of the
//! VIPs, `global_defs` names the node. Whatever has no equivalent is a note on its line;
//! what cannot be read at all (braces, missing or malformed values) is an error on its line.

mod checks;
mod groups;
mod lvs;
mod syntax;
mod vrrp;

use std::collections::HashSet;
use std::net::IpAddr;

use super::{distinct_name, ImportError, Imported, Note, Source};
use crate::config::types::Span;
use crate::config::Config;
use syntax::Stmt;

/// Reads a keepalived.conf into a configuration (not yet validated).
pub fn import(source: Source<'_>) -> Result<Imported, ImportError> {
    let mut report = Report {
        file: source.name,
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let tree = syntax::parse(source.text, &mut report);
    let mut config = Config::default();
    // Groups may be defined after the virtual servers that use them.
    let groups = groups::groups(&tree, &mut report);
    let mut vrrp = vrrp::Vrrp::default();
    for stmt in &tree {
        match stmt.keyword() {
            "virtual_server_group" => {}
            "virtual_server" => lvs::virtual_server(stmt, &groups, &mut config, &mut report),
            "global_defs" => vrrp.global_defs(stmt, &mut config, &mut report),
            "vrrp_instance" => vrrp.instance(stmt, &mut report),
            _ => top_level(stmt, &mut report),
        }
    }
    vrrp.finish(&mut config, &mut report);
    unique_names(&mut config);
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

/// Top-level blocks with no equivalent, each with the reason.
fn top_level(stmt: &Stmt, report: &mut Report) {
    let kw = stmt.keyword();
    let why = match kw {
        "vrrp_sync_group" => {
            "the box moves all its VIPs together, as one sync group; its notify scripts and \
             tracking are not imported"
        }
        "vrrp_script" | "track_file" | "vrrp_track_file" | "vrrp_track_process" => {
            "tracking scripts, files and processes do not move the VIPs here; the pair follows \
             its heartbeat"
        }
        "static_ipaddress" | "static_routes" | "static_rules" => {
            "static addresses, routes and rules belong in the network section (network.interfaces, \
             network.routes); enter them there"
        }
        "SSL" => "client certificates for SSL_GET are not supported; HTTPS checks present none",
        "bfd_instance" => "BFD is not supported",
        "vrrp_gratuitous_arp_delay_group" | "garp_group" => {
            "announcements after a takeover are set by pair.announce_count and announce_spacing"
        }
        "linkbeat_interfaces" => "link-beat polling is not supported",
        "real_server" => {
            // Usually a brace closed one line too early; the real server would be lost.
            report.error(
                stmt.line,
                format!(
                    "real_server outside a virtual_server ({}): check the braces of the \
                     virtual_server before it",
                    stmt.span()
                ),
            );
            return;
        }
        "virtual_server" | "virtual_server_group" | "vrrp_instance" | "global_defs" => return,
        _ => {
            report.unknown(stmt);
            return;
        }
    };
    report.note(stmt.line, format!("`{kw}` ({}): {why}", stmt.span()));
}

/// Gives every virtual server, and every real server within one, a distinct name: a
/// configuration that lists the same service twice still gets names, and validation then
/// names the real problem (the service served twice).
fn unique_names(config: &mut Config) {
    let mut seen = HashSet::new();
    for vs in &mut config.virtual_servers {
        vs.name = distinct_name(&vs.name, &mut seen);
        let mut rs_seen = HashSet::new();
        for rs in &mut vs.real_servers {
            rs.name = distinct_name(&rs.name, &mut rs_seen);
        }
    }
}

/// Where errors and notes are collected, in the order found.
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

    /// A directive not known at this place (includes, conditional lines and parameters
    /// may stand anywhere, so they are recognised here).
    fn unknown(&mut self, stmt: &Stmt) {
        let kw = stmt.keyword();
        let message = match kw {
            "include" | "includer" | "includem" | "includew" | "includeb" | "includea" => {
                format!(
                    "`{kw} {}`: included files are not read; this file is imported alone \
                     (import or paste the included file's directives too)",
                    stmt.args().join(" ")
                )
            }
            _ if kw.starts_with('@') => format!(
                "`{kw}` ({}): conditional configuration is not evaluated; make one file per box",
                stmt.span()
            ),
            _ if kw.starts_with('$') => format!(
                "`{kw}` ({}): parameter substitution is not supported",
                stmt.span()
            ),
            _ => format!(
                "`{kw}` ({}): not a keepalived directive this importer knows here; not imported",
                stmt.span()
            ),
        };
        self.note(stmt.line, message);
    }

    /// A known directive with no equivalent, and why.
    fn unsupported(&mut self, stmt: &Stmt, why: &str) {
        let span = if stmt.block.is_some() {
            format!(" ({})", stmt.span())
        } else {
            String::new()
        };
        self.note(stmt.line, format!("`{}`{span}: {why}", stmt.keyword()));
    }

    /// The one value of a directive; more words than one are noted, none is an error.
    fn value<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s str> {
        let value = stmt.arg(0);
        if value.is_none() {
            self.error(stmt.line, format!("`{}` needs a value", stmt.keyword()));
        }
        self.extra(stmt, 1);
        value
    }

    /// The `i`th word after the keyword, which must be there.
    fn value_at<'s>(&mut self, stmt: &'s Stmt, i: usize) -> Option<&'s str> {
        let value = stmt.arg(i);
        if value.is_none() {
            self.error(
                stmt.line,
                format!("`{}` is missing a value", stmt.keyword()),
            );
        }
        value
    }

    /// Notes words after the first `used` arguments of a directive.
    fn extra(&mut self, stmt: &Stmt, used: usize) {
        let rest = stmt.args().get(used..).unwrap_or(&[]);
        if !rest.is_empty() {
            self.note(
                stmt.line,
                format!(
                    "`{}`: the words after the value ('{}') have no meaning here and are ignored",
                    stmt.keyword(),
                    rest.join(" ")
                ),
            );
        }
    }

    /// A whole number from `min` to `max`.
    fn number(&mut self, stmt: &Stmt, min: u64, max: u64) -> Option<u64> {
        let text = self.value(stmt)?;
        self.number_in(stmt, text, min, max)
    }

    fn number_in(&mut self, stmt: &Stmt, text: &str, min: u64, max: u64) -> Option<u64> {
        match parse_whole(text) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                self.error(
                    stmt.line,
                    format!("`{}`: {text} is outside {min}..{max}", stmt.keyword()),
                );
                None
            }
            None => {
                self.error(
                    stmt.line,
                    format!("`{}`: '{text}' is not a whole number", stmt.keyword()),
                );
                None
            }
        }
    }

    /// A keepalived TIMER: seconds, possibly with a fraction (`2.5`).
    fn timer(&mut self, stmt: &Stmt) -> Option<Span> {
        let text = self.value(stmt)?;
        let span = parse_seconds(text);
        if span.is_none() {
            self.error(
                stmt.line,
                format!(
                    "`{}`: '{text}' is not a number of seconds (like 3 or 2.5)",
                    stmt.keyword()
                ),
            );
        }
        span
    }

    /// keepalived's optional BOOL: absent means yes.
    fn flag(&mut self, stmt: &Stmt) -> Option<bool> {
        self.extra(stmt, 1);
        match stmt.arg(0).map(str::to_ascii_lowercase).as_deref() {
            None | Some("on" | "true" | "yes") => Some(true),
            Some("off" | "false" | "no") => Some(false),
            Some(other) => {
                self.error(
                    stmt.line,
                    format!(
                        "`{}`: '{other}' is not one of on, off, true, false, yes, no",
                        stmt.keyword()
                    ),
                );
                None
            }
        }
    }

    fn address(&mut self, stmt: &Stmt, text: &str) -> Option<IpAddr> {
        let addr = text.parse().ok();
        if addr.is_none() {
            // In lists (unicast_peer, virtual_ipaddress) the address is the keyword itself.
            let message = if stmt.keyword() == text {
                format!("'{text}' is not an IP address")
            } else {
                format!("`{}`: '{text}' is not an IP address", stmt.keyword())
            };
            self.error(stmt.line, message);
        }
        addr
    }

    /// A port, by number only.
    fn port(&mut self, stmt: &Stmt, text: &str) -> Option<u16> {
        let port = parse_whole(text).and_then(|n| u16::try_from(n).ok());
        if port.is_none() {
            self.error(
                stmt.line,
                format!(
                    "`{}`: '{text}' is not a port number (0-65535)",
                    stmt.keyword()
                ),
            );
        }
        port
    }

    /// A directive that must have a block and has none.
    fn needs_block(&mut self, stmt: &Stmt) -> bool {
        if stmt.block.is_none() {
            self.error(
                stmt.line,
                format!("`{}` needs a block in braces {{ }}", stmt.keyword()),
            );
            return false;
        }
        true
    }
}

/// Digits only (no sign), as keepalived's numbers are.
fn parse_whole(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `3`, `0.5`, `2.71828` seconds to whole milliseconds (finer parts are dropped).
fn parse_seconds(text: &str) -> Option<Span> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return None;
    }
    let seconds: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut millis = 0;
    for (i, b) in fraction.bytes().take(3).enumerate() {
        let place = [100, 10, 1].get(i).copied().unwrap_or(0);
        millis += u64::from(b - b'0') * place;
    }
    seconds
        .checked_mul(1000)?
        .checked_add(millis)
        .map(Span::from_millis)
}

#[cfg(test)]
mod tests;
