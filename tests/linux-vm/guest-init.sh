#!/bin/sh
# /init of the Linux-initiator test VM (busybox sh). It loads Debian's `aoe` driver, finds the
# AoE devices the host described in /test.conf, exercises them and prints one line per step:
#   STEP <name> PASS <detail>      or      STEP <name> FAIL <reason>
# and finally `AOETEST DONE PASS` or `AOETEST DONE FAIL step=<name>`, then powers off. The host
# decides the verdict from these lines; a missing DONE line is a failure too.
#
# /test.conf (shell variables, added by the host as a second initramfs archive):
#   MTU       eth0 MTU; PAYLOAD: the data frame size aoe must report (1024 at 1500, 8704 at 9000)
#   DEVICES   space-separated "shelf.slot:sectors:kind", kind = fs (raw I/O + ext4, needs
#             >= 256 MiB with the default file sizes) | raw (raw O_DIRECT I/O only, any size) |
#             ro | bench | fsbench (bench, then fs on the same device) | aoetool (the project's
#             `aoe` tool, shipped in /bin/aoe by the host: its views of this driver's devices,
#             flush, revalidate, discover, and its own discovery over eth0)
#   RO_SHA    sha256 of the whole read-only export (kind ro)
#   BIG_MIB   size of the large file of the fs test (80; > 64 MiB crosses ext4's 64 MiB extent
#             and the guest's 1 MiB requests many times; a slow target gets a few MiB)
#   MID_FILES number of 1 MiB files of the fs test (4)
#   RESTART   1: print `AOETEST RESTART_POINT` before the large write and start it (O_DIRECT) when
#             the host says "go" on ttyS1; the host stops the target once that write's frames
#             flow and starts it again a few seconds later
#   BENCH_MIB, BENCH_PASSES: sequential O_DIRECT write/read size and repetitions (kind bench)
#   ROUNDS, ROUND_MIB: kind rounds (ext4, then ROUNDS rounds of files: each round prints
#             `AOETEST HOOK round=N`, waits for the host's "go" on ttyS1, then writes a
#             ROUND_MIB file with O_DIRECT and a few small files; the host cuts a target
#             during the round), then the fs test's checks (fsck, re-read, sha256)
#   AOE_KICK  0: the watchdog never kicks a stalled initiator (see watchdog)
#   MODE      target: be the AoE target instead (tests/linux-vm/powercut.sh): run the host-sim
#             the host packed into the initramfs as /bin/host-sim with TARGET_ARGS, exporting
#             e1.0 = /dev/vda (the raw virtual disk) and e1.1 = a sparse file of FILE_MIB MiB on
#             the ext4 filesystem of /dev/vdb, print `AOETEST TARGET_READY` and wait to be
#             killed (the host cuts the power: SIGKILL to QEMU)
# busybox sh runs its own applets before searching PATH: call e2fsprogs by full path.
export PATH=/sbin:/bin
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=70% tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# fd 3 is the console, for lines that must appear while a step's output is still being captured.
exec 3>&1
echo "AOETEST INIT $(cat /proc/uptime)"

MTU=1500 PAYLOAD=1024 DEVICES="" RO_SHA="" BIG_MIB=80 MID_FILES=4 RESTART=0 BENCH_MIB=128 BENCH_PASSES=3
MODE="" TARGET_ARGS="" FILE_MIB=64
ROUNDS=3 ROUND_MIB=16
# shellcheck disable=SC1091 # written by run.sh
[ -f /test.conf ] && . /test.conf

