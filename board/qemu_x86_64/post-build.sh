#!/bin/sh
# Buildroot's post-build script for director_qemu_x86_64_defconfig: the shared steps only
# (the QEMU machine boots bzImage + rootfs.cpio.gz; no boot loader).
set -eu
exec "$(dirname "$0")/../common/post-build.sh" "$1" qemu_x86_64
