# Sourced: where this checkout's build puts things, for the tests, the
# demo and the benchmarks. Any variable already set wins.
rewind_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REWIND_QEMU=${REWIND_QEMU:-$rewind_top/build/qemu/qemu-system-x86_64}
export REWIND_QEMU_IMG=${REWIND_QEMU_IMG:-$rewind_top/build/qemu/qemu-img}
export REWIND_VANILLA_QEMU=${REWIND_VANILLA_QEMU:-$rewind_top/build/vanilla/qemu-system-x86_64}
export REWIND_VANILLA_QEMU_IMG=${REWIND_VANILLA_QEMU_IMG:-$rewind_top/build/vanilla/qemu-img}
export REWIND_IMAGES=${REWIND_IMAGES:-$rewind_top/build/images}
export REWIND_TEST_TMP=${REWIND_TEST_TMP:-$rewind_top/build/test-tmp}
mkdir -p "$REWIND_TEST_TMP"
# The rewind command of this build first on the PATH (for people; the tests
# find it through the build directory).
case ":$PATH:" in
    *":$rewind_top/build/tools/rewind/cli:"*) ;;
    *) export PATH="$rewind_top/build/tools/rewind/cli:$PATH" ;;
esac
