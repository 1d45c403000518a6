//! mount(2), umount(2) and reading the mount table.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// A failed mount operation, with what it was about.
#[derive(Debug)]
pub enum MountError {
    CreateTarget {
        target: PathBuf,
        source: std::io::Error,
    },
    Mount {
        fstype: String,
        target: PathBuf,
        errno: nix::Error,
    },
    Unmount {
        target: PathBuf,
        errno: nix::Error,
    },
    Remount {
        target: PathBuf,
        errno: nix::Error,
    },
    ReadTable {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::CreateTarget { target, source } => {
                write!(
                    f,
                    "cannot create mount point {}: {source}",
                    target.display()
                )
            }
            MountError::Mount {
                fstype,
                target,
                errno,
            } => write!(f, "mount {fstype} on {}: {errno}", target.display()),
            MountError::Unmount { target, errno } => {
                write!(f, "unmount {}: {errno}", target.display())
            }
            MountError::Remount { target, errno } => {
                write!(f, "remount {} read-only: {errno}", target.display())
            }
            MountError::ReadTable { path, source } => {
                write!(f, "read mount table {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for MountError {}

/// One line of /proc/mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
}

/// Mounts `source` of type `fstype` on `target`, creating the target directory first.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), MountError> {
    std::fs::create_dir_all(target).map_err(|source| MountError::CreateTarget {
        target: target.to_path_buf(),
        source,
    })?;
    nix::mount::mount(Some(source), target, Some(fstype), flags, data).map_err(|errno| {
        MountError::Mount {
            fstype: fstype.to_string(),
            target: target.to_path_buf(),
            errno,
        }
    })
}

/// Unmounts `target`.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    nix::mount::umount2(target, MntFlags::empty()).map_err(|errno| MountError::Unmount {
        target: target.to_path_buf(),
        errno,
    })
}

/// Remounts `target` read-only (what is left when it cannot be unmounted).
pub fn remount_read_only(target: &Path) -> Result<(), MountError> {
    nix::mount::mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|errno| MountError::Remount {
        target: target.to_path_buf(),
        errno,
    })
}

/// Reads the mount table (normally /proc/mounts).
pub fn read_table(path: &Path) -> Result<Vec<MountEntry>, MountError> {
    let text = std::fs::read_to_string(path).map_err(|source| MountError::ReadTable {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_table(&text))
}

/// Parses the text of /proc/mounts; octal escapes (`\040` for a space) are decoded.
pub fn parse_table(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = unescape(fields.next()?);
            let target = PathBuf::from(unescape(fields.next()?));
            let fstype = fields.next()?.to_string();
            Some(MountEntry {
                source,
                target,
                fstype,
            })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(value) = bytes.get(i + 1..i + 4).and_then(octal_byte) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits.iter().try_fold(0u8, |value, &d| {
        if (b'0'..=b'7').contains(&d) {
            value.checked_mul(8)?.checked_add(d - b'0')
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_mounts() {
        let text = "rootfs / rootfs rw,size=1 0 0\n\
                    proc /proc proc rw,nosuid 0 0\n\
                    /dev/vda /data ext4 rw,noatime 0 0\n\
                    none /mnt/with\\040space tmpfs rw 0 0\n";
        let table = parse_table(text);
        assert_eq!(table.len(), 4);
        assert_eq!(table[2].source, "/dev/vda");
        assert_eq!(table[2].target, PathBuf::from("/data"));
        assert_eq!(table[2].fstype, "ext4");
        assert_eq!(table[3].target, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn short_lines_and_bad_escapes_do_not_break_parsing() {
        let table = parse_table("garbage\nx /a\\9 tmpfs rw 0 0\nx /b\\ tmpfs\n");
        assert_eq!(table.len(), 2);
        assert_eq!(table[0].target, PathBuf::from("/a\\9"));
        assert_eq!(table[1].target, PathBuf::from("/b\\"));
    }
}
