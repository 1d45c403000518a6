//! The daemon's network service: applies the network part of each configuration taken into
//! force (only the difference), re-applies when a link comes up or appears, reports carrier
//! changes, and describes the network for `director ctl net`.

use std::path::{Path, PathBuf};

use log::{error, info, warn};

use crate::config::Config;
use crate::net::{self, Actual, Managed, Report};
use crate::sys::rtnl::Rtnl;
use crate::sys::sysctl::Sysctl;

/// Where the record of what the director added lives (tmpfs: it lasts as long as the addresses).
pub const MANAGED_FILE: &str = "/run/director/network-managed";

pub struct Network {
    rtnl: Box<dyn Rtnl + Send>,
    sysctl: Box<dyn Sysctl + Send>,
    managed_path: PathBuf,
    managed: Managed,
    /// The problems reported by the last apply, so that a re-apply does not repeat them.
    problems: Vec<String>,
    /// Whether the first apply (which ends with a summary line) has been done.
    configured: bool,
}

impl Network {
    pub fn new(
        rtnl: Box<dyn Rtnl + Send>,
        sysctl: Box<dyn Sysctl + Send>,
        managed_path: &Path,
    ) -> Network {
        Network {
            rtnl,
            sysctl,
            managed_path: managed_path.to_path_buf(),
            managed: Managed::load(managed_path),
            problems: Vec::new(),
            configured: false,
        }
    }

    /// Brings the kernel to what `config` asks and logs what was done, refused and impossible.
    pub fn apply(&mut self, config: &Config) -> Report {
        let wanted = net::wanted(config);
        let plan = match self.read_plan(&wanted) {
            Ok(plan) => plan,
            Err(why) => {
                error!("network: cannot read the kernel's state: {why}");
                return Report {
                    failed: vec![why],
                    ..Report::default()
                };
            }
        };
        let report = net::apply(
            plan,
            self.rtnl.as_mut(),
            self.sysctl.as_mut(),
            &mut self.managed,
        );
        if let Err(e) = self.managed.save(&self.managed_path) {
            warn!(
                "network: cannot record what was added in {}: {e}",
                self.managed_path.display()
            );
        }
        for done in &report.done {
            info!("network: {done}");
        }
        for failed in &report.failed {
            error!("network: {failed}");
        }
        for problem in &report.problems {
            if !self.problems.contains(problem) {
                warn!("network: {problem}");
            }
        }
        self.problems.clone_from(&report.problems);
        if !self.configured {
            self.configured = true;
            info!(
                "network: configured ({} change(s), {} refused, {} not applicable)",
                report.done.len(),
                report.failed.len(),
                report.problems.len()
            );
        }
        report
    }

    fn read_plan(&mut self, wanted: &net::Wanted) -> Result<net::Plan, String> {
        let links = self.rtnl.links().map_err(|e| e.to_string())?;
        let addresses = self.rtnl.addresses().map_err(|e| e.to_string())?;
        let routes = self.rtnl.routes().map_err(|e| e.to_string())?;
        let actual = Actual {
            links: &links,
            addresses: &addresses,
            routes: &routes,
        };
        Ok(net::plan(
            wanted,
            &actual,
            self.sysctl.as_ref(),
            &self.managed,
        ))
    }

    /// The network as it is, and what differs from `config`.
    pub fn describe(&mut self, config: &Config) -> Result<String, String> {
        let wanted = net::wanted(config);
        let links = self.rtnl.links().map_err(|e| e.to_string())?;
        let addresses = self.rtnl.addresses().map_err(|e| e.to_string())?;
        let routes = self.rtnl.routes().map_err(|e| e.to_string())?;
        let actual = Actual {
            links: &links,
            addresses: &addresses,
            routes: &routes,
        };
        let plan = net::plan(&wanted, &actual, self.sysctl.as_ref(), &self.managed);
        Ok(net::describe(&wanted, &actual, self.sysctl.as_ref(), &plan))
    }
}
