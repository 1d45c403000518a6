//! ldirectord.cf: global settings, then `virtual =` lines each followed by their indented
//! settings, turned into virtual servers with ldirectord's defaults.

mod build;
mod values;

use std::net::IpAddr;

use super::{parse_number, strip_comment, Report};
use crate::config::model::{Forwarding, Scheduler, VirtualServer};
use build::{build, Seen};
use values::{
    non_empty, parse_checktype, parse_command, parse_fallback, parse_real, parse_scheduler,
    parse_virtual, positive, unquote, yes_no,
};

/// ldirectord's defaults (ldirectord(8)): seconds between check rounds, the timeout of
/// connect-type checks and the timeout of negotiate checks.
const DEFAULT_CHECKINTERVAL: u64 = 10;
const DEFAULT_CHECKTIMEOUT: u64 = 5;
const DEFAULT_NEGOTIATETIMEOUT: u64 = 30;

/// A range `a->b` expands into one real server per address; beyond this it is surely a typo.
const MAX_RANGE: u32 = 256;

/// The services ldirectord accepts for `service =`, with the port that implies each.
const SERVICES: &[(&str, u16)] = &[
    ("dns", 53),
    ("ftp", 21),
    ("http", 80),
    ("https", 443),
    ("http_proxy", 3128),
    ("imap", 143),
    ("imaps", 993),
    ("ldap", 389),
    ("mysql", 3306),
    ("nntp", 119),
    ("none", 0),
    ("oracle", 1521),
    ("pgsql", 5432),
    ("pop", 110),
    ("pops", 995),
    ("radius", 1812),
    ("simpletcp", 0),
    ("sip", 5060),
    ("smtp", 25),
    ("submission", 587),
];

/// Port names of /etc/services that appear in ldirectord files (`virtual = 192.0.2.1:http`).
const PORT_NAMES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("nntp", 119),
    ("imap", 143),
    ("imap2", 143),
    ("ldap", 389),
    ("https", 443),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("radius", 1812),
    ("sip", 5060),
    ("postgresql", 5432),
    ("http-alt", 8080),
];

/// The 2xx codes: ldirectord's HTTP check accepts any success status, the model lists them.
const SUCCESS_CODES: &[u16] = &[200, 201, 202, 203, 204, 205, 206, 207, 208, 226];

