#!/usr/bin/env bash
# Proves an AoE target with the real Linux initiator: boots Debian's kernel in QEMU (TCG, one CPU)
# with its `aoe` module, on a TAP device in a network namespace of this run's own, with the
# target under test serving file-backed exports on that TAP. The guest (guest-init.sh) formats,
# mounts, fills, checks and re-reads a filesystem; this script then checks the backing file on
# the host (e2fsck, and every file read back with debugfs against the guest's sha256).
#
# Cases (each one VM boot):
#   mtu1500  MTU 1500 (1024-byte frames): raw O_DIRECT I/O + ext4 test on shelf.slot 3.7, and a
#            read-only export 3.8 (reads match, writes fail, file unchanged).
#   mtu9000  MTU 9000 (8704-byte frames): the ext4 test on 0.1, and the target is stopped and
#            started again while the guest writes its large file.
#   bench    per MTU of --bench-mtu and target of --bench-targets: guest `dd` O_DIRECT sequential
#            write/read MB/s and the target's CPU seconds, printed as a table (not asserted).
#   blade    the QEMU blade (firmware/ on QEMU's lm3s6965evb, tests/firmware-qemu/blade.sh) on a
#            blank card of --blade-card-mib: the VM's NIC meets it through a pair of unix
#            datagram sockets (no TAP). Size = card - 8 sectors; guest dd MB/s of
#            --blade-bench-mib (reported), raw I/O, ext4 with a few MiB of files (the blade does
#            ~2 MB/s); then the exported part of the card is checked on the host and its
#            reserved last 8 sectors must still be blank. Not in the default --cases.
#   aoetool  the project's `aoe` tool (built with the dist profile, shipped into the guest with
#            the libraries it loads) against this kernel's driver, MTU 1500, 8 MiB export 2.5:
#            `aoe kernel stat` matches sysfs, `aoe discover` (on eth0, and on every AoE-capable
#            interface by default) and `aoe ping --smart` reach the target, `aoe kernel
#            revalidate` (and its refusal of a missing device), `aoe kernel flush eS.L` and
#            `--all` drop the device and `aoe kernel discover` brings it back, `aoe kernel
#            interfaces` shows aoe_iflist. Not in the default --cases.
#
# Usage: tests/linux-vm/run.sh [options]
#   --target T          vblade | host-sim | "COMMAND ARGS" (a vblade-compatible command line: the
#                       script appends [-r] SHELF SLOT IFACE FILE). Default: host-sim (built with
#                       cargo --release) when this checkout has it, else vblade.
#   --cases LIST        comma-separated cases (default mtu1500,mtu9000)
#   --bench-targets L   comma-separated targets for the bench case (default vblade,host-sim)
#   --bench-mtu LIST    MTUs of the bench case (default 1500,9000)
#   --bench-mib N       bytes per bench pass, MiB (default 64); --bench-passes N (default 3)
#   --blade-firmware ELF  the blade case's firmware (default: built by blade.sh build)
#   --blade-card-mib N  the blade's card, MiB, a power of two (default 64)
#   --blade-bench-mib N bytes per bench pass against the blade, MiB (default 4; 2 passes)
#   --attach NS/BRIDGE  start no target: put the VM's TAP on BRIDGE in the existing namespace NS
#                       (an external target, e.g. a QEMU blade, is on that bridge); or
#   --netdev SPEC       start no target: give the VM's NIC this QEMU -netdev instead of a TAP
#                       (without id=), e.g. "dgram,local.type=unix,local.path=A,remote.type=unix,
#                       remote.path=B" to meet another QEMU's dgram socket; QEMU runs in an empty
#                       namespace of this run; with either:
#   --expect LIST       the exports to test there, comma-separated "shelf.slot:sectors:kind" (kind
#                       fs: raw I/O + ext4, >= 256 MiB | raw: raw O_DIRECT I/O, any size | bench |
#                       fsbench: bench, then fs; ro needs RO_SHA and is for the built-in cases),
#   --mtu N             and the MTU (default 1500);
#   --payload N         data frame bytes aoe must pick (default: whole sectors in MTU-36; lower it
#                       for a target that advertises fewer sectors per frame);
#   --disk FILE         the external target's backing file: checked on the host after the VM exits
#                       (fsck + debugfs read-back; the target must have written it through by then).
#   --disk-from CMD     run CMD (bash) after the VM exits, before that check, to make the --disk
#                       file (e.g. `rbd export` of an RBD image)
#   --guest "VAR=VALUE ..."  add variables to the guest's /test.conf (e.g. "ROUNDS=3 ROUND_MIB=16")
#   --ctl               give the guest a ttyS1 pipe (RUN_DIR/attach/ctl.in; the run directory is
#                       target/linux-vm/run-PID of this script) for an external driver's "go"
#   --keep              keep the run directory (disk images, logs) even when everything passed
# Environment: AOE_VM_CACHE (kernel/initramfs cache; default target/linux-vm/cache of this
# checkout), AOE_VM_STALL (seconds without console output and VM frames before giving up, 90),
# AOE_VM_TIMEOUT (seconds per boot, 900), AOE_VM_RESTART_SIGNAL (TERM, or KILL for a crash in the
# mtu9000 case), AOE_VM_KICK (0: the guest never kicks aoe's frame-pool stall, so it fails the
# run; see README), AOE_VM_KERNEL_PKG (see build-image.sh).
# Needs root. Installs with apt-get what it lacks: qemu-system-x86 busybox-static e2fsprogs cpio
# kmod iproute2, vblade when a case runs Debian's vblade, qemu-system-arm for the blade case
# (AOE_VM_NO_INSTALL=1: fail instead).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
started=$SECONDS
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"

