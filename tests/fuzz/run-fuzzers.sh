#!/bin/bash
# make fuzz: build the libFuzzer targets of tests/fuzz with clang in
# build/fuzz (ASan + UBSan) and run each for its share of FUZZ_SECONDS.
#   tests/fuzz/run-fuzzers.sh [SECONDS] [TARGET...]   (default 600, all)
# Each target starts from its seed corpus tests/fuzz/corpus/<target>/ and
# keeps what it finds in build/fuzz/corpus/<target>/. A crash, leak,
# timeout or sanitizer report fails the run; the input that caused it is
# copied to tests/fuzz/crashes/<target>-<name> for a bug report.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build/fuzz
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(replay_log bundle checkpoint_file)

if [ ! -f "$build/build.ninja" ]; then
    CXX=clang++ meson setup "$build" "$top" -Dfuzzers=true \
        -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
        -Dcpp_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined'
fi
ninja -C "$build" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}")

share=$(( seconds / ${#targets[@]} ))
[ "$share" -ge 1 ] || share=1
failed=()
for t in "${targets[@]}"; do
    corpus=$build/corpus/$t
    artifacts=$build/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    echo "fuzz: $t for ${share}s (seeds: tests/fuzz/corpus/$t)"
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$share" -timeout=20 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$artifacts/" \
            "$corpus" "$top/tests/fuzz/corpus/$t" > "$build/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 40 "$build/$t.log" >&2
        mkdir -p "$top/tests/fuzz/crashes"
        for a in "$artifacts"/*; do
            [ -e "$a" ] && cp "$a" "$top/tests/fuzz/crashes/$t-$(basename "$a")"
        done
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/$t.log" | sed "s/^/fuzz: $t: /" || true
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in tests/fuzz/crashes/, logs in build/fuzz/<target>.log)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${share}s each, no crash"
