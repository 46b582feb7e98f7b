#!/usr/bin/env bash
# The blade firmware in QEMU, driven by the project's `aoe` initiator CLI over a TAP device in
# a private network namespace (needs root; nothing touches the host's interfaces).
#
# Checks: `blade-card` writes e5.4 into the image's reserved region; discovery (e5.4 at QEMU's
# NIC address, buffer count 2, 2 sectors per frame),
# IDENTIFY capacity = image minus the 8 reserved sectors, pattern write/flush/read-back at the
# start and the end of the disk, sequential write and read benchmarks (MB/s printed), config
# string and MAC mask set, then a power cut (QEMU killed) and a reboot on the same image:
# config string, mask and data are still there.
#
# string and MAC mask are also in the card's record (`blade-card show`).
#
# Usage: tests/firmware-qemu/aoe-cli.sh [FIRMWARE_ELF] [AOE_BINARY] [BLADE_CARD_BINARY]
#   QEMU=/path/to/qemu-system-arm overrides the emulator; BENCH_SECONDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/harness.sh
. tests/lib/harness.sh

firmware=${1:-target/thumbv7m-none-eabi/firmware/blade-lm3s6965evb}
aoe=${2:-target/release/aoe}
blade_card=${3:-target/debug/blade-card}
qemu=${QEMU:-qemu-system-arm}
bench_seconds=${BENCH_SECONDS:-3}

# As the host-sim namespace tests: skip without root or a TUN device, unless
# AOE_REQUIRE_ROOT_TESTS=1 (CI) makes that a failure.
missing=
[[ $(id -u) -eq 0 ]] || missing="root"
[[ -c /dev/net/tun ]] || missing="${missing:+$missing and }/dev/net/tun"
command -v ip >/dev/null || missing="${missing:+$missing and }ip (iproute2)"
if [[ -n $missing ]]; then
    if [[ ${AOE_REQUIRE_ROOT_TESTS:-0} == 1 ]]; then
        echo "FAIL: aoe-cli.sh needs $missing (AOE_REQUIRE_ROOT_TESTS=1)" >&2
        exit 1
    fi
    echo "SKIPPED aoe-cli.sh: needs $missing for a network namespace and a TAP device" >&2
    exit 0
fi
for file in "$firmware" "$aoe" "$blade_card"; do
    [[ -x $file || -f $file ]] || { echo "FAIL: $file not found (build it first)" >&2; exit 1; }
done

ns=aoefw-$$
tap=fwtap$$
work=$(mktemp -d /tmp/aoe-fw-cli.XXXXXX)
qemu_pid=
# Stops the QEMU this script started and deletes only its own namespace (tests/lib/harness.sh).
cleanup() {
    h_cleanup
    if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if command -v defmt-print >/dev/null; then
        for log in "$work"/boot*.defmt; do
            echo "--- $log" >&2
            defmt-print -e "$firmware" <"$log" >&2 || true
        done
    fi
    exit 1
}

in_ns() { ip netns exec "$ns" "$@"; }
cli() { in_ns "$aoe" "$1" "${@:2}" -i "$tap" --timeout 5; }
json_field() { sed -n "s/.*\"$1\": *\([^,}]*\).*/\1/p" | head -1 | tr -d '"'; }

h_netns_add "$ns"
h_tap_add "$ns" "$tap"
initiator_mac=$(in_ns cat "/sys/class/net/$tap/address")

image=$work/sd.img
truncate -s 16M "$image"
"$blade_card" set "$image" --shelf 5 --slot 4 >/dev/null || fail "blade-card set"
sectors=$((16 * 2048 - 8))

