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
    /// Whether the last apply could not read the kernel's state (and so changed nothing).
    unread: bool,
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
            unread: false,
        }
    }

    /// Brings the kernel to what `config` asks and logs what was done, refused and impossible.
    pub fn apply(&mut self, config: &Config) -> Report {
        let wanted = net::wanted(config);
        // A dump the kernel cut short (seen once as EINVAL from a route dump during boot)
        // leaves nothing behind: read again at once before giving up for now.
        let read = self.read_plan(&wanted).or_else(|why| {
            warn!("network: reading the kernel's state failed ({why}); reading again");
            self.read_plan(&wanted)
        });
        let plan = match read {
            Ok(plan) => {
                self.unread = false;
                plan
            }
            Err(why) => {
                error!("network: cannot read the kernel's state: {why}; trying again later");
                self.unread = true;
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

    /// Whether the last apply changed nothing because the kernel's state could not be read:
    /// the caller applies again later.
    pub fn needs_retry(&self) -> bool {
        self.unread
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_toml;
    use crate::sys::rtnl::FakeRtnl;
    use crate::sys::sysctl::FakeSysctl;

    fn network(failing_dumps: u32, dir: &Path) -> Network {
        let mut rtnl = FakeRtnl::with_links(&["lo", "eth0"]);
        rtnl.failing_dumps = failing_dumps;
        let sysctl = FakeSysctl::with(&[("net/ipv4/ip_forward", "0")]);
        Network::new(Box::new(rtnl), Box::new(sysctl), &dir.join("managed"))
    }

    fn config() -> Config {
        from_toml("[[network.interfaces]]\nname = \"eth0\"\naddresses = [\"192.0.2.2/24\"]\n")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("director-network-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    /// The apply read the kernel and added the address.
    fn assert_configured(report: &Report, network: &Network) {
        assert!(
            report.done.iter().any(|d| d.contains("192.0.2.2/24")),
            "{:?}",
            report.done
        );
        assert!(!network.needs_retry());
    }

    #[test]
    fn a_failed_read_is_tried_again_at_once() {
        let dir = scratch("once");
        let mut network = network(1, &dir);
        let report = network.apply(&config());
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_configured(&report, &network);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreadable_kernel_changes_nothing_and_asks_for_another_apply() {
        let dir = scratch("twice");
        let mut network = network(2, &dir);
        let report = network.apply(&config());
        assert!(report.done.is_empty(), "{:?}", report.done);
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert!(
            report.failed[0].contains("list routes"),
            "{:?}",
            report.failed
        );
        assert!(network.needs_retry());
        // The next apply reads the kernel and does the work.
        let report = network.apply(&config());
        assert_configured(&report, &network);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
