#!/usr/bin/env bash
# The power-cut test: does every write an AoE target acknowledged survive a power cut of the
# target's host? The target (host-sim) runs INSIDE a QEMU guest (Debian's kernel, TCG, the image
# of build-image.sh) and exports the guest's two virtual disks: e1.0 is the raw disk /dev/vda,
# e1.1 a sparse file on the ext4 filesystem of /dev/vdb (only a file catches block allocations
# whose metadata was not committed). QEMU writes both through to image files on this host
# (cache=writethrough: the guest sees no write cache, and a completed guest write is in the host
# file), so the guest's page cache is the only volatile layer. From the host side of the VM's
# TAP, `aoe write-log` drives each export with random non-overlapping writes of unique content
# and logs every acknowledged write; once both logs show writes flowing, QEMU is killed with
# SIGKILL at a random moment (a power cut: the guest's page cache and host-sim die at once).
# Then the host replays the ext4 journal (e2fsck -fy, as a reboot would), dumps the file with
# debugfs, and `aoe check-log` looks for every acknowledged write in the raw image and the file.
#
# Modes (each: --cuts N boots and cuts):
#   durable     host-sim's default (writes stable before they are acknowledged): must lose 0
#   direct      host-sim -d (O_DIRECT, durable): must lose 0
#   sync        host-sim -s (O_SYNC, vblade's safe mode): must lose 0
#   writeback   host-sim --writeback (vblade's page-cache ACK): must lose some, over its cuts,
#               or the test cannot tell safe from unsafe
#
# Usage: tests/linux-vm/powercut.sh [--modes durable:50,direct:5,writeback:5] [--mtu 9000]
#            [--bs 4k] [--qd 16] [--jobs 2] [--keep]
# --jobs N runs N VMs at once, each on its own TAP (TCG runs one guest CPU per host thread).
# Prints one line per cut and a summary; exits 1 if a safe mode lost an acknowledged write, the
# writeback mode lost none, or a cut could not be made (boot failure, no writes flowing).
# Environment: AOE_VM_CACHE (kernel/initramfs cache, as run.sh), AOE_POWERCUT_SEED (the random
# cut moments and write seeds; default from the clock, printed so a run can be repeated).
# Needs root, QEMU, e2fsprogs, busybox-static (installs them with apt-get when missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
started=$SECONDS
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"

modes="durable:50,direct:5,writeback:5" mtu=9000 bs=4k qd=16 jobs=2 keep=0
while (($#)); do
    case $1 in
    --modes) modes=$2; shift 2 ;;
    --mtu) mtu=$2; shift 2 ;;
    --bs) bs=$2; shift 2 ;;
    --qd) qd=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) h_usage "$0"; exit 0 ;;
    *) echo "powercut.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '[powercut %4ds] %s\n' $((SECONDS - started)) "$*"; }
