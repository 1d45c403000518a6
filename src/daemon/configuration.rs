//! The daemon's configuration service: the store on /data, the provisioning file read at start,
//! the configuration in force, and the `config ...` commands of the control socket. Every
//! change goes through the store, which validates it first; the configuration in force is
//! replaced whole, and published to the parts that act on it.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{error, info, warn};
use tokio::sync::watch;

use crate::config::delta::{Delta, Difference};
use crate::config::model::VirtualServer;
use crate::config::replica::{self, Stamp};
use crate::config::store::{Provisioned, Revision, Store, StoreError};
use crate::config::{self, from_toml, to_toml, validate, Config};
use crate::control::Request;

/// The provisioning file's name on the DIRCONFIG disk.
pub const PROVISION_FILE: &str = "director.toml";

/// The part of the configuration in force that the pair shares (`config::replica`), as the
/// peer is given it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedPart {
    /// The revision in force (0: the built-in default).
    pub revision: u64,
    pub stamp: Stamp,
    pub text: Arc<str>,
}

pub struct Configuration {
    /// `None` when the store cannot be opened: the box runs, but refuses changes.
    store: Result<Store, String>,
    current: Arc<Config>,
    revision: Option<u64>,
    /// Why the revision in force is not the store's current one (that one cannot be read);
    /// edits of single fields are refused until a whole configuration replaces it.
    degraded: Option<String>,
    published: watch::Sender<Arc<Config>>,
    /// What each configuration published changes of the one before, sent just before it.
    deltas: watch::Sender<Delta>,
    /// The difference of the change being committed, for the delta of its publication.
    pending: Option<Difference>,
    /// The stamp of the shared part in force.
    stamp: Stamp,
    /// The highest serial of the peer's shared part seen: a change here is numbered above it.
    peer_serial: u64,
    /// The peer's stamp, while its shared part is being taken into force.
    adopting: Option<Stamp>,
    shared: watch::Sender<SharedPart>,
}

impl Configuration {
    /// Opens the store in `store_dir`, imports `provision_dir/director.toml` when there is a new
    /// one, and takes the current revision (or the built-in default) into force.
    pub fn start(store_dir: &Path, provision_dir: &Path) -> Configuration {
        let store = Store::open(store_dir).map_err(|e| e.to_string());
        let (published, _) = watch::channel(Arc::new(config::builtin_default()));
        let (deltas, _) = watch::channel(Delta::default());
        let (shared, _) = watch::channel(SharedPart::default());
        let default_stamp = Stamp {
            serial: 0,
            digest: replica::text(&config::builtin_default())
                .map_or(0, |text| replica::digest(&text)),
        };
        let stamp = match &store {
            Ok(store) => match store.shared_stamp() {
                Ok(stamp) => stamp.unwrap_or(default_stamp),
                Err(e) => {
                    error!("pair: the shared part's stamp cannot be read ({e}); counting again");
                    default_stamp
                }
            },
            Err(_) => default_stamp,
        };
        let mut this = Configuration {
            store,
            current: Arc::new(config::builtin_default()),
            revision: None,
            degraded: None,
            published,
            deltas,
            pending: None,
            stamp,
            peer_serial: 0,
            adopting: None,
            shared,
        };
        match &this.store {
            Ok(_) => this.provision(&provision_dir.join(PROVISION_FILE)),
            Err(why) => error!("configuration store unavailable, changes are refused: {why}"),
        }
        this.load(true);
        this
    }

    /// The configuration in force.
    /// This node's id in the pair and its new incarnation (raised at every call: once per
    /// start); without a store, an id and an incarnation from the clock.
    pub fn pair_identity(&self) -> (u64, u64) {
        let from_store = self
            .store()
            .map(|store| (store.node_id(), store.next_incarnation()))
            .ok();
        match from_store {
            Some((Ok(node), Ok(incarnation))) => (node, incarnation),
            _ => {
                error!("pair: the store cannot keep this node's id and incarnation; using the clock (a peer may refuse this node's beats until it restarts)");
                let nanos = crate::sys::clock::since_boot().as_nanos() as u64;
                (
                    nanos.max(1),
                    crate::sys::clock::since_boot().as_millis() as u64,
                )
            }
        }
    }

