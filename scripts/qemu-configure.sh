#!/bin/bash
# Configure a QEMU tree for QEMU Rewind's needs, identically for our build
# and the vanilla one (so benchmarks compare like with like).
#   qemu-configure.sh SRC_DIR BUILD_DIR [extra configure options...]
# Skips the work when BUILD_DIR was configured with the same options.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$2
shift 2
opts=(
    --target-list=x86_64-softmmu
    --disable-docs --disable-werror --disable-install-blobs
    --enable-libusb --enable-usb-redir --enable-pa --enable-slirp --enable-sdl --enable-pixman --enable-zstd
    --python=/usr/bin/python3
    # Debian's seabios, ipxe-qemu and qemu-system-data supply the firmware
    # the +ds tarball lacks.
    --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
    "$@"
)
# QEMU's configure names the compilers itself, so meson would not wrap
# them in ccache: do it here when ccache is installed.
if command -v ccache > /dev/null; then
    opts+=(--cc="ccache cc" --cxx="ccache c++")
fi
stamp="$build/.rewind-configure"
want="$src ${opts[*]}"
if [ -f "$build/build.ninja" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
mkdir -p "$build"
echo "qemu-configure: configuring $src in $build" >&2
if ! (cd "$build" && "$src/configure" "${opts[@]}" > configure.log 2>&1); then
    tail -30 "$build/configure.log" >&2
    echo "qemu-configure: error: QEMU's configure failed; see $build/configure.log" >&2
    exit 1
fi
echo "$want" > "$stamp"
