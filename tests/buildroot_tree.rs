//! The Buildroot tree's structural check (scripts/check-buildroot): it passes on the tree as
//! committed and fails, naming the problem, on copies broken one way each.

use std::path::{Path, PathBuf};
use std::process::Command;

const PARTS: &[&str] = &[
    "buildroot",
    "board",
    "overlay",
    "scripts/lib.sh",
    "scripts/check-buildroot",
    "scripts/build-image",
    "Cargo.toml",
    "Cargo.lock",
];

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the parts of the repository the check reads, in a directory of its own.
fn copy(name: &str) -> PathBuf {
    let dir = repository()
        .join("target")
        .join("buildroot-tree-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    for part in PARTS {
        let status = Command::new("cp")
            .arg("-a")
            .arg(repository().join(part))
            .arg(dir.join(part))
            .status()
            .unwrap();
        assert!(status.success(), "cp {part}");
    }
    dir
}

/// Runs the check in `root`: whether it passed, and what it said.
fn check(root: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg(root.join("scripts/check-buildroot"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{}: no '{from}'", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Breaks a copy with `breakage` and expects the check to fail saying `expected`.
fn refused(name: &str, breakage: impl FnOnce(&Path), expected: &str) {
    let root = copy(name);
    breakage(&root);
    let (passed, said) = check(&root);
    assert!(!passed, "{name}: the check passed a broken tree:\n{said}");
    assert!(
        said.contains(expected),
        "{name}: expected '{expected}' in:\n{said}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_committed_tree_passes() {
    let root = copy("intact");
    let (passed, said) = check(&root);
    assert!(passed, "{said}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_missing_required_file_is_named() {
    refused(
        "no-external-desc",
        |root| std::fs::remove_file(root.join("buildroot/external.desc")).unwrap(),
        "buildroot/external.desc is missing",
    );
    refused(
        "no-post-image",
        |root| std::fs::remove_file(root.join("board/apu2/post-image.sh")).unwrap(),
        "board/apu2/post-image.sh is missing",
    );
    refused(
        "no-genimage",
        |root| std::fs::remove_file(root.join("board/qemu_x86_64/genimage.cfg")).unwrap(),
        "board/qemu_x86_64/genimage.cfg is missing",
    );
    refused(
        "no-apu2-defconfig",
        |root| {
            std::fs::remove_file(root.join("buildroot/configs/director_apu2_defconfig")).unwrap()
        },
        "director_apu2_defconfig is missing",
    );
    refused(
        "no-package-mk",
        |root| std::fs::remove_file(root.join("buildroot/package/director/director.mk")).unwrap(),
        "director.mk is missing",
    );
}

#[test]
fn a_removed_kernel_option_is_named() {
    refused(
        "no-ip-vs-rr",
        |root| {
            edit(
                &root.join("board/common/linux.fragment"),
                "CONFIG_IP_VS_RR=m\n",
                "",
            )
        },
        "module ip_vs_rr",
    );
    refused(
        "no-sp5100",
        |root| {
            edit(
                &root.join("board/apu2/linux.fragment"),
                "CONFIG_SP5100_TCO=m",
                "# CONFIG_SP5100_TCO is not set",
            )
        },
        "CONFIG_SP5100_TCO",
    );
    refused(
        "no-devtmpfs",
        |root| {
            edit(
                &root.join("board/common/linux.fragment"),
                "CONFIG_DEVTMPFS=y\n",
                "",
            )
        },
        "CONFIG_DEVTMPFS=y",
    );
    // A module added to a list without its kernel option.
    refused(
        "unbuilt-module",
        |root| {
            let list = root.join("board/apu2/overlay/etc/director/board/modules");
            let text = std::fs::read_to_string(&list).unwrap();
            std::fs::write(&list, format!("{text}ip_vs_twos\n")).unwrap();
            edit(
                &root.join("board/common/linux.fragment"),
                "CONFIG_IP_VS_TWOS=m\n",
                "",
            );
        },
        "module ip_vs_twos",
    );
    refused(
        "unknown-module",
        |root| {
            let list = root.join("overlay/etc/director/modules");
            let text = std::fs::read_to_string(&list).unwrap();
            std::fs::write(&list, format!("{text}e1000e\n")).unwrap();
        },
        "module e1000e has no kernel option",
    );
}

#[test]
fn a_removed_defconfig_option_or_path_is_named() {
    refused(
        "glibc",
        |root| {
            edit(
                &root.join("buildroot/configs/director_qemu_x86_64_defconfig"),
                "BR2_TOOLCHAIN_BUILDROOT_MUSL=y",
                "BR2_TOOLCHAIN_BUILDROOT_GLIBC=y",
            )
        },
        "BR2_TOOLCHAIN_BUILDROOT_MUSL=y is missing",
    );
    refused(
        "busybox-init",
        |root| {
            edit(
                &root.join("buildroot/configs/director_apu2_defconfig"),
                "BR2_INIT_DIRECTOR=y",
                "BR2_INIT_BUSYBOX=y",
            )
        },
        "BR2_INIT_DIRECTOR=y is missing",
    );
    refused(
        "missing-overlay",
        |root| std::fs::remove_dir_all(root.join("board/apu2/overlay")).unwrap(),
        "names board/apu2/overlay, which does not exist",
    );
    refused(
        "fragment-path",
        |root| {
            edit(
                &root.join("buildroot/configs/director_apu2_defconfig"),
                "board/apu2/linux.fragment",
                "board/apu2/kernel.fragment",
            )
        },
        "board/apu2/kernel.fragment, which does not exist",
    );
    refused(
        "not-executable",
        |root| {
            let status = Command::new("chmod")
                .arg("-x")
                .arg(root.join("board/qemu_x86_64/post-build.sh"))
                .status()
                .unwrap();
            assert!(status.success());
        },
        "post-build.sh is not executable",
    );
}

#[test]
fn the_package_follows_the_cargo_infrastructure() {
    refused(
        "foreign-variable",
        |root| {
            edit(
                &root.join("buildroot/package/director/director.mk"),
                "DIRECTOR_CARGO_BUILD_OPTS =",
                "CARGO_BUILD_OPTS =",
            )
        },
        "variable CARGO_BUILD_OPTS is not named after the package",
    );
    refused(
        "no-cargo-package",
        |root| {
            edit(
                &root.join("buildroot/package/director/director.mk"),
                "$(eval $(cargo-package))",
                "$(eval $(generic-package))",
            )
        },
        "does not end with $(eval $(cargo-package))",
    );
    refused(
        "no-vendoring",
        |root| {
            edit(
                &root.join("buildroot/package/director/director.mk"),
                "DIRECTOR_POST_RSYNC_HOOKS += DIRECTOR_VENDOR_CRATES",
                "",
            )
        },
        "DIRECTOR_POST_RSYNC_HOOKS",
    );
    refused(
        "no-rustc",
        |root| {
            edit(
                &root.join("buildroot/package/director/Config.in"),
                "\tselect BR2_PACKAGE_HOST_RUSTC\n",
                "",
            )
        },
        "selects BR2_PACKAGE_HOST_RUSTC",
    );
}

#[test]
fn the_ci_image_and_the_defconfig_share_their_overlays() {
    refused(
        "own-overlay",
        |root| {
            edit(
                &root.join("scripts/build-image"),
                "mapfile -t overlays < <(defconfig_paths \"$QEMU_DEFCONFIG\" BR2_ROOTFS_OVERLAY)",
                "overlays=(\"$ROOT/overlay\")",
            )
        },
        "does not take its overlays from the QEMU defconfig",
    );
    refused(
        "other-shared-overlay",
        |root| {
            edit(
                &root.join("buildroot/configs/director_apu2_defconfig"),
                "BR2_ROOTFS_OVERLAY=\"$(BR2_EXTERNAL_DIRECTOR_PATH)/../overlay ",
                "BR2_ROOTFS_OVERLAY=\"",
            )
        },
        "does not start with the shared overlay/",
    );
}
