#!/bin/sh
# Buildroot's post-image script for director_apu2_defconfig: GRUB's configuration next to the
# kernel, then genimage puts boot.img, grub.img, the boot, root and data partitions together
# into disk.img (board/apu2/genimage.cfg).
set -eu
board_dir=$(dirname "$0")
: "${BINARIES_DIR:?Buildroot sets BINARIES_DIR}"
cp -f "$board_dir/grub.cfg" "$BINARIES_DIR/grub.cfg"
for input in boot.img grub.img bzImage rootfs.ext4; do
    [ -f "$BINARIES_DIR/$input" ] || { echo "board/apu2/post-image.sh: $BINARIES_DIR/$input is missing" >&2; exit 1; }
done
support/scripts/genimage.sh -c "$board_dir/genimage.cfg"
echo "board/apu2: $BINARIES_DIR/disk.img is ready; board/apu2/readme.txt says how to write it"