    pub fn in_force(&self) -> Arc<Config> {
        self.current.clone()
    }

    /// A receiver that sees every configuration taken into force.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.published.subscribe()
    }

    /// A receiver of what each configuration taken into force changed: when it names the
    /// configuration a subscriber had and the one it sees now, the subscriber may look at the
    /// virtual servers it names alone.
    pub fn deltas(&self) -> watch::Receiver<Delta> {
        self.deltas.subscribe()
    }

    fn provision(&mut self, file: &Path) {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                error!("provisioning: cannot read {}: {e}", file.display());
                return;
            }
        };
        let Ok(store) = &self.store else { return };
        match store.provision(&text, &file.display().to_string(), now_ms()) {
            Ok(Provisioned::Unchanged) => {
                info!("provisioning: {} was imported before", file.display())
            }
            Ok(Provisioned::Imported(n)) => {
                info!("provisioning: {} imported as revision {n}", file.display())
            }
            Err(StoreError::NotDurable { number, why }) => warn!(
                "provisioning: {} imported as revision {number}, but not confirmed on disk: {why}",
                file.display()
            ),
            Err(e) => {
                error!(
                    "provisioning: {} is rejected, the configuration is unchanged:",
                    file.display()
                );
                for line in e.to_string().lines() {
                    error!("provisioning: {}: {line}", file.display());
                }
            }
        }
    }

    /// Takes the store's current revision into force (the built-in default when there is none);
    /// `announce` says which on the console (at start; a change has said it already). When the
    /// current revision cannot be read, the newest one that can is kept in force, never the
    /// default over a stored configuration.
    fn load(&mut self, announce: bool) {
        self.degraded = None;
        // The difference of a change holds only if its revision is what goes into force.
        let pending = self.pending.take();
        let store = match &self.store {
            Ok(store) => store,
            Err(_) => {
                self.put_in_force(config::builtin_default(), None);
                return;
            }
        };
        let current = match store.current_number() {
            Ok(Some(number)) => number,
            Ok(None) => {
                info!("configuration: none stored, the built-in default applies");
                self.put_in_force(config::builtin_default(), None);
                return;
            }
            Err(e) => {
                error!(
                    "configuration: the store cannot be read ({e}); the built-in default applies"
                );
                self.degraded = Some(e.to_string());
                self.put_in_force(config::builtin_default(), None);
                return;
            }
        };
        let mut why = None;
        for number in (1..=current).rev() {
            match store.get(number) {
                Ok(revision) => {
                    if let Some(why) = &why {
                        error!(
                            "configuration: revision {current} cannot be read ({why}); revision {number} stays in force"
                        );
                        self.degraded = Some(format!("revision {current} cannot be read: {why}"));
                    } else if announce {
                        info!(
                            "configuration: revision {} ({})",
                            revision.number,
                            describe(&revision)
                        );
                    }
                    let problems = validate(&revision.config);
                    for problem in &problems {
                        warn!("configuration: revision {number} breaks a current rule: {problem}");
                    }
                    if number == current {
                        self.pending = pending;
                    }
                    self.put_in_force(revision.config, Some(number));
                    return;
                }
                Err(e) => {
                    why.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let why = why.unwrap_or_default();
        error!(
            "configuration: no stored revision can be read ({why}); the built-in default applies"
        );
        self.degraded = Some(why);
        self.put_in_force(config::builtin_default(), None);
    }

    fn put_in_force(&mut self, config: Config, revision: Option<u64>) {
        let from = Arc::downgrade(&self.current);
        self.current = Arc::new(config);
        self.revision = revision;
        // The delta goes first: whoever sees the configuration can find its delta.
        self.deltas.send_replace(Delta {
            from,
            to: Arc::downgrade(&self.current),
            difference: self.pending.take(),
        });
        self.published.send_replace(self.current.clone());
        self.restamp();
    }

    /// Stamps the shared part now in force: the peer's stamp when it is the peer's being taken,
    /// a new serial when it changed here; and gives it to the pair.
    fn restamp(&mut self) {
        let text = match replica::text(&self.current) {
            Ok(text) => text,
            Err(e) => {
                error!("pair: {e}");
                return;
            }
        };
        let digest = replica::digest(&text);
        let stamp = match self.adopting.take() {
            Some(peer) => Stamp {
                serial: peer.serial.max(self.stamp.serial),
                digest,
            },
            None => self.stamp.changed(digest, self.peer_serial),
        };
        self.keep_stamp(stamp);
        self.shared.send_replace(SharedPart {
            revision: self.revision.unwrap_or(0),
            stamp,
            text: text.into(),
        });
    }

    /// Makes `stamp` the shared part's, on disk too.
    fn keep_stamp(&mut self, stamp: Stamp) {
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        if let Ok(store) = &self.store {
            if let Err(e) = store.keep_shared_stamp(stamp) {
                warn!("pair: the shared part's stamp is not kept on disk: {e}");
            }
        }
        self.shared.send_modify(|shared| shared.stamp = stamp);
    }

    /// What the pair shares of the configuration in force, as it changes.
    pub fn shared(&self) -> watch::Receiver<SharedPart> {
        self.shared.subscribe()
    }

    /// The revision in force (None: the built-in default).
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// The admin endpoint's data `name` in the store.
    pub fn admin_data(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        self.store()?.admin_data(name).map_err(|e| e.to_string())
    }

    pub fn keep_admin_data(&self, name: &str, value: &[u8]) -> Result<(), String> {
        self.store()?
            .keep_admin_data(name, value)
            .map_err(|e| e.to_string())
    }

    /// The stored revisions, oldest first, without their configurations; one that cannot be
    /// read is left out (`config history` names it).
    pub fn listed(&self) -> Result<Vec<crate::admin::api::Listed>, String> {
        let all = self.store()?.history().map_err(|e| e.to_string())?;
        Ok(all
            .into_iter()
            .flatten()
            .map(|r| crate::admin::api::Listed {
                number: r.number,
                time_ms: r.time_ms,
                author: r.author,
                comment: r.comment,
            })
            .collect())
    }

    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// The peer's shared part has `stamp`: a change here will be numbered above it, and the
    /// same content takes its serial.
    pub fn note_peer(&mut self, stamp: Stamp) {
        self.peer_serial = self.peer_serial.max(stamp.serial);
        let aligned = self.stamp.aligned(stamp);
        self.keep_stamp(aligned);
    }

    /// Takes the peer's shared part (`text`, stamped `stamp`) into force as a new revision in
    /// place of this box's own; the rest of this box's configuration stays. Refused, changing
    /// nothing, when it does not fit this box.
    pub fn adopt(&mut self, text: &str, stamp: Stamp, peer: &str) -> Result<String, String> {
        self.refuse_if_degraded()?;
        let merged = replica::merge(&self.current, text)?;
        self.adopting = Some(stamp);
        let result = self.change(
            &merged,
            &format!("peer {peer}"),
            &format!("the pair's shared part, {stamp}"),
        );
        // Still there: nothing was put in force (the same content, or a failure).
        if let Some(stamp) = self.adopting.take() {
            if result.is_ok() {
                let same = Stamp {
                    serial: stamp.serial.max(self.stamp.serial),
                    digest: self.stamp.digest,
                };
                self.keep_stamp(same);
            }
        }
        result
    }

    fn store(&self) -> Result<&Store, String> {
        self.store
            .as_ref()
            .map_err(|why| format!("the configuration store is unavailable: {why}"))
    }

    /// Answers `config <verb> ...`.
    pub fn handle(&mut self, request: &Request) -> Result<String, String> {
        let words: Vec<&str> = request.words.iter().map(String::as_str).collect();
        let author = request.author.as_deref().unwrap_or("unknown");
        match words.as_slice() {
            ["config", "show"] => self.show(),
            ["config", "export"] => to_toml(&self.current),
            ["config", "import"] => {
                let config = from_toml(&request.body).map_err(|e| one_line_problems(&e))?;
                let comment = request.comment.as_deref().unwrap_or("import");
                self.change(&config, author, comment)
            }
            ["config", "set", path] => {
                // The value travels as the body, so its spaces survive.
                let value = request.body.trim_end_matches('\n');
                if value.is_empty() {
                    return Err(format!("set {path}: no value given"));
                }
                self.refuse_if_degraded()?;
                let config = edit(&self.current, path, Some(value))?;
                let comment = request
                    .comment
                    .clone()
                    .unwrap_or_else(|| format!("set {path} = {value}"));
                self.change(&config, author, &comment)
            }
            ["config", "unset", path] => {
                self.refuse_if_degraded()?;
                let config = edit(&self.current, path, None)?;
                let comment = request
                    .comment
                    .clone()
                    .unwrap_or_else(|| format!("unset {path}"));
                self.change(&config, author, &comment)
            }
            ["config", "history"] => self.history(usize::MAX),
            ["config", "history", count] => {
                let count = count
                    .parse()
                    .map_err(|_| format!("history: '{count}' is not a number of revisions"))?;
                self.history(count)
            }
            ["config", "diff", rest @ ..] if rest.len() <= 2 => self.diff(rest),
            ["config", "rollback", number] => {
                let number = revision_number(number)?;
                let store = self.store()?;
                let new = match store.rollback(number, author, now_ms()) {
                    Ok(new) => new,
                    Err(StoreError::NotDurable { number: new, why }) => {
                        warn!("configuration: revision {new} is not confirmed on disk: {why}");
                        new
                    }
                    Err(e) => return Err(e.to_string()),
                };
                info!("configuration: revision {new} by {author}: rollback to revision {number}");
                self.load(false);
                Ok(format!(
                    "revision {new}: revision {number} is in force again\n"
                ))
            }
            ["config", "validate"] => {
                let problems = validate(&self.current);
                let what = match self.revision {
                    Some(n) => format!("revision {n}"),
                    None => "the built-in default".to_string(),
                };
                if problems.is_empty() {
                    Ok(format!("{what} is valid\n"))
                } else {
                    let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                    Err(format!("{what}: {}", list.join("; ")))
                }
            }
            ["config", ..] => Err(format!(
                "unknown config command '{}'",
                words.get(1..).unwrap_or_default().join(" ")
            )),
            _ => Err("not a config command".into()),
        }
    }

    fn refuse_if_degraded(&self) -> Result<(), String> {
        match &self.degraded {
            Some(why) => Err(format!(
                "the store's current revision is not the one in force ({why}); import a whole configuration or roll back first"
            )),
            None => Ok(()),
        }
    }

    fn change(&mut self, config: &Config, author: &str, comment: &str) -> Result<String, String> {
        let store = self.store()?;
        let difference = Difference::between(&self.current, config);
        if difference.is_none() && self.revision.is_some() {
            return Ok(format!(
                "no change: revision {} already says this\n",
                self.revision.unwrap_or_default()
            ));
        }
        let (number, warning) = match store.commit(config, author, comment, now_ms()) {
            Ok(number) => (number, String::new()),
            Err(StoreError::NotDurable { number, why }) => {
                warn!("configuration: revision {number} is not confirmed on disk: {why}");
                (
                    number,
                    format!(
                        "warning: not confirmed on disk ({why}); it may not survive a power cut\n"
                    ),
                )
            }
            Err(StoreError::Invalid(problems)) => {
                let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                return Err(format!("rejected, nothing changed: {}", list.join("; ")));
            }
            Err(other) => return Err(other.to_string()),
        };
        info!("configuration: revision {number} by {author}: {comment}");
        // What was committed (validated by the store) goes into force as it is: reading a
        // large configuration back from the store would parse and check it all again.
        self.degraded = None;
        self.pending = Some(difference);
        self.put_in_force(config.clone(), Some(number));
        Ok(format!("revision {number}\n{warning}"))
    }

    fn show(&self) -> Result<String, String> {
        let text = to_toml(&self.current)?;
        let head = match self.revision {
            Some(n) => match self.store()?.get(n) {
                Ok(revision) => format!("# revision {n}: {}\n", describe(&revision)),
                Err(e) => format!("# revision {n} ({e})\n"),
            },
            None => "# the built-in default (no revision stored)\n".to_string(),
        };
        Ok(format!("{head}{text}"))
    }

    fn history(&self, count: usize) -> Result<String, String> {
        let all = self.store()?.history().map_err(|e| e.to_string())?;
        if all.is_empty() {
            return Ok("no revision stored: the built-in default applies\n".into());
        }
        let skip = all.len().saturating_sub(count);
        let mut out = String::new();
        for entry in &all[skip..] {
            match entry {
                Ok(revision) => {
                    let mark = if Some(revision.number) == self.revision {
                        '*'
                    } else {
                        ' '
                    };
                    out.push_str(&format!(
                        "{mark}{:>5}  {}  {}  {}\n",
                        revision.number,
                        utc(revision.time_ms),
                        revision.author,
                        revision.comment
                    ));
                }
                Err(e) => out.push_str(&format!("!        {e}\n")),
            }
        }
        Ok(out)
    }

    fn diff(&self, numbers: &[&str]) -> Result<String, String> {
        let store = self.store()?;
        let current = self
            .revision
            .ok_or("no revision stored: nothing to compare")?;
        let (from, to) = match numbers {
            [] if current > 1 => (current - 1, current),
            [] => return Err("only one revision is stored: nothing to compare".into()),
            [from] => (revision_number(from)?, current),
            [from, to, ..] => (revision_number(from)?, revision_number(to)?),
        };
        let diff = store.diff(from, to).map_err(|e| e.to_string())?;
        Ok(format!("--- revision {from}\n+++ revision {to}\n{diff}"))
    }
}

fn revision_number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not a revision number"))
}

fn describe(revision: &Revision) -> String {
    format!(
        "{} by {}: {}",
        utc(revision.time_ms),
        revision.author,
        revision.comment
    )
}

fn one_line_problems(rejected: &config::Rejected) -> String {
    format!(
        "rejected, nothing changed: {}",
        rejected.to_string().replace('\n', "; ")
    )
}

/// A copy of `config` with the field at `path` set to `value` (a TOML value; a bare word is
/// a string) or removed (`None`). Path segments are keys; in a list of tables (virtual
/// servers, real servers, interfaces) a segment is an element's `name` or its index.
pub fn edit(config: &Config, path: &str, value: Option<&str>) -> Result<Config, String> {
    if let Some(edited) = edit_virtual_server(config, path, value) {
        return edited;
    }
    let text = to_toml(config)?;
    let mut root: toml::Value = toml::from_str(&text).map_err(|e| e.to_string())?;
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("'{path}' is not a field path (like pair.deadtime)"));
    }
    set_in(&mut root, &segments, 0, value.map(parse_value))?;
    let text = toml::to_string(&root).map_err(|e| e.to_string())?;
    from_toml(&text).map_err(|e| match e {
        config::Rejected::Syntax { message, .. } => format!("{path}: {message}"),
        other => format!(
            "rejected, nothing changed: {}",
            other.to_string().replace('\n', "; ")
        ),
    })
}

