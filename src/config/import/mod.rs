//! Importers for migration from the tools our users run today: Piranha's `lvs.cf`,
//! keepalived's `keepalived.conf`, and ldirectord's `ldirectord.cf` with heartbeat's `ha.cf`,
//! `haresources` and `authkeys`. Each turns its format into a `Config`; whatever has no
//! equivalent is reported line by line as a `Note`, never silently dropped.

pub mod keepalived;
pub mod ldirectord;
pub mod lvscf;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use super::model::{Family, Protocol};
use super::{from_toml, validate, Config, Problem, Rejected};

/// The deepest nesting of `{ }` blocks the block formats (lvs.cf, keepalived.conf) are read
/// to; neither needs more than 4 (virtual_server, real_server, HTTP_GET, url). Deeper blocks
/// are an error and are not built, so that neither reading nor dropping the tree can exhaust
/// the stack.
const MAX_NESTING: usize = 16;

/// What the importers say of a pair that has no usable key: the box refuses it until then.
const SET_THE_KEY: &str =
    "set pair.key (16 characters or more) before this configuration is accepted";

/// The name of a virtual server made of its VIP, port and protocol: `tcp-192.0.2.10-80`,
/// `udp-2001_db8__10-53`. The same in every importer, so that a service keeps its name when
/// it moves from one old tool's file to another's.
fn service_name(protocol: Protocol, vip: IpAddr, port: u16) -> String {
    let protocol = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    clean_name(
        &format!("{protocol}-{}-{port}", address_name(vip)),
        "virtual",
    )
}

/// The name of a firewall-mark service: `fwmark-7`, or `fwmark-7-inet6` for IPv6.
fn mark_name(mark: u32, family: Option<Family>) -> String {
    match family {
        Some(Family::Inet6) => format!("fwmark-{mark}-inet6"),
        _ => format!("fwmark-{mark}"),
    }
}

/// The name of a real server made of its address and port: `10.0.0.1-80`, `2001_db8__1-80`,
/// or the address alone when it has no port of its own or of its service.
fn real_name(addr: IpAddr, port: Option<u16>) -> String {
    let name = match port {
        Some(port) => format!("{}-{port}", address_name(addr)),
        None => address_name(addr),
    };
    clean_name(&name, "server")
}

/// An address as it stands in a name: IPv6 colons become `_`.
fn address_name(addr: IpAddr) -> String {
    addr.to_string().replace(':', "_")
}

/// A name taken from a file, made plain: letters, digits, `-`, `_` and `.` are kept, anything
/// else becomes `-`, so that names read the same in the admin endpoint's paths and URLs. A
/// name with nothing but dashes left takes `fallback`, so that it is never empty (validation
/// requires a name).
fn clean_name(name: &str, fallback: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.trim_matches('-').is_empty() {
        fallback.to_string()
    } else {
        clean
    }
}

/// `base`, or `base-2`, `base-3`... whichever is not yet in `seen` (and is then added):
/// validation requires distinct names.
fn distinct_name(base: &str, seen: &mut HashSet<String>) -> String {
    let mut candidate = base.to_string();
    let mut n = 2;
    while !seen.insert(candidate.clone()) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    candidate
}

/// The formats `director config validate|convert` and `import` understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    /// Red Hat Piranha's lvs.cf (pulse, lvs, nanny).
    LvsCf,
    /// keepalived.conf: virtual_server, real_server, checkers, vrrp_instance.
    Keepalived,
    /// ldirectord.cf, with ha.cf, haresources and authkeys from the same folder.
    Ldirectord,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "director TOML",
            Format::LvsCf => "Piranha lvs.cf",
            Format::Keepalived => "keepalived.conf",
            Format::Ldirectord => "ldirectord.cf",
        })
    }
}

