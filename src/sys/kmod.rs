//! Loading kernel modules with finit_module(2), behind a trait so that the ordering logic can be
//! tested with a recording fake.

use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

/// What happened when a module was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loaded {
    Now,
    Already,
}

/// A module that could not be loaded.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "load {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for LoadError {}

/// Inserts one module object file into the kernel.
pub trait ModuleLoader {
    fn load(&mut self, path: &Path, params: &str) -> Result<Loaded, LoadError>;
}

/// The real loader: finit_module(2) on the opened file.
pub struct KernelModules;

impl ModuleLoader for KernelModules {
    fn load(&mut self, path: &Path, params: &str) -> Result<Loaded, LoadError> {
        let fail = |reason: String| LoadError {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let params = CString::new(params).map_err(|_| fail("parameters contain NUL".into()))?;
        let start = std::time::Instant::now();
        match finit_module(&file, &params, ModuleInitFlags::empty()) {
            Ok(()) => {
                log::debug!(
                    "loaded {} in {} ms",
                    path.display(),
                    start.elapsed().as_millis()
                );
                Ok(Loaded::Now)
            }
            Err(Errno::EEXIST) => Ok(Loaded::Already),
            Err(errno) => Err(fail(errno.to_string())),
        }
    }
}

/// A recording fake: remembers the order of loads and fails the paths it is told to.
#[cfg(test)]
#[derive(Default)]
pub struct FakeModules {
    pub loaded: Vec<PathBuf>,
    pub failing: Vec<PathBuf>,
}

#[cfg(test)]
impl ModuleLoader for FakeModules {
    fn load(&mut self, path: &Path, _params: &str) -> Result<Loaded, LoadError> {
        if self.failing.iter().any(|p| p == path) {
            return Err(LoadError {
                path: path.to_path_buf(),
                reason: "Exec format error".into(),
            });
        }
        if self.loaded.iter().any(|p| p == path) {
            return Ok(Loaded::Already);
        }
        self.loaded.push(path.to_path_buf());
        Ok(Loaded::Now)
    }
}