FAILED=""
now() { gdate +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# Runs one step: `step NAME FUNCTION ARGS...`. The function prints its reason on failure.
step() {
    name=$1
    shift
    [ -n "$FAILED" ] && return 1
    t0=$(now)
    if out=$("$@" 2>&1); then
        echo "$out" | grep -E '^(BENCH|INFO) '
        echo "STEP $name PASS ($(elapsed "$t0") s) $(echo "$out" | grep -vE '^(BENCH|INFO) ' | tail -n 1)"
        return 0
    fi
    echo "STEP $name FAIL ($(elapsed "$t0") s)"
    echo "$out" | tail -n 30 | sed 's/^/    /'
    FAILED=$name
    return 1
}

dump_state() {
    echo "---- aoe state ----"
    dmesg | grep -iE 'aoe|etherd|EXT4|I/O error|blk_update' | tail -n 60 | sed 's/^/dmesg: /'
    for d in /sys/block/etherd*; do
        [ -d "$d" ] || continue
        for a in firmware-version payload state netif mac size inflight; do
            [ -f "$d/$a" ] && echo "sysfs: $(basename "$d")/$a=$(tr '\n' ' ' <"$d/$a")"
        done
    done
    for p in /sys/module/aoe/parameters/*; do
        [ -f "$p" ] && echo "param: $(basename "$p")=$(cat "$p")"
    done
    for f in /sys/kernel/debug/aoe/*; do
        [ -f "$f" ] && sed "s|^|debugfs $(basename "$f"): |" "$f"
    done
    # aoe's error channel (retransmits, late replies): one message per non-blocking read.
    i=0 rexmit=0 late=0
    while [ $i -lt 10000 ] && msg=$(gdd if=/dev/etherd/err iflag=nonblock bs=4k count=1 status=none 2>/dev/null) &&
        [ -n "$msg" ]; do
        case $msg in
        *retransmit*) rexmit=$((rexmit + 1)) ;;
        *unexpected*) late=$((late + 1)) ;;
        esac
        [ $i -lt 40 ] && echo "aoe-err: $msg"
        i=$((i + 1))
    done
    echo "AOETEST ERRCOUNT retransmits=$rexmit late_rsp=$late messages=$i"
    grep -E 'eth0' /proc/net/dev | sed 's/^/netdev: /'
    echo "---- end of aoe state ----"
}

finish() {
    dump_state
    if [ -n "$FAILED" ]; then
        echo "AOETEST DONE FAIL step=$FAILED"
    else
        echo "AOETEST DONE PASS"
    fi
    sync
    poweroff -f
    sleep 60
}

# Devices with requests in flight while aoe has no frame outstanding to any of their targets
# (debugfs target lines are "mac:nout:maxout:nframes"): nothing on the wire can complete them.
stalled_in_initiator() {
    for f in /sys/kernel/debug/aoe/e*; do
        [ -f "$f" ] || continue
        ss=${f##*/e}
        # shellcheck disable=SC2046 # two numbers, split on purpose
        set -- $(cat "/sys/block/etherd!e$ss/inflight" 2>/dev/null) 0 0
        [ $(($1 + $2)) -gt 0 ] || continue
        nout=$(awk -F: 'NF == 4 && $1 ~ /^[0-9a-f]+$/ { n += $2 } END { print n + 0 }' "$f")
        [ "$nout" = 0 ] && echo "$ss"
    done
}

# Fails the run when requests are in flight on an AoE disk and none completes for 30 s: a stuck
# initiator or target then shows up as a failure with diagnostics instead of a silent hang.
#
# One known initiator stall is kicked instead, once per stall (AOE_KICK=0: never): aoe (6.1)
# can run out of frames while all of them wait for its completion thread; it then sets
# DEVFL_KICKME, but its timer's blk_mq_run_hw_queues() does not resume a request it already took
# off the queue. Signature: requests in flight, no frame outstanding (nout 0), no completion.
# A new request (a 4 KiB read) makes aoe resume the stuck one. It is reported as
# `AOETEST KICK`, and the run still fails if I/O does not resume within the 30 s.
watchdog() {
    last="" still=0 kicked=0
    while sleep 2; do
        # shellcheck disable=SC2046 # two numbers, split on purpose
        set -- $(awk '$3 ~ /^etherd/ { done += $4 + $8; busy += $12 } END { print done + 0, busy + 0 }' /proc/diskstats)
        if [ "$2" -gt 0 ] && [ "$1" = "$last" ]; then still=$((still + 2)); else still=0 kicked=0; fi
        last=$1
        if [ "$still" -ge 6 ] && [ "$kicked" = 0 ] && [ "${AOE_KICK:-1}" = 1 ]; then
            for ss in $(stalled_in_initiator); do
                echo "AOETEST KICK e$ss: $2 requests in flight, nout 0, no completion for $still s;" \
                    "$(grep -h kicked "/sys/kernel/debug/aoe/e$ss"); one 4 KiB read to resume it"
                gdd if="/dev/etherd/e$ss" of=/dev/null bs=4k count=1 iflag=direct status=none &
                kicked=1
                last=$((last + 1)) # the kick's own completion is not progress
            done
        fi
        if [ "$still" -ge 30 ]; then
            echo "STEP watchdog FAIL: $2 AoE requests in flight, none completed for 30 s"
            echo w >/proc/sysrq-trigger
            dump_state
            echo "AOETEST DONE FAIL step=watchdog"
            poweroff -f
        fi
    done
}