target_spec="" cases="mtu1500,mtu9000" bench_targets="vblade,host-sim" bench_mtu=1500,9000
bench_mib=64 bench_passes=3 attach="" netdev_spec="" expect="" ext_mtu=1500 ext_payload="" ext_disk="" keep=0
ext_disk_from="" guest_vars="" ext_ctl=0
blade_firmware="" blade_card_mib=64 blade_bench_mib=4
h_parse_options --target=target_spec --cases=cases --bench-targets=bench_targets \
    --bench-mtu=bench_mtu --bench-mib=bench_mib --bench-passes=bench_passes \
    --blade-firmware=blade_firmware --blade-card-mib=blade_card_mib \
    --blade-bench-mib=blade_bench_mib --attach=attach --netdev=netdev_spec --expect=expect \
    --mtu=ext_mtu --payload=ext_payload --disk=ext_disk --disk-from=ext_disk_from \
    --guest=guest_vars --ctl+ext_ctl --keep+keep -- "$@" ||
    { echo "run.sh: option $h_bad_option needs a value (see --help)" >&2; exit 2; }
for arg in "${h_args[@]}"; do
    case $arg in
    -h | --help) h_usage "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '[linux-vm %4ds] %s\n' $((SECONDS - started)) "$*"; }
die() { say "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (network namespaces, TAP devices, apt-get); cannot run here"

# The default target: host-sim when this checkout has it.
if [[ -z $target_spec ]]; then
    if grep -qs 'name = "host-sim"' "$repo"/host-sim/Cargo.toml ||
        [[ -f $repo/host-sim/src/bin/host-sim.rs || -f $repo/host-sim/src/main.rs ]]; then
        target_spec=host-sim
    else
        target_spec=vblade
    fi
fi

# Installs the Debian packages this test needs and the machine lacks (AOE_VM_NO_INSTALL=1: don't).
packages=(qemu-system-x86 busybox-static e2fsprogs cpio kmod iproute2 gzip)
[[ ,$bench_targets, == *,vblade,* && $cases == *bench* || $target_spec == vblade ]] && packages+=(vblade)
[[ ,$cases, == *,blade,* ]] && packages+=(qemu-system-arm)
missing=()
for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ -z ${AOE_VM_NO_INSTALL:-} ]] || die "missing packages: ${missing[*]}"
    say "installing ${missing[*]}"
    apt_get=(apt-get -o DPkg::Lock::Timeout=300 -qq)
    "${apt_get[@]}" update >/dev/null
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi
missing_tools=$(h_missing_tools ip qemu-system-x86_64 e2fsck debugfs sha256sum cpio gzip busybox)
[[ -z $missing_tools ]] || die "missing ${missing_tools//$'\n'/ } after installing ${packages[*]}"

stall_s=${AOE_VM_STALL:-90}
timeout_s=${AOE_VM_TIMEOUT:-900}
cache=${AOE_VM_CACHE:-$repo/target/linux-vm/cache}
run_dir=$repo/target/linux-vm/run-$$
mkdir -p "$run_dir"
ns=aoevm$$
h_netns_sweep aoevm
rw_pid="" ro_pid=""
status=0

# Every process runs as its own process group (h_spawn) and is stopped by that id; only the
# namespace and TAP devices this run made are removed (tests/lib/harness.sh).
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    h_cleanup
    if ((status == 0 && keep == 0)); then rm -rf "$run_dir"; fi
}
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

# spawn VAR LOG COMMAND...: h_spawn with the command's output in LOG.
spawn() {
    local var=$1 log=$2
    shift 2
    h_spawn "$var" "$@" >"$log" 2>&1
}

# target_alive PID LOG: a target that exits at once (bad arguments, no such interface) fails the
# case with its own message instead of a 60 s discovery timeout in the guest.
target_alive() {
    h_alive "$1" && return 0
    fail_reason="the target exited at start: $(tail -n 3 "$2" | tr '\n' ' ')"
    : >"$case_dir/console.log"
    return 1
}

