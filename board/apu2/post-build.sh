#!/bin/sh
# Buildroot's post-build script for director_apu2_defconfig: the shared steps, then GRUB's
# first stage kept for genimage and GRUB's tools taken out of the firmware (they were only
# installed to get boot.img; the box never runs them).
set -eu
target=${1:?usage: post-build.sh TARGET_DIR}
"$(dirname "$0")/../common/post-build.sh" "$target" apu2

: "${BINARIES_DIR:?Buildroot sets BINARIES_DIR}"
boot_img=$target/lib/grub/i386-pc/boot.img
[ -f "$boot_img" ] || { echo "board/apu2/post-build.sh: $boot_img is missing (BR2_TARGET_GRUB2_INSTALL_TOOLS)" >&2; exit 1; }
mkdir -p "$BINARIES_DIR"
cp -f "$boot_img" "$BINARIES_DIR/boot.img"
rm -rf "$target/lib/grub" "$target/etc/grub.d" "$target/usr/share/grub" "$target/boot/grub"
rm -f "$target"/usr/bin/grub-* "$target"/usr/sbin/grub-*