load_modules() {
    while read -r m; do
        [ "$m" = aoe.ko ] && continue
        insmod "/lib/modules/$m" || echo "INFO insmod $m failed"
    done </lib/modules/order
    ip link set eth0 mtu "$MTU" && ip link set eth0 up || return 1
    i=0
    while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "eth0 has no carrier"; return 1; }
        sleep 0.1
    done
    echo "eth0 mtu $(cat /sys/class/net/eth0/mtu)"
}

load_aoe() {
    insmod /lib/modules/aoe.ko aoe_iflist=eth0
}

# discover SHELF.SLOT SECTORS: the device appears with exactly the size the export has.
discover() {
    dev=/dev/etherd/e$1 sys=/sys/block/etherd!e$1 i=0
    while [ ! -b "$dev" ] || [ "$(cat "$sys/size" 2>/dev/null)" = 0 ] || [ ! -f "$sys/size" ]; do
        i=$((i + 1))
        [ $((i % 50)) = 0 ] && echo 1 >/dev/etherd/discover
        [ $i -gt 600 ] && { echo "e$1 did not appear within 60 s"; ls /dev/etherd; return 1; }
        sleep 0.1
    done
    size=$(cat "$sys/size")
    [ "$size" = "$2" ] || { echo "e$1 has $size sectors, export has $2"; return 1; }
    echo "e$1 usable $(elapsed "$AOE_T0") s after insmod, $size sectors"
}

# frames SHELF.SLOT: aoe chose the data frame size this MTU allows.
frames() {
    payload=$(cat "/sys/block/etherd!e$1/payload")
    dmesg | grep -q "e$1: setting $PAYLOAD byte data frames" ||
        { echo "no 'e$1: setting $PAYLOAD byte data frames' in dmesg:"; dmesg | grep aoe; return 1; }
    [ "$payload" = "$PAYLOAD" ] || { echo "sysfs payload $payload, want $PAYLOAD"; return 1; }
    echo "e$1 payload $payload bytes"
}

# put FILE DEV SECTOR / check FILE DEV SECTOR: O_DIRECT write / read-back compare at a sector.
put() { gdd if="$1" of="$2" bs=1M oflag=direct,seek_bytes seek=$(($3 * 512)) status=none; }
check() {
    len=$(stat -c %s "$1")
    gdd if="$2" of=/tmp/readback bs=1M iflag=direct,skip_bytes,count_bytes skip=$(($3 * 512)) \
        count="$len" status=none || return 1
    gcmp "$1" /tmp/readback || { echo "mismatch at sector $3 ($len bytes)"; return 1; }
}

