//! Block devices: what a data disk holds, judged from its first bytes; the label of a FAT
//! filesystem (the DIRCONFIG provisioning stick); the disks the kernel knows.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// How many bytes at the start of a disk must be zero for it to count as blank.
pub const BLANK_PROBE_BYTES: usize = 64 * 1024;

const EXT_SUPERBLOCK: usize = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const EXT_STATE_VALID: u16 = 0x0001;
const EXT_STATE_ERRORS: u16 = 0x0002;
const EXT_COMPAT_HAS_JOURNAL: u32 = 0x0004;

/// What the start of a disk holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Only zeros: safe to make a filesystem on.
    Blank,
    /// An ext2/3/4 filesystem; `clean` when it was unmounted cleanly and has no recorded errors;
    /// `journal` when it has one (ext3/ext4).
    Ext {
        clean: bool,
        journal: bool,
        label: String,
    },
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
            let compat = u32::from_le_bytes([sb[92], sb[93], sb[94], sb[95]]);
            let label_bytes = &sb[120..136];
            let end = label_bytes.iter().position(|&b| b == 0).unwrap_or(16);
            return Contents::Ext {
                clean: state & EXT_STATE_VALID != 0 && state & EXT_STATE_ERRORS == 0,
                journal: compat & EXT_COMPAT_HAS_JOURNAL != 0,
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

/// Whether `head` starts with a FAT boot sector: `Some(true)` for FAT32, `Some(false)` for
/// FAT12/16.
fn fat_kind(head: &[u8]) -> Option<bool> {
    let sector = head.get(..512)?;
    if sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = u16::from_le_bytes([sector[11], sector[12]]);
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) || sector[13] == 0 {
        return None;
    }
    // FAT32 has no 16-bit sectors-per-FAT count; its extended boot record sits further on.
    let fat32 = u16::from_le_bytes([sector[22], sector[23]]) == 0;
    let (signature, kind) = if fat32 {
        (sector[66], &sector[82..90])
    } else {
        (sector[38], &sector[54..62])
    };
    (matches!(signature, 0x28 | 0x29) && kind.starts_with(b"FAT")).then_some(fat32)
}

/// The volume label of a FAT12/16/32 filesystem from its boot sector, without the padding
/// spaces; `None` when `head` is not a FAT boot sector or has no label.
pub fn fat_label(head: &[u8]) -> Option<String> {
    let fat32 = fat_kind(head)?;
    let label = if fat32 { &head[71..82] } else { &head[43..54] };
    let text = String::from_utf8_lossy(label).trim_end().to_string();
    (!text.is_empty() && text != "NO NAME").then_some(text)
}

/// Where a FAT filesystem's root directory starts and how much of it to read (FAT12/16: the
/// fixed root area; FAT32: the root's first cluster), from its boot sector.
pub fn fat_root_directory(boot: &[u8]) -> Option<(u64, usize)> {
    fat_kind(boot)?;
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([boot[i], boot[i + 1]]));
    let u32_at = |i: usize| {
        u64::from(u32::from_le_bytes([
            boot[i],
            boot[i + 1],
            boot[i + 2],
            boot[i + 3],
        ]))
    };
    let bytes_per_sector = u16_at(11);
    let sectors_per_cluster = u64::from(boot[13]);
    let reserved = u16_at(14);
    let fats = u64::from(boot[16]);
    let root_entries = u16_at(17);
    let fat_size_16 = u16_at(22);
    let (offset, len) = if fat_size_16 != 0 {
        let sector = reserved + fats * fat_size_16;
        (sector * bytes_per_sector, root_entries * 32)
    } else {
        let data = reserved + fats * u32_at(36);
        let cluster = u32_at(44).checked_sub(2)?;
        let sector = data + cluster * sectors_per_cluster;
        (
            sector * bytes_per_sector,
            sectors_per_cluster * bytes_per_sector,
        )
    };
    Some((offset, len.min(64 * 1024) as usize))
}

/// The volume label entry of a FAT directory (attribute 0x08, not a long-name part), which
/// tools that rename a volume after it was made (Windows, fatlabel) write.
pub fn label_in_directory(directory: &[u8]) -> Option<String> {
    for entry in directory.chunks_exact(32) {
        match entry[0] {
            0x00 => return None,
            0xE5 => continue,
            _ => {}
        }
        if entry[11] & 0x3F == 0x08 {
            let text = String::from_utf8_lossy(&entry[..11]).trim_end().to_string();
            return (!text.is_empty()).then_some(text);
        }
    }
    None
}

