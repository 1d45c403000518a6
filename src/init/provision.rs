//! The provisioning disk: a FAT filesystem labelled DIRCONFIG (a USB stick on hardware, an
//! extra disk in QEMU) is mounted read-only at /run/dirconfig, where the daemon looks for
//! `director.toml` and imports it when it is new.

use std::path::{Path, PathBuf};

use log::{info, warn};
use nix::mount::MsFlags;

use crate::sys::{block, mount};

pub const LABEL: &str = "DIRCONFIG";
pub const MOUNT_POINT: &str = "/run/dirconfig";
const DIRCONFIG_MODULES: &str = "/etc/director/modules-dirconfig";

/// Looks for the DIRCONFIG filesystem on every block device but the data disk and mounts the
/// first one found. Nothing found is the normal case and says nothing.
pub fn mount_if_present(data_device: Option<&Path>) {
    let names = match block::list(Path::new("/sys/class/block")) {
        Ok(names) => names,
        Err(e) => {
            warn!("provisioning: cannot list block devices: {e}");
            return;
        }
    };
    let found = names
        .iter()
        .map(|name| PathBuf::from("/dev").join(name))
        .filter(|device| Some(device.as_path()) != data_device)
        .find(|device| matches!(block::probe_fat_label(device), Ok(Some(label)) if label == LABEL));
    let Some(device) = found else { return };
    // FAT is needed only here: its modules stay out of every ordinary boot.
    super::load_module_lists(&[DIRCONFIG_MODULES]);
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    match mount::mount(
        &device.to_string_lossy(),
        Path::new(MOUNT_POINT),
        "vfat",
        flags,
        Some("utf8"),
    ) {
        Ok(()) => info!(
            "provisioning disk {LABEL} found on {}: mounted read-only on {MOUNT_POINT}",
            device.display()
        ),
        Err(e) => warn!("provisioning disk {LABEL} on {}: {e}", device.display()),
    }
}