# raw_io SHELF.SLOT SECTORS: O_DIRECT writes then reads at the start, odd offsets and the end.
raw_io() {
    dev=/dev/etherd/e$1 n=$2
    head -c 512 /dev/urandom >/tmp/p1
    head -c $((37 * 512)) /dev/urandom >/tmp/p37
    head -c $((37 * 512)) /dev/urandom >/tmp/p37e
    head -c $((4 << 20)) /dev/urandom >/tmp/p4m
    head -c $((4 << 20)) /dev/urandom >/tmp/p4me
    # sector:file; the regions do not overlap and the last one ends at the very last sector.
    if [ "$n" -ge $((12345 + 3 * 8192)) ]; then
        set -- 0:/tmp/p1 1:/tmp/p37 12345:/tmp/p4m $((n - 37 - 8192)):/tmp/p4me $((n - 37)):/tmp/p37e
    elif [ "$n" -ge 200 ]; then # a small export (e.g. a microcontroller's RAM disk)
        set -- 0:/tmp/p1 1:/tmp/p37 $((n / 2 | 1)):/tmp/p37 $((n - 37)):/tmp/p37e
    else
        echo "export of $n sectors is too small for the raw test"
        return 1
    fi
    for r in "$@"; do put "${r#*:}" "$dev" "${r%%:*}" || { echo "write at ${r%%:*} failed"; return 1; }; done
    for r in "$@"; do check "${r#*:}" "$dev" "${r%%:*}" || return 1; done
    echo "$# regions written and read back (start, odd offsets, end)"
}

make_fs() {
    /sbin/mke2fs -t ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "/dev/etherd/e$1"
}

mount_fs() { mkdir -p /mnt && mount -t ext4 -o "$2" "/dev/etherd/e$1" /mnt; }

# A tree of files of odd sizes, MID_FILES of 1 MiB, one of 3 MiB + 123 bytes and one of BIG_MIB,
# with sha256s.
write_files() {
    mkdir -p /mnt/t/small/a/b /mnt/t/mid || return 1
    i=1
    while [ $i -le 64 ]; do
        d=/mnt/t/small
        [ $((i % 3)) = 0 ] && d=/mnt/t/small/a
        [ $((i % 5)) = 0 ] && d=/mnt/t/small/a/b
        head -c $(((i * 7919) % 70001 + i)) /dev/urandom >"$d/f$i" || return 1
        i=$((i + 1))
    done
    i=1
    while [ $i -le "$MID_FILES" ]; do
        head -c $((1 << 20)) /dev/urandom >/mnt/t/mid/m$i || return 1
        i=$((i + 1))
    done
    head -c $((3 * 1048576 + 123)) /dev/urandom >/mnt/t/mid/odd || return 1
    if [ "$RESTART" = 1 ]; then
        # The host stops the target while this write runs: wait for its "go" on ttyS1 so that
        # the write starts only when the host is watching, and write with O_DIRECT so the
        # requests leave at once instead of sitting in the page cache.
        gdd if=/dev/urandom of=/tmp/big bs=1M count="$BIG_MIB" status=none || return 1
        sync
        stty -F /dev/ttyS1 raw -echo || return 1
        echo "AOETEST RESTART_POINT" >&3
        # shellcheck disable=SC3045 # busybox ash has read -t
        read -r -t 120 go </dev/ttyS1 || { echo "no go from the host on ttyS1"; return 1; }
        echo "INFO host said $go; writing the large file"
        gdd if=/tmp/big of=/mnt/t/big bs=1M oflag=direct conv=fsync status=none || return 1
        rm -f /tmp/big
    else
        gdd if=/dev/urandom of=/mnt/t/big bs=1M count="$BIG_MIB" conv=fsync status=none || return 1
    fi
    (cd /mnt && find t -type f | sort | xargs sha256sum) >/tmp/manifest || return 1
    echo "$(wc -l </tmp/manifest) files, $(du -sk /mnt/t | cut -f1) KiB"
}

verify_files() { (cd /mnt && sha256sum -c -s /tmp/manifest) && echo "$(wc -l </tmp/manifest) files match"; }

drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches && blockdev --flushbufs "/dev/etherd/e$1"; }

fs_test() {
    step "raw_io_e$1" raw_io "$1" "$2"
    step "mkfs_e$1" make_fs "$1"
    step "mount_e$1" mount_fs "$1" rw
    step "write_files_e$1" write_files
    step "sync_e$1" sync
    step "umount_e$1" umount /mnt
    step "fsck_e$1" /sbin/e2fsck -f -n "/dev/etherd/e$1"
    step "drop_caches_e$1" drop_caches "$1"
    step "remount_e$1" mount_fs "$1" ro
    step "verify_e$1" verify_files
    step "umount2_e$1" umount /mnt
    [ -z "$FAILED" ] && sed 's/^/MANIFEST /' /tmp/manifest
}