# ---- the target command ---------------------------------------------------------------------
# resolve_target SPEC: sets the array target_cmd to the command line SPEC stands for.
host_sim_bin=""
resolve_target() {
    case $1 in
    vblade)
        command -v vblade >/dev/null || die "vblade not installed: apt-get install -y vblade"
        target_cmd=(vblade)
        ;;
    host-sim)
        if [[ -z $host_sim_bin ]]; then
            say "building host-sim (release)"
            (cd "$repo" && cargo build --release --quiet -p aoe-host-sim --bin host-sim) ||
                die "host-sim does not build"
            host_sim_bin=$repo/target/release/host-sim
        fi
        target_cmd=("$host_sim_bin")
        ;;
    *) read -r -a target_cmd <<<"$1" ;;
    esac
}

# ---- the image ---------------------------------------------------------------------------------
say "kernel + initramfs (cache $cache)"
image=$(bash "$here/build-image.sh" "$cache") || die "could not build the VM image"

if grep -q -E '(vmx|svm)' /proc/cpuinfo && [[ -w /dev/kvm ]]; then
    accel=kvm # a real hardware-virtualising KVM; this project's machines use TCG (see notes)
else
    accel=tcg
fi
[[ -n ${AOE_VM_ACCEL:-} ]] && accel=$AOE_VM_ACCEL

# ---- network -----------------------------------------------------------------------------------
# The TAP carries the VM's virtio-net; targets bind to it inside the namespace. Nothing else is
# on this link, and it is not connected to any host interface.
setup_netns() { # setup_netns MTU
    h_netns_add "$ns"
    h_tap_add "$ns" aoetap0 "$1"
}
teardown_netns() { h_netns_del "$ns"; }
tap_rx() { # frames the VM has sent (TAP rx, seen from the host side)
    ip netns exec "$tap_ns" cat "/sys/class/net/$tap/statistics/rx_packets" 2>/dev/null || echo 0
}

# ---- one VM boot -------------------------------------------------------------------------------
# boot CASE MTU PAYLOAD DEVICES EXTRA_CONF: boots the guest with /test.conf, watches the console
# until the guest powers off, handles RESTART_POINT, and leaves the console in $case_dir.
# Sets boot_ok=1 when qemu exited 0 and the guest printed DONE PASS with no FAIL step.
restart_pid_var="" restart_gap=3 restart_frames=-1
boot() {
    local name=$1 mtu=$2 payload=$3 devices=$4 extra=$5
    local conf_dir=$case_dir/conf
    mkdir -p "$conf_dir"
    # Files a case ships into the guest ($boot_files: a directory whose tree lands in /).
    [[ -n ${boot_files:-} ]] && cp -a "$boot_files"/. "$conf_dir"/
    {
        echo "MTU=$mtu"
        echo "PAYLOAD=$payload"
        echo "DEVICES='$devices'"
        echo "AOE_KICK=${AOE_VM_KICK:-1}"
        printf '%s\n' "$extra"
    } >"$conf_dir/test.conf"
    (cd "$conf_dir" && find . -mindepth 1 | sed 's|^\./||' | cpio -o -H newc --quiet) |
        gzip -1 >"$case_dir/conf.cpio.gz"
    cat "$image/initrd.gz" "$case_dir/conf.cpio.gz" >"$case_dir/initrd"
    local mtu_opt="" console=$case_dir/console.log ctl=()
    ((mtu > 1500)) && mtu_opt=",host_mtu=$mtu"
    if [[ -n $restart_pid_var || $ext_ctl == 1 ]]; then # the host's "go" reaches ttyS1
        mkfifo "$case_dir/ctl.in" "$case_dir/ctl.out"
        ctl=(-serial "pipe:$case_dir/ctl")
    fi
    : >"$console"
    local qemu_cmd=(qemu-system-x86_64 -nodefaults -accel "$accel" -smp 1 -m 768 -display none
        -no-reboot -serial "file:$console" "${ctl[@]}" -kernel "$image/vmlinuz" -initrd "$case_dir/initrd"
        -append "console=ttyS0 loglevel=4 panic=-1 oops=panic"
        -netdev "${netdev_spec:-tap,ifname=$tap,script=no,downscript=no,vhost=off},id=n0"
        -device "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:a0:e0:01$mtu_opt")
    local t0=$SECONDS qemu_pid
    spawn qemu_pid "$case_dir/qemu.log" ip netns exec "$tap_ns" "${qemu_cmd[@]}"
    local seen=0 quiet_since=$SECONDS frames_at_quiet line lines n restarted=0
    frames_at_quiet=$(tap_rx)
    boot_ok=0
    while h_alive "$qemu_pid"; do
        sleep 0.2
        n=$(wc -l <"$console")
        if ((n > seen)); then
            lines=$(sed -n "$((seen + 1)),${n}p" "$console")
            seen=$n
            quiet_since=$SECONDS
            frames_at_quiet=$(tap_rx)
            while IFS= read -r line; do
                line=${line%$'\r'}
                case $line in
                STEP* | AOETEST* | BENCH*) say "  guest: $line" ;;
                esac
                if [[ $line == "AOETEST RESTART_POINT" && -n $restart_pid_var && $restarted == 0 ]]; then
                    restarted=1
                    restart_target
                fi
            done <<<"$lines"
        fi
        if ((SECONDS - quiet_since > stall_s)); then
            local now_frames
            now_frames=$(tap_rx)
            if ((now_frames - frames_at_quiet < 100)); then
                say "STALL: no console output and $((now_frames - frames_at_quiet)) VM frames in ${stall_s}s"
                h_stop "$qemu_pid"
                break
            fi
            quiet_since=$SECONDS
            frames_at_quiet=$now_frames
        fi
        if ((SECONDS - t0 > timeout_s)); then
            say "TIMEOUT: the VM ran longer than ${timeout_s}s"
            h_stop "$qemu_pid"
            break
        fi
    done
    local rc=0 kicks
    h_wait "$qemu_pid" 2>/dev/null || rc=$?
    kicks=$(grep -c '^AOETEST KICK' "$console" || true)
    if ((kicks > 0)); then
        case_kicks[$name]=$kicks
        say "WARN: the Linux initiator stalled $kicks time(s) with requests in flight and no frame outstanding"
        say "      (aoe's frame-pool stall, an initiator bug: see tests/linux-vm/README.md); a 4 KiB read resumed it"
    fi
    vm_s=$((SECONDS - t0))
    if ((rc == 0)) && grep -q '^AOETEST DONE PASS' "$console" && ! grep -q '^STEP .* FAIL' "$console" &&
        ! grep -qE 'Kernel panic|BUG:|Oops|WARNING:|hung_task|blocked for more than' "$console"; then
        boot_ok=1
    else
        fail_reason="qemu exit $rc; $(grep -m1 -E '^STEP .* FAIL|^AOETEST DONE FAIL|Kernel panic|BUG:|Oops' "$console" || echo 'no DONE line from the guest')"
    fi
}