/// One line of an input file: something that could not be imported (an error) or that has no
/// equivalent here (a note).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The file's name as the user gave it (`lvs.cf`, `/etc/ha.d/ha.cf`).
    pub file: String,
    /// 1-based; 0 when the note is about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl Note {
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Note {
        Note {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// A file's text with the name to report it by.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// What an importer made of its input.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The configuration; it still has to pass `validate`.
    pub config: Config,
    /// Lines with no equivalent, in file and line order.
    pub notes: Vec<Note>,
}

/// Why a file could not be turned into a configuration.
#[derive(Debug, PartialEq)]
pub enum ImportError {
    /// The file cannot be read as its format (unbalanced braces, a value that is not a number
    /// where one is required...): every such line.
    Unreadable(Vec<Note>),
    /// It was read, but the configuration breaks the rules; `notes` are the lines that had
    /// no equivalent.
    Invalid {
        problems: Vec<Problem>,
        notes: Vec<Note>,
        /// What the file gave, to show (`convert`) and edit.
        config: Box<Config>,
    },
    /// A director TOML file that is not acceptable.
    Toml(Rejected),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Unreadable(errors) => join(f, errors.iter()),
            ImportError::Invalid { problems, .. } => join(f, problems.iter()),
            ImportError::Toml(rejected) => write!(f, "{rejected}"),
        }
    }
}

fn join<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            writeln!(f)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Guesses the format of a configuration file from its text (and, for an ambiguous text, its
/// file name).
pub fn detect(name: &str, text: &str) -> Format {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name);
    if base.ends_with(".toml") {
        return Format::Toml;
    }
    let mut lvs = 0;
    let mut keepalived = 0;
    let mut ldirectord = 0;
    let mut toml = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let word = line
            .split(|c: char| c.is_whitespace() || c == '=' || c == '{')
            .next()
            .unwrap_or("");
        match word {
            "virtual_server"
            | "virtual_server_group"
            | "real_server"
            | "vrrp_instance"
            | "global_defs"
            | "vrrp_sync_group"
            | "TCP_CHECK"
            | "HTTP_GET"
            | "SSL_GET"
            | "MISC_CHECK"
            | "lb_algo"
            | "lb_kind"
            | "delay_loop" => keepalived += 1,
            "service" | "primary" | "backup" | "backup_active" | "heartbeat_port" | "network"
            | "nat_router" | "keepalive" | "deadtime" | "send_program" | "expect" | "use_regex"
            | "load_monitor" | "reentry" | "server" => lvs += 1,
            "virtual" if line.contains('{') => lvs += 1,
            "virtual" | "real" | "checktype" | "checkinterval" | "checktimeout"
            | "negotiatetimeout" | "autoreload" | "quiescent" | "emailalert" | "fallback"
            | "logfile" | "request" | "receive" | "callback" | "checkcount" => ldirectord += 1,
            _ => {}
        }
        if line.starts_with('[') && line.ends_with(']') {
            toml += 2;
        }
    }
    if base == "ldirectord.cf" {
        return Format::Ldirectord;
    }
    if base == "lvs.cf" {
        return Format::LvsCf;
    }
    if base == "keepalived.conf" {
        return Format::Keepalived;
    }
    let best = [
        (toml, Format::Toml),
        (keepalived, Format::Keepalived),
        (lvs, Format::LvsCf),
        (ldirectord, Format::Ldirectord),
    ]
    .into_iter()
    .max_by_key(|(score, _)| *score)
    .map(|(_, format)| format)
    .unwrap_or(Format::Toml);
    if toml == 0 && keepalived == 0 && lvs == 0 && ldirectord == 0 {
        Format::Toml
    } else {
        best
    }
}

/// Imports `text` of the given format; `sibling` reads another file of the same folder by
/// name (heartbeat's ha.cf, haresources and authkeys beside ldirectord.cf) and gives `None`
/// when it is not there. The result is validated.
pub fn import(
    format: Format,
    source: Source<'_>,
    sibling: &dyn Fn(&str) -> Option<String>,
) -> Result<Imported, ImportError> {
    let imported = match format {
        Format::Toml => {
            return from_toml(source.text)
                .map(|config| Imported {
                    config,
                    notes: Vec::new(),
                })
                .map_err(ImportError::Toml)
        }
        Format::LvsCf => lvscf::import(source)?,
        Format::Keepalived => keepalived::import(source)?,
        Format::Ldirectord => ldirectord::import(source, sibling)?,
    };
    let problems = validate(&imported.config);
    if problems.is_empty() {
        Ok(imported)
    } else {
        Err(ImportError::Invalid {
            problems,
            notes: imported.notes,
            config: Box::new(imported.config),
        })
    }
}

