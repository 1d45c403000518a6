//! Kernel modules the image asks for, loaded in dependency order from modules.dep without
//! modprobe. Soft dependencies (modules.softdep, e.g. libcrc32c wants a crc32c implementation)
//! are honoured through the exact names of modules.alias; a soft dependency that cannot be
//! found is skipped, as modprobe does. The list (`/etc/director/modules`) has one module per line, optionally followed by
//! parameters; `#` starts a comment.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::sys::kmod::{Loaded, ModuleLoader};

/// A module wanted by the image, with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub params: String,
}

/// What modules.dep and modules.builtin say about the running kernel.
#[derive(Default, Debug)]
pub struct Index {
    /// Module name -> (object path relative to the modules directory, direct dependencies).
    entries: HashMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
    /// Module name -> names (or aliases) to load before it, and after it.
    soft_pre: HashMap<String, Vec<String>>,
    soft_post: HashMap<String, Vec<String>>,
    /// Exact alias -> modules that provide it.
    aliases: HashMap<String, Vec<String>>,
}

/// The result of loading the wanted modules.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub loaded: Vec<String>,
    pub already: Vec<String>,
    pub builtin: Vec<String>,
    pub problems: Vec<String>,
    /// Soft dependencies that did not load (e.g. a CPU-specific implementation on a CPU
    /// without the feature): not problems, as with modprobe.
    pub skipped: Vec<String>,
}

/// The kernel's name for a module file: basename without `.ko...`, dashes as underscores.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = match base.find(".ko") {
        Some(end) => &base[..end],
        None => base,
    };
    stem.replace('-', "_")
}

