#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target, replays saved crash inputs, then fuzzes each
# target for a short time.
#
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default "none", which builds on the stable toolchain;
#                   "address" and the others need a nightly toolchain and use `cargo +nightly`)
#   FUZZ_TARGETS    space-separated subset of targets (default: all of `cargo fuzz list`)
#
# Seeds come from fuzz/seeds/<target>/ when that folder exists; new corpus entries go to
# fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (both ignored by git). Inputs in
# fuzz/regressions/<target>/ are replayed first: keep crash reproducers there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"

die() {
    echo "fuzz/smoke.sh: error: $*" >&2
    exit 1
}

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    die "FUZZ_SECONDS must be a positive whole number, not '$seconds'"
fi

command -v cargo >/dev/null 2>&1 || die "cargo is not installed (install a Rust toolchain with rustup)"

# Sanitizers need -Zsanitizer, so only a nightly toolchain can build them.
cargo=(cargo)
if [ "$sanitizer" != "none" ]; then
    cargo=(cargo +nightly)
    "${cargo[@]}" --version >/dev/null 2>&1 ||
        die "FUZZ_SANITIZER=$sanitizer needs a nightly toolchain (rustup toolchain install nightly), or use FUZZ_SANITIZER=none on stable"
fi
toolchain="$("${cargo[@]}" --version 2>/dev/null)" || die "the Rust toolchain does not run"

"${cargo[@]}" fuzz --version >/dev/null 2>&1 ||
    die "cargo-fuzz is not installed (cargo install cargo-fuzz --locked --version 0.13.2)"

# libfuzzer-sys compiles libFuzzer itself.
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 &&
    ! command -v clang++ >/dev/null 2>&1; then
    die "no C++ compiler found; libfuzzer-sys needs one to build libFuzzer (apt-get install g++)"
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <("${cargo[@]}" fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || die "no fuzz targets found"

echo "fuzz smoke: ${targets[*]}; ${seconds}s each; sanitizer $sanitizer; $toolchain; $("${cargo[@]}" fuzz --version)"

logs="target/smoke-logs"
mkdir -p "$logs"

start=$SECONDS
echo "== building"
if ! "${cargo[@]}" fuzz build --sanitizer "$sanitizer" >"$logs/build.log" 2>&1; then
    tail -n 40 "$logs/build.log" >&2
    die "cargo fuzz build failed (full log: fuzz/$logs/build.log)"
fi
echo "fuzz smoke: built in $((SECONDS - start))s"

# Runs cargo fuzz on TARGET with the remaining arguments, logging to LOG; prints the summary
# lines and returns cargo fuzz's status.
run_fuzz() {
    local target="$1" log="$2"
    shift 2
    local status=0
    "${cargo[@]}" fuzz run --sanitizer "$sanitizer" "$target" "$@" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
    else
        grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|Executed )' "$log" || true
    fi
    return "$status"
}

failed=()
for target in "${targets[@]}"; do
    regressions="regressions/$target"
    if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
        echo "== $target: replaying $regressions/"
        if ! run_fuzz "$target" "$logs/$target-regressions.log" "$regressions"/* -- -runs=1; then
            echo "== $target: a saved regression input fails" >&2
            failed+=("$target(regressions)")
            continue
        fi
    fi

    corpus="corpus/$target"
    mkdir -p "$corpus"
    dirs=("$corpus")
    if [ -d "seeds/$target" ]; then
        dirs+=("seeds/$target")
    fi
    echo "== $target: fuzzing for ${seconds}s from ${dirs[*]}"
    if ! run_fuzz "$target" "$logs/$target.log" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "== $target: FAILED; the crash input is in fuzz/artifacts/$target/ (log: fuzz/$logs/$target.log)" >&2
        failed+=("$target")
    fi
done

echo "fuzz smoke: finished in $((SECONDS - start))s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz smoke: FAILED: ${failed[*]}" >&2
    echo "reproduce: cd fuzz && cargo fuzz run --sanitizer $sanitizer TARGET artifacts/TARGET/crash-..." >&2
    exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets ran without findings"