# The guest is ready to write its large file: say "go", wait until its frames flow, stop the
# target named by $restart_pid_var in the middle of that write, wait $restart_gap seconds and start
# it again with the same command line; count the frames the VM sent while it was down.
restart_target() {
    local pid=${!restart_pid_var} before flowing i
    before=$(tap_rx)
    local fd
    exec {fd}<>"$case_dir/ctl.in" # read-write: opening a FIFO so never blocks
    echo go >&"$fd"
    exec {fd}>&-
    for ((i = 0; i < 500; i++)); do
        flowing=$(($(tap_rx) - before))
        ((flowing >= 20)) && break
        sleep 0.02
    done
    say "host: guest write under way ($flowing frames); stopping the target (pid $pid, SIG${AOE_VM_RESTART_SIGNAL:-TERM})"
    before=$(tap_rx)
    if [[ ${AOE_VM_RESTART_SIGNAL:-TERM} == KILL ]]; then
        h_kill "$pid" # a crash: no chance to finish anything
    else
        h_stop "$pid"
    fi
    sleep "$restart_gap"
    restart_frames=$(($(tap_rx) - before))
    spawn "$restart_pid_var" "$case_dir/target-restarted.log" "${restart_cmd[@]}"
    say "host: target started again (pid ${!restart_pid_var}); VM sent $restart_frames frames while it was down"
}

# ---- host-side checks ----------------------------------------------------------------------------
# The backing file of an fs export holds exactly the files the guest wrote and is fsck-clean.
host_check_fs() {
    local disk=$1 console=$case_dir/console.log sha path got n=0 bad=0
    if ! e2fsck -f -n "$disk" >"$case_dir/host-e2fsck.log" 2>&1; then
        say "host: e2fsck -fn of the backing file reports problems:"
        sed 's/^/    /' "$case_dir/host-e2fsck.log"
        return 1
    fi
    while read -r _ sha path; do
        got=$(debugfs -R "cat /$path" "$disk" 2>/dev/null | sha256sum | cut -d' ' -f1)
        n=$((n + 1))
        if [[ $got != "$sha" ]]; then
            say "host: /$path in the backing file has sha256 $got, guest wrote $sha"
            bad=$((bad + 1))
        fi
    done < <(grep '^MANIFEST ' "$console" | tr -d '\r')
    if ((n == 0)); then say "host: the guest printed no MANIFEST"; return 1; fi
    ((bad == 0)) || return 1
    say "host: backing file fsck-clean, $n files read back with debugfs match the guest's sha256"
}

report_failure() {
    local console=$case_dir/console.log
    say "FAIL case $case_name: $fail_reason"
    say "---- guest console ($console) ----"
    tr -d '\r' <"$console" | tail -n 200
    say "---- end of guest console; target logs: ----"
    tail -n 20 "$case_dir"/target*.log 2>/dev/null || true
    say "---- run directory kept: $run_dir"
}

