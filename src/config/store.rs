//! Configuration revisions in sled. Every accepted change is a new numbered revision with its
//! time, author and a one-line comment; the newest revision is the current one. A revision and
//! the pointer to it are written in one sled transaction and flushed before `commit` returns,
//! so a power cut leaves the store at the last committed revision, never at a mix.

use std::fmt;
use std::path::{Path, PathBuf};

use minicbor::{Decoder, Encoder};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::replica::Stamp;
use super::{from_toml, to_toml, validate, Config, Problem, Rejected};

const CURRENT: &[u8] = b"current";
/// The text of the last provisioning file imported, to import each file only once.
const PROVISIONED: &[u8] = b"provisioned";
/// The pair's heartbeat: this node's id, and how many times the daemon has started.
const NODE_ID: &[u8] = b"node-id";
const INCARNATION: &[u8] = b"incarnation";
/// The stamp of the part of the configuration the pair shares (`replica`).
const SHARED_STAMP: &[u8] = b"shared-stamp";
/// The tree of the admin endpoint's own data.
const ADMIN_TREE: &str = "admin";

/// One stored revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    pub number: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub author: String,
    pub comment: String,
    pub config: Config,
}

#[derive(Debug)]
pub enum StoreError {
    Open {
        path: PathBuf,
        source: sled::Error,
    },
    Database(sled::Error),
    /// Making a write durable (fsync) failed.
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Revision `number` was committed and is current, but making it durable failed: it may
    /// not survive a power cut.
    NotDurable {
        number: u64,
        why: String,
    },
    /// A stored revision that cannot be read back.
    Corrupt {
        revision: u64,
        why: String,
    },
    /// The configuration breaks the rules: nothing was stored.
    Invalid(Vec<Problem>),
    /// A provisioning file that is not an acceptable configuration: nothing was stored.
    Rejected(Rejected),
    NoSuchRevision(u64),
    Encode(String),
}

/// What became of a provisioning file.
#[derive(Debug, PartialEq, Eq)]
pub enum Provisioned {
    /// The same file was imported before: nothing to do.
    Unchanged,
    /// Stored as this revision.
    Imported(u64),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Open { path, source } => {
                write!(f, "open the store in {}: {source}", path.display())
            }
            StoreError::Database(e) => write!(f, "store: {e}"),
            StoreError::Sync { path, source } => {
                write!(f, "store: fsync {}: {source}", path.display())
            }
            StoreError::NotDurable { number, why } => write!(
                f,
                "revision {number} is stored but not confirmed on disk ({why}); it may not survive a power cut"
            ),
            StoreError::Corrupt { revision, why } => {
                write!(f, "revision {revision} cannot be read: {why}")
            }
            StoreError::Invalid(problems) => {
                write!(f, "{} problem(s), nothing stored", problems.len())?;
                for p in problems {
                    write!(f, "\n{p}")?;
                }
                Ok(())
            }
            StoreError::Rejected(rejected) => write!(f, "{rejected}"),
            StoreError::NoSuchRevision(n) => write!(f, "there is no revision {n}"),
            StoreError::Encode(why) => write!(f, "cannot encode the revision: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError::Database(e)
    }
}

