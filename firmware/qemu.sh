#!/usr/bin/env bash
# Runs the blade in QEMU's lm3s6965evb with one command, logs decoded on the terminal.
#
#   firmware/qemu.sh                 # private network namespace `aoeblade` with TAP `bladetap0` (root)
#   firmware/qemu.sh --tap IFNAME    # an existing TAP device you set up yourself
#
# The SD card is firmware/sd.img (64 MiB, made on first use; QEMU needs a power-of-two size).
# Talk to the blade from another terminal, e.g. in the namespace:
#   ip netns exec aoeblade target/release/aoe discover -i bladetap0
# Build-time identity defaults: AOE_SHELF / AOE_SLOT (default e0.1). Ctrl-C stops QEMU and
# removes the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

tap=
image=firmware/sd.img
while [[ $# -gt 0 ]]; do
    case $1 in
        --tap) tap=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        *) echo "usage: firmware/qemu.sh [--tap IFNAME] [--image FILE]" >&2; exit 2 ;;
    esac
done

thumb=thumbv7m-none-eabi
firmware=target/$thumb/firmware/blade-lm3s6965evb
DEFMT_LOG=${DEFMT_LOG:-info} cargo build -q -p aoe-firmware --features lm3s6965evb,semihosting \
    --target "$thumb" --profile firmware
[[ -f $image ]] || truncate -s 64M "$image"

namespace=()
if [[ -z $tap ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "without --tap this needs root (it makes a network namespace)" >&2; exit 1; }
    tap=bladetap0
    ip netns add aoeblade
    trap 'ip netns del aoeblade' EXIT
    ip -n aoeblade link set lo up
    ip -n aoeblade tuntap add dev "$tap" mode tap
    ip -n aoeblade link set "$tap" up
    namespace=(ip netns exec aoeblade)
    echo "blade on TAP $tap in namespace aoeblade; try: ip netns exec aoeblade target/release/aoe discover -i $tap"
fi

decode=(cat)
if command -v defmt-print >/dev/null; then
    decode=(defmt-print -e "$firmware")
else
    echo "(cargo install defmt-print --locked to read the firmware's logs)" >&2
fi
"${namespace[@]}" qemu-system-arm -M lm3s6965evb -display none -serial none -monitor none \
    -audiodev none,id=snd0 -semihosting-config enable=on,target=native \
    -drive "if=sd,format=raw,file=$image" \
    -nic "tap,ifname=$tap,script=no,downscript=no,model=stellaris,mac=52:54:00:ae:00:01" \
    -kernel "$firmware" | "${decode[@]}"
