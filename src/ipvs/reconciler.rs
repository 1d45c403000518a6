//! Rounds of reconciliation: a full round reads the kernel's table, an incremental one plans
//! against the table it applied last (a configuration change costs only its difference). A
//! round that did not apply cleanly is never taken for done: the next one is a full round,
//! which reads the kernel again and so retries exactly what is still missing or different.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::{
    desired_with, destinations_of, plan, record, service_of, wanted_timeouts, NoOverrides,
    Overrides, Table, Wanted,
};
use crate::config::delta::Delta;
use crate::config::Config;
use crate::sys::ipvs::{Change, Ipvs, IpvsError, ServiceKey, TableEntry, Timeouts};

/// Which kind of round ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// The kernel's table was read.
    Full,
    /// Planned against the table applied last.
    Incremental,
}

/// A change the kernel refused, with its error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub change: Change,
    pub error: IpvsError,
}

impl fmt::Display for Failure {
    /// "edit real server 192.0.2.21:80 (weight 3) of tcp 192.0.2.100:80: No such file ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.change, self.error.message)
    }
}

/// What a round did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub round: Round,
    /// The changes the kernel accepted, in order.
    pub applied: Vec<Change>,
    /// The changes it refused.
    pub failed: Vec<Failure>,
    /// Services that are not the director's, left alone.
    pub foreign: Vec<ServiceKey>,
    /// Anything else that went wrong: the table or the timeouts could not be read or set, the
    /// ownership record could not be read or written.
    pub problems: Vec<String>,
    /// The round did not finish cleanly: run a full round again soon.
    pub retry: bool,
    /// Where the round's time went: ("read", ...), ("plan", ...), ("apply", ...).
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

impl Outcome {
    fn new(round: Round) -> Outcome {
        Outcome {
            round,
            applied: Vec::new(),
            failed: Vec::new(),
            foreign: Vec::new(),
            problems: Vec::new(),
            retry: false,
            timings: Vec::new(),
        }
    }

    /// "not the director's: tcp 192.0.2.50:80, left alone", one per foreign service.
    pub fn foreign_lines(&self) -> Vec<String> {
        self.foreign
            .iter()
            .map(|key| format!("not the director's: {key}, left alone"))
            .collect()
    }
}

/// What was applied last, when it applied cleanly.
struct Applied {
    table: Vec<TableEntry>,
    owns_table: bool,
    timeouts: Option<Timeouts>,
}

/// The state between rounds: where the ownership record lives, what it says, and what was
/// applied last.
pub struct Reconciler {
    record: PathBuf,
    /// Read from the record on the first round, then kept here and written after changes.
    owned: Option<HashSet<ServiceKey>>,
    /// The record on disk is older than `owned` (a write failed).
    record_stale: bool,
    /// `None` until a round applied cleanly, and after every round that did not.
    last: Option<Applied>,
    foreign: Vec<ServiceKey>,
    /// The configuration `last` was made from, when known (`round_from`), and where each
    /// service is in `last.table`: a change to a few virtual servers is then planned from
    /// those alone.
    last_config: Option<Arc<Config>>,
    index: Option<HashMap<ServiceKey, usize>>,
    retired: Option<Arc<Config>>,
}

/// Where each service is in a table.
fn index_of(table: &[TableEntry]) -> HashMap<ServiceKey, usize> {
    table
        .iter()
        .enumerate()
        .map(|(i, (entry, _))| (entry.service.key, i))
        .collect()
}

/// Above this many changed virtual servers a round plans over the whole table.
const FEW: usize = 64;

impl Reconciler {
    pub fn new(record: &Path) -> Reconciler {
        Reconciler {
            record: record.to_path_buf(),
            owned: None,
            record_stale: false,
            last: None,
            foreign: Vec::new(),
            last_config: None,
            index: None,
            retired: None,
        }
    }

    /// A full round (`full`) or one for a configuration change: when only a few virtual
    /// servers differ from the configuration applied last, the round looks at those alone
    /// (comparing the configurations is the only work proportional to the table); otherwise
    /// `incremental`. Without health overrides.
    ///
    /// `delta`, when it joins the configuration applied last and `config`, names the virtual
    /// servers that differ, and the configurations are not compared at all.
    pub fn round_from(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Arc<Config>,
        full: bool,
        delta: Option<&Delta>,
    ) -> Outcome {
        self.round_from_with(ipvs, config, full, delta, &NoOverrides)
    }

