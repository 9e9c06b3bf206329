#!/bin/bash
# Install the Debian packages QEMU Rewind needs to build and test.
#   scripts/install-deps.sh [build|test|fuzz|all]   (default: all)
# As root it installs what is missing (from bookworm-backports where Debian 12
# is too old); otherwise it lists what is missing and fails.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/base.env"
. "$top/scripts/apt-sources.sh"
what=${1:-all}

# Building QEMU (x86_64-softmmu with libusb, usbredir, PulseAudio, slirp,
# SDL2, pixman, zstd) and the test USB devices (libumockdev, usbredirparser).
build_pkgs="build-essential git pkg-config ninja-build python3 python3-venv
  flex bison libglib2.0-dev libpixman-1-dev libslirp-dev libusb-1.0-0-dev
  libusbredirparser-dev libpulse-dev libumockdev-dev
  libfdt-dev zlib1g-dev libzstd-dev libsdl2-dev ccache xz-utils
  nlohmann-json3-dev libssl-dev"
# Needed at a newer version than Debian 12 has: taken from backports there.
backport_pkgs="meson libcatch2-dev"
# Running QEMU and the tests: firmware, gdb, guest image tools, and what
# building the test kernel module needs (make-guest-images.sh extracts the
# kernel headers itself): the compiler Debian 12's kernel was built with,
# make, binutils (objcopy) and libelf1 (for the headers' objtool).
test_pkgs="seabios ipxe-qemu qemu-system-data gdb cpio xz-utils zstd
  make gcc-12 binutils libelf1 umockdev pulseaudio pulseaudio-utils sox
  tshark debootstrap"
# make fuzz: libFuzzer targets built with Debian's clang (libFuzzer and the
# sanitizer runtimes are in libclang-rt-14-dev).
fuzz_pkgs="clang libclang-rt-14-dev"

case $what in
    build) want="$build_pkgs" ;;
    test) want="$test_pkgs" ;;
    fuzz) want="$build_pkgs $fuzz_pkgs" ;;
    all) want="$build_pkgs $test_pkgs" ;;
    *) echo "usage: install-deps.sh [build|test|fuzz|all]" >&2; exit 2 ;;
esac

missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed ||
            echo "$p"
    done
}

# meson must be >= 1.5 and Catch2 >= 3 whatever is installed.
old_backports() {
    local v
    v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null || true)
    if [ -z "$v" ] || dpkg --compare-versions "$v" lt 1.5; then echo meson; fi
    v=$(dpkg-query -W -f='${Version}' libcatch2-dev 2>/dev/null || true)
    if [ -z "$v" ] || dpkg --compare-versions "$v" lt 3; then echo libcatch2-dev; fi
}

need=$(missing $want)
need_bpo=""
[ "$what" = test ] || need_bpo=$(old_backports)
[ -z "$need$need_bpo" ] && exit 0

echo "install-deps: missing Debian packages:" $need $need_bpo >&2
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root: scripts/install-deps.sh $what" >&2
    echo "install-deps: (on Debian 12, $backport_pkgs come from bookworm-backports)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
rewind_apt_sources
apt-get update -q >&2 || true
if [ -n "$need" ]; then
    apt-get install -y -q --no-install-recommends $need
fi
if [ -n "$need_bpo" ]; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    if [ "$codename" = bookworm ]; then
        apt-get install -y -q --no-install-recommends -t bookworm-backports $need_bpo
    else
        apt-get install -y -q --no-install-recommends $need_bpo
    fi
fi