/// `edit` of a field inside one virtual server (`virtual_servers.<name or index>.<field>...`):
/// that virtual server alone goes through TOML and back, and the whole configuration is
/// checked. `None` for other paths. In a table of thousands of virtual servers this is what
/// keeps `config set` from writing and reading all of them twice.
fn edit_virtual_server(
    config: &Config,
    path: &str,
    value: Option<&str>,
) -> Option<Result<Config, String>> {
    let segments: Vec<&str> = path.split('.').collect();
    let [first, name, _, ..] = segments.as_slice() else {
        return None;
    };
    if *first != "virtual_servers" || segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let index = config
        .virtual_servers
        .iter()
        .position(|vs| vs.name == *name)
        .or_else(|| {
            name.parse::<usize>()
                .ok()
                .filter(|i| *i < config.virtual_servers.len())
        })?;
    let vs = config.virtual_servers.get(index)?;
    let mut node = match toml::Value::try_from(vs) {
        Ok(node) => node,
        Err(e) => return Some(Err(e.to_string())),
    };
    if let Err(e) = set_in(&mut node, &segments, 2, value.map(parse_value)) {
        return Some(Err(e));
    }
    let edited: VirtualServer = match node.try_into() {
        Ok(vs) => vs,
        Err(e) => {
            let e: toml::de::Error = e;
            return Some(Err(format!("{path}: {}", e.message().trim())));
        }
    };
    let mut new = config.clone();
    if let Some(slot) = new.virtual_servers.get_mut(index) {
        *slot = edited;
    }
    let problems = validate(&new);
    if !problems.is_empty() {
        return Some(Err(format!(
            "rejected, nothing changed: {}",
            config::Rejected::Invalid(problems)
                .to_string()
                .replace('\n', "; ")
        )));
    }
    Some(Ok(new))
}

