#!/bin/bash
# Run QEMU Rewind's tests, one Catch2 test case per process, and end with
# a "N passed, N failed" line. Used by 'make check'.
#
#   tests/run-tests.sh                 every test
#   tests/run-tests.sh 'boot:*'        test cases whose name matches
#   tests/run-tests.sh '[gdb]'         test cases with a tag
#   tests/run-tests.sh --list          list the test cases
#
# Environment: REWIND_QEMU, REWIND_QEMU_IMG, REWIND_IMAGES (defaults: this
# build), REWIND_TIMEOUT_SCALE (slow machines), REWIND_LOAD_REPLAYS,
# REWIND_KEEP_TMP=1 to keep each test's folder for inspection.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/env.sh"

# Unit tests first: they are fast and need no QEMU.
binaries=(
    "$top/build/tools/tests/unit/rewind-unit-tests"
    "$top/build/tools/tests/functional/rewind-functional-tests"
)

list=no
filter=()
for a in "$@"; do
    case $a in
        --list) list=yes ;;
        *) filter+=("$a") ;;
    esac
done

passed=0
failed=0
failed_names=()
for bin in "${binaries[@]}"; do
    if [ ! -x "$bin" ]; then
        echo "run-tests: missing $bin (run 'make' first)" >&2
        failed=$((failed + 1))
        failed_names+=("$(basename "$bin") (not built)")
        continue
    fi
    # Several filters on the command line mean "any of them" (',' in Catch2).
    spec_args=()
    if [ ${#filter[@]} -gt 0 ]; then
        spec_args=("$(IFS=,; echo "${filter[*]}")")
    fi
    mapfile -t names < <("$bin" --list-tests --verbosity quiet "${spec_args[@]}" 2>/dev/null)
    for name in "${names[@]}"; do
        [ -n "$name" ] || continue
        if [ $list = yes ]; then
            echo "$name"
            continue
        fi
        # Catch2 test specs treat ',' '[' ']' '\' and '*' specially.
        spec=$(printf '%s' "$name" | sed 's/[][\\,*]/\\&/g')
        out=$(mktemp)
        start=$(date +%s)
        "$bin" "$spec" >"$out" 2>&1
        rc=$?
        secs=$(( $(date +%s) - start ))
        if [ $rc = 0 ]; then
            passed=$((passed + 1))
            printf 'PASS  %-70s %4ss\n' "$name" "$secs"
        else
            failed=$((failed + 1))
            failed_names+=("$name")
            printf 'FAIL  %-70s %4ss\n' "$name" "$secs"
            sed 's/^/    | /' "$out"
        fi
        rm -f "$out"
    done
done
[ $list = yes ] && exit 0
if [ $((passed + failed)) = 0 ]; then
    echo "run-tests: no test matched ${filter[*]:-}" >&2
    exit 1
fi
for n in "${failed_names[@]}"; do
    echo "failed: $n"
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