/// The revisions of this box's configuration.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    revisions: sled::Tree,
    meta: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        // sled locks its files; an instance of this process that was just dropped releases the
        // lock only when its background threads have finished, which takes a moment under load.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            // Small cache and segments: configurations are kilobytes, and sled's defaults (512 KiB
            // segments, a large cache) cost the idle daemon about 20 MiB of memory.
            match sled::Config::new()
                .path(dir)
                .mode(sled::Mode::LowSpace)
                .cache_capacity(1024 * 1024)
                .segment_size(64 * 1024)
                .open()
            {
                Ok(db) => break db,
                Err(source) => {
                    let locked = source.to_string().contains("could not acquire lock");
                    if !locked || std::time::Instant::now() > deadline {
                        return Err(StoreError::Open {
                            path: dir.to_path_buf(),
                            source,
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        };
        let revisions = db.open_tree("revisions")?;
        let meta = db.open_tree("meta")?;
        Ok(Store {
            dir: dir.to_path_buf(),
            db,
            revisions,
            meta,
        })
    }

    /// This node's id in the pair: random, made once and kept.
    pub fn node_id(&self) -> Result<u64, StoreError> {
        if let Some(id) = self.meta.get(NODE_ID)? {
            return Ok(decode_number(&id));
        }
        let mut bytes = [0u8; 8];
        // Without the system's random source: the time, which differs between two boxes too.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
            bytes = crate::sys::clock::since_boot().as_nanos().to_le_bytes()[..8]
                .try_into()
                .unwrap_or_default();
        }
        let id = u64::from_be_bytes(bytes).max(1);
        match self.meta.compare_and_swap(
            NODE_ID,
            None as Option<&[u8]>,
            Some(&id.to_be_bytes()[..]),
        )? {
            Ok(()) => {
                self.db.flush()?;
                Ok(id)
            }
            // Another caller made one first.
            Err(current) => Ok(current.current.map_or(id, |v| decode_number(&v))),
        }
    }

    /// Raises and returns the heartbeat's incarnation: higher at every start, on disk before
    /// the first beat carries it (a peer refuses beats of an older incarnation).
    pub fn next_incarnation(&self) -> Result<u64, StoreError> {
        let next = self.meta.update_and_fetch(INCARNATION, |old| {
            let n = old.map_or(0, decode_number).saturating_add(1);
            Some(n.to_be_bytes().to_vec())
        })?;
        self.db.flush()?;
        Ok(next.map_or(1, |v| decode_number(&v)))
    }

    /// The stamp of the shared part in force, as last kept.
    pub fn shared_stamp(&self) -> Result<Option<Stamp>, StoreError> {
        Ok(self.meta.get(SHARED_STAMP)?.and_then(|v| {
            let bytes: [u8; 12] = v.as_ref().try_into().ok()?;
            let (serial, digest) = bytes.split_at(8);
            Some(Stamp {
                serial: u64::from_be_bytes(serial.try_into().ok()?),
                digest: u32::from_be_bytes(digest.try_into().ok()?),
            })
        }))
    }

    /// Keeps `stamp` as the shared part's (flushed).
    pub fn keep_shared_stamp(&self, stamp: Stamp) -> Result<(), StoreError> {
        let mut bytes = stamp.serial.to_be_bytes().to_vec();
        bytes.extend_from_slice(&stamp.digest.to_be_bytes());
        self.meta.insert(SHARED_STAMP, bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// The admin endpoint's own data under `name` (its certificate and key, the API tokens):
    /// kept beside the revisions, never part of a configuration, never replicated.
    pub fn admin_data(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tree = self.db.open_tree(ADMIN_TREE)?;
        Ok(tree.get(name)?.map(|v| v.to_vec()))
    }

    /// Keeps `value` as the admin data `name` (flushed).
    pub fn keep_admin_data(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let tree = self.db.open_tree(ADMIN_TREE)?;
        tree.insert(name, value)?;
        self.db.flush()?;
        Ok(())
    }

    /// The number of the current revision, if any was stored.
    pub fn current_number(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.meta.get(CURRENT)?.map(|v| decode_number(&v)))
    }

    /// The current revision, if any was stored.
    pub fn current(&self) -> Result<Option<Revision>, StoreError> {
        match self.current_number()? {
            Some(n) => self.get(n).map(Some),
            None => Ok(None),
        }
    }

    /// Revision `number`.
    pub fn get(&self, number: u64) -> Result<Revision, StoreError> {
        let bytes = self
            .revisions
            .get(number.to_be_bytes())?
            .ok_or(StoreError::NoSuchRevision(number))?;
        decode(number, &bytes)
    }

    /// Stores `config` as a new revision after validating it; returns its number. Nothing is
    /// written when it is invalid.
    pub fn commit(
        &self,
        config: &Config,
        author: &str,
        comment: &str,
        time_ms: u64,
    ) -> Result<u64, StoreError> {
        self.commit_with(config, author, comment, time_ms, None)
    }

    /// Imports the text of a provisioning file (`director.toml` on a DIRCONFIG disk) as a new
    /// revision, unless this very text was imported before. An invalid file changes nothing.
    pub fn provision(
        &self,
        text: &str,
        source: &str,
        time_ms: u64,
    ) -> Result<Provisioned, StoreError> {
        if self.meta.get(PROVISIONED)?.as_deref() == Some(text.as_bytes()) {
            return Ok(Provisioned::Unchanged);
        }
        let config = from_toml(text).map_err(StoreError::Rejected)?;
        let comment = format!("provisioned from {source}");
        self.commit_with(
            &config,
            "provisioning",
            &comment,
            time_ms,
            Some((PROVISIONED, text.as_bytes())),
        )
        .map(Provisioned::Imported)
    }

    /// The revision and, in the same transaction, one more record of `meta`.
    fn commit_with(
        &self,
        config: &Config,
        author: &str,
        comment: &str,
        time_ms: u64,
        also: Option<(&[u8], &[u8])>,
    ) -> Result<u64, StoreError> {
        let problems = validate(config);
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let text = to_toml(config).map_err(StoreError::Encode)?;
        let comment = comment.lines().next().unwrap_or("").trim();
        let result = (&self.revisions, &self.meta).transaction(|(revisions, meta)| {
            let number = meta.get(CURRENT)?.map_or(1, |v| decode_number(&v) + 1);
            let value = encode(number, time_ms, author, comment, &text)
                .map_err(ConflictableTransactionError::Abort)?;
            revisions.insert(&number.to_be_bytes(), value)?;
            meta.insert(CURRENT, &number.to_be_bytes())?;
            if let Some((key, value)) = also {
                meta.insert(key, value)?;
            }
            Ok(number)
        });
        let number = match result {
            Ok(number) => number,
            Err(TransactionError::Abort(why)) => return Err(StoreError::Encode(why)),
            Err(TransactionError::Storage(e)) => return Err(StoreError::Database(e)),
        };
        // The transaction is done: from here on the revision is current, whatever fails.
        let durable = self
            .db
            .flush()
            .map_err(|e| e.to_string())
            .and_then(|_| self.make_durable().map_err(|e| e.to_string()));
        match durable {
            Ok(()) => Ok(number),
            Err(why) => Err(StoreError::NotDurable { number, why }),
        }
    }

    /// sled's flush ends in sync_file_range(2), which writes the data but neither the file's
    /// size nor its block map: after a power cut the newest revisions were gone (seen in QEMU
    /// on ext4). fsync of every file of the store, and of its folders, makes them durable.
    fn make_durable(&self) -> Result<(), StoreError> {
        let sync = |path: &Path| {
            std::fs::File::open(path)
                .and_then(|file| file.sync_all())
                .map_err(|e| StoreError::Sync {
                    path: path.to_path_buf(),
                    source: e,
                })
        };
        let mut folders = vec![self.dir.clone()];
        while let Some(folder) = folders.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| StoreError::Sync {
                path: folder.clone(),
                source: e,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => folders.push(path),
                    Ok(kind) if kind.is_file() => sync(&path)?,
                    _ => {}
                }
            }
            sync(&folder)?;
        }
        Ok(())
    }

    /// Every revision, oldest first; one that cannot be read is there as its error, so the
    /// others still show.
    pub fn history(&self) -> Result<Vec<Result<Revision, StoreError>>, StoreError> {
        let mut all = Vec::new();
        for entry in self.revisions.iter() {
            let (key, value) = entry?;
            let number = decode_number(&key);
            all.push(decode(number, &value));
        }
        Ok(all)
    }

    /// Overwrites revision `number` with bytes that are not a record, as a damaged disk would.
    #[cfg(test)]
    pub fn damage_for_tests(&self, number: u64) {
        let _ = self
            .revisions
            .insert(number.to_be_bytes(), &b"\x85damaged"[..]);
        let _ = self.db.flush();
    }

    /// Makes the configuration of revision `number` current again, as a new revision.
    pub fn rollback(&self, number: u64, author: &str, time_ms: u64) -> Result<u64, StoreError> {
        let old = self.get(number)?;
        self.commit(
            &old.config,
            author,
            &format!("rollback to revision {number}"),
            time_ms,
        )
    }

    /// The changes from revision `from` to revision `to`, as lines of their TOML prefixed with
    /// `-` (only in `from`), `+` (only in `to`) or a space.
    pub fn diff(&self, from: u64, to: u64) -> Result<String, StoreError> {
        let old = to_toml(&self.get(from)?.config).map_err(StoreError::Encode)?;
        let new = to_toml(&self.get(to)?.config).map_err(StoreError::Encode)?;
        Ok(line_diff(&old, &new))
    }
}