# write_round N: waits for the host's "go" on ttyS1, then writes round N's files.
write_round() {
    gdd if=/dev/urandom of=/tmp/round bs=1M count="$ROUND_MIB" status=none || return 1
    mkdir -p "/mnt/t/r$1" || return 1
    echo "AOETEST HOOK round=$1" >&3
    # shellcheck disable=SC3045 # busybox ash has read -t
    read -r -t 300 go </dev/ttyS1 || { echo "no go from the host on ttyS1"; return 1; }
    t0=$(now)
    gdd if=/tmp/round of="/mnt/t/r$1/big" bs=1M oflag=direct conv=fsync status=none || return 1
    i=1
    while [ $i -le 8 ]; do
        head -c $(((i * 4099 + $1 * 7) % 50000 + 1)) /dev/urandom >"/mnt/t/r$1/s$i" || return 1
        i=$((i + 1))
    done
    sync || return 1
    rm -f /tmp/round
    echo "round $1 ($go): $ROUND_MIB MiB + 8 files in $(elapsed "$t0") s"
}

# rounds SHELF.SLOT: ext4 with ROUNDS rounds of files (the host cuts targets during rounds),
# then the fs test's checks.
rounds_test() {
    step "mkfs_e$1" make_fs "$1"
    step "mount_e$1" mount_fs "$1" rw
    stty -F /dev/ttyS1 raw -echo || { echo "STEP ttyS1 FAIL"; FAILED=ttyS1; }
    r=1
    while [ $r -le "$ROUNDS" ]; do
        step "round${r}_e$1" write_round "$r"
        r=$((r + 1))
    done
    [ -z "$FAILED" ] && (cd /mnt && find t -type f | sort | xargs sha256sum) >/tmp/manifest
    step "umount_e$1" umount /mnt
    step "fsck_e$1" /sbin/e2fsck -f -n "/dev/etherd/e$1"
    step "drop_caches_e$1" drop_caches "$1"
    step "remount_e$1" mount_fs "$1" ro
    step "verify_e$1" verify_files
    step "umount2_e$1" umount /mnt
    [ -z "$FAILED" ] && sed 's/^/MANIFEST /' /tmp/manifest
}

whole_sha() { gdd if="/dev/etherd/e$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1; }

ro_read() {
    sha=$(whole_sha "$1")
    [ "$sha" = "$RO_SHA" ] || { echo "read sha $sha, export has $RO_SHA"; return 1; }
    echo "whole export reads back, sha256 $(echo "$sha" | cut -c1-12)..."
}

# A write to a read-only export must fail with an I/O error, promptly (the target answered with
# an ATA error, rather than aoe giving up after retransmitting), and leave the device up.
ro_write_refused() {
    dev=/dev/etherd/e$1
    timeout 30 gdd if=/dev/zero of="$dev" bs=4096 count=1 seek=3 oflag=direct status=none
    rc=$?
    [ $rc = 0 ] && { echo "O_DIRECT write to the read-only export succeeded"; return 1; }
    [ $rc = 124 ] && { echo "O_DIRECT write to the read-only export hung for 30 s"; return 1; }
    timeout 30 gdd if=/dev/zero of="$dev" bs=64k count=4 conv=fsync status=none
    rc=$?
    [ $rc = 0 ] && { echo "buffered write + fsync to the read-only export succeeded"; return 1; }
    [ $rc = 124 ] && { echo "buffered write + fsync to the read-only export hung for 30 s"; return 1; }
    state=$(cat "/sys/block/etherd!e$1/state")
    case $state in up*) ;; *) echo "device state after the refused writes: $state"; return 1 ;; esac
    errors=$(dmesg | grep -c "ata error.*from e$1\$")
    [ "$errors" -gt 0 ] || { echo "writes failed, but not with an ATA error reply from the target"; return 1; }
    echo "O_DIRECT and buffered+fsync writes failed; device $state; $errors ATA error replies logged"
}