    /// `round_from`, with the health checks' say on each real server, so that a
    /// configuration change does not put a failed real server back.
    pub fn round_from_with(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Arc<Config>,
        full: bool,
        delta: Option<&Delta>,
        overrides: &dyn Overrides,
    ) -> Outcome {
        let few = if full {
            None
        } else {
            self.few(ipvs, config, delta, overrides)
        };
        let outcome = match few {
            Some(outcome) => outcome,
            None => {
                self.index = None;
                let outcome = if full {
                    self.full_with(ipvs, config, overrides)
                } else {
                    self.incremental_with(ipvs, config, overrides)
                };
                // Built now, so that the next change to a few virtual servers finds it.
                if let Some(last) = &self.last {
                    self.index = Some(index_of(&last.table));
                }
                outcome
            }
        };
        let previous = std::mem::replace(
            &mut self.last_config,
            self.last.as_ref().map(|_| config.clone()),
        );
        if self.last.is_none() {
            self.index = None;
        }
        // Freeing a large configuration takes a while: the caller does it after the round.
        self.retired = previous;
        outcome
    }

    /// The configuration the last round replaced, to be freed outside the round.
    pub fn take_retired(&mut self) -> Option<Arc<Config>> {
        self.retired.take()
    }

    /// The round for a change to at most `FEW` virtual servers, or `None` when it does not
    /// apply (nothing applied cleanly yet, other IPVS settings, virtual servers added or
    /// removed, many changed).
    fn few(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Arc<Config>,
        delta: Option<&Delta>,
        overrides: &dyn Overrides,
    ) -> Option<Outcome> {
        let previous = self.last_config.as_ref()?;
        self.last.as_ref()?;
        if previous.network.ipvs != config.network.ipvs {
            return None;
        }
        let (old, new) = (&previous.virtual_servers, &config.virtual_servers);
        if old.len() != new.len() {
            return None;
        }
        let start = Instant::now();
        let known = delta
            .and_then(|d| d.virtual_servers_between(previous, config))
            .filter(|known| known.iter().all(|&i| i < new.len()));
        let changed: Vec<usize> = match known {
            Some(known) => known.iter().copied().take(FEW + 1).collect(),
            None => old
                .iter()
                .zip(new)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i)
                .take(FEW + 1)
                .collect(),
        };
        if changed.len() > FEW {
            return None;
        }
        let previous = previous.clone();
        self.replan(ipvs, config, &previous, &changed, overrides, start)
    }

    /// A round for the health checks' changes to the virtual servers named: only those are
    /// planned, from the configuration and `overrides` now, against the table applied last.
    /// When that table was made from another configuration (a change not yet applied, or
    /// none applied cleanly), the whole table is planned instead.
    pub fn health_round(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Arc<Config>,
        overrides: &dyn Overrides,
        virtual_servers: &[&str],
    ) -> Outcome {
        let start = Instant::now();
        let same = self.last.is_some()
            && self
                .last_config
                .as_ref()
                .is_some_and(|last| Arc::ptr_eq(last, config));
        let outcome = if same {
            let named: HashSet<&str> = virtual_servers.iter().copied().collect();
            let changed: Vec<usize> = config
                .virtual_servers
                .iter()
                .enumerate()
                .filter(|(_, vs)| named.contains(vs.name.as_str()))
                .map(|(i, _)| i)
                .take(FEW + 1)
                .collect();
            if changed.len() > FEW {
                None
            } else {
                self.replan(ipvs, config, config, &changed, overrides, start)
            }
        } else {
            None
        };
        let outcome = outcome.unwrap_or_else(|| {
            self.index = None;
            self.incremental_with(ipvs, config, overrides)
        });
        let previous = std::mem::replace(
            &mut self.last_config,
            self.last.as_ref().map(|_| config.clone()),
        );
        if self.last.is_none() {
            self.index = None;
        }
        self.retired = previous.filter(|previous| !Arc::ptr_eq(previous, config));
        outcome
    }

    /// Plans the virtual servers at `changed` (positions in both configurations) against the
    /// table applied last, where they were made from `previous`, and applies the plan; `None`
    /// when that cannot be done from them alone.
    fn replan(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Config,
        previous: &Config,
        changed: &[usize],
        overrides: &dyn Overrides,
        start: Instant,
    ) -> Option<Outcome> {
        let (old, new) = (&previous.virtual_servers, &config.virtual_servers);
        let last = self.last.as_mut()?;
        let owned = self.owned.as_mut()?;
        let index = self.index.get_or_insert_with(|| index_of(&last.table));
        let mut desired = Table::default();
        let mut actual = Vec::new();
        for &i in changed {
            let before = old.get(i).filter(|vs| vs.enabled).and_then(service_of);
            if let Some(row) = before
                .and_then(|s| index.get(&s.key))
                .and_then(|&at| last.table.get(at))
            {
                actual.push(row.clone());
            }
            let Some(vs) = new.get(i).filter(|vs| vs.enabled) else {
                continue;
            };
            if let Some(service) = service_of(vs) {
                let destinations = destinations_of(vs, &service.key, overrides);
                desired.services.push(Wanted {
                    service,
                    destinations,
                });
            }
        }
        // A service that is someone else's in the kernel needs the kernel's view of it.
        if desired
            .services
            .iter()
            .any(|w| self.foreign.contains(&w.service.key))
        {
            return None;
        }
        let mut outcome = Outcome::new(Round::Incremental);
        let plan = plan(&desired, &actual, owned, config.network.ipvs.owns_table);
        outcome.timings.push(("plan", start.elapsed()));
        let start = Instant::now();
        let results = ipvs.apply(&plan.changes);
        outcome.timings.push(("apply", start.elapsed()));
        let mut owned_changed = settle(plan.changes, results, owned, &mut outcome);
        // A desired service that was there already is the director's now.
        for wanted in &desired.services {
            if actual
                .iter()
                .any(|(e, _)| e.service.key == wanted.service.key)
            {
                owned_changed |= owned.insert(wanted.service.key);
            }
        }
        if owned_changed || self.record_stale {
            save_record(&self.record, &mut self.record_stale, owned, &mut outcome);
        }
        outcome.foreign = self.foreign.clone();
        outcome.retry = !outcome.failed.is_empty() || !outcome.problems.is_empty();
        if outcome.retry {
            self.last = None;
            self.index = None;
            return Some(outcome);
        }
        // The table applied is now the old one with these services replaced.
        for (entry, _) in &actual {
            let key = entry.service.key;
            if let Some(at) = index.remove(&key) {
                last.table.swap_remove(at);
                if let Some((moved, _)) = last.table.get(at) {
                    index.insert(moved.service.key, at);
                }
            }
        }
        for row in desired.entries() {
            let key = row.0.service.key;
            match index.get(&key) {
                Some(&at) => {
                    if let Some(slot) = last.table.get_mut(at) {
                        *slot = row;
                    }
                }
                None => {
                    index.insert(key, last.table.len());
                    last.table.push(row);
                }
            }
        }
        Some(outcome)
    }

    /// The services the director holds as its own.
    pub fn owned(&self) -> Option<&HashSet<ServiceKey>> {
        self.owned.as_ref()
    }

    /// Reads the kernel's table and makes it what `config` asks for.
    pub fn full(&mut self, ipvs: &mut dyn Ipvs, config: &Config) -> Outcome {
        self.full_with(ipvs, config, &NoOverrides)
    }

    /// `full`, with the health checks' say on each real server.
    pub fn full_with(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Config,
        overrides: &dyn Overrides,
    ) -> Outcome {
        let mut outcome = Outcome::new(Round::Full);
        self.last = None;
        let start = std::time::Instant::now();
        let table = ipvs.table();
        outcome.timings.push(("read", start.elapsed()));
        let actual = match table {
            Ok(table) => table,
            Err(e) => {
                outcome
                    .problems
                    .push(format!("cannot read the IPVS table: {e}"));
                outcome.foreign = self.foreign.clone();
                outcome.retry = true;
                return outcome;
            }
        };
        let timeouts = wanted_timeouts(config);
        if let Some(wanted) = timeouts {
            self.set_timeouts(ipvs, wanted, &mut outcome);
        }
        self.round(ipvs, config, overrides, &actual, timeouts, outcome)
    }

    /// Makes the kernel's table what `config` asks for, planning against the table applied
    /// last; a full round when there is none or the last round did not apply cleanly.
    pub fn incremental(&mut self, ipvs: &mut dyn Ipvs, config: &Config) -> Outcome {
        self.incremental_with(ipvs, config, &NoOverrides)
    }

    /// `incremental`, with the health checks' say on each real server.
    pub fn incremental_with(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Config,
        overrides: &dyn Overrides,
    ) -> Outcome {
        let owns_table = config.network.ipvs.owns_table;
        let last = match self.last.take() {
            // Taking the whole table over needs to see the foreign services: a full round.
            Some(last) if last.owns_table == owns_table => last,
            _ => return self.full_with(ipvs, config, overrides),
        };
        let mut outcome = Outcome::new(Round::Incremental);
        let timeouts = wanted_timeouts(config);
        if let Some(wanted) = timeouts.filter(|t| Some(*t) != last.timeouts) {
            self.set_timeouts(ipvs, wanted, &mut outcome);
        }
        self.round(ipvs, config, overrides, &last.table, timeouts, outcome)
    }

    /// Plans against `actual`, applies in one batch, and keeps the record and the state.
    fn round(
        &mut self,
        ipvs: &mut dyn Ipvs,
        config: &Config,
        overrides: &dyn Overrides,
        actual: &[TableEntry],
        timeouts: Option<Timeouts>,
        mut outcome: Outcome,
    ) -> Outcome {
        let owns_table = config.network.ipvs.owns_table;
        let start = std::time::Instant::now();
        let desired = desired_with(config, overrides);
        let mut owned = match self.owned.take() {
            Some(owned) => owned,
            None => {
                let (owned, problems) = record::load(&self.record);
                // Rewrite a damaged record, without the lines that could not be read.
                self.record_stale |= !problems.is_empty();
                outcome.problems.extend(problems);
                owned
            }
        };
        let before = owned.clone();
        let plan = plan(&desired, actual, &owned, owns_table);
        outcome.timings.push(("plan", start.elapsed()));
        let start = std::time::Instant::now();
        let results = ipvs.apply(&plan.changes);
        outcome.timings.push(("apply", start.elapsed()));

        let present: HashSet<ServiceKey> = actual.iter().map(|(e, _)| e.service.key).collect();
        let wanted = desired.keys();
        // Forget what is gone; a desired service that was there already is the director's
        // now (it manages it, and removes it when the configuration drops it).
        owned.retain(|key| present.contains(key) || wanted.contains(key));
        owned.extend(present.intersection(&wanted).copied());
        settle(plan.changes, results, &mut owned, &mut outcome);

        if owned != before || self.record_stale {
            save_record(&self.record, &mut self.record_stale, &owned, &mut outcome);
        }
        self.owned = Some(owned);

        if outcome.round == Round::Full {
            self.foreign = plan.foreign;
        }
        outcome.foreign = self.foreign.clone();
        outcome.retry = !outcome.failed.is_empty() || !outcome.problems.is_empty();
        // Only a clean round is a base for the next incremental one; otherwise the next round
        // reads the kernel again and retries what failed.
        self.last = (!outcome.retry).then(|| Applied {
            table: desired.entries(),
            owns_table,
            timeouts,
        });
        outcome
    }

    /// Sets the timeouts the configuration has when the kernel's differ (0 leaves one as is).
    fn set_timeouts(&mut self, ipvs: &mut dyn Ipvs, wanted: Timeouts, outcome: &mut Outcome) {
        let current = match ipvs.timeouts() {
            Ok(current) => current,
            Err(e) => {
                outcome
                    .problems
                    .push(format!("cannot read the IPVS timeouts: {e}"));
                return;
            }
        };
        let differs = |want: u32, have: u32| want != 0 && want != have;
        if differs(wanted.tcp, current.tcp)
            || differs(wanted.tcp_fin, current.tcp_fin)
            || differs(wanted.udp, current.udp)
        {
            if let Err(e) = ipvs.set_timeouts(&wanted) {
                outcome
                    .problems
                    .push(format!("cannot set the IPVS timeouts: {e}"));
            }
        }
    }
}

