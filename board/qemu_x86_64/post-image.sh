#!/bin/sh
# Buildroot's post-image script for director_qemu_x86_64_defconfig: data.img (the /data disk)
# next to bzImage and rootfs.cpio.gz, which QEMU boots directly (board/qemu_x86_64/readme.txt).
set -eu
board_dir=$(dirname "$0")
: "${BINARIES_DIR:?Buildroot sets BINARIES_DIR}"
for input in bzImage rootfs.cpio.gz; do
    [ -f "$BINARIES_DIR/$input" ] || { echo "board/qemu_x86_64/post-image.sh: $BINARIES_DIR/$input is missing" >&2; exit 1; }
done
support/scripts/genimage.sh -c "$board_dir/genimage.cfg"
echo "board/qemu_x86_64: boot with board/qemu_x86_64/readme.txt's command"