/// Walks `segments[at..]` down from `node` and sets (or removes) the last one.
fn set_in(
    node: &mut toml::Value,
    segments: &[&str],
    at: usize,
    value: Option<toml::Value>,
) -> Result<(), String> {
    let walked = |n: usize| segments.get(..n).unwrap_or_default().join(".");
    let Some(segment) = segments.get(at) else {
        return Err("empty field path".into());
    };
    let last = at + 1 == segments.len();
    match node {
        toml::Value::Table(table) if last => match value {
            Some(value) => {
                table.insert(segment.to_string(), value);
                Ok(())
            }
            None => table
                .remove(*segment)
                .map(|_| ())
                .ok_or_else(|| format!("{}: not set", walked(at + 1))),
        },
        toml::Value::Table(table) => {
            if !table.contains_key(*segment) {
                if value.is_none() {
                    return Err(format!("{}: not set", walked(at + 1)));
                }
                table.insert(segment.to_string(), toml::Value::Table(toml::Table::new()));
            }
            match table.get_mut(*segment) {
                Some(child) => set_in(child, segments, at + 1, value),
                None => Err(format!("{}: not set", walked(at + 1))),
            }
        }
        toml::Value::Array(items) => {
            let names = entry_names(items);
            let index = items
                .iter()
                .position(|item| item.get("name").and_then(toml::Value::as_str) == Some(segment))
                .or_else(|| segment.parse::<usize>().ok().filter(|i| *i < items.len()));
            match (index, last) {
                (Some(i), true) if value.is_none() => {
                    items.remove(i);
                    Ok(())
                }
                (Some(_), true) => Err(format!(
                    "{}: a whole entry cannot be set; name one of its fields",
                    walked(at + 1)
                )),
                (Some(i), false) => match items.get_mut(i) {
                    Some(child) => set_in(child, segments, at + 1, value),
                    None => Err(format!("{}: no such entry", walked(at + 1))),
                },
                (None, _) => Err(format!(
                    "{}: no entry '{segment}' (there are: {names})",
                    walked(at)
                )),
            }
        }
        _ => Err(format!("{}: not a section", walked(at))),
    }
}

fn entry_names(items: &[toml::Value]) -> String {
    let names: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get("name")
                .and_then(toml::Value::as_str)
                .map_or_else(|| i.to_string(), str::to_string)
        })
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A TOML value when it reads as one (`5`, `true`, `"x"`, `["a", "b"]`), else the text as a
/// string, so `config set node.hostname lvs-a` needs no quotes.
fn parse_value(text: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("value = {text}")) {
        Ok(mut table) => table
            .remove("value")
            .unwrap_or_else(|| toml::Value::String(text.to_string())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of milliseconds since the epoch.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian, era of 400 years).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests;