declare -A case_time=() case_result=() case_load=() case_kicks=()
case_order=() bench_rows=()

case_begin() {
    case_name=$1
    case_dir=$run_dir/$case_name
    mkdir -p "$case_dir"
    case_t0=$SECONDS
    case_order+=("$1")
    fail_reason=""
    say "==== case $case_name"
}
case_end() { # case_end OK(0|1)
    case_time[$case_name]=$((SECONDS - case_t0))
    # The 5-minute load average of the machine: how much others competed with this case.
    case_load[$case_name]=$(cut -d' ' -f2 /proc/loadavg)
    if (($1)); then
        case_result[$case_name]=PASS
        say "PASS case $case_name (${case_time[$case_name]} s)"
    else
        case_result[$case_name]=FAIL
        report_failure
        status=1
    fi
}

payload_for() { # data frame size aoe picks: whole sectors that fit in MTU - 36 header bytes
    local s=$((($1 - 36) / 512))
    echo $((s * 512))
}

# ---- the cases -----------------------------------------------------------------------------------
tap_ns=$ns tap=aoetap0

case_fs() { # case_fs NAME MTU SHELF SLOT WITH_RO WITH_RESTART
    local name=$1 mtu=$2 shelf=$3 slot=$4 with_ro=$5 with_restart=$6
    case_begin "$name"
    resolve_target "$target_spec"
    local tcmd=("${target_cmd[@]}")
    local disk=$case_dir/disk.img ro=$case_dir/ro.img sectors=$((512 * 2048)) ok=1
    truncate -s $((sectors * 512)) "$disk"
    setup_netns "$mtu"
    restart_cmd=(ip netns exec "$ns" "${tcmd[@]}" "$shelf" "$slot" aoetap0 "$disk")
    spawn rw_pid "$case_dir/target.log" "${restart_cmd[@]}"
    local devices="$shelf.$slot:$sectors:fs" extra="BIG_MIB=80" ro_sha="" ro_pid=""
    if ((with_ro)); then
        head -c $((32 << 20)) /dev/urandom >"$ro"
        ro_sha=$(sha256sum <"$ro" | cut -d' ' -f1)
        spawn ro_pid "$case_dir/target-ro.log" ip netns exec "$ns" "${tcmd[@]}" -r "$shelf" $((slot + 1)) aoetap0 "$ro"
        devices+=" $shelf.$((slot + 1)):$((32 * 2048)):ro"
        extra+=$'\n'"RO_SHA=$ro_sha"
    fi
    restart_pid_var="" restart_frames=-1
    if ((with_restart)); then
        extra+=$'\n'"RESTART=1"
        restart_pid_var=rw_pid
    fi
    say "target: ${tcmd[*]} on aoetap0 (MTU $mtu), exports $devices"
    sleep 0.5
    target_alive "$rw_pid" "$case_dir/target.log" || { case_end 0; teardown_netns; return 0; }
    boot "$name" "$mtu" "$(payload_for "$mtu")" "$devices" "$extra"
    ((boot_ok)) || ok=0
    local p
    for p in $rw_pid $ro_pid; do
        if ((ok)) && ! h_alive "$p"; then
            ok=0 fail_reason="the target (pid $p) died during the run"
        fi
    done
    h_stop "$rw_pid"
    h_stop "$ro_pid"
    teardown_netns
    if ((ok && with_restart)); then
        # Proof that the outage hit in-flight I/O: the VM kept sending (retransmitting) while the
        # target was down, and aoe logged retransmits.
        local rexmit
        rexmit=$(sed -n 's/^AOETEST ERRCOUNT retransmits=\([0-9]*\).*/\1/p' "$case_dir/console.log" | tr -d '\r')
        if ((restart_frames <= 0 || ${rexmit:-0} == 0)); then
            ok=0 fail_reason="restart: VM sent $restart_frames frames while the target was down and aoe logged ${rexmit:-no} retransmits: the restart did not hit guest I/O"
        else
            say "host: restart hit guest I/O ($restart_frames frames sent during the outage, $rexmit retransmits); I/O completed"
        fi
    fi
    if ((ok)); then
        host_check_fs "$disk" || { ok=0; fail_reason="host check of the backing file"; }
    fi
    if ((ok && with_ro)); then
        if [[ $(sha256sum <"$ro" | cut -d' ' -f1) != "$ro_sha" ]]; then
            ok=0 fail_reason="the read-only export's file changed"
        else
            say "host: read-only export's file unchanged"
        fi
    fi
    say "VM ran ${vm_s}s"
    case_end $ok
    ((ok)) && rm -f "$disk" "$ro"
    return 0
}