fn decode_number(bytes: &[u8]) -> u64 {
    let mut be = [0u8; 8];
    let n = bytes.len().min(8);
    be[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(be)
}

/// A revision on disk: the CBOR array [number, time_ms, author, comment, config as TOML].
fn encode(
    number: u64,
    time_ms: u64,
    author: &str,
    comment: &str,
    toml: &str,
) -> Result<Vec<u8>, String> {
    let mut encoder = Encoder::new(Vec::new());
    encoder
        .array(5)
        .and_then(|e| e.u64(number))
        .and_then(|e| e.u64(time_ms))
        .and_then(|e| e.str(author))
        .and_then(|e| e.str(comment))
        .and_then(|e| e.str(toml))
        .map_err(|e| e.to_string())?;
    Ok(encoder.into_writer())
}

fn decode(number: u64, bytes: &[u8]) -> Result<Revision, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        revision: number,
        why,
    };
    let mut d = Decoder::new(bytes);
    if d.array().map_err(|e| corrupt(e.to_string()))? != Some(5) {
        return Err(corrupt("not a revision record".into()));
    }
    let stored = d.u64().map_err(|e| corrupt(e.to_string()))?;
    if stored != number {
        return Err(corrupt(format!("it says it is revision {stored}")));
    }
    let time_ms = d.u64().map_err(|e| corrupt(e.to_string()))?;
    let author = d.str().map_err(|e| corrupt(e.to_string()))?.to_string();
    let comment = d.str().map_err(|e| corrupt(e.to_string()))?.to_string();
    let text = d.str().map_err(|e| corrupt(e.to_string()))?;
    // Read, not judged: a revision that was valid when stored stays readable when a later
    // firmware's rules are stricter (`validate` then says what to change).
    let config: Config = toml::from_str(text).map_err(|e| corrupt(e.message().to_string()))?;
    Ok(Revision {
        number,
        time_ms,
        author,
        comment,
        config,
    })
}

/// Largest table (old lines x new lines, after the common head and tail) the diff builds.
const DIFF_CELLS: usize = 4_000_000;

/// A line diff: the common head and tail, and the longest common subsequence of the middle
/// (when it is small enough to compute in bounded memory; else the middle is shown replaced).
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out = String::new();
    for line in &a[..head] {
        out.push_str(&format!(" {line}\n"));
    }
    if mid_a.len().saturating_mul(mid_b.len()) > DIFF_CELLS {
        for line in mid_a {
            out.push_str(&format!("-{line}\n"));
        }
        for line in mid_b {
            out.push_str(&format!("+{line}\n"));
        }
    } else {
        lcs_diff(mid_a, mid_b, &mut out);
    }
    for line in &a[a.len() - tail..] {
        out.push_str(&format!(" {line}\n"));
    }
    out
}

fn lcs_diff(a: &[&str], b: &[&str], out: &mut String) {
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests;