/// The label of the FAT filesystem on `device`: the root directory's label entry when there is
/// one (as blkid reads it), else the boot sector's.
pub fn probe_fat_label(device: &Path) -> std::io::Result<Option<String>> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(device)?;
    let mut boot = Vec::with_capacity(512);
    (&mut file).take(512).read_to_end(&mut boot)?;
    let from_boot = fat_label(&boot);
    let Some((offset, len)) = fat_root_directory(&boot) else {
        return Ok(from_boot);
    };
    let mut directory = Vec::with_capacity(len);
    file.seek(SeekFrom::Start(offset))?;
    file.take(len as u64).read_to_end(&mut directory)?;
    Ok(label_in_directory(&directory).or(from_boot))
}

/// The block devices under `sys_block` (normally /sys/class/block), disks and partitions, by
/// name: `vda`, `vdb`, `sda1`. RAM disks and loop devices are left out.
pub fn list(sys_block: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(sys_block)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with("ram") && !name.starts_with("loop"))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A boot sector as mkfs.vfat writes it, with `label`.
    fn fat_head(fat32: bool, label: &[u8; 11]) -> Vec<u8> {
        let mut head = vec![0u8; 512];
        head[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        head[11..13].copy_from_slice(&512u16.to_le_bytes());
        head[13] = 4;
        if fat32 {
            head[66] = 0x29;
            head[71..82].copy_from_slice(label);
            head[82..90].copy_from_slice(b"FAT32   ");
        } else {
            head[22..24].copy_from_slice(&32u16.to_le_bytes());
            head[38] = 0x29;
            head[43..54].copy_from_slice(label);
            head[54..62].copy_from_slice(b"FAT16   ");
        }
        head[510] = 0x55;
        head[511] = 0xAA;
        head
    }

    #[test]
    fn fat_labels_are_read() {
        assert_eq!(
            fat_label(&fat_head(false, b"DIRCONFIG  ")),
            Some("DIRCONFIG".into())
        );
        assert_eq!(
            fat_label(&fat_head(true, b"DIRCONFIG  ")),
            Some("DIRCONFIG".into())
        );
        assert_eq!(fat_label(&fat_head(false, b"NO NAME    ")), None);
    }

    #[test]
    fn the_root_directory_is_found_and_its_label_read() {
        let mut fat16 = fat_head(false, b"OLDNAME    ");
        fat16[14..16].copy_from_slice(&4u16.to_le_bytes()); // reserved sectors
        fat16[16] = 2; // FATs
        fat16[17..19].copy_from_slice(&512u16.to_le_bytes()); // root entries
        assert_eq!(
            fat_root_directory(&fat16),
            Some(((4 + 2 * 32) * 512, 512 * 32))
        );

        let mut fat32 = fat_head(true, b"NO NAME    ");
        fat32[14..16].copy_from_slice(&32u16.to_le_bytes());
        fat32[16] = 2;
        fat32[36..40].copy_from_slice(&100u32.to_le_bytes()); // sectors per FAT
        fat32[44..48].copy_from_slice(&2u32.to_le_bytes()); // root cluster
        assert_eq!(
            fat_root_directory(&fat32),
            Some(((32 + 200) * 512, 4 * 512))
        );

        let mut directory = vec![0u8; 128];
        directory[0] = 0xE5; // a deleted entry
        directory[11] = 0x08;
        directory[32..43].copy_from_slice(b"LONGNAME   ");
        directory[43] = 0x0F; // a long-name part
        directory[64..75].copy_from_slice(b"DIRCONFIG  ");
        directory[75] = 0x08;
        assert_eq!(label_in_directory(&directory), Some("DIRCONFIG".into()));
        assert_eq!(label_in_directory(&[0u8; 64]), None);
        assert_eq!(fat_root_directory(&[0u8; 512]), None);
    }

    #[test]
    fn other_disks_have_no_fat_label() {
        let mut head = fat_head(false, b"DIRCONFIG  ");
        head[511] = 0;
        assert_eq!(fat_label(&head), None);
        assert_eq!(fat_label(&[0u8; 100]), None);
        assert_eq!(fat_label(&vec![0u8; 4096]), None);
        assert_eq!(fat_label(&ext_head(1, "DIRCONFIG")), None);
    }

    fn ext_head(state: u16, label: &str) -> Vec<u8> {
        ext_head_with(state, 0, label)
    }

    fn ext_head_with(state: u16, compat: u32, label: &str) -> Vec<u8> {
        let mut head = vec![0u8; BLANK_PROBE_BYTES];
        head[1024 + 92..1024 + 96].copy_from_slice(&compat.to_le_bytes());
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
                journal: false,
                label: "data".into()
            }
        );
        assert_eq!(
            classify(&ext_head(0, "")),
            Contents::Ext {
                clean: false,
                journal: false,
                label: String::new()
            }
        );
        assert_eq!(
            classify(&ext_head_with(3, 0x3c, "x")),
            Contents::Ext {
                clean: false,
                journal: true,
                label: "x".into()
            }
        );
    }
}
