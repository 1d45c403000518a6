//! Block devices: what a data disk holds, judged from its first bytes.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// How many bytes at the start of a disk must be zero for it to count as blank.
pub const BLANK_PROBE_BYTES: usize = 64 * 1024;

const EXT_SUPERBLOCK: usize = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const EXT_STATE_VALID: u16 = 0x0001;
const EXT_STATE_ERRORS: u16 = 0x0002;

/// What the start of a disk holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Only zeros: safe to make a filesystem on.
    Blank,
    /// An ext2/3/4 filesystem; `clean` when it was unmounted cleanly and has no recorded errors.
    Ext { clean: bool, label: String },
    /// Something else: never overwritten.
    Unknown,
}

/// Reads the start of `device` and classifies it.
pub fn probe(device: &Path) -> std::io::Result<Contents> {
    let mut head = Vec::with_capacity(BLANK_PROBE_BYTES);
    File::open(device)?
        .take(BLANK_PROBE_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(classify(&head))
}

/// Classifies the first bytes of a disk.
pub fn classify(head: &[u8]) -> Contents {
    if let Some(sb) = head.get(EXT_SUPERBLOCK..EXT_SUPERBLOCK + 136) {
        let magic = u16::from_le_bytes([sb[56], sb[57]]);
        if magic == EXT_MAGIC {
            let state = u16::from_le_bytes([sb[58], sb[59]]);
            let label_bytes = &sb[120..136];
            let end = label_bytes.iter().position(|&b| b == 0).unwrap_or(16);
            return Contents::Ext {
                clean: state & EXT_STATE_VALID != 0 && state & EXT_STATE_ERRORS == 0,
                label: String::from_utf8_lossy(&label_bytes[..end]).into_owned(),
            };
        }
    }
    if head.len() >= BLANK_PROBE_BYTES && head.iter().all(|&b| b == 0) {
        Contents::Blank
    } else {
        Contents::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext_head(state: u16, label: &str) -> Vec<u8> {
        let mut head = vec![0u8; BLANK_PROBE_BYTES];
        head[1024 + 56..1024 + 58].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        head[1024 + 58..1024 + 60].copy_from_slice(&state.to_le_bytes());
        head[1024 + 120..1024 + 120 + label.len()].copy_from_slice(label.as_bytes());
        head
    }

    #[test]
    fn zeros_are_blank() {
        assert_eq!(classify(&vec![0u8; BLANK_PROBE_BYTES]), Contents::Blank);
    }

    #[test]
    fn a_short_disk_is_not_called_blank() {
        assert_eq!(classify(&[0u8; 512]), Contents::Unknown);
    }

    #[test]
    fn one_stray_byte_is_not_blank() {
        let mut head = vec![0u8; BLANK_PROBE_BYTES];
        head[40_000] = 1;
        assert_eq!(classify(&head), Contents::Unknown);
    }

    #[test]
    fn ext_state_and_label_are_read() {
        assert_eq!(
            classify(&ext_head(1, "data")),
            Contents::Ext {
                clean: true,
                label: "data".into()
            }
        );
        assert_eq!(
            classify(&ext_head(0, "")),
            Contents::Ext {
                clean: false,
                label: String::new()
            }
        );
        assert_eq!(
            classify(&ext_head(3, "x")),
            Contents::Ext {
                clean: false,
                label: "x".into()
            }
        );
    }
}
