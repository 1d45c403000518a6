#!/bin/sh
# Shared by every board's post-build.sh: makes the target tree the one the CI image has
# (scripts/build-image): the mount points PID 1 uses, the director's names, and no trace of
# another init system. Buildroot runs it as: post-build.sh TARGET_DIR (BR2_CONFIG set).
set -eu

target=${1:?usage: post-build.sh TARGET_DIR}
board=${2:?the name of the board}

fail() {
    printf 'board/%s/post-build.sh: %s\n' "$board" "$*" >&2
    exit 1
}

[ -x "$target/sbin/director" ] || fail "sbin/director is missing (is BR2_PACKAGE_DIRECTOR selected?)"
for name in init poweroff reboot halt; do
    [ "$(readlink "$target/sbin/$name")" = director ] \
        || fail "sbin/$name is not the director (select BR2_INIT_DIRECTOR as the init system)"
done
[ -e "$target/sbin/mke2fs" ] || fail "sbin/mke2fs is missing: /data needs BR2_PACKAGE_E2FSPROGS"

# PID 1 mounts these; the root filesystem may be read-only, so they must exist in it.
for dir in proc sys dev run tmp data root; do
    mkdir -p "$target/$dir"
done
chmod 0700 "$target/root"
chmod 1777 "$target/tmp"

# No inittab or init scripts: the director is the init system.
rm -rf "$target/etc/inittab" "$target/etc/init.d"

# What the box was built as, for whoever supports it.
mkdir -p "$target/etc/director/board"
printf 'board=%s\nbuildroot=%s\n' "$board" "${BR2_VERSION_FULL:-unknown}" >"$target/etc/director/board/release"
