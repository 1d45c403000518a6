//! Kernel settings under /proc/sys, behind a trait so the network code is tested with a fake.
//! Keys are paths below the root with `/` between parts (`net/ipv4/conf/eth0.100/arp_ignore`),
//! so that interface names with dots need no escaping.

#[cfg(test)]
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for SysctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sysctl {}: {}", self.key.replace('/', "."), self.message)
    }
}

impl std::error::Error for SysctlError {}

pub trait Sysctl {
    /// The value, trimmed; `Ok(None)` when the key does not exist (a module not loaded, an
    /// interface that is missing).
    fn read(&self, key: &str) -> Result<Option<String>, SysctlError>;
    fn write(&mut self, key: &str, value: &str) -> Result<(), SysctlError>;
}

/// The real settings, under `root` (normally /proc/sys).
pub struct ProcSys {
    root: PathBuf,
}

impl ProcSys {
    pub fn new(root: &Path) -> ProcSys {
        ProcSys {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, SysctlError> {
        // A key is a relative path of plain names: nothing may climb out of the root.
        if key.is_empty()
            || key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(SysctlError {
                key: key.to_string(),
                message: "not a sysctl key".into(),
            });
        }
        Ok(self.root.join(key))
    }
}

impl Sysctl for ProcSys {
    fn read(&self, key: &str) -> Result<Option<String>, SysctlError> {
        match std::fs::read_to_string(self.path(key)?) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SysctlError {
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), SysctlError> {
        std::fs::write(self.path(key)?, format!("{value}\n")).map_err(|e| SysctlError {
            key: key.to_string(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "no such setting (module not loaded or interface missing)".into()
            } else {
                e.to_string()
            },
        })
    }
}

/// Settings in memory; writing a key that does not exist fails as it would in /proc/sys.
#[cfg(test)]
#[derive(Default, Debug)]
pub struct FakeSysctl {
    pub values: BTreeMap<String, String>,
    /// Every write, in order: "net/ipv4/ip_forward=1".
    pub writes: Vec<String>,
}

#[cfg(test)]
impl FakeSysctl {
    pub fn with(keys: &[(&str, &str)]) -> FakeSysctl {
        FakeSysctl {
            values: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            writes: Vec::new(),
        }
    }
}

#[cfg(test)]
impl Sysctl for FakeSysctl {
    fn read(&self, key: &str) -> Result<Option<String>, SysctlError> {
        Ok(self.values.get(key).cloned())
    }

    fn write(&mut self, key: &str, value: &str) -> Result<(), SysctlError> {
        match self.values.get_mut(key) {
            Some(slot) => {
                *slot = value.to_string();
                self.writes.push(format!("{key}={value}"));
                Ok(())
            }
            None => Err(SysctlError {
                key: key.to_string(),
                message: "no such setting (module not loaded or interface missing)".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_sys_reads_and_writes_below_its_root() {
        let dir = crate::scratch::Scratch::new("sysctl");
        std::fs::create_dir_all(dir.path().join("net/ipv4/conf/eth0.100")).unwrap();
        std::fs::write(dir.path().join("net/ipv4/conf/eth0.100/arp_ignore"), "0\n").unwrap();
        let mut sysctl = ProcSys::new(dir.path());
        let key = "net/ipv4/conf/eth0.100/arp_ignore";
        assert_eq!(sysctl.read(key).unwrap().as_deref(), Some("0"));
        sysctl.write(key, "1").unwrap();
        assert_eq!(sysctl.read(key).unwrap().as_deref(), Some("1"));
        assert_eq!(sysctl.read("net/ipv4/vs/conntrack").unwrap(), None);
        let err = sysctl.write("net/ipv4/vs/conntrack", "1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sysctl net.ipv4.vs.conntrack: no such setting (module not loaded or interface missing)"
        );
        assert!(sysctl.read("../etc/passwd").is_err());
        assert!(sysctl.write("net//x", "1").is_err());
    }
}