boot() {
    # `ip netns exec` execs QEMU, so qemu_pid is QEMU's own PID.
    h_spawn qemu_pid ip netns exec "$ns" "$qemu" -M lm3s6965evb -display none -serial none -monitor none \
        -audiodev none,id=snd0 -semihosting-config enable=on,target=native -no-reboot \
        -drive "if=sd,format=raw,file=$image" \
        -nic "tap,ifname=$tap,script=no,downscript=no,model=stellaris,mac=52:54:00:ae:00:01" \
        -kernel "$firmware" >"$work/boot$1.defmt" 2>"$work/boot$1.stderr"
    started=$(date +%s%N)
    for _ in $(seq 50); do
        if cli discover --wait 0.2 --json >"$work/discover.json" 2>/dev/null && grep -q '"target": *"e5.4"' "$work/discover.json"; then
            echo "ok  boot $1: discovered after $(( ($(date +%s%N) - started) / 1000000 )) ms (includes the CLI's 0.2 s collection window)"
            return
        fi
        h_alive "$qemu_pid" || fail "QEMU exited during boot $1"
    done
    fail "the blade was not discovered after boot $1"
}
power_cut() {
    h_alive "$qemu_pid" || fail "QEMU was no longer running at the power cut"
    h_kill "$qemu_pid"
    qemu_pid=
}

boot 1
grep -q '52:54:00:ae:00:01' "$work/discover.json" || fail "discover: not at QEMU's NIC address: $(cat "$work/discover.json")"
[[ $(json_field buffer_count <"$work/discover.json") == 2 ]] || fail "discover: buffer count: $(cat "$work/discover.json")"
echo "ok  discover: $(tr -d '\n' <"$work/discover.json" | cut -c1-200)"

cli identify -t 5.4 --json >"$work/identify.json" || fail "identify"
grep -q "\"sectors\": *$sectors\b" "$work/identify.json" || fail "identify: expected $sectors sectors: $(cat "$work/identify.json")"
echo "ok  identify: $sectors sectors (16 MiB image minus 8 reserved)"

cli verify -t 5.4 --lba 0 --count 2048 --seed 1 >/dev/null || fail "verify at the start"
cli verify -t 5.4 --lba $((sectors - 512)) --count 512 --seed 2 >/dev/null || fail "verify at the end"
if cli read "$work/past-end.img" -t 5.4 --lba "$sectors" --count 1 >/dev/null 2>&1; then
    fail "a read past the end succeeded"
fi
echo "ok  verify: pattern written, flushed and read back at the start (1 MiB) and the end (256 KiB); reading past the end fails"

for mode in seq-write seq-read; do
    cli bench -t 5.4 --mode "$mode" --seconds "$bench_seconds" --json >"$work/$mode.json" || fail "bench $mode"
    echo "ok  bench $mode: $(json_field mb_per_s <"$work/$mode.json") MB/s, p99 $(json_field p99_us <"$work/$mode.json") us, retransmits $(json_field retransmits <"$work/$mode.json")"
done

cli read "$work/before.img" -t 5.4 --lba 0 --count 4096 >/dev/null || fail "read before the power cut"
config="aoe-cli test $$"
cli config set "$config" -t 5.4 --force >/dev/null || fail "config set"
cli mask add "$initiator_mac" 02:00:00:00:00:77 -t 5.4 >/dev/null || fail "mask add"
power_cut
card=$("$blade_card" show "$image") || fail "blade-card show"
[[ $card == *"address  e5.4"* && $card == *"$config"* && $card == *"$initiator_mac"* ]] ||
    fail "the card's record does not hold the identity, config string and mask: $card"
echo "ok  config string and mask set; QEMU killed; blade-card shows them in the card's record"

boot 2
[[ $(cli config get -t 5.4) == *"$config"* ]] || fail "config string lost across the power cut"
mask=$(cli mask list -t 5.4)
[[ $mask == *"$initiator_mac"* && $mask == *"02:00:00:00:00:77"* ]] || fail "mask lost across the power cut: $mask"
cli read "$work/after.img" -t 5.4 --lba 0 --count 4096 >/dev/null || fail "read after the reboot"
cmp -s "$work/before.img" "$work/after.img" || fail "data changed across the power cut"
cli mask del "$initiator_mac" 02:00:00:00:00:77 -t 5.4 >/dev/null || fail "mask del"
h_alive "$qemu_pid" || fail "QEMU exited"
echo "ok  reboot: config string, mask and 2 MiB of data kept"
echo "all aoe CLI checks passed"
