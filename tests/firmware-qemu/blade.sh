#!/usr/bin/env bash
# The QEMU blade as a target for other tests (tests/linux-vm, tests/ipxe): one place that knows
# how the blade firmware is built and how QEMU's lm3s6965evb runs it on a card image with its
# NIC on a unix datagram socket, so that another QEMU (the initiator) meets it back to back
# through its own `-netdev dgram` (no network interface involved, no root needed for this part).
#
# Usage:
#   blade.sh build
#       builds the firmware as tests/firmware-qemu/run.sh does (profile `firmware`, features
#       lm3s6965evb,semihosting, DEFMT_LOG=info unless set; AOE_SHELF/AOE_SLOT ignored, so a
#       blank card answers as e0.1) and prints the ELF's path; a no-op when it is up to date.
#   blade.sh run [--defmt FILE] [--mac MAC] ELF CARD OWN_SOCKET PEER_SOCKET
#       execs qemu-system-arm (QEMU=... overrides) running ELF with CARD as its SD card (a raw
#       image, size a power of two; the blade keeps its last 8 sectors for itself). The NIC
#       (default MAC 52:54:00:12:34:57) sends to PEER_SOCKET and receives on OWN_SOCKET, which
#       QEMU creates; it must not exist yet. The peer's QEMU takes
#       `-netdev dgram,local.type=unix,local.path=PEER_SOCKET,remote.type=unix,remote.path=OWN_SOCKET`.
#       The firmware's defmt log (semihosting) goes to FILE (default: stdout); QEMU's messages
#       to stderr. QEMU is exec'd, so the caller's PID for this command is QEMU's.
#       SIGTERM ends it cleanly; the card image then holds everything the blade wrote.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"
thumb=thumbv7m-none-eabi

usage() { h_usage "$0" >&2; exit 2; }

case ${1:-} in
build)
    (($# == 1)) || usage
    # The same build as run.sh's (so CI builds it once); stdout carries only the path.
    (cd "$repo" && env -u AOE_SHELF -u AOE_SLOT DEFMT_LOG="${DEFMT_LOG:-info}" cargo build -q \
        -p aoe-firmware --features lm3s6965evb,semihosting --target "$thumb" --profile firmware) >&2
    echo "$repo/target/$thumb/firmware/blade-lm3s6965evb"
    ;;
run)
    shift
    defmt="" mac=52:54:00:12:34:57
    while [[ ${1:-} == --* ]]; do
        (($# >= 2)) || usage
        case $1 in
        --defmt) defmt=$2 ;;
        --mac) mac=$2 ;;
        *) usage ;;
        esac
        shift 2
    done
    (($# == 4)) || usage
    elf=$1 card=$2 own=$3 peer=$4
    [[ -f $elf ]] || { echo "blade.sh: no firmware at $elf (blade.sh build)" >&2; exit 1; }
    [[ -f $card ]] || { echo "blade.sh: no card image $card" >&2; exit 1; }
    [[ -z $defmt ]] || exec >"$defmt"
    exec "${QEMU:-qemu-system-arm}" -M lm3s6965evb -display none -serial none -monitor none \
        -no-reboot -audiodev none,id=snd0 -semihosting-config enable=on,target=native \
        -drive "if=sd,format=raw,file=$card" \
        -netdev "dgram,id=n0,local.type=unix,local.path=$own,remote.type=unix,remote.path=$peer" \
        -net "nic,netdev=n0,model=stellaris,macaddr=$mac" \
        -kernel "$elf"
    ;;
*) usage ;;
esac
