//! What one configuration changes of another: which virtual servers differ, and whether
//! anything else does. The configuration service compares every new configuration with the
//! one in force anyway (to refuse a change that changes nothing); the result travels with the
//! new configuration, so that the IPVS reconcile of a change to one virtual server in a table
//! of thousands looks at that one alone instead of comparing the tables again.

use std::sync::{Arc, Weak};

use super::Config;

/// The difference between two configurations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Something outside the virtual servers differs (node, network, pair, admin).
    pub elsewhere: bool,
    /// The positions of the virtual servers that differ, when both have as many; `None` when
    /// virtual servers were added or removed.
    pub virtual_servers: Option<Vec<usize>>,
}

impl Difference {
    pub fn between(old: &Config, new: &Config) -> Difference {
        // Destructured so that a new section of the configuration cannot be forgotten here.
        let Config {
            node,
            network,
            virtual_servers,
            pair,
            admin,
        } = new;
        let elsewhere = *node != old.node
            || *network != old.network
            || *pair != old.pair
            || *admin != old.admin;
        let virtual_servers = (virtual_servers.len() == old.virtual_servers.len()).then(|| {
            virtual_servers
                .iter()
                .zip(&old.virtual_servers)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i)
                .collect()
        });
        Difference {
            elsewhere,
            virtual_servers,
        }
    }

    /// Nothing differs.
    pub fn is_none(&self) -> bool {
        !self.elsewhere && self.virtual_servers.as_ref().is_some_and(Vec::is_empty)
    }
}

/// The difference from one configuration taken into force to the next, naming both (weakly:
/// it keeps neither alive). Whoever holds `from` and is handed `to` may trust `difference`.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    pub from: Weak<Config>,
    pub to: Weak<Config>,
    /// `None` when it is not known (at start, after a rollback).
    pub difference: Option<Difference>,
}

impl Delta {
    /// The positions of the virtual servers that differ from `from` to `to`, when this delta
    /// joins exactly those two and only virtual servers changed in place.
    pub fn virtual_servers_between(
        &self,
        from: &Arc<Config>,
        to: &Arc<Config>,
    ) -> Option<&[usize]> {
        if !std::ptr::eq(self.from.as_ptr(), Arc::as_ptr(from))
            || !std::ptr::eq(self.to.as_ptr(), Arc::as_ptr(to))
        {
            return None;
        }
        let difference = self.difference.as_ref()?;
        if difference.elsewhere {
            return None;
        }
        difference.virtual_servers.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builtin_default;

    fn with_servers(n: usize) -> Config {
        let mut text = String::from("[node]\nhostname = \"t\"\n");
        for i in 0..n {
            text.push_str(&format!(
                "[[virtual_servers]]\nname = \"v{i}\"\nvip = \"192.0.2.{}\"\nport = 80\nreal_servers = [{{ name = \"a\", address = \"198.51.100.1\" }}]\n",
                i + 1
            ));
        }
        crate::config::from_toml(&text).unwrap()
    }

    #[test]
    fn names_the_virtual_servers_that_differ() {
        let old = with_servers(5);
        let mut new = old.clone();
        new.virtual_servers[3].real_servers[0].weight = 7;
        let d = Difference::between(&old, &new);
        assert_eq!(d.virtual_servers, Some(vec![3]));
        assert!(!d.elsewhere && !d.is_none());
        assert!(Difference::between(&old, &old.clone()).is_none());
        new.node.hostname = "other".into();
        assert!(Difference::between(&old, &new).elsewhere);
        let fewer = with_servers(4);
        assert_eq!(Difference::between(&old, &fewer).virtual_servers, None);
        assert!(!Difference::between(&builtin_default(), &old).is_none());
    }

    #[test]
    fn a_delta_is_trusted_only_between_the_configurations_it_names() {
        let a = Arc::new(with_servers(3));
        let mut changed = (*a).clone();
        changed.virtual_servers[1].enabled = false;
        let b = Arc::new(changed);
        let delta = Delta {
            from: Arc::downgrade(&a),
            to: Arc::downgrade(&b),
            difference: Some(Difference::between(&a, &b)),
        };
        assert_eq!(delta.virtual_servers_between(&a, &b), Some(&[1][..]));
        let c = Arc::new((*b).clone());
        assert_eq!(delta.virtual_servers_between(&a, &c), None);
        assert_eq!(delta.virtual_servers_between(&b, &a), None);
        assert_eq!(Delta::default().virtual_servers_between(&a, &b), None);
    }
}
