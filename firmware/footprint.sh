#!/usr/bin/env bash
# The blade firmware's footprint: flash and RAM by section (text = code + read-only data +
# vector table, data, bss) and the stack high-water mark measured in QEMU after the full
# end-to-end workload (cortex-m-rt paints the free RAM at reset; the test reads a RAM dump and
# finds the deepest overwritten word). RAM in use = data + bss + stack high-water.
#
# Usage: firmware/footprint.sh   (needs qemu-system-arm; QEMU=... picks another)
set -euo pipefail
cd "$(dirname "$0")/.."

thumb=thumbv7m-none-eabi
firmware=target/$thumb/firmware/blade-lm3s6965evb
host=$(rustc -vV | sed -n 's/^host: //p')
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$host/bin
work=$(mktemp -d /tmp/aoe-fw-footprint.XXXXXX)
trap 'rm -rf "$work"' EXIT

DEFMT_LOG=${DEFMT_LOG:-info} cargo build -q -p aoe-firmware --features lm3s6965evb,semihosting \
    --target "$thumb" --profile firmware
cargo build -q -p aoe-firmware-qemu

read -r text data bss < <("$llvm_bin/llvm-size" "$firmware" | awk 'NR == 2 { print $1, $2, $3 }')
target/debug/blade-qemu-test --qemu "${QEMU:-qemu-system-arm}" --firmware "$firmware" \
    --nm "$llvm_bin/llvm-nm" --workdir "$work" --seeds fuzz/seeds --throughput-mib 1 \
    >"$work/test.log" || { cat "$work/test.log"; exit 1; }
stack=$(sed -n 's/^stack_high_water_bytes=//p' "$work/test.log")

printf 'blade-lm3s6965evb (%s, profile firmware, rustc %s)\n' "$thumb" "$(rustc -V | cut -d' ' -f2)"
printf '  flash: text %6d + data %4d            = %6d bytes (of 262144)\n' "$text" "$data" $((text + data))
printf '  RAM:   data %6d + bss %5d + stack %5d = %6d bytes (of 65536; stack = high-water after the QEMU test)\n' \
    "$data" "$bss" "$stack" $((data + bss + stack))