die() { say "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces, TAP devices); cannot run here"
packages=(qemu-system-x86 busybox-static e2fsprogs cpio kmod iproute2 gzip)
missing=()
for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt_get=(apt-get -o DPkg::Lock::Timeout=300 -qq)
    "${apt_get[@]}" update >/dev/null
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi

seed=${AOE_POWERCUT_SEED:-$(date +%s)}
RANDOM=$seed
cache=${AOE_VM_CACHE:-$repo/target/linux-vm/cache}
run_dir=$repo/target/linux-vm/powercut-$$
mkdir -p "$run_dir"
ns=aoepc$$
h_netns_sweep aoepc
status=0
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    h_cleanup
    if ((status == 0 && keep == 0)); then rm -rf "$run_dir"; fi
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

say "seed $seed (AOE_POWERCUT_SEED=$seed repeats the cut moments and write seeds)"
say "building host-sim and aoe (release)"
(cd "$repo" && cargo build --release --quiet -p aoe-host-sim -p aoe-initiator --bins) ||
    die "host-sim/aoe do not build"
host_sim=$repo/target/release/host-sim aoe=$repo/target/release/aoe
image=$(bash "$here/build-image.sh" "$cache") || die "could not build the VM image"

# host-sim and the libraries it loads, as one more initramfs archive (the cached image stays
# independent of the build).
extra=$run_dir/extra
mkdir -p "$extra/bin"
cp "$host_sim" "$extra/bin/host-sim"
for lib in $(ldd "$host_sim" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
    mkdir -p "$extra$(dirname "$lib")"
    cp -L "$lib" "$extra$lib"
done
(cd "$extra" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$run_dir/host-sim.cpio.gz"

raw_mib=64 fs_mib=160 file_mib=64
base_fs=$run_dir/base-ext4.img
truncate -s "${fs_mib}M" "$base_fs"
/sbin/mke2fs -t ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$base_fs" ||
    die "mke2fs of the base filesystem failed"

[[ $jobs =~ ^[1-8]$ ]] || die "--jobs must be 1 to 8"
h_netns_add "$ns"
for ((slot = 0; slot < jobs; slot++)); do
    h_tap_add "$ns" "pctap$slot" "$mtu" || die "cannot make TAP pctap$slot"
done
mkdir -p "$run_dir/results"

acks() { # acknowledged writes in log $1 so far
    local n=0
    [[ -f $1 ]] && n=$(grep -c '^ACK ' "$1" || true)
    echo "${n:-0}"
}

declare -A mode_cuts=() mode_acked=() mode_lost=() mode_failed=() mode_time=()
declare -A mode_raw_lost=() mode_file_lost=()
mode_order=()

# cut MODE ARGS K SLOT: one boot on TAP pctapSLOT, writes, SIGKILL, check; runs in a subshell
# and leaves its outcome in results/MODE-K: "raw_acked raw_lost file_acked file_lost", or
# "failed".
cut() {
    local mode=$1 args=$2 k=$3 tap=pctap$4 dir=$run_dir/$1-$3 qemu_pid w0 w1 t0=$SECONDS
    local result=$run_dir/results/$1-$3
    # This subshell stops what it starts; the namespace and TAPs stay the parent's.
    h_taps=() h_netns=() h_groups=()
    trap h_cleanup EXIT
    RANDOM=$((seed + k * 7919 + ${#mode}))
    echo failed >"$result"
    mkdir -p "$dir/conf"
    truncate -s "${raw_mib}M" "$dir/raw.img"
    cp --sparse=always "$base_fs" "$dir/ext4.img"
    {
        echo "MODE=target"
        echo "MTU=$mtu"
        echo "TARGET_ARGS='$args'"
        echo "FILE_MIB=$file_mib"
    } >"$dir/conf/test.conf"
    (cd "$dir/conf" && echo test.conf | cpio -o -H newc --quiet) | gzip -1 >"$dir/conf.cpio.gz"
    cat "$image/initrd.gz" "$run_dir/host-sim.cpio.gz" "$dir/conf.cpio.gz" >"$dir/initrd"
    local console=$dir/console.log
    : >"$console"
    h_spawn qemu_pid ip netns exec "$ns" qemu-system-x86_64 -nodefaults -accel tcg -smp 1 -m 512 \
        -display none -no-reboot -serial "file:$console" -kernel "$image/vmlinuz" -initrd "$dir/initrd" \
        -append "console=ttyS0 loglevel=4 panic=-1" \
        -drive "file=$dir/raw.img,format=raw,if=virtio,cache=writethrough" \
        -drive "file=$dir/ext4.img,format=raw,if=virtio,cache=writethrough" \
        -netdev "tap,ifname=$tap,script=no,downscript=no,vhost=off,id=n0" \
        -device "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:a0:e1:0$4,host_mtu=$mtu" \
        >"$dir/qemu.log" 2>&1
    local i ready=0
    for ((i = 0; i < 1800; i++)); do # 180 s
        if grep -q '^AOETEST TARGET_READY' "$console"; then ready=1; break; fi
        grep -q '^AOETEST DONE' "$console" && break
        h_alive "$qemu_pid" || break
        sleep 0.1
    done
    if ((!ready)); then
        h_kill "$qemu_pid"
        say "cut $mode #$k: the guest's target did not come up:"
        grep -E '^STEP|host-sim|Kernel panic' "$console" | tail -n 20 | sed 's/^/    /'
        return 0
    fi
    local boot_s=$((SECONDS - t0)) raw_pid file_pid wseed=$((RANDOM * 32768 + RANDOM))
    h_spawn raw_pid ip netns exec "$ns" "$aoe" write-log -i "$tap" -t 1.0 --bs "$bs" --qd "$qd" \
        --seconds 300 --timeout 5 --seed "$wseed" --log "$dir/raw.log" 2>"$dir/aoe-raw.err"
    h_spawn file_pid ip netns exec "$ns" "$aoe" write-log -i "$tap" -t 1.1 --bs "$bs" --qd "$qd" \
        --seconds 300 --timeout 5 --seed $((wseed + 1)) --log "$dir/file.log" 2>"$dir/aoe-file.err"
    # Writes flowing on both exports (at least 20 acknowledged each), then a random moment
    # 0.2 to 2.0 s later: the power cut.
    for ((i = 0; i < 600; i++)); do
        (($(acks "$dir/raw.log") >= 20 && $(acks "$dir/file.log") >= 20)) && break
        { h_alive "$raw_pid" && h_alive "$file_pid"; } || break
        sleep 0.1
    done
    w0=$(($(acks "$dir/raw.log") + $(acks "$dir/file.log")))
    sleep "$(printf '%d.%d' $((RANDOM % 2)) $((2 + RANDOM % 8)))"
    h_kill "$qemu_pid"
    w1=$(($(acks "$dir/raw.log") + $(acks "$dir/file.log")))
    h_kill "$raw_pid"
    h_kill "$file_pid"
    if ((w0 < 40)); then
        say "cut $mode #$k: writes did not flow ($w0 acknowledged before the cut):"
        tail -n 3 "$dir"/aoe-*.err | sed 's/^/    /'
        grep -E 'host-sim|e1\.[01]' "$console" | tail -n 10 | sed 's/^/    /'
        return 0
    fi
    # What a reboot would do: replay the journal (and fix what fsck finds), then read the file.
    /sbin/e2fsck -fy "$dir/ext4.img" >"$dir/e2fsck.log" 2>&1 || true
    debugfs -R "dump -p /export.img $dir/file.img" "$dir/ext4.img" >"$dir/debugfs.log" 2>&1
    [[ -f $dir/file.img ]] || : >"$dir/file.img"
    local raw_out file_out raw_acked raw_lost file_acked file_lost
    raw_out=$("$aoe" check-log "$dir/raw.img" --log "$dir/raw.log" 2>&1 || true)
    file_out=$("$aoe" check-log "$dir/file.img" --log "$dir/file.log" 2>&1 || true)
    read -r raw_acked raw_lost < <(sed -n 's/.*acked \([0-9]*\), present [0-9]*, lost \([0-9]*\).*/\1 \2/p' <<<"$raw_out")
    read -r file_acked file_lost < <(sed -n 's/.*acked \([0-9]*\), present [0-9]*, lost \([0-9]*\).*/\1 \2/p' <<<"$file_out")
    if [[ -z ${raw_acked:-} || -z ${file_acked:-} ]]; then
        say "cut $mode #$k: check-log failed: $raw_out / $file_out"
        return 0
    fi
    say "cut $mode #$k: boot ${boot_s}s, cut after $w1 ACKs; raw acked $raw_acked lost $raw_lost; file acked $file_acked lost $file_lost ($((SECONDS - t0)) s)"
    echo "$raw_acked $raw_lost $file_acked $file_lost" >"$result"
    # Keep the evidence of a loss (except the writeback mode's expected ones).
    if ((keep)) || { ((raw_lost + file_lost > 0)) && [[ $mode != writeback ]]; }; then
        rm -f "$dir/initrd"
    else
        rm -rf "$dir"
    fi
}

# tally MODE K: adds cut K's outcome to the mode's totals.
tally() {
    local mode=$1 raw_acked raw_lost file_acked file_lost
    read -r raw_acked raw_lost file_acked file_lost <"$run_dir/results/$1-$2" || true
    if [[ $raw_acked == failed || -z ${file_lost:-} ]]; then
        mode_failed[$mode]=$((${mode_failed[$mode]:-0} + 1))
        return 0
    fi
    mode_cuts[$mode]=$((${mode_cuts[$mode]:-0} + 1))
    mode_acked[$mode]=$((${mode_acked[$mode]:-0} + raw_acked + file_acked))
    mode_lost[$mode]=$((${mode_lost[$mode]:-0} + raw_lost + file_lost))
    mode_raw_lost[$mode]=$((${mode_raw_lost[$mode]:-0} + raw_lost))
    mode_file_lost[$mode]=$((${mode_file_lost[$mode]:-0} + file_lost))
}

IFS=, read -r -a mode_list <<<"$modes"
for entry in "${mode_list[@]}"; do
    mode=${entry%%:*} count=${entry#*:}
    case $mode in
    durable) args="" ;;
    direct) args="-d" ;;
    sync) args="-s" ;;
    writeback) args="--writeback" ;;
    *) die "unknown mode $mode (durable, direct, sync, writeback)" ;;
    esac
    [[ $count =~ ^[0-9]+$ ]] || die "bad cut count in $entry"
    mode_order+=("$mode")
    t_mode=$SECONDS
    say "==== mode $mode: host-sim ${args:-(default)} in the guest, $count cuts"
    for ((k = 1; k <= count; k += jobs)); do
        pids=()
        for ((slot = 0; slot < jobs && k + slot <= count; slot++)); do
            cut "$mode" "$args" $((k + slot)) "$slot" &
            pids+=("$!")
        done
        for pid in "${pids[@]}"; do wait "$pid" || true; done
        for ((slot = 0; slot < jobs && k + slot <= count; slot++)); do tally "$mode" $((k + slot)); done
    done
    mode_time[$mode]=$((SECONDS - t_mode))
done

say "==== summary (seed $seed, MTU $mtu, $bs writes, queue depth $qd per export, TCG)"
printf '  %-10s %5s %10s %6s %9s %10s %7s %6s\n' mode cuts acked lost "raw lost" "file lost" failed time
for mode in "${mode_order[@]}"; do
    printf '  %-10s %5s %10s %6s %9s %10s %7s %5ss\n' "$mode" "${mode_cuts[$mode]:-0}" "${mode_acked[$mode]:-0}" \
        "${mode_lost[$mode]:-0}" "${mode_raw_lost[$mode]:-0}" "${mode_file_lost[$mode]:-0}" "${mode_failed[$mode]:-0}" \
        "${mode_time[$mode]:-0}"
    echo "RESULT powercut mode=$mode cuts=${mode_cuts[$mode]:-0} acked=${mode_acked[$mode]:-0} lost=${mode_lost[$mode]:-0} raw_lost=${mode_raw_lost[$mode]:-0} file_lost=${mode_file_lost[$mode]:-0} failed=${mode_failed[$mode]:-0} seconds=${mode_time[$mode]:-0}"
    if ((${mode_failed[$mode]:-0} > 0)); then
        say "FAIL $mode: ${mode_failed[$mode]} cuts could not be made"
        status=1
    fi
    case $mode in
    writeback)
        if ((${mode_lost[$mode]:-0} == 0)); then
            say "FAIL writeback: no acknowledged write lost in ${mode_cuts[$mode]:-0} cuts: the test does not bite"
            status=1
        fi
        ;;
    *)
        if ((${mode_lost[$mode]:-0} > 0)); then
            say "FAIL $mode: ${mode_lost[$mode]} acknowledged writes lost (kept in $run_dir)"
            status=1
        fi
        ;;
    esac
done
say "total $((SECONDS - started)) s: $( ((status == 0)) && echo PASS || echo FAIL)"
exit "$status"