ro_test() {
    step "ro_read_e$1" ro_read "$1"
    step "ro_write_refused_e$1" ro_write_refused "$1"
    step "drop_caches_ro_e$1" drop_caches "$1"
    step "ro_unchanged_e$1" ro_read "$1"
}

bench() {
    dev=/dev/etherd/e$1 bytes=$((BENCH_MIB << 20))
    gdd if=/dev/urandom of=/tmp/pattern bs=1M count="$BENCH_MIB" status=none || return 1
    p=1
    while [ $p -le "$BENCH_PASSES" ]; do
        t0=$(now)
        gdd if=/tmp/pattern of="$dev" bs=1M oflag=direct conv=fsync status=none || return 1
        t1=$(now)
        gdd if="$dev" of=/dev/null bs=1M count="$BENCH_MIB" iflag=direct status=none || return 1
        t2=$(now)
        echo "BENCH e$1 pass=$p write_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') read_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}') bytes=$bytes"
        p=$((p + 1))
    done
    gdd if="$dev" bs=1M count="$BENCH_MIB" iflag=direct status=none | gcmp - /tmp/pattern ||
        { echo "device content differs from the pattern written"; return 1; }
    rm -f /tmp/pattern
    echo "$BENCH_PASSES passes, content verified"
}

# ---- the project's `aoe` tool against this kernel's driver (kind aoetool) ----------------------
# aoe kernel stat lists the device with the size, state, interface and payload sysfs has.
tool_stat() {
    json=$(/bin/aoe kernel stat --json) || return 1
    echo "$json" | grep -q "\"device\":\"e$1\",\"sectors\":$2," || { echo "not listed right: $json"; return 1; }
    echo "$json" | grep -q '"state":"up' || { echo "not up: $json"; return 1; }
    echo "$json" | grep -q '"interface":"eth0"' || { echo "not on eth0: $json"; return 1; }
    echo "$json" | grep -q "\"payload\":\"$PAYLOAD\"" || { echo "payload: $json"; return 1; }
    /bin/aoe kernel stat | sed 's/^/INFO stat: /'
    echo "e$1 listed with $2 sectors, up, eth0, payload $PAYLOAD"
}

# Our own initiator over eth0, and over every AoE-capable interface when none is given.
tool_discover_net() {
    /bin/aoe discover -i eth0 --wait 1 --json | grep -q "\"target\":\"e$1\"" || return 1
    out=$(/bin/aoe discover --wait 1) || { echo "discover without -i: $out"; return 1; }
    echo "$out" | grep -q "^e$1 .* eth0 " || { echo "not found on eth0 by default: $out"; return 1; }
    /bin/aoe ping -t "$1" -i eth0 --count 2 --smart | sed 's/^/INFO ping: /'
    echo "aoe discover finds e$1 on eth0 (given, and by default)"
}

# Waits up to 10 s until the driver has (want=1) or has not (want=0) device e$1.
tool_wait_device() {
    i=0
    while :; do
        if [ -d "/sys/block/etherd!e$1" ]; then have=1; else have=0; fi
        [ "$have" = "$2" ] && return 0
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "device e$1 present=$have, want $2 after 10 s"; return 1; }
        sleep 0.1
    done
}

tool_revalidate() {
    /bin/aoe kernel revalidate "e$1" || return 1
    sleep 1
    tool_wait_device "$1" 1 || return 1
    grep -q '^up' "/sys/block/etherd!e$1/state" || { echo "state $(cat "/sys/block/etherd!e$1/state")"; return 1; }
    if /bin/aoe kernel revalidate e99.99 2>/tmp/err; then echo "revalidating a missing device succeeded"; return 1; fi
    grep -q "no device e99.99" /tmp/err || { cat /tmp/err; return 1; }
    echo "revalidated e$1; a missing device is refused"
}