# cpu_seconds PID: user + system CPU time the process (all its threads) has used so far. Less
# noisy than MB/s on a shared machine: the same guest work costs each target this much CPU.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo -
}

# bench_figures LABEL MTU: "MTU LABEL write(mean min max) read(mean min max)" in MB/s from the
# guest's BENCH lines in this case's console ("-" when there are none).
bench_figures() {
    tr -d '\r' <"$case_dir/console.log" | awk -v t="$1" -v m="$2" '
        function upd(k, x) { sum[k] += x; if (!(k in lo) || x < lo[k]) lo[k] = x; if (x > hi[k]) hi[k] = x }
        /^BENCH / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                    upd("w", v["bytes"] / 1e6 / v["write_s"]); upd("r", v["bytes"] / 1e6 / v["read_s"]); n++ }
        END { if (!n) { printf "%s %s - - - - - -", m, t; exit }
              printf "%s %s %.1f %.1f %.1f %.1f %.1f %.1f", m, t, sum["w"] / n, lo["w"], hi["w"], sum["r"] / n, lo["r"], hi["r"] }'
}

case_bench() { # one boot per MTU and target; the targets of one MTU run back to back
    local spec tcmd disk sectors=$((bench_mib * 2048 + 2048)) ok mtu label pid cpu
    IFS=, read -r -a specs <<<"$bench_targets"
    IFS=, read -r -a mtus <<<"$bench_mtu"
    for mtu in "${mtus[@]}"; do
        for spec in "${specs[@]}"; do
            label=$(basename "${spec%% *}")
            case_begin "bench-$label-$mtu"
            ok=1
            resolve_target "$spec"
            tcmd=("${target_cmd[@]}")
            disk=$case_dir/disk.img
            truncate -s $((sectors * 512)) "$disk"
            setup_netns "$mtu"
            spawn pid "$case_dir/target.log" ip netns exec "$ns" "${tcmd[@]}" 1 1 aoetap0 "$disk"
            restart_pid_var=""
            say "target: ${tcmd[*]} on aoetap0 (MTU $mtu), $bench_mib MiB x $bench_passes passes"
            sleep 0.5
            if ! target_alive "$pid" "$case_dir/target.log"; then
                case_end 0
                teardown_netns
                continue
            fi
            boot "$case_name" "$mtu" "$(payload_for "$mtu")" "1.1:$sectors:bench" \
                "BENCH_MIB=$bench_mib"$'\n'"BENCH_PASSES=$bench_passes"
            ((boot_ok)) || ok=0
            h_alive "$pid" || { ok=0; fail_reason="the target died during the run"; }
            cpu=$(cpu_seconds "$pid")
            h_stop "$pid"
            teardown_netns
            # MB/s = 10^6 bytes per second: mean, min and max of the per-pass rates.
            local load
            load=$(cut -d' ' -f1 /proc/loadavg)
            bench_rows+=("$load $cpu $(bench_figures "$label" "$mtu")")
            case_end $ok
            rm -f "$disk"
        done
    done
}

case_attach() { # an external target on an existing bridge, or behind a QEMU -netdev
    case_begin attach
    [[ -n $expect ]] || die "--attach/--netdev needs --expect shelf.slot:sectors:kind"
    if [[ -n $netdev_spec ]]; then
        # No TAP: QEMU's own netdev reaches the target; an empty namespace keeps it off the host's.
        h_netns_add "$ns"
        tap_ns=$ns tap=none
        say "VM NIC on -netdev $netdev_spec; expecting $expect (no target started here)"
    else
        local ns_name=${attach%%/*} bridge=${attach#*/}
        ip netns list | grep -qw "$ns_name" || die "namespace $ns_name does not exist"
        tap_ns=$ns_name tap=avm$$
        h_tap_add "$ns_name" "$tap" "$ext_mtu" "$bridge" ||
            die "cannot add a TAP to bridge $bridge in namespace $ns_name"
        say "VM TAP $tap on bridge $bridge in namespace $ns_name; expecting $expect (no target started here)"
    fi
    restart_pid_var=""
    boot attach "$ext_mtu" "${ext_payload:-$(payload_for "$ext_mtu")}" "${expect//,/ }" "BIG_MIB=80${guest_vars:+$'\n'${guest_vars// /$'\n'}}"
    [[ -n $attach ]] && h_tap_del "${attach%%/*}" "$tap"
    [[ -n $netdev_spec ]] && teardown_netns
    say "VM ran ${vm_s}s"
    local ok=$boot_ok
    if ((ok)) && [[ -n $ext_disk_from ]] && ! bash -c "$ext_disk_from"; then
        ok=0 fail_reason="--disk-from failed: $ext_disk_from"
    fi
    if ((ok)) && [[ -n $ext_disk ]]; then
        host_check_fs "$ext_disk" || { ok=0; fail_reason="host check of $ext_disk"; }
    elif ((ok)); then
        say "host: no --disk given, the backing store was not checked on the host"
    fi
    case_end "$ok"
    tap_ns=$ns tap=aoetap0
}