/// Sorts a batch's results into the outcome (a change without a result is a failure) and keeps
/// the services added and removed in `owned`; whether `owned` changed.
fn settle(
    changes: Vec<Change>,
    results: Vec<Result<(), IpvsError>>,
    owned: &mut HashSet<ServiceKey>,
    outcome: &mut Outcome,
) -> bool {
    let mut owned_changed = false;
    let mut results = results.into_iter();
    for change in changes {
        let result = results.next().unwrap_or_else(|| {
            Err(IpvsError::new(
                change.to_string(),
                None,
                "the IPVS client gave no result for this change",
            ))
        });
        match result {
            Ok(()) => {
                owned_changed |= match &change {
                    Change::AddService(service) => owned.insert(service.key),
                    Change::RemoveService(key) => owned.remove(key),
                    _ => false,
                };
                outcome.applied.push(change);
            }
            Err(error) => outcome.failed.push(Failure { change, error }),
        }
    }
    owned_changed
}

/// Writes the ownership record; a failure is a problem of the round, and the record stays
/// stale until a later write succeeds.
fn save_record(path: &Path, stale: &mut bool, owned: &HashSet<ServiceKey>, outcome: &mut Outcome) {
    match record::save(path, owned) {
        Ok(()) => *stale = false,
        Err(e) => {
            *stale = true;
            outcome.problems.push(format!(
                "cannot write the IPVS ownership record {}: {e}",
                path.display()
            ));
        }
    }
}