tool_flush() {
    /bin/aoe kernel flush "e$1" | grep -q "flushed: e$1" || return 1
    tool_wait_device "$1" 0 || return 1
    /bin/aoe kernel discover || return 1
    tool_wait_device "$1" 1 || return 1
    /bin/aoe kernel flush --all | grep -q "flushed: e$1" || return 1
    tool_wait_device "$1" 0 || return 1
    /bin/aoe kernel discover || return 1
    tool_wait_device "$1" 1 || return 1
    discover "$1" "$2" >/dev/null || return 1
    echo "flushed by name and with --all; back after aoe kernel discover"
}

tool_interfaces() {
    out=$(/bin/aoe kernel interfaces) || return 1
    [ "$out" = eth0 ] || { echo "aoe_iflist: $out"; return 1; }
    echo "the driver uses: $out"
}

aoetool_test() {
    step "tool_stat_e$1" tool_stat "$1" "$2"
    step "tool_discover_e$1" tool_discover_net "$1"
    step "tool_revalidate_e$1" tool_revalidate "$1"
    step "tool_flush_e$1" tool_flush "$1" "$2"
    step "tool_interfaces" tool_interfaces
}
# ---- the target inside the guest (MODE=target, tests/linux-vm/powercut.sh) ----------------------
# Everything the initiator will see acknowledged is written by host-sim here; the only volatile
# layer between it and the host's image files is this kernel's page cache (the virtual disks are
# write-through), which dies with QEMU.
prepare_target() {
    [ -x /bin/host-sim ] || { echo "no /bin/host-sim in the initramfs"; return 1; }
    mkdir -p /mnt && mount -t ext4 /dev/vdb /mnt || return 1
    truncate -s "${FILE_MIB}M" /mnt/export.img && sync || return 1
    echo "e1.0 = /dev/vda ($(cat /sys/block/vda/size) sectors), e1.1 = /mnt/export.img (${FILE_MIB} MiB sparse)"
}

# Not a step: the targets keep running, with their logs on the console.
start_target() {
    # shellcheck disable=SC2086 # TARGET_ARGS is a list of options
    /bin/host-sim $TARGET_ARGS 1 0 eth0 /dev/vda >&3 2>&3 &
    # shellcheck disable=SC2086
    /bin/host-sim $TARGET_ARGS 1 1 eth0 /mnt/export.img >&3 2>&3 &
    sleep 1
    n=$(pidof host-sim | wc -w)
    if [ "$n" = 2 ]; then
        echo "STEP start_target PASS host-sim $TARGET_ARGS"
    else
        echo "STEP start_target FAIL $n of 2 host-sim processes running"
        FAILED=start_target
    fi
}

if [ "${MODE:-}" = target ]; then
    echo "AOETEST CONFIG mode=target mtu=$MTU target_args='$TARGET_ARGS' file_mib=$FILE_MIB"
    step modules load_modules
    step prepare_target prepare_target
    [ -z "$FAILED" ] && start_target
    [ -n "$FAILED" ] && finish
    echo "AOETEST TARGET_READY"
    while sleep 3600; do :; done
fi

echo "AOETEST CONFIG mtu=$MTU payload=$PAYLOAD devices='$DEVICES' big_mib=$BIG_MIB mid_files=$MID_FILES restart=$RESTART"
step modules load_modules
watchdog &
AOE_T0=$(now)
step load_aoe load_aoe
for d in $DEVICES; do
    ss=${d%%:*} rest=${d#*:}
    step "discover_e$ss" discover "$ss" "${rest%%:*}"
done
for d in $DEVICES; do
    ss=${d%%:*} rest=${d#*:}
    sectors=${rest%%:*} kind=${rest#*:}
    step "frames_e$ss" frames "$ss"
    case $kind in
    fs) fs_test "$ss" "$sectors" ;;
    ro) ro_test "$ss" ;;
    raw) step "raw_io_e$ss" raw_io "$ss" "$sectors" ;;
    bench) step "bench_e$ss" bench "$ss" ;;
    fsbench) step "bench_e$ss" bench "$ss" && fs_test "$ss" "$sectors" ;;
    aoetool) aoetool_test "$ss" "$sectors" ;;
    rounds) rounds_test "$ss" ;;
    *) echo "STEP config FAIL unknown kind $kind" && FAILED=config ;;
    esac
done
finish