/// Parses the module list.
pub fn parse_list(text: &str) -> Vec<Wanted> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.splitn(2, char::is_whitespace);
            let name = words.next().filter(|n| !n.is_empty())?;
            Some(Wanted {
                name: module_name(name),
                params: words.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect()
}

impl Index {
    /// Builds the index from the text of modules.dep and modules.builtin.
    #[cfg(test)]
    pub fn parse(modules_dep: &str, modules_builtin: &str) -> Index {
        Self::parse_all(modules_dep, modules_builtin, "", "")
    }

    /// Builds the index from modules.dep, modules.builtin, modules.softdep and modules.alias.
    pub fn parse_all(
        modules_dep: &str,
        modules_builtin: &str,
        modules_softdep: &str,
        modules_alias: &str,
    ) -> Index {
        let mut entries = HashMap::new();
        for line in modules_dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(module_name).collect();
            entries.insert(module_name(path), (path.to_string(), deps));
        }
        let builtin = modules_builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(module_name)
            .collect();
        let mut soft_pre: HashMap<String, Vec<String>> = HashMap::new();
        let mut soft_post: HashMap<String, Vec<String>> = HashMap::new();
        for line in modules_softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next().map(module_name) else {
                continue;
            };
            let mut post = false;
            for word in words {
                match word {
                    "pre:" => post = false,
                    "post:" => post = true,
                    name if post => soft_post
                        .entry(module.clone())
                        .or_default()
                        .push(name.into()),
                    name => soft_pre
                        .entry(module.clone())
                        .or_default()
                        .push(name.into()),
                }
            }
        }
        let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
        for line in modules_alias.lines() {
            let mut words = line.split_whitespace();
            let (Some("alias"), Some(alias), Some(module)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            if alias.contains(['*', '?', '[']) {
                continue;
            }
            aliases
                .entry(alias.to_string())
                .or_default()
                .push(module_name(module));
        }
        Index {
            entries,
            builtin,
            soft_pre,
            soft_post,
            aliases,
        }
    }

    /// The modules a soft dependency names: itself when it is a module, else its aliases.
    fn resolve_soft(&self, name: &str) -> Vec<String> {
        let as_module = module_name(name);
        if self.entries.contains_key(&as_module) {
            return vec![as_module];
        }
        self.aliases.get(name).cloned().unwrap_or_default()
    }

    fn visit_soft(
        &self,
        names: Option<&Vec<String>>,
        visiting: &mut HashSet<String>,
        done: &mut HashSet<String>,
        order: &mut Vec<String>,
        report: &mut Report,
    ) {
        for soft in names.into_iter().flatten() {
            for module in self.resolve_soft(soft) {
                if !visiting.contains(&module) {
                    self.visit(&module, visiting, done, order, report);
                }
            }
        }
    }

    /// Reads modules.dep and modules.builtin from `dir` (/lib/modules/<release>).
    pub fn read(dir: &Path) -> std::io::Result<Index> {
        let dep = std::fs::read_to_string(dir.join("modules.dep"))?;
        let optional = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        Ok(Index::parse_all(
            &dep,
            &optional("modules.builtin"),
            &optional("modules.softdep"),
            &optional("modules.alias"),
        ))
    }

    /// The object files to load, dependencies first, each once; names that are neither modules
    /// nor built in are problems.
    pub fn load_order(&self, wanted: &[Wanted]) -> (Vec<String>, Report) {
        let mut order = Vec::new();
        let mut report = Report::default();
        let mut done = HashSet::new();
        for want in wanted {
            if self.builtin.contains(&want.name) {
                report.builtin.push(want.name.clone());
            } else if self.entries.contains_key(&want.name) {
                let mut visiting = HashSet::new();
                self.visit(
                    &want.name,
                    &mut visiting,
                    &mut done,
                    &mut order,
                    &mut report,
                );
            } else {
                report.problems.push(format!(
                    "{}: not in modules.dep and not built in",
                    want.name
                ));
            }
        }
        (order, report)
    }

    fn visit(
        &self,
        name: &str,
        visiting: &mut HashSet<String>,
        done: &mut HashSet<String>,
        order: &mut Vec<String>,
        report: &mut Report,
    ) {
        if done.contains(name) || self.builtin.contains(name) {
            return;
        }
        if !visiting.insert(name.to_string()) {
            report
                .problems
                .push(format!("{name}: dependency cycle in modules.dep"));
            return;
        }
        match self.entries.get(name) {
            Some((_, deps)) => {
                self.visit_soft(self.soft_pre.get(name), visiting, done, order, report);
                for dep in deps {
                    self.visit(dep, visiting, done, order, report);
                }
                done.insert(name.to_string());
                order.push(name.to_string());
                self.visit_soft(self.soft_post.get(name), visiting, done, order, report);
            }
            None => report.problems.push(format!(
                "{name}: needed as a dependency but not in modules.dep"
            )),
        }
    }

    /// The wanted modules and their hard dependencies (soft dependencies excluded).
    fn required(&self, wanted: &[Wanted]) -> HashSet<String> {
        let mut required = HashSet::new();
        let mut queue: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
        while let Some(name) = queue.pop() {
            if !required.insert(name.clone()) {
                continue;
            }
            if let Some((_, deps)) = self.entries.get(&name) {
                queue.extend(deps.iter().cloned());
            }
        }
        required
    }

    /// Loads `wanted` and everything they depend on through `loader`.
    pub fn load(&self, dir: &Path, wanted: &[Wanted], loader: &mut dyn ModuleLoader) -> Report {
        let (order, mut report) = self.load_order(wanted);
        let required = self.required(wanted);
        for name in order {
            let Some((rel, _)) = self.entries.get(&name) else {
                continue;
            };
            let params = wanted
                .iter()
                .find(|w| w.name == name)
                .map(|w| w.params.as_str())
                .unwrap_or("");
            let path: PathBuf = dir.join(rel);
            let start = std::time::Instant::now();
            let result = loader.load(&path, params);
            log::debug!("module {name}: {} ms", start.elapsed().as_millis());
            match result {
                Ok(Loaded::Now) => report.loaded.push(name),
                Ok(Loaded::Already) => report.already.push(name),
                Err(e) if required.contains(&name) => {
                    report.problems.push(format!("{name}: {}", e.reason))
                }
                Err(e) => report.skipped.push(format!("{name}: {}", e.reason)),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::kmod::FakeModules;

    const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/watchdog/i6300esb.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
";

    fn names(list: &str) -> Vec<Wanted> {
        parse_list(list)
    }

    #[test]
    fn list_ignores_comments_and_keeps_params() {
        let list = parse_list("# IPVS\nip_vs conn_tab_bits=14\n\nip-vs-rr # scheduler\n");
        assert_eq!(
            list,
            vec![
                Wanted {
                    name: "ip_vs".into(),
                    params: "conn_tab_bits=14".into()
                },
                Wanted {
                    name: "ip_vs_rr".into(),
                    params: String::new()
                },
            ]
        );
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let index = Index::parse(DEP, "");
        let (order, report) = index.load_order(&names("ip_vs_rr\nip_vs\n"));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(order.len(), 6);
        let at = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(at("libcrc32c") < at("nf_conntrack"));
        assert!(at("nf_defrag_ipv4") < at("nf_conntrack"));
        assert!(at("nf_conntrack") < at("ip_vs"));
        assert_eq!(order.last().map(String::as_str), Some("ip_vs_rr"));
    }

    #[test]
    fn builtin_and_unknown_modules_are_reported() {
        let index = Index::parse(DEP, "kernel/drivers/block/virtio_blk.ko\n");
        let (order, report) = index.load_order(&names("virtio_blk\nno_such_thing\ni6300esb"));
        assert_eq!(order, vec!["i6300esb".to_string()]);
        assert_eq!(report.builtin, vec!["virtio_blk".to_string()]);
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].starts_with("no_such_thing:"));
    }

    #[test]
    fn loads_through_the_loader_with_params() {
        let index = Index::parse(DEP, "");
        let mut fake = FakeModules::default();
        let dir = Path::new("/lib/modules/6.1");
        let report = index.load(dir, &names("virtio_net\n"), &mut fake);
        assert_eq!(
            report.loaded,
            vec!["failover", "net_failover", "virtio_net"]
        );
        assert_eq!(
            fake.loaded.last(),
            Some(&PathBuf::from(
                "/lib/modules/6.1/kernel/drivers/net/virtio_net.ko"
            ))
        );
        let again = index.load(dir, &names("virtio_net\n"), &mut fake);
        assert_eq!(again.already.len(), 3);
    }

    #[test]
    fn a_failed_load_is_a_problem_and_the_rest_go_on() {
        let index = Index::parse(DEP, "");
        let mut fake = FakeModules {
            failing: vec![PathBuf::from("/m/kernel/drivers/watchdog/i6300esb.ko")],
            ..FakeModules::default()
        };
        let report = index.load(Path::new("/m"), &names("i6300esb\nip_vs_rr"), &mut fake);
        assert_eq!(report.problems.len(), 1);
        assert!(report.loaded.contains(&"ip_vs_rr".to_string()));
    }

    #[test]
    fn a_cycle_does_not_hang() {
        let index = Index::parse("a.ko: b.ko\nb.ko: a.ko\n", "");
        let (_, report) = index.load_order(&names("a"));
        assert!(report.problems.iter().any(|p| p.contains("cycle")));
    }

    #[test]
    fn soft_dependencies_load_first_through_aliases() {
        let dep = "kernel/lib/libcrc32c.ko:\nkernel/crypto/crc32c_generic.ko:\n\
                   kernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/fs/ext4/ext4.ko: kernel/lib/libcrc32c.ko\n";
        let softdep =
            "softdep libcrc32c pre: crc32c\nsoftdep ext4 pre: crypto-crc32c post: nothing\n";
        let alias = "alias crc32c crc32c_generic\nalias crc32c crc32c_intel\n\
                     alias crypto-crc32c crc32c_generic\nalias cpu:type:x86* crc32c_intel\n";
        let index = Index::parse_all(dep, "", softdep, alias);
        let (order, report) = index.load_order(&names("ext4"));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            order,
            vec!["crc32c_generic", "crc32c_intel", "libcrc32c", "ext4"]
        );
        let mut fake = FakeModules {
            failing: vec![PathBuf::from("/m/kernel/arch/x86/crypto/crc32c-intel.ko")],
            ..FakeModules::default()
        };
        let report = index.load(Path::new("/m"), &names("ext4"), &mut fake);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.loaded.len(), 3);
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko.xz"), "ext4");
        assert_eq!(module_name("ip-vs-wrr"), "ip_vs_wrr");
    }
}