# The QEMU blade of firmware/ as the target: an ARM QEMU (lm3s6965evb) runs the blade firmware on
# a blank card image; the VM's NIC and the blade's are joined back to back by QEMU's dgram netdev
# over two unix sockets in the case directory. Both QEMUs run in an empty network namespace of
# this run, so neither can reach any interface. A blank card makes the blade answer as its
# build-time default e0.1 and export the card minus its last 8 sectors (its state region).
blade_row=""
case_blade() {
    case_begin blade
    local ok=1 elf=$blade_firmware card=$case_dir/card.img reserved=8 blade_pid cpu
    local card_sectors=$((blade_card_mib * 2048))
    local sectors=$((card_sectors - reserved))
    local blade_sock=$case_dir/blade.sock vm_sock=$case_dir/vm.sock
    ((blade_card_mib >= 32 && (blade_card_mib & (blade_card_mib - 1)) == 0)) ||
        die "--blade-card-mib must be a power of two >= 32 (QEMU's SD model needs a power of two)"
    ((${#vm_sock} < 100)) || die "socket path $vm_sock is too long for a unix socket; run from a shorter path"
    if [[ -z $elf ]]; then
        say "blade firmware: tests/firmware-qemu/blade.sh build"
        elf=$(h_blade_build) || die "the blade firmware does not build"
    fi
    truncate -s $((card_sectors * 512)) "$card"
    : >"$case_dir/console.log"
    h_netns_add "$ns"
    if ! h_blade_start blade_pid "$ns" "$case_dir/blade.defmt" "$elf" "$card" "$blade_sock" "$vm_sock" 100 \
        >"$case_dir/target.log" 2>&1; then
        target_alive "$blade_pid" "$case_dir/target.log" || true # says why when it exited
        fail_reason=${fail_reason:-"the blade's QEMU did not open its socket in 10 s"}
        h_stop "$blade_pid"
        teardown_netns
        case_end 0
        return 0
    fi
    say "target: QEMU blade (pid $blade_pid, $elf) on a blank $blade_card_mib MiB card: e0.1, $sectors sectors expected"
    netdev_spec="dgram,local.type=unix,local.path=$vm_sock,remote.type=unix,remote.path=$blade_sock"
    tap_ns=$ns tap=none restart_pid_var=""
    # The blade moves ~2 MB/s (Buffer Count 2, 1 KiB frames, emulated SPI): a few MiB of files.
    boot blade 1500 1024 "0.1:$sectors:fsbench" \
        "BIG_MIB=2"$'\n'"MID_FILES=1"$'\n'"BENCH_MIB=$blade_bench_mib"$'\n'"BENCH_PASSES=2"
    netdev_spec="" tap_ns=$ns tap=aoetap0
    ((boot_ok)) || ok=0
    if ! h_alive "$blade_pid"; then
        ok=0 fail_reason="the blade's QEMU died during the run${fail_reason:+ (then: $fail_reason)}"
    fi
    cpu=$(cpu_seconds "$blade_pid")
    h_stop "$blade_pid" # QEMU closes the card image on SIGTERM
    teardown_netns
    if ((ok)); then
        # Only the exported part may hold the filesystem: fsck and read back that part alone.
        dd if="$card" of="$case_dir/export.img" bs=512 count="$sectors" status=none
        host_check_fs "$case_dir/export.img" || { ok=0; fail_reason="host check of the card's exported part"; }
    fi
    if ((ok)); then
        local size nonzero
        size=$(stat -c %s "$card")
        nonzero=$(tail -c $((reserved * 512)) "$card" | tr -d '\0' | wc -c)
        if ((size != card_sectors * 512 || nonzero != 0)); then
            ok=0 fail_reason="card is $size bytes (want $((card_sectors * 512))), $nonzero non-zero bytes in its reserved last $reserved sectors (want blank: no AoE state was changed)"
        else
            say "host: the card's reserved last $reserved sectors are still blank"
        fi
    fi
    local w wl wh r rl rh
    read -r _ _ w wl wh r rl rh <<<"$(bench_figures blade 1500)"
    if [[ $w != - ]]; then
        blade_row="write $w ($wl-$wh) MB/s, read $r ($rl-$rh) MB/s, blade QEMU CPU ${cpu}s, load $(cut -d' ' -f1 /proc/loadavg)"
        say "guest dd O_DIRECT bs=1M against the blade, $blade_bench_mib MiB x 2: $blade_row"
        echo "RESULT target=qemu-blade mtu=1500 write_MBps=$w write_MBps_min=$wl write_MBps_max=$wh read_MBps=$r read_MBps_min=$rl read_MBps_max=$rh mib=$blade_bench_mib passes=2 target_cpu_s=$cpu load1=$(cut -d' ' -f1 /proc/loadavg)"
    fi
    say "VM ran ${vm_s}s"
    case_end $ok
    ((ok)) && rm -f "$card" "$case_dir/export.img"
    return 0
}

# The project's `aoe` against the guest kernel's driver (guest-init.sh, kind aoetool).
case_aoetool() {
    case_begin aoetool
    local ok=1 pid sectors=16384 aoe_bin=$repo/target/dist/aoe lib
    if [[ ! -x $aoe_bin ]]; then
        say "building aoe (dist profile)"
        (cd "$repo" && cargo build --profile dist --quiet -p aoe-initiator --bin aoe) ||
            die "aoe does not build"
    fi
    boot_files=$case_dir/files
    install -D -m 755 "$aoe_bin" "$boot_files/bin/aoe"
    # The libraries it loads, at their own paths (the image has libc already; the same file).
    for lib in $(ldd "$aoe_bin" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
        install -D -m 755 "$(readlink -f "$lib")" "$boot_files$lib"
    done
    resolve_target "$target_spec"
    local tcmd=("${target_cmd[@]}") disk=$case_dir/disk.img
    truncate -s $((sectors * 512)) "$disk"
    setup_netns 1500
    spawn pid "$case_dir/target.log" ip netns exec "$ns" "${tcmd[@]}" 2 5 aoetap0 "$disk"
    restart_pid_var=""
    say "target: ${tcmd[*]} on aoetap0, e2.5 ($sectors sectors); aoe $("$aoe_bin" --version) in the guest"
    sleep 0.5
    if ! target_alive "$pid" "$case_dir/target.log"; then
        boot_files=""
        case_end 0
        teardown_netns
        return 0
    fi
    boot aoetool 1500 "$(payload_for 1500)" "2.5:$sectors:aoetool" ""
    boot_files=""
    ((boot_ok)) || ok=0
    h_alive "$pid" || { ok=0; fail_reason="the target died during the run"; }
    h_stop "$pid"
    teardown_netns
    say "VM ran ${vm_s}s"
    case_end $ok
    rm -rf "$case_dir/files"
    ((ok)) && rm -f "$disk"
    return 0
}

if [[ -n $attach && -n $netdev_spec ]]; then
    die "--attach and --netdev exclude each other"
elif [[ -n $attach || -n $netdev_spec ]]; then
    case_attach
else
    IFS=, read -r -a case_list <<<"$cases"
    for c in "${case_list[@]}"; do
        case $c in
        mtu1500) case_fs mtu1500 1500 3 7 1 0 ;;
        mtu9000) case_fs mtu9000 9000 0 1 0 1 ;;
        bench) case_bench ;;
        blade) case_blade ;;
        aoetool) case_aoetool ;;
        *) die "unknown case $c (mtu1500, mtu9000, bench, blade, aoetool)" ;;
        esac
    done
