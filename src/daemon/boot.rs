//! The configuration's serial console (`node.console`) on the next boot's kernel command line:
//! on a box whose disk has a boot partition (FAT labelled DIRBOOT with GRUB's grub.cfg, as the
//! Buildroot APU2 image has), grub.cfg is rewritten whenever the console setting changes.
//! Without one (the QEMU image: qemu/run reads the provisioned file itself) nothing is done.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::{debug, error, info};
use nix::mount::MsFlags;

use crate::config::boot::rewrite_grub;
use crate::config::model::SerialPort;
use crate::config::Config;
use crate::sys::{block, mount};

/// The boot partition's FAT label (board/apu2/genimage.cfg).
pub const LABEL: &str = "DIRBOOT";
const MOUNT_POINT: &str = "/run/director/boot";
const GRUB_CFG: &str = "grub.cfg";

/// Follows the configurations taken into force; each new console setting goes to grub.cfg.
pub async fn keep_console(mut changes: tokio::sync::watch::Receiver<Arc<Config>>) {
    let mut last: Option<SerialPort> = None;
    loop {
        let port = changes.borrow_and_update().node.console.clone();
        if last.as_ref() != Some(&port) {
            let wanted = port.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || apply(&wanted)).await {
                error!("boot: {e}");
            }
            last = Some(port);
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

fn apply(port: &SerialPort) {
    let Some(device) = find(Path::new("/sys/class/block")) else {
        debug!("boot: no {LABEL} partition: the console is on the command line of whoever boots the box");
        return;
    };
    match rewrite_on(&device, port) {
        Ok(true) => info!(
            "boot: {} on {}: the console is {} at {} from the next boot",
            GRUB_CFG,
            device.display(),
            port.device,
            port.baud
        ),
        Ok(false) => debug!("boot: {GRUB_CFG} already names {}", port.device),
        Err(why) => error!("boot: {} ({}): {why}", GRUB_CFG, device.display()),
    }
}

/// The partition labelled DIRBOOT, if any.
fn find(sys_block: &Path) -> Option<PathBuf> {
    block::list(sys_block)
        .ok()?
        .into_iter()
        .map(|name| PathBuf::from("/dev").join(name))
        .find(|device| matches!(block::probe_fat_label(device), Ok(Some(label)) if label == LABEL))
}

/// Mounts `device`, rewrites grub.cfg when it differs, unmounts: whether it was written.
fn rewrite_on(device: &Path, port: &SerialPort) -> Result<bool, String> {
    let target = Path::new(MOUNT_POINT);
    std::fs::create_dir_all(target).map_err(|e| format!("{MOUNT_POINT}: {e}"))?;
    let flags = MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount::mount(&device.to_string_lossy(), target, "vfat", flags, None)
        .map_err(|e| e.to_string())?;
    let result = rewrite_file(&target.join(GRUB_CFG), port);
    if let Err(e) = mount::unmount(target) {
        error!("boot: {e}");
    }
    result
}

/// The file rewritten in place of a copy that is complete on disk first (a power cut leaves
/// the old file or the new one).
fn rewrite_file(path: &Path, port: &SerialPort) -> Result<bool, String> {
    use std::io::Write;
    let old = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let new = rewrite_grub(&old, port)?;
    if new == old {
        return Ok(false);
    }
    let temporary = path.with_extension("new");
    let mut file =
        std::fs::File::create(&temporary).map_err(|e| format!("{}: {e}", temporary.display()))?;
    file.write_all(new.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_is_written_only_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("director-boot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grub.cfg");
        std::fs::write(
            &path,
            "serial --unit=0 --speed=115200\nlinux /bzImage ro console=ttyS0,115200n8\n",
        )
        .unwrap();
        assert!(!rewrite_file(&path, &SerialPort::default()).unwrap());
        let slow = SerialPort {
            device: "ttyS0".into(),
            baud: 57_600,
        };
        assert!(rewrite_file(&path, &slow).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("console=ttyS0,57600n8"), "{text}");
        assert!(text.contains("--speed=57600"), "{text}");
        assert!(!dir.join("grub.new").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
