//! Persistent storage at /data: the data disk is checked, made into a filesystem when it is
//! blank, and mounted; without one, /data is a tmpfs and the console says loudly that nothing
//! will persist.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::mount::MsFlags;

use crate::sys::block::{self, Contents};
use crate::sys::mount;
use crate::sys::process::{self, Exit, Spawn};

pub const DATA_DIR: &str = "/data";
const DEVICE_WAIT: Duration = Duration::from_secs(3);
const MKFS: &str = "/sbin/mke2fs";
const FSCK: &str = "/sbin/e2fsck";
const TUNE: &str = "/sbin/tune2fs";
const LABEL: &str = "director-data";
/// Left in /data by the console's `factory-reset`: the next boot empties /data before anything
/// reads it.
pub const FACTORY_RESET_MARK: &str = "/data/factory-reset";

/// How /data ended up.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Persistent { device: PathBuf, formatted: bool },
    Volatile { reason: String },
}

/// Prepares and mounts /data from `device`, falling back to a tmpfs.
pub fn prepare(device: Option<&Path>) -> Outcome {
    let target = Path::new(DATA_DIR);
    let outcome = match device {
        None => Outcome::Volatile {
            reason: "no data disk configured (director.data=none)".into(),
        },
        Some(device) => match mount_disk(device, target) {
            Ok(formatted) => Outcome::Persistent {
                device: device.to_path_buf(),
                formatted,
            },
            Err(reason) => Outcome::Volatile { reason },
        },
    };
    if let Outcome::Volatile { reason } = &outcome {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        if let Err(e) = mount::mount("tmpfs", target, "tmpfs", flags, Some("mode=0755")) {
            error!("{e}");
        }
        warn_volatile(reason);
    }
    outcome
}

fn mount_disk(device: &Path, target: &Path) -> Result<bool, String> {
    wait_for_device(device)?;
    let contents = block::probe(device).map_err(|e| format!("{}: {e}", device.display()))?;
    let formatted = match contents {
        Contents::Blank => {
            info!("{} is blank: making an ext4 filesystem", device.display());
            run_tool(
                MKFS,
                &[
                    "-q",
                    "-t",
                    "ext4",
                    "-L",
                    LABEL,
                    "-m",
                    "0",
                    &device.to_string_lossy(),
                ],
            )?;
            true
        }
        Contents::Ext { clean, journal, .. } => {
            if !clean {
                warn!(
                    "{} was not unmounted cleanly: checking it",
                    device.display()
                );
                check_filesystem(device);
            }
            if !journal {
                // Without a journal a power cut can corrupt directories beyond repair.
                info!("{}: adding a journal", device.display());
                if let Err(e) = run_tool(TUNE, &["-j", &device.to_string_lossy()]) {
                    error!("{}: no journal added: {e}", device.display());
                }
            }
            false
        }
        Contents::Unknown => {
            return Err(format!(
                "{} holds something that is not an ext filesystem; left untouched",
                device.display()
            ))
        }
    };
    let flags = MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    mount::mount(&device.to_string_lossy(), target, "ext4", flags, None)
        .map_err(|e| e.to_string())?;
    info!("mounted {} on {DATA_DIR}", device.display());
    Ok(formatted)
}

fn wait_for_device(device: &Path) -> Result<(), String> {
    let start = Instant::now();
    while !device.exists() {
        if start.elapsed() > DEVICE_WAIT {
            return Err(format!(
                "{} did not appear within {} s",
                device.display(),
                DEVICE_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// e2fsck -p: exit 0 nothing to do, 1 corrected, 2 corrected (reboot advised for a root fs);
/// anything higher leaves errors, which are reported but do not keep /data from mounting.
fn check_filesystem(device: &Path) {
    match run(FSCK, &["-p", &device.to_string_lossy()]) {
        Ok(Exit::Code(code)) if code <= 2 => {
            info!(
                "{}: filesystem check done (e2fsck status {code})",
                device.display()
            )
        }
        Ok(exit) => error!(
            "{}: filesystem check found errors it could not correct: e2fsck {exit}",
            device.display()
        ),
        Err(e) => error!("{}: filesystem check not run: {e}", device.display()),
    }
}

fn run_tool(program: &str, args: &[&str]) -> Result<(), String> {
    match run(program, args)? {
        Exit::Code(0) => Ok(()),
        exit => Err(format!("{program} {exit}")),
    }
}

fn run(program: &str, args: &[&str]) -> Result<Exit, String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env = [("PATH".to_string(), "/sbin:/bin".to_string())];
    let pid = process::spawn(&Spawn {
        program: Path::new(program),
        args: &args,
        env: &env,
        terminal: None,
    })
    .map_err(|e| format!("cannot start {program}: {e}"))?;
    process::wait_for(pid).map_err(|e| format!("waiting for {program}: {e}"))
}

fn warn_volatile(reason: &str) {
    let bar = "*".repeat(72);
    warn!("{bar}");
    warn!("* NO PERSISTENT STORAGE: {reason}");
    warn!("* {DATA_DIR} is a tmpfs: configuration and state are LOST at the next reboot.");
    warn!("{bar}");
}

/// Empties /data when the console's `factory-reset` asked for it (its mark is there): the
/// configuration store, the certificate, everything; the daemon starts as on a new box.
pub fn factory_reset_if_asked() {
    let mark = Path::new(FACTORY_RESET_MARK);
    if !mark.exists() {
        return;
    }
    warn!("factory reset asked for: emptying {DATA_DIR}");
    match empty_dir(Path::new(DATA_DIR), mark) {
        Ok(removed) => warn!("factory reset: {removed} entries removed from {DATA_DIR}"),
        Err(e) => error!("factory reset: {DATA_DIR}: {e}"),
    }
}

/// Removes everything in `dir` (not `dir` itself, a mount point); the mark goes last, so that
/// a reset cut short by a power loss starts again at the next boot.
fn empty_dir(dir: &Path, mark: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // The mark goes last; lost+found is the filesystem's own.
        if path == mark || path.file_name().is_some_and(|n| n == "lost+found") {
            continue;
        }
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        removed += 1;
    }
    if mark.exists() {
        std::fs::remove_file(mark)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factory_reset_empties_the_directory_but_keeps_lost_and_found() {
        let dir = std::env::temp_dir().join(format!("director-reset-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["config/db", "lost+found", "admin"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("config/db/conf"), b"sled").unwrap();
        std::fs::write(dir.join("imported.toml"), b"x").unwrap();
        let mark = dir.join("factory-reset");
        std::fs::write(&mark, b"").unwrap();
        assert_eq!(empty_dir(&dir, &mark).unwrap(), 3);
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["lost+found"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
