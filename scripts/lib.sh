# Shared by the project's scripts: paths and installing what they need.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
OUT=${DIRECTOR_OUT:-$ROOT/out}
CACHE=${DIRECTOR_CACHE:-$ROOT/.cache}
MUSL_TARGET=x86_64-unknown-linux-musl

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_updated=
apt_update_once() {
    if [ -z "$apt_updated" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
}

# need_commands CMD:PACKAGE ...: installs the Debian package of each missing command.
need_commands() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run as root or install them"
    say "installing ${missing[*]}"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# The Buildroot defconfig of the QEMU machine: the CI image takes its overlays from it, so that
# what CI tests is what the Buildroot images ship.
QEMU_DEFCONFIG=$ROOT/buildroot/configs/director_qemu_x86_64_defconfig

# defconfig_value DEFCONFIG OPTION: the option's value, quotes removed (empty when unset).
defconfig_value() {
    sed -n "s/^$2=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$1" | tail -n 1
}

# defconfig_paths DEFCONFIG OPTION: the paths the option names, one per line, with
# $(BR2_EXTERNAL_DIRECTOR_PATH) resolved to the tree the defconfig is in.
defconfig_paths() {
    local external value word
    external=$(cd "$(dirname "$1")/.." && pwd)
    value=$(defconfig_value "$1" "$2")
    # shellcheck disable=SC2016 # the literal text $(BR2_EXTERNAL_DIRECTOR_PATH)
    value=${value//'$(BR2_EXTERNAL_DIRECTOR_PATH)'/$external}
    for word in $value; do
        realpath -m "$word"
    done
}

# image_stale: true when out/vmlinuz or the initramfs is missing or older than its sources.
image_stale() {
    [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/director-x86_64.cpio.gz" ] || return 0
    [ -n "$(find "$ROOT/src" "$ROOT/overlay" "$ROOT/board" "$QEMU_DEFCONFIG" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" \
        "$ROOT/scripts/build-image" -newer "$OUT/director-x86_64.cpio.gz" -print -quit 2>/dev/null)" ]
}

need_musl_target() {
    rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET" \
        || { say "adding rustup target $MUSL_TARGET"; rustup target add "$MUSL_TARGET" >&2; }
    # ring (rustls's cryptography) has C and assembly parts: they need musl's C compiler.
    need_commands x86_64-linux-musl-gcc:musl-tools
}

# deb_fetch PACKAGE: downloads the package into the cache (once) and prints the .deb path.
deb_fetch() {
    local pkg=$1 dir=$CACHE/debs deb
    mkdir -p "$dir"
    deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
    if [ -z "$deb" ]; then
        say "downloading $pkg"
        if ! (cd "$dir" && apt-get download "$pkg" >&2 2>/dev/null); then
            apt_update_once
            (cd "$dir" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
        fi
        deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
    fi
    [ -n "$deb" ] || die "no .deb for $pkg"
    printf '%s\n' "$deb"
}

# deb_unpack PACKAGE: unpacks the package once and prints the directory.
deb_unpack() {
    local deb dir
    deb=$(deb_fetch "$1")
    dir=$CACHE/unpacked/$(basename "$deb" .deb)
    if [ ! -e "$dir/.done" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        touch "$dir/.done"
    fi
    printf '%s\n' "$dir"
}

# The Debian kernel image package (the flavour with QEMU's i6300esb watchdog driver).
kernel_package() {
    if [ -n "${DIRECTOR_KERNEL_PACKAGE:-}" ]; then
        printf '%s\n' "$DIRECTOR_KERNEL_PACKAGE"
        return
    fi
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt_update_once
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
    printf '%s\n' "$pkg"
}
