//! Importers for migration from the tools our users run today: Piranha's `lvs.cf`,
//! keepalived's `keepalived.conf`, and ldirectord's `ldirectord.cf` with heartbeat's `ha.cf`,
//! `haresources` and `authkeys`. Each turns its format into a `Config`; whatever has no
//! equivalent is reported line by line as a `Note`, never silently dropped.

pub mod keepalived;
pub mod ldirectord;
pub mod lvscf;

use std::fmt;
use std::path::Path;

use super::{from_toml, validate, Config, Problem, Rejected};

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
