//! The daemon's IPVS service: keeps the kernel's table equal to the configuration in force.
//! A configuration change costs only its difference (an incremental round); a full round
//! (the kernel's table read back) runs at start, after any round that did not apply cleanly
//! (with back-off), every `FULL_EVERY` to correct what was changed behind the director's back,
//! and on `director ctl ipvs apply`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::config::delta::Delta;
use crate::config::Config;
use crate::ctl::health::HealthLookup;
use crate::ctl::ipvs::{render, render_json_with, View};
use crate::health::Snapshot;
use crate::ipvs::{Outcome, Overrides, Reconciler, Round};
use crate::sys::ipvs::kernel::KernelIpvs;
use crate::sys::ipvs::Ipvs;

/// Where the record of the services the director created lives.
pub const RECORD_FILE: &str = "/run/director/ipvs-managed";
/// A full round this often, to correct changes made behind the director's back.
pub const FULL_EVERY: Duration = Duration::from_secs(60);

/// The IPVS client (opened when first needed: ip_vs may still be loading) and the reconcile
/// state.
pub struct Balancer {
    ipvs: Option<Box<dyn Ipvs + Send>>,
    reconciler: Reconciler,
    /// The foreign services last reported, so that the log says it once.
    reported_foreign: Vec<String>,
    rounds: u64,
}

impl Balancer {
    pub fn new(record: &Path) -> Balancer {
        Balancer {
            ipvs: None,
            reconciler: Reconciler::new(record),
            reported_foreign: Vec::new(),
            rounds: 0,
        }
    }

    fn client(&mut self) -> Result<&mut (dyn Ipvs + Send + 'static), String> {
        if self.ipvs.is_none() {
            let ipvs = KernelIpvs::open().map_err(|e| e.to_string())?;
            self.ipvs = Some(Box::new(ipvs));
        }
        self.ipvs
            .as_deref_mut()
            .ok_or_else(|| "IPVS unavailable".to_string())
    }

    /// One round, logged: what changed, what failed (with its entry), what is not ours.
    /// `overrides` are the health checks' say, so that a failed real server stays out.
    pub fn round(
        &mut self,
        config: &Arc<Config>,
        full: bool,
        delta: Option<&Delta>,
        overrides: &dyn Overrides,
    ) -> Result<Outcome, String> {
        self.run(config, |reconciler, ipvs| {
            reconciler.round_from_with(ipvs, config, full, delta, overrides)
        })
    }

    /// A round for health changes to the virtual servers named, logged as `round`.
    pub fn health_round(
        &mut self,
        config: &Arc<Config>,
        overrides: &dyn Overrides,
        virtual_servers: &[&str],
    ) -> Result<Outcome, String> {
        self.run(config, |reconciler, ipvs| {
            reconciler.health_round(ipvs, config, overrides, virtual_servers)
        })
    }

    fn run(
        &mut self,
        config: &Arc<Config>,
        round: impl FnOnce(&mut Reconciler, &mut dyn Ipvs) -> Outcome,
    ) -> Result<Outcome, String> {
        let start = Instant::now();
        let first = self.rounds == 0;
        if let Err(e) = self.client() {
            error!("ipvs: {e}");
            return Err(e);
        }
        let Balancer {
            ipvs, reconciler, ..
        } = self;
        let Some(ipvs) = ipvs.as_deref_mut() else {
            return Err("IPVS unavailable".into());
        };
        let outcome = round(reconciler, ipvs);
        let retired = reconciler.take_retired();
        self.rounds += 1;
        let elapsed = start.elapsed();
        for failure in &outcome.failed {
            error!("ipvs: {} failed: {}", failure.change, failure.error.message);
        }
        for problem in &outcome.problems {
            warn!("ipvs: {problem}");
        }
        let foreign = outcome.foreign_lines();
        if foreign != self.reported_foreign {
            for line in &foreign {
                warn!("ipvs: {line}");
            }
            self.reported_foreign = foreign;
        }
        let kind = match outcome.round {
            Round::Full => "full",
            Round::Incremental => "incremental",
        };
        if first || !outcome.applied.is_empty() || !outcome.failed.is_empty() {
            let services = config.virtual_servers.iter().filter(|v| v.enabled).count();
            let verdict = if outcome.failed.is_empty() && outcome.problems.is_empty() {
                "in force"
            } else {
                "NOT fully in force (retrying)"
            };
            let parts: Vec<String> = outcome
                .timings
                .iter()
                .map(|(what, took)| format!("{what} {:.1}", took.as_secs_f64() * 1000.0))
                .collect();
            info!(
                "ipvs: table {verdict}: {services} virtual server(s); {} change(s) applied, {} failed ({kind} round, {:.1} ms: {})",
                outcome.applied.len(),
                outcome.failed.len(),
                elapsed.as_secs_f64() * 1000.0,
                parts.join(", ")
            );
        }
        drop(retired);
        Ok(outcome)
    }

    /// `director ctl ipvs [--stats|--rate]`: the kernel's table as ipvsadm shows it (`--json`
    /// is `show_health`'s).
    pub fn show(&mut self, view: View) -> Result<String, String> {
        let ipvs = self.client()?;
        let info = ipvs.info().map_err(|e| e.to_string())?;
        // The plain view shows no more than the kernel's text listing holds.
        let table = match view {
            View::Plain => ipvs.listing(),
            View::Stats | View::Rate => ipvs.table(),
        }
        .map_err(|e| e.to_string())?;
        Ok(render(&info, &table, view))
    }

    /// `director ctl ipvs --health` (`view`) and `--json` (`None`): the kernel's table with
    /// what the health checks say of each real server.
    pub fn show_health(
        &mut self,
        view: Option<View>,
        config: &Config,
        health: &Snapshot,
        boot: Duration,
    ) -> Result<String, String> {
        let ipvs = self.client()?;
        let info = ipvs.info().map_err(|e| e.to_string())?;
        let table = ipvs.table().map_err(|e| e.to_string())?;
        let lookup = HealthLookup::new(config, health, boot);
        Ok(match view {
            Some(view) => {
                let mut out = render(&info, &table, view);
                out.push_str(&lookup.section(&table));
                out
            }
            None => render_json_with(&info, &table, &|key, destination| {
                lookup.json(key, destination)
            }),
        })
    }
}

/// What `director ctl ipvs apply` answers.
pub fn describe(outcome: &Outcome) -> String {
    let mut out = String::new();
    for change in &outcome.applied {
        let _ = writeln!(out, "done: {change}");
    }
    for failure in &outcome.failed {
        let _ = writeln!(out, "failed: {}: {}", failure.change, failure.error.message);
    }
    for problem in &outcome.problems {
        let _ = writeln!(out, "problem: {problem}");
    }
    for line in outcome.foreign_lines() {
        let _ = writeln!(out, "{line}");
    }
    if out.is_empty() {
        out.push_str("nothing to do: the IPVS table matches the configuration\n");
    }
    out
}
