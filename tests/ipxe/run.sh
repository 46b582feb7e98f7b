#!/usr/bin/env bash
# iPXE SAN-boot test: a QEMU PC (TCG) runs Debian's iPXE, which `sanboot`s aoe:eS.L from an AoE
# target; our boot program (bootsector.S) checks the capacity, reads and writes known sectors
# through int 13h and reports through QEMU's isa-debug-exit; the host then checks every byte of
# the backing file. Everything runs in a private network namespace (name holds our PID): a TAP
# for QEMU's NIC with the target on it. Nothing touches the machine's own interfaces.
#
# Usage: tests/ipxe/run.sh [options] [CASE...]
#   CASE            against --target: mtu1500 | mtu9000 | shelfslot | offset | small | wrongsize |
#                   diskless; against the QEMU blade of firmware/: blade | blade-diskless.
#                   Default: all of them.
#   --target CMD    target command line, vblade-compatible (default: host-sim, built from this
#                   workspace if not on PATH); e.g. --target vblade
#   --timeout S     per-boot limit in seconds for the boot program (default 60; a pass takes
#                   1-2 s); diskless boots get 300 s
#   --pcap          capture the AoE frames of each TAP case into the work directory (tcpdump)
#   --keep          keep the work directory (images, console logs) also after a pass
#   --blade-firmware ELF   the blade firmware (default: built with cargo, profile firmware)
#   --blade-target S.L     the shelf.slot that firmware answers on a blank card (default 0.1)
#   --blade-qemu BIN       default qemu-system-arm
# Any other target, already running on a Linux bridge:
#   --external --netns NS --bridge BR --shelf S --slot L --sectors N [--image FILE [--offset O]]
#                   puts iPXE's TAP into bridge BR of namespace NS and boots eS.L, which must
#                   export N sectors prepared with `--make-image`; with --image the exported
#                   sectors of the backing file (from sector O) are checked afterwards, so the
#                   target must have written them through by then (otherwise the boot program's
#                   read-back through the target is the check).
#   --make-image FILE --sectors N   only write a prepared image of N sectors (for an external
#                   target; extend it with `truncate -s` if the medium is larger, e.g. a card
#                   whose last sectors the blade keeps for itself)
# Needs root, qemu-system-x86 (qemu-system-x86_64), ipxe (/usr/lib/ipxe/ipxe.lkrn), binutils,
# python3, iproute2; diskless: syslinux, syslinux-common, mtools, e2fsprogs, busybox-static,
# cpio, kmod (and what tests/linux-vm/build-image.sh needs); blade: qemu-system-arm and the
# thumbv7m-none-eabi Rust target.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"
helper=(python3 "$here/ipxe_test.py")
ipxe_lkrn=${IPXE_LKRN:-/usr/lib/ipxe/ipxe.lkrn}

target_cmd=host-sim
timeout=60
diskless_timeout=300
pcap=0
keep=0
external=0
ext_netns="" ext_bridge="" ext_shelf="" ext_slot="" ext_sectors="" ext_image="" ext_offset=0
make_image=""
blade_firmware="" blade_target=0.1 blade_qemu=qemu-system-arm
cases=()

elapsed_since() { # $1: an $EPOCHREALTIME; prints seconds since then with 2 decimals
    local now=${EPOCHREALTIME/./} then=${1/./}
    local ms=$(((now - then) / 10000))
    printf '%d.%02d' $((ms / 100)) $((ms % 100))
}

die() { echo "ipxe test: $*" >&2; exit 2; }

h_parse_options --target=target_cmd --timeout=timeout --pcap+pcap --keep+keep \
    --external+external --netns=ext_netns --bridge=ext_bridge --shelf=ext_shelf --slot=ext_slot \
    --sectors=ext_sectors --image=ext_image --offset=ext_offset --make-image=make_image \
    --blade-firmware=blade_firmware --blade-target=blade_target --blade-qemu=blade_qemu -- "$@" ||
    die "option $h_bad_option needs a value (see --help)"
