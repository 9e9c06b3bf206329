#!/bin/bash
# Build the unpatched base (no overlay, only "build:" fixes) into
# build/vanilla, configured like our build, for side-by-side benchmarks.
# Its binary is build/vanilla/qemu-system-x86_64; it finds no firmware by
# itself from its build tree, so callers pass -L for Debian's firmware.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/prepare-tree.sh" vanilla
"$top/scripts/qemu-configure.sh" "$top/build/vanilla-src" "$top/build/vanilla"
ninja -C "$top/build/vanilla" qemu-system-x86_64 qemu-img
