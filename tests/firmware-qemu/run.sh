#!/usr/bin/env bash
# The blade firmware's end-to-end tests in QEMU's lm3s6965evb, as CI runs them:
#
#  1. builds the firmware (profile `firmware`), the test driver and the `aoe` CLI;
#  2. prints the footprint (text/data/bss);
#  3. runs `blade-qemu-test` (rootless, QEMU's unix datagram netdev) on a 16 MiB SDSC image
#     (every phase: boot, discovery, identify, disk, throughput, fuzz corpus, mask, power cut
#     and reboot, stack high-water) and on a 4 GiB sparse SDHC image;
#  4. runs `aoe-cli.sh` (the `aoe` CLI over a TAP in a private netns); it says SKIPPED without
#     root or /dev/net/tun, and fails instead when AOE_REQUIRE_ROOT_TESTS=1 (set it in CI).
#
# QEMU=/path/to/qemu-system-arm picks the emulator (default: qemu-system-arm on PATH, Debian
# 12's 7.2 in CI). FUZZ_FRAMES (default 3000) and THROUGHPUT_MIB (default 2) size the run.
# Logs stay in $WORKDIR (default: a fresh temporary directory, printed on failure).
set -euo pipefail
cd "$(dirname "$0")/../.."

qemu=${QEMU:-qemu-system-arm}
thumb=thumbv7m-none-eabi
firmware=target/$thumb/firmware/blade-lm3s6965evb
workdir=${WORKDIR:-$(mktemp -d /tmp/aoe-fw-qemu.XXXXXX)}
host=$(rustc -vV | sed -n 's/^host: //p')
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$host/bin

command -v "$qemu" >/dev/null || { echo "FAIL: $qemu not found (apt-get install qemu-system-arm)" >&2; exit 1; }
[[ -x $llvm_bin/llvm-nm ]] || { echo "FAIL: llvm-nm missing (rustup component add llvm-tools)" >&2; exit 1; }
"$qemu" --version | head -1

echo "+ building the firmware, the QEMU test driver and the aoe CLI"
DEFMT_LOG=${DEFMT_LOG:-info} cargo build -q -p aoe-firmware --features lm3s6965evb,semihosting \
    --target "$thumb" --profile firmware
cargo build -q -p aoe-firmware-qemu
cargo build -q --release -p aoe-initiator --bin aoe

echo "+ footprint"
"$llvm_bin/llvm-size" "$firmware"

on_failure() {
    echo "logs: $workdir" >&2
    if command -v defmt-print >/dev/null; then
        for log in "$workdir"/*.defmt; do
            [[ -s $log ]] || continue
            echo "--- $log" >&2
            defmt-print -e "$firmware" <"$log" >&2 || true
        done
    else
        echo "(cargo install defmt-print --locked to decode the firmware logs *.defmt)" >&2
    fi
}
trap 'on_failure' ERR

driver=(target/debug/blade-qemu-test --qemu "$qemu" --firmware "$firmware"
    --nm "$llvm_bin/llvm-nm")
echo "+ blade-qemu-test, SDSC image"
"${driver[@]}" --workdir "$workdir/sdsc" --seeds fuzz/seeds \
    --fuzz-frames "${FUZZ_FRAMES:-3000}" --throughput-mib "${THROUGHPUT_MIB:-2}"
echo "+ blade-qemu-test, SDHC image"
"${driver[@]}" --workdir "$workdir/sdhc" --sdhc

echo "+ aoe-cli.sh"
QEMU=$qemu tests/firmware-qemu/aoe-cli.sh "$firmware" target/release/aoe target/debug/blade-card
trap - ERR
rm -rf "$workdir"
echo "firmware QEMU tests passed"