for arg in "${h_args[@]}"; do
    case $arg in
        -h|--help) h_usage "$0"; exit 0 ;;
        mtu1500|mtu9000|shelfslot|offset|small|wrongsize|diskless|blade|blade-diskless) cases+=("$arg") ;;
        *) die "unknown argument '$arg' (see --help)" ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/vbrs-ipxe.XXXXXX")
netns=""
target_pid=""
capture_pid=""
last_status=""

# Stops every process this run started (as its own process group; the console helper also kills
# its QEMU on SIGTERM) and removes only the namespace and TAP devices it made
# (tests/lib/harness.sh): an external target's namespace and bridge stay.
cleanup() {
    local status=$?
    set +e
    h_cleanup
    if ((keep)) || ((status != 0)); then
        echo "ipxe test: work directory kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the boot program -------------------------------------------------------------------------
command -v as >/dev/null && command -v ld >/dev/null || die "needs GNU as/ld (apt-get install binutils)"
as --32 -o "$work/bootsector.o" "$here/bootsector.S"
ld -m elf_i386 --oformat=binary -Ttext 0x7c00 -e _start -o "$work/boot.bin" "$work/bootsector.o"

if [[ -n $make_image ]]; then
    [[ -n $ext_sectors ]] || die "--make-image needs --sectors"
    "${helper[@]}" make-image --boot "$work/boot.bin" --image "$make_image" --sectors "$ext_sectors"
    echo "wrote $make_image: boot program and test pattern for $ext_sectors sectors"
    exit 0
fi

# --- preflight ---------------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "needs root (network namespaces, TAP devices); cannot run here"
command -v qemu-system-x86_64 >/dev/null || die "needs qemu-system-x86_64 (apt-get install qemu-system-x86)"
[[ -r $ipxe_lkrn ]] || die "needs $ipxe_lkrn (apt-get install ipxe)"
command -v ip >/dev/null || die "needs ip (apt-get install iproute2)"
if ((pcap)); then
    command -v tcpdump >/dev/null || die "--pcap needs tcpdump"
fi

if ((!external)); then
    ((${#cases[@]})) || cases=(mtu1500 mtu9000 shelfslot offset small wrongsize diskless blade blade-diskless)
    read -r -a target_argv <<<"$target_cmd"
    uses_target=0
    for case_name in "${cases[@]}"; do
        [[ $case_name == blade* ]] || uses_target=1
    done
    if ((!uses_target)); then
        :   # the blade case brings its own target
    elif [[ ${target_argv[0]} == host-sim ]] && ! command -v host-sim >/dev/null; then
        echo "+ cargo build -p aoe-host-sim --bin host-sim"
        (cd "$repo" && cargo build -q -p aoe-host-sim --bin host-sim)
        target_argv[0]=$repo/target/debug/host-sim
    fi
    ((!uses_target)) || command -v "${target_argv[0]}" >/dev/null ||
        die "target command '${target_argv[0]}' not found"
fi

# $netns: the namespace QEMU's TAP lives in: our own, or the external target's.

# One boot: $1 name, $2 shelf, $3 slot, $4 the NIC's link: a TAP name, or a QEMU -netdev
# value (containing "id=n0"), $5 guest MiB, $6 time limit (s), then the lines the console must
# show; the target is up. Passes when QEMU exits with 99.
boot_once() {
    local name=$1 shelf=$2 slot=$3 link=$4 mem=$5 limit=$6
    shift 6
    local netdev=$link tap=""
    if [[ $link != *id=n0* ]]; then
        tap=$link
        netdev="tap,id=n0,ifname=$tap,script=no,downscript=no"
    fi
    local script=$work/$name.ipxe log=$work/$name.console.log status
    cat >"$script" <<EOF
#!ipxe
echo IPXE-SCRIPT-START
ifopen net0 || goto failed
echo IPXE-NET0 \${net0/mac}
sanhook --drive 0x80 aoe:e$shelf.$slot || goto failed
echo IPXE-SANHOOK-OK
sanboot --drive 0x80 || goto failed
:failed
echo IPXE-SCRIPT-FAILED
EOF
    if ((pcap)) && [[ -n $tap ]]; then
        h_spawn capture_pid ip netns exec "$netns" tcpdump --immediate-mode -U -i "$tap" -n \
            -w "$work/$name.pcap" ether proto 0x88a2 2>"$work/$name.tcpdump.log"
        sleep 0.5
    fi
    echo "+ qemu: iPXE sanboot aoe:e$shelf.$slot, console log $log"
    # In the background so that a signal to this script runs its cleanup at once.
    local console_pid
    h_spawn console_pid "${helper[@]}" console --log "$log" --timeout "$limit" -- \
        ip netns exec "$netns" qemu-system-x86_64 -accel tcg -nodefaults -nographic -no-reboot \
        -serial stdio -m "$mem" -kernel "$ipxe_lkrn" -initrd "$script" \
        -netdev "$netdev" \
        -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile= \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
    status=0
    h_wait "$console_pid" || status=$?
    last_status=$status
    h_stop "$capture_pid"
    capture_pid=""
    if ((status != 99)); then
        echo "boot $name: QEMU exit status $status, not 99 (the guest's pass)"
        if ((status & 1)) && ((status >= 67 && status < 99)); then
            echo "     the boot program failed at step $(((status - 1) / 2 - 0x20)) (see bootsector.S)"
        fi
        return 1
    fi
    for marker in "$@"; do
        grep -qF "$marker" "$log" || { echo "FAIL $name: console lacks '$marker'"; return 1; }
    done
}

capacity_line() { # $1 sectors: what the boot program prints for that capacity
    printf 'VBRS-CAPACITY sectors=0x%016x bytes/sector=0x0200' "$1"
}

# Starts the target in our namespace: $1 case name, then its arguments; sets target_pid.
start_target() {
    local name=$1
    shift
    echo "+ target: ${target_argv[*]} $*"
    # ip netns exec execs the target, so target_pid is the target's own PID.
    h_spawn target_pid ip netns exec "$netns" "${target_argv[@]}" "$@" >"$work/$name.target.log" 2>&1
    sleep 0.3
    if ! h_alive "$target_pid"; then
        echo "FAIL $name: the target exited at once:"; cat "$work/$name.target.log"
        return 1
    fi
}

stop_target() {
    h_stop "$target_pid"
    target_pid=""
}

# The case functions run in `|| failed=1` context, where bash ignores `set -e`: every step
# that can fail is checked by hand.
add_tap() { h_tap_add "$netns" "$1" "$2"; } # $1 name, $2 MTU

end_case() { # $1 TAP name: stop the target, remove the TAP
    stop_target
    h_tap_del "$netns" "$1"
}

# One self-contained case: $1 name, $2 shelf, $3 slot, $4 exported sectors, $5 file sectors
# before the export, $6 file sectors after it, $7 MTU; $8 (optional) a different number of
# sectors for the target to export, which the boot program must refuse (step 4, capacity).
run_case() {
    local name=$1 shelf=$2 slot=$3 sectors=$4 offset=$5 trailer=$6 mtu=$7 served=${8:-$4}
    local tap=ipxe$$-$((++case_number)) image=$work/$name.img t0=$EPOCHREALTIME
    echo "==== case $name: e$shelf.$slot, $sectors sectors (file: $offset before, $trailer after), MTU $mtu"
    "${helper[@]}" make-image --boot "$work/boot.bin" --image "$image" --sectors "$sectors" \
        --offset "$offset" --trailer "$trailer" || { echo "FAIL $name: image"; return 1; }
    add_tap "$tap" "$mtu" || { echo "FAIL $name: TAP"; end_case "$tap"; return 1; }
    local extra=()
    if ((offset || trailer || served != sectors)); then
        extra=(-o "$offset" -l "$served")
    fi
    start_target "$name" "${extra[@]}" "$shelf" "$slot" "$tap" "$image" || { end_case "$tap"; return 1; }
    local ok=1
    if ((served == sectors)); then
        boot_once "$name" "$shelf" "$slot" "$tap" 128 "$timeout" "$(capacity_line "$sectors")" \
            VBRS-PASS || { ok=0; echo "FAIL $name: boot"; }
    else
        # The test must be able to fail: the boot program has to stop at the capacity check,
        # step 4 (exit value 0x24, QEMU status 73), having printed what it got, before it writes.
        if boot_once "$name" "$shelf" "$slot" "$tap" 128 "$timeout" "$(capacity_line "$sectors")"; then
            ok=0
        fi
        ((last_status == 73)) || ok=0
        grep -qF "$(capacity_line "$served")" "$work/$name.console.log" || ok=0
        if ((ok)); then
            echo "(expected) the boot program refused a capacity of $served sectors"
        else
            echo "FAIL $name: the boot program did not stop at the capacity check"
        fi
    fi
    end_case "$tap"
    if ((!ok)); then
        echo "---- target log:"; cat "$work/$name.target.log"
        return 1
    fi
    local after=(--after-boot)
    ((served == sectors)) || after=()
    "${helper[@]}" check-image --boot "$work/boot.bin" --image "$image" --sectors "$sectors" \
        --offset "$offset" --trailer "$trailer" "${after[@]}" ||
        { echo "FAIL $name: backing file"; return 1; }
    rm -f "$image"
    echo "PASS $name: $(elapsed_since "$t0") s (image, target, boot, file check)"
}

# The real diskless boot: iPXE -> syslinux MBR -> ldlinux.sys -> Debian's kernel + initramfs
# (all read through iPXE's int 13h over AoE) -> the kernel's own aoe driver -> root filesystem
# on /dev/etherd/eS.Lp1 -> its /sbin/init writes /proof.txt. The host then checks the ext4 in
# the backing file (e2fsck) and finds the proof with the boot's token in it.
# With $1 = blade, the QEMU blade serves the disk (on a 128 MiB card) instead of --target.
run_diskless() {
    local via=${1:-target} name=diskless shelf=7 slot=3 tap=ipxe$$-$((++case_number))
    local image=$work/diskless.img token=vbrs-$$-$RANDOM root_start=2048 root_sectors=32768
    local t0=$EPOCHREALTIME link
    if [[ $via == blade ]]; then
        name=blade-diskless shelf=${blade_target%.*} slot=${blade_target#*.}
    fi
    echo "==== case $name: e$shelf.$slot, root on /dev/etherd/e$shelf.${slot}p1"
    bash "$here/diskless/build-disk.sh" "$image" "e$shelf.${slot}p1" "$token" ||
        { echo "FAIL $name: could not build the disk"; return 1; }
    echo "disk built in $(elapsed_since "$t0") s"
    if [[ $via == blade ]]; then
        # SD cards in QEMU are a power of two; the disk's partitions end well before the
        # blade's reserved last 8 sectors.
        truncate -s 128M "$image" || return 1
        start_blade "$name" "$image" || return 1
        link=$blade_link
    else
        add_tap "$tap" 1500 || { echo "FAIL $name: TAP"; end_case "$tap"; return 1; }
        start_target "$name" "$shelf" "$slot" "$tap" "$image" || { end_case "$tap"; return 1; }
        link=$tap
    fi
    local ok=1 t1=$EPOCHREALTIME
    boot_once "$name" "$shelf" "$slot" "$link" 512 "$diskless_timeout" VBRS-SYSLINUX \
        "DISKLESS-AOE-ROOT /dev/etherd/e$shelf.${slot}p1" \
        "DISKLESS-ROOT-DEVICE /dev/etherd/e$shelf.${slot}p1" DISKLESS-PASS ||
        { ok=0; echo "FAIL $name: boot"; }
    echo "boot took $(elapsed_since "$t1") s"
    end_case "$tap"
    if ((!ok)); then
        echo "---- target log:"; cat "$work/$name.target.log"
        return 1
    fi
    dd if="$image" of="$work/root.ext4" bs=512 skip="$root_start" count="$root_sectors" status=none ||
        { echo "FAIL $name: cannot extract the root partition"; return 1; }
    e2fsck -fn "$work/root.ext4" >"$work/e2fsck.log" 2>&1 ||
        { echo "FAIL $name: e2fsck found errors:"; cat "$work/e2fsck.log"; return 1; }
    local proof
    proof=$(debugfs -R "cat /proof.txt" "$work/root.ext4" 2>/dev/null)
    echo "proof.txt in the backing file: $(tr '\n' ' ' <<<"$proof")"
    grep -qx "token=$token" <<<"$proof" && grep -qx "root=/dev/etherd/e$shelf.${slot}p1" <<<"$proof" ||
        { echo "FAIL $name: /proof.txt lacks this boot's token or root device"; return 1; }
    rm -f "$image" "$work/root.ext4"
    echo "PASS $name: $(elapsed_since "$t0") s (disk build, boot, fsck and proof check)"
}

# The QEMU blade (firmware/, board lm3s6965evb) as a target: an ARM QEMU runs the blade
# firmware on a card image, and the two QEMUs' NICs are joined back to back through a pair of
# unix datagram sockets (QEMU's dgram netdev), so no interface is involved. A blank card makes
# the blade use its build-time identity (AOE_SHELF/AOE_SLOT, default e0.1) and keep its last 8
# sectors for its own state.
blade_elf=""
blade_link=""
# Starts the blade on card $2 for case $1; sets target_pid and blade_link (iPXE's -netdev).
start_blade() {
    local name=$1 card=$2 t0=$EPOCHREALTIME
    command -v "$blade_qemu" >/dev/null ||
        { echo "FAIL $name: needs $blade_qemu (apt-get install qemu-system-arm)"; return 1; }
    blade_elf=${blade_elf:-$blade_firmware}
    if [[ -z $blade_elf ]]; then
        # The blade as firmware/ ships it (profile `firmware`); a no-op if CI built it already.
        echo "+ tests/firmware-qemu/blade.sh build"
        blade_elf=$(h_blade_build) || { echo "FAIL $name: cannot build the blade firmware"; return 1; }
        echo "firmware ready after $(elapsed_since "$t0") s"
    fi
    local blade_sock=$work/$name-blade.sock ipxe_sock=$work/$name-ipxe.sock
    echo "+ target: tests/firmware-qemu/blade.sh run $blade_elf (card $card, $blade_qemu)"
    # Not in a namespace: the two QEMUs meet through unix sockets. blade.sh execs QEMU, so
    # target_pid is QEMU's PID.
    if ! QEMU=$blade_qemu h_blade_start target_pid "" "$work/$name.defmt" "$blade_elf" "$card" \
        "$blade_sock" "$ipxe_sock" 50 2>"$work/$name.target.log"; then
        echo "FAIL $name: the blade did not start:"; cat "$work/$name.target.log"
        stop_target
        return 1
    fi
    blade_link="dgram,id=n0,local.type=unix,local.path=$ipxe_sock,remote.type=unix,remote.path=$blade_sock"
}

# The boot program against the blade; only the exported sectors of the card are checked.
run_blade() {
    local name=blade card_sectors=32768 reserved=8
    local sectors=$((card_sectors - reserved)) card=$work/blade-card.img
    local shelf=${blade_target%.*} slot=${blade_target#*.}
    echo "==== case blade: QEMU lm3s6965evb blade, e$shelf.$slot, card of $card_sectors sectors"
    "${helper[@]}" make-image --boot "$work/boot.bin" --image "$card" --sectors "$sectors" &&
        truncate -s $((card_sectors * 512)) "$card" || { echo "FAIL $name: image"; return 1; }
    start_blade "$name" "$card" || return 1
    local ok=1 t0=$EPOCHREALTIME
    boot_once "$name" "$shelf" "$slot" "$blade_link" 128 "$timeout" "$(capacity_line "$sectors")" \
        VBRS-PASS || { ok=0; echo "FAIL $name: boot"; }
    stop_target   # QEMU writes the card back on SIGTERM
    if ((!ok)); then
        echo "---- blade QEMU stderr:"; cat "$work/$name.target.log"
        return 1
    fi
    "${helper[@]}" check-image --boot "$work/boot.bin" --image "$card" --sectors "$sectors" \
        --after-boot --export-only || { echo "FAIL $name: card image"; return 1; }
    rm -f "$card"
    echo "PASS $name: $(elapsed_since "$t0") s (boot, card check; the blade was started before)"
}

run_external() {
    [[ -n $ext_netns && -n $ext_bridge && -n $ext_shelf && -n $ext_slot && -n $ext_sectors ]] ||
        die "--external needs --netns, --bridge, --shelf, --slot and --sectors"
    local tap=ipxe$$ t0=$EPOCHREALTIME
    echo "==== external target e$ext_shelf.$ext_slot, $ext_sectors sectors, bridge $ext_bridge in netns $ext_netns"
    netns=$ext_netns
    # Removed by cleanup; the namespace and the bridge are the external target's and stay.
    h_tap_add "$netns" "$tap" "" "$ext_bridge" || die "cannot add a TAP to bridge $ext_bridge in $netns"
    boot_once external "$ext_shelf" "$ext_slot" "$tap" 128 "$timeout" \
        "$(capacity_line "$ext_sectors")" VBRS-PASS || return 1
    if [[ -n $ext_image ]]; then
        "${helper[@]}" check-image --boot "$work/boot.bin" --image "$ext_image" \
            --sectors "$ext_sectors" --offset "$ext_offset" --after-boot --export-only || return 1
    fi
    echo "PASS external: $(elapsed_since "$t0") s"
}

if ((external)); then
    run_external
    exit
fi

netns=vbrs-ipxe-$$
h_netns_add "$netns"

failed=0
case_number=0
for case_name in "${cases[@]}"; do
    case $case_name in
        # The default export at the usual MTU: 64 MiB, shelf.slot 0.0.
        mtu1500) run_case mtu1500 0 0 131072 0 0 1500 || failed=1 ;;
        # A jumbo link: the target may offer more sectors per frame; iPXE still sends 2.
        mtu9000) run_case mtu9000 3 9 32768 0 0 9000 || failed=1 ;;
        # Both address bytes in use (a swapped or truncated shelf fails), odd capacity.
        shelfslot) run_case shelfslot 4660 171 24577 0 0 1500 || failed=1 ;;
        # Part of a file (-o/-l), highest unicast shelf.slot; the rest of the file must not change.
        offset) run_case offset 65534 254 20001 7 9 1500 || failed=1 ;;
        # A disk smaller than one 255x63 cylinder, the size of a small blade's card.
        small) run_case small 2 5 2040 0 0 1500 || failed=1 ;;
        # The target serves one sector less than the image's plan: the boot must fail, unwritten.
        wrongsize) run_case wrongsize 1 1 16384 0 1 1500 16383 || failed=1 ;;
        diskless) run_diskless || failed=1 ;;
        blade) run_blade || failed=1 ;;
        # The whole diskless boot served by the blade.
        blade-diskless) run_diskless blade || failed=1 ;;
    esac
done
if ((failed)); then
    echo "ipxe test: FAILED"
    exit 1
fi
echo "ipxe test: all cases passed (${cases[*]})"
