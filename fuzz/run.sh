#!/usr/bin/env bash
# Builds the gateway's libFuzzer targets with clang (ASan + UBSan) and runs them against their seed corpora; see fuzz/README.md.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$FUZZ_DIR")"
TARGETS=(body headers list_params)

usage() {
    cat >&2 <<'USAGE'
usage: fuzz/run.sh build [BUILD_DIR]
       fuzz/run.sh run TARGET SECONDS [BUILD_DIR]
       fuzz/run.sh all SECONDS [BUILD_DIR]      (build, then every target in turn)
TARGET: body, headers or list_params. BUILD_DIR defaults to <repo>/build-fuzz.
New inputs go to BUILD_DIR/corpus/TARGET (the committed seeds in fuzz/corpus stay as they
are); a crash leaves BUILD_DIR/artifacts/TARGET-crash-* and exits non-zero.
USAGE
    exit 2
}

die() {
    echo "fuzz: $*" >&2
    exit 1
}

build() {
    local dir=$1
    command -v clang >/dev/null ||
        die "clang is not installed; run deploy/install-deps.sh (it installs clang and libclang-rt-14-dev)"
    # The whole tree is configured (cmake needs it) but only the fuzz targets and what they
    # link are compiled. RelWithDebInfo: fuzzers want optimised code with symbols.
    if [[ ! -f "$dir/CMakeCache.txt" ]]; then
        CC=clang cmake -S "$REPO" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_SANITIZE=ON \
            -DKEEL_FUZZ=ON >"$dir.configure.log" 2>&1 ||
            { tail -n 30 "$dir.configure.log" >&2; die "configuring $dir failed (log: $dir.configure.log)"; }
    fi
    cmake --build "$dir" -j "$(nproc)" --target fuzz_all >"$dir.build.log" 2>&1 ||
        { grep -E 'error|Error' "$dir.build.log" | head -n 30 >&2; die "building the fuzz targets failed (log: $dir.build.log)"; }
    echo "fuzz: targets built in $dir/bin"
}

run() {
    local target=$1 seconds=$2 dir=$3
    local exe="$dir/bin/fuzz_$target" seeds="$FUZZ_DIR/corpus/$target" dict="$FUZZ_DIR/$target.dict"
    [[ " ${TARGETS[*]} " == *" $target "* ]] || die "unknown target '$target' (${TARGETS[*]})"
    [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, got '$seconds'"
    [[ -x "$exe" ]] || die "$exe is missing; run: fuzz/run.sh build $dir"
    [[ -d "$seeds" ]] || die "no seed corpus at $seeds"
    local work="$dir/corpus/$target" artifacts="$dir/artifacts"
    mkdir -p "$work" "$artifacts"
    local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=70000
        -print_final_stats=1 -artifact_prefix="$artifacts/$target-")
    [[ -f "$dict" ]] && args+=(-dict="$dict")
    # Leaks fail the run too (LeakSanitizer is on with ASan); the first corpus folder takes
    # the new inputs, the committed seeds are only read.
    echo "fuzz: $target for ${seconds}s (seeds $seeds, new inputs $work)"
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        "$exe" "${args[@]}" "$work" "$seeds" 2>"$dir/$target.log" || {
        tail -n 60 "$dir/$target.log" >&2
        die "$target found a crash, leak or undefined behaviour (artifact in $artifacts, full log $dir/$target.log)"
    }
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs)' \
        "$dir/$target.log" | tr '\n' ' ' || true
    echo
    echo "fuzz: $target ran ${seconds}s without a crash"
}

(($# >= 1)) || usage
case "$1" in
build)
    (($# <= 2)) || usage
    build "${2:-$REPO/build-fuzz}"
    ;;
run)
    (($# == 3 || $# == 4)) || usage
    run "$2" "$3" "${4:-$REPO/build-fuzz}"
    ;;
all)
    (($# == 2 || $# == 3)) || usage
    dir="${3:-$REPO/build-fuzz}"
    build "$dir"
    for t in "${TARGETS[@]}"; do run "$t" "$2" "$dir"; done
    ;;
*) usage ;;
esac