fi

external=${attach:-$netdev_spec}
summary_target=$target_spec
[[ $cases == blade ]] && summary_target="the QEMU blade"
say "==== summary (target: ${external:+external on }${external:-$summary_target}, accel $accel, smp 1)"
for c in "${case_order[@]}"; do
    printf '  %-24s %-4s %5ss   (load average %s)%s\n' "$c" "${case_result[$c]:-FAIL}" "${case_time[$c]:-?}" \
        "${case_load[$c]:-?}" "${case_kicks[$c]:+   initiator stalls kicked: ${case_kicks[$c]}}"
done
if ((${#bench_rows[@]})); then
    echo "  guest dd O_DIRECT bs=1M, $bench_mib MiB x $bench_passes passes, MB/s = 10^6 B/s, mean (min-max);"
    echo "  TCG on a shared machine: noisy, reported not asserted; load = 1-min load average at the end"
    echo "  target CPU = CPU seconds the target process used for the whole boot"
    printf '  %-5s %-10s %24s %24s %11s %6s\n' MTU target "write MB/s" "read MB/s" "target CPU" load
    for row in "${bench_rows[@]}"; do
        read -r load cpu m t w wl wh r rl rh <<<"$row"
        printf '  %-5s %-10s %24s %24s %10ss %6s\n' "$m" "$t" "$w ($wl-$wh)" "$r ($rl-$rh)" "$cpu" "$load"
        echo "RESULT target=$t mtu=$m write_MBps=$w write_MBps_min=$wl write_MBps_max=$wh read_MBps=$r read_MBps_min=$rl read_MBps_max=$rh mib=$bench_mib passes=$bench_passes target_cpu_s=$cpu load1=$load"
    done
fi
[[ -n $blade_row ]] && echo "  QEMU blade, guest dd O_DIRECT bs=1M, $blade_bench_mib MiB x 2 passes: $blade_row"
say "total $((SECONDS - started)) s: $( ((status == 0)) && echo PASS || echo FAIL)"
exit "$status"