/// Reads `path`, detects its format and imports it; the outer error is a file that cannot be
/// read at all.
pub fn import_path(path: &Path) -> Result<(Format, Result<Imported, ImportError>), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let format = detect(&name, &text);
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let sibling = |file: &str| std::fs::read_to_string(folder.join(file)).ok();
    let source = Source {
        name: &name,
        text: &text,
    };
    Ok((format, import(format, source, &sibling)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(format: Format, text: &str, sibling: &dyn Fn(&str) -> Option<String>) -> Vec<Note> {
        let source = Source { name: "file", text };
        let imported = match format {
            Format::LvsCf => lvscf::import(source),
            Format::Keepalived => keepalived::import(source),
            _ => ldirectord::import(source, sibling),
        };
        match imported {
            Ok(imported) => imported.notes,
            Err(e) => panic!("{format}: {e}"),
        }
    }

    #[test]
    fn names_are_plain_distinct_and_the_same_in_every_importer() {
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(service_name(Protocol::Tcp, v4, 80), "tcp-192.0.2.10-80");
        assert_eq!(service_name(Protocol::Udp, v6, 53), "udp-2001_db8__10-53");
        assert_eq!(mark_name(7, None), "fwmark-7");
        assert_eq!(mark_name(7, Some(Family::Inet6)), "fwmark-7-inet6");
        assert_eq!(real_name(v4, Some(8080)), "192.0.2.10-8080");
        assert_eq!(real_name(v6, None), "2001_db8__10");
        assert_eq!(clean_name("web/site é", "virtual"), "web-site--");
        assert_eq!(clean_name("%%", "virtual"), "virtual");
        let mut seen = HashSet::new();
        let names: Vec<String> = ["a", "a", "a-2", "a"]
            .iter()
            .map(|n| distinct_name(n, &mut seen))
            .collect();
        assert_eq!(names, ["a", "a-2", "a-2-2", "a-3"]);

        // The same UDP service over IPv6 gets the same names from keepalived and ldirectord.
        let keepalived = keepalived::import(Source {
            name: "keepalived.conf",
            text: "virtual_server 2001:db8::10 53 {\n protocol UDP\n lb_kind NAT\n real_server 2001:db8::21 53 {\n }\n}\n",
        })
        .unwrap()
        .config;
        let ldirectord = ldirectord::import(
            Source {
                name: "ldirectord.cf",
                text: "virtual6=[2001:db8::10]:53\n\treal6=[2001:db8::21]:53 masq\n\tprotocol=udp\n\tchecktype=on\n",
            },
            &|_: &str| None,
        )
        .unwrap()
        .config;
        for config in [keepalived, ldirectord] {
            let vs = &config.virtual_servers[0];
            assert_eq!(vs.name, "udp-2001_db8__10-53");
            assert_eq!(vs.real_servers[0].name, "2001_db8__21-53");
        }
    }

    #[test]
    fn every_importer_says_how_to_set_a_missing_key() {
        let none = |_: &str| None;
        let lvs = notes(
            Format::LvsCf,
            "primary = 192.0.2.2\nbackup_active = 1\nbackup = 192.0.2.3\n",
            &none,
        );
        let keepalived = notes(
            Format::Keepalived,
            "vrrp_instance V {\n interface eth1\n unicast_peer {\n  10.0.0.2\n }\n}\n",
            &none,
        );
        let short_pass = notes(
            Format::Keepalived,
            "vrrp_instance V {\n unicast_peer {\n  10.0.0.2\n }\n authentication {\n  auth_pass secret\n }\n}\n",
            &none,
        );
        let ha =
            |name: &str| (name == "ha.cf").then(|| "ucast eth1 10.0.0.2\nnode a\n".to_string());
        let ldirectord = notes(Format::Ldirectord, "", &ha);
        for (notes, line) in [(lvs, 3), (keepalived, 1), (short_pass, 6), (ldirectord, 0)] {
            assert!(
                notes
                    .iter()
                    .any(|n| n.line == line && n.message.contains(SET_THE_KEY)),
                "line {line}: {notes:#?}"
            );
        }
    }
}