/// Reads ldirectord.cf into virtual servers; problems go to `report`.
pub(super) fn read(file: &str, text: &str, report: &mut Report) -> Vec<VirtualServer> {
    let mut reader = Reader {
        file,
        report,
        global: Scoped::default(),
        fork: false,
        blocks: Vec::new(),
        in_block: false,
    };
    for (index, raw) in text.lines().enumerate() {
        reader.line(index + 1, raw);
    }
    let Reader {
        report,
        global,
        fork,
        blocks,
        ..
    } = reader;
    let mut seen = Seen::default();
    blocks
        .iter()
        .filter_map(|block| build(file, block, &global, fork, &mut seen, report))
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckType {
    Connect,
    Negotiate,
    /// A connect check with a negotiate check every N rounds.
    Combined(u32),
    Ping,
    Off,
    On,
    External,
    ExternalPerl,
}

/// Settings allowed both globally and inside a `virtual` block (where they override).
#[derive(Clone, Default)]
struct Scoped {
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    checkinterval: Option<(u64, usize)>,
    checkcount: Option<u32>,
    failurecount: Option<u32>,
    quiescent: Option<bool>,
    fallback: Option<Fallback>,
}

#[derive(Clone)]
struct Fallback {
    addr: IpAddr,
    port: Option<u16>,
    method: Forwarding,
    line: usize,
}

enum Target {
    Service(IpAddr, u16),
    Mark(u32),
}

struct Real {
    line: usize,
    addr: IpAddr,
    port: Option<u16>,
    method: Forwarding,
    weight: u32,
    /// A request/receive pair of this real server alone.
    probe: Option<(String, String)>,
}

/// One `virtual` line and its block. `target` is `None` when the line could not be read; the
/// block is still kept so that its lines are read (and checked) as block lines.
#[derive(Default)]
struct Block {
    line: usize,
    v6: bool,
    target: Option<Target>,
    reals: Vec<Real>,
    scoped: Scoped,
    checktype: Option<(CheckType, usize)>,
    /// The program, its arguments, and the line.
    checkcommand: Option<(String, Vec<String>, usize)>,
    service: Option<(&'static str, usize)>,
    request: Option<(String, usize)>,
    receive: Option<(String, usize)>,
    head: Option<usize>,
    virtualhost: Option<(String, usize)>,
    scheduler: Option<Scheduler>,
    persistent: Option<(u64, usize)>,
    netmask: Option<(String, usize)>,
    protocol: Option<(String, usize)>,
    checkport: Option<u16>,
    /// login, passwd, database, secret: only for negotiate checks the box does not have.
    credentials: Vec<(&'static str, usize)>,
}

struct Reader<'a> {
    file: &'a str,
    report: &'a mut Report,
    global: Scoped,
    fork: bool,
    blocks: Vec<Block>,
    in_block: bool,
}

/// Where a directive may appear.
#[derive(PartialEq, Eq)]
enum Scope {
    Global,
    Block,
    Both,
}

fn scope_of(key: &str) -> Option<Scope> {
    Some(match key {
        "real" | "real6" | "request" | "receive" | "checktype" | "checkcommand" | "service"
        | "httpmethod" | "virtualhost" | "login" | "passwd" | "database" | "secret"
        | "scheduler" | "persistent" | "netmask" | "protocol" | "checkport" | "monitorfile"
        | "ops" | "load" => Scope::Block,
        "checktimeout" | "connecttimeout" | "negotiatetimeout" | "checkinterval" | "checkcount"
        | "failurecount" | "fallback" | "fallback6" | "fallbackcommand" | "quiescent"
        | "emailalert" | "emailalertfreq" | "emailalertstatus" | "cleanstop" | "smtp" => {
            Scope::Both
        }
        "autoreload" | "callback" | "logfile" | "execute" | "fork" | "supervised"
        | "readdquiescent" | "emailalertfrom" | "maintenancedir" => Scope::Global,
        _ => return None,
    })
}

/// Why a directive that ldirectord knows has no equivalent on the box.
fn unsupported(key: &str) -> Option<&'static str> {
    Some(match key {
        "emailalert" | "emailalertfreq" | "emailalertstatus" | "emailalertfrom" | "smtp" => {
            "e-mail alerts are not supported; the box reports on its console and admin endpoint"
        }
        "autoreload" => {
            "the box does not watch files; configuration changes are stored as revisions \
             (admin endpoint, console or `director config import`)"
        }
        "callback" => {
            "no command runs when the configuration changes; both boxes of the pair take \
             their configuration from the store"
        }
        "logfile" => "the box logs to its console and admin endpoint; there is no log file",
        "execute" => {
            "the box runs one configuration; import the other file too and merge its \
             virtual services"
        }
        "supervised" => "the box's init supervises the control daemon itself",
        "readdquiescent" => {
            "the box keeps quiesced real servers in the IPVS table itself; there is nothing \
             to re-add"
        }
        "maintenancedir" => {
            "maintenance files are not read; disable a real server from the admin endpoint \
             or console instead"
        }
        "cleanstop" => {
            "the box manages the IPVS table for as long as it runs; there is no choice at stop"
        }
        "fallbackcommand" => {
            "no command runs when every real server is down; a fallback (sorry) server is \
             supported"
        }
        "monitorfile" => {
            "check results are not written to a file; they are shown on the admin endpoint"
        }
        "load" => "load-based weights are not supported",
        _ => return None,
    })
}

impl Reader<'_> {
    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.report.error(self.file, line, message);
    }

    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.report.note(self.file, line, message);
    }

    fn line(&mut self, number: usize, raw: &str) {
        let content = strip_comment(raw);
        if content.trim().is_empty() {
            return;
        }
        let indented = content.starts_with([' ', '\t']);
        let text = content.trim();
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (text, None),
        };

        if key == "virtual" || key == "virtual6" {
            self.in_block = true;
            let v6 = key == "virtual6";
            let target = match value.filter(|v| !v.is_empty()) {
                None => {
                    self.error(number, format!("`{key}` has no value"));
                    None
                }
                Some(value) => match parse_virtual(unquote(value), v6) {
                    Ok(target) => Some(target),
                    Err(why) => {
                        self.error(number, format!("`{key}`: {why}"));
                        None
                    }
                },
            };
            self.blocks.push(Block {
                line: number,
                v6,
                target,
                ..Block::default()
            });
            return;
        }
        if !indented {
            self.in_block = false;
        }
        let Some(scope) = scope_of(key) else {
            let message = if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                format!("`{key}` is not an ldirectord directive; not imported")
            } else {
                format!("`{text}` is not an ldirectord directive; not imported")
            };
            self.note(number, message);
            return;
        };
        let in_block = self.in_block && indented;
        if indented && self.blocks.is_empty() {
            self.error(
                number,
                format!("`{key}` is indented as part of a virtual service, but no `virtual` line comes before it"),
            );
            return;
        }
        if scope == Scope::Block && !in_block {
            if self.blocks.is_empty() {
                self.error(
                    number,
                    format!("`{key}` belongs to a virtual service, but no `virtual` line comes before it"),
                );
            } else if indented {
                self.error(
                    number,
                    format!(
                        "`{key}` follows a global line, which ended the virtual block: move it \
                         under its `virtual` line"
                    ),
                );
            } else {
                self.error(
                    number,
                    format!(
                        "`{key}` belongs to a virtual service: indent it under its `virtual` line"
                    ),
                );
            }
            return;
        }
        if scope == Scope::Global && in_block {
            self.note(
                number,
                format!("`{key}` is a global directive, which ldirectord refuses inside a virtual block; not imported"),
            );
            return;
        }
        let value = match value {
            Some(value) if !value.is_empty() => value,
            _ if key == "supervised" && value.is_none() => "yes",
            _ => {
                self.error(number, format!("`{key}` has no value"));
                return;
            }
        };
        if let Err(why) = self.directive(number, key, value, in_block) {
            self.error(number, format!("`{key}`: {why}"));
        }
    }

    /// One directive with its value, in the global scope or in the last block.
    fn directive(
        &mut self,
        number: usize,
        key: &str,
        value: &str,
        in_block: bool,
    ) -> Result<(), String> {
        if let Some(why) = unsupported(key) {
            self.note(number, format!("`{key}`: {why}"));
            return Ok(());
        }
        match key {
            "checktimeout" | "connecttimeout" | "negotiatetimeout" | "checkinterval"
            | "checkcount" | "failurecount" | "quiescent" | "fallback" | "fallback6" => {
                let v6_block = in_block && self.blocks.last().is_some_and(|b| b.v6);
                let scoped = if in_block {
                    match self.blocks.last_mut() {
                        Some(block) => &mut block.scoped,
                        None => return Ok(()),
                    }
                } else {
                    &mut self.global
                };
                match key {
                    // connecttimeout is the newer name of the connect-check timeout.
                    "checktimeout" | "connecttimeout" => {
                        scoped.checktimeout = Some(positive(value, "seconds")?)
                    }
                    "negotiatetimeout" => {
                        scoped.negotiatetimeout = Some(positive(value, "seconds")?)
                    }
                    "checkinterval" => {
                        scoped.checkinterval = Some((positive(value, "seconds")?, number))
                    }
                    "checkcount" => scoped.checkcount = Some(positive(value, "a count")? as u32),
                    "failurecount" => {
                        scoped.failurecount = Some(positive(value, "a count")? as u32)
                    }
                    "quiescent" => scoped.quiescent = Some(yes_no(value)?),
                    _ => {
                        let v6 = key == "fallback6";
                        if in_block && v6 != v6_block {
                            return Err(format!(
                                "use `{}` in a `{}` block",
                                if v6_block { "fallback6" } else { "fallback" },
                                if v6_block { "virtual6" } else { "virtual" }
                            ));
                        }
                        scoped.fallback = Some(parse_fallback(unquote(value), number)?);
                    }
                }
            }
            "fork" => self.fork = yes_no(value)?,
            "supervised" => {}
            _ => self.block_directive(number, key, value)?,
        }
        Ok(())
    }

    fn block_directive(&mut self, number: usize, key: &str, value: &str) -> Result<(), String> {
        let mut notes = Vec::new();
        let Some(block) = self.blocks.last_mut() else {
            return Ok(());
        };
        match key {
            "real" | "real6" => {
                if (key == "real6") != block.v6 {
                    return Err(format!(
                        "use `{}` in a `{}` block",
                        if block.v6 { "real6" } else { "real" },
                        if block.v6 { "virtual6" } else { "virtual" }
                    ));
                }
                block.reals.extend(parse_real(value, number)?);
            }
            "request" => block.request = Some((non_empty(unquote(value))?, number)),
            "receive" => block.receive = Some((non_empty(unquote(value))?, number)),
            "checktype" => block.checktype = Some((parse_checktype(value)?, number)),
            "checkcommand" => {
                // One quoted string is the whole command line; else quotes group words.
                let inner = unquote(value);
                let (path, args) = parse_command(if inner.contains('"') { value } else { inner })?;
                block.checkcommand = Some((path, args, number));
            }
            "service" => {
                let service = SERVICES
                    .iter()
                    .find(|(name, _)| *name == value)
                    .map(|(name, _)| *name)
                    .ok_or_else(|| {
                        format!(
                            "'{value}' is not a service ldirectord knows ({})",
                            SERVICES
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                block.service = Some((service, number));
            }
            "httpmethod" => match value.to_ascii_uppercase().as_str() {
                "GET" => {}
                "HEAD" => block.head = Some(number),
                _ => return Err(format!("'{value}' is not GET or HEAD")),
            },
            "virtualhost" => block.virtualhost = Some((non_empty(unquote(value))?, number)),
            "login" => block.credentials.push(("login", number)),
            "passwd" => block.credentials.push(("passwd", number)),
            "database" => block.credentials.push(("database", number)),
            "secret" => block.credentials.push(("secret", number)),
            "scheduler" => match parse_scheduler(value) {
                Some(scheduler) => block.scheduler = Some(scheduler),
                None if !value.is_empty() && value.chars().all(|c| c.is_ascii_lowercase()) => {
                    // ldirectord hands any name to ipvsadm; the kernel would refuse it.
                    notes.push(format!(
                        "`scheduler`: '{value}' is not an IPVS scheduler of the kernel; \
                         ldirectord's default wrr is used"
                    ));
                }
                None => return Err(format!("'{value}' is not a scheduler name")),
            },
            "persistent" => block.persistent = Some((parse_number(value, "seconds")?, number)),
            "netmask" => block.netmask = Some((value.to_string(), number)),
            "protocol" => match value {
                "tcp" | "udp" | "fwm" => block.protocol = Some((value.to_string(), number)),
                _ => return Err(format!("'{value}' is not tcp, udp or fwm")),
            },
            "checkport" => {
                let port: u16 = parse_number(value, "a port")?;
                if port == 0 {
                    return Err("port 0 cannot be checked".into());
                }
                block.checkport = Some(port);
            }
            "ops" => {
                if yes_no(value)? {
                    notes.push(
                        "`ops`: one-packet scheduling is not supported; each UDP flow \
                         goes to one real server"
                            .to_string(),
                    );
                }
            }
            _ => notes.push(format!("`{key}` is not imported")),
        }
        for note in notes {
            self.note(number, note);
        }
        Ok(())
    }
}
