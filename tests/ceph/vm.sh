#!/usr/bin/env bash
# The Linux aoe driver (tests/linux-vm, Debian's kernel in QEMU) against RBD exports of host-sim,
# with a real single-node Ceph cluster (tests/ceph/cluster.sh, bluestore) on a LAN of this run's
# own: a network namespace holding a bridge, with the cluster on the bridge's address
# (10.15.0.1), gateways in namespaces of their own attached to it, and the VM's TAP on it.
#
# Cases:
#   rbd       one gateway exports an RBD image (MTU 9000): raw I/O, mkfs.ext4, files with
#             sha256, fsck, re-read in the guest; then the image is exported with `rbd export`
#             and checked on the host (e2fsck, every file read back with debugfs).
#   failover  two gateways (`--ha rbd-lock`) in two namespaces serve one image; the guest
#             writes CUTS+1 rounds of files with sha256; during each round but the last the
#             active gateway is cut: SIGKILL and link down (it keeps running) in turn. Each cut
#             must be followed by I/O through the other gateway within 15 s, a new blocklist
#             entry (the old gateway can no longer write), and the cut gateway back as the
#             standby; then fsck, re-read and the host-side check as above. Prints one line per
#             cut, `RESULT failover cut=N kind=K takeover_s=T first_io_s=S`: S is the time from
#             the cut to the first I/O the new gateway answered (from its log).
#
# Usage: tests/ceph/vm.sh [--cases rbd,failover] [--cuts N] [--keep]
# Needs root; installs what it lacks (Ceph, QEMU, ...) through cluster.sh and run.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"

cases=rbd,failover cuts=2 keep=0
while (($#)); do
    case $1 in
    --cases) cases=$2; shift 2 ;;
    --cuts) cuts=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) h_usage "$0"; exit 0 ;;
    *) echo "vm.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

started=$SECONDS
say() { printf '[ceph-vm %4ds] %s\n' $((SECONDS - started)) "$*"; }
die() { say "ERROR: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (namespaces, TAP devices, Ceph daemons)"

dir=$repo/target/ceph-vm/run-$$
mkdir -p "$dir"
lan=aoecl$$
h_netns_sweep aoecl aoeg1 aoega aoegb
cluster_dir=$dir/ceph
status=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    h_cleanup
    bash "$here/cluster.sh" down "$cluster_dir" >/dev/null 2>&1 || true
    h_netns_del "$lan"
    for ns in "${gateway_ns[@]}"; do h_netns_del "$ns"; done
    if ((status == 0 && keep == 0)); then rm -rf "$dir"; fi
}
gateway_ns=()
trap cleanup EXIT
trap 'status=130; exit 130' INT TERM

say "building host-sim (release)"
(cd "$repo" && cargo build --release --quiet -p aoe-host-sim --bin host-sim) || die "host-sim does not build"
host_sim=$repo/target/release/host-sim

# The LAN: a bridge in its own namespace; the cluster listens on the bridge's address.
h_netns_add "$lan" || die "cannot create namespace $lan"
ip -n "$lan" link add aoebr mtu 9000 type bridge
ip -n "$lan" link set aoebr type bridge forward_delay 0
ip netns exec "$lan" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n "$lan" addr add 10.15.0.1/24 dev aoebr
ip -n "$lan" link set aoebr up
say "cluster (bluestore) on 10.15.0.1 in namespace $lan"
ip netns exec "$lan" bash "$here/cluster.sh" up "$cluster_dir" --addr 10.15.0.1 --store bluestore \
    >"$dir/cluster.log" 2>&1 || { cat "$dir/cluster.log"; die "the cluster did not come up"; }
export CEPH_CONF=$cluster_dir/ceph.conf
ceph_cmd() { ip netns exec "$lan" env CEPH_CONF="$CEPH_CONF" "$@"; }

# gateway_ns_add NAME ADDRESS MTU: a namespace attached to the LAN with ADDRESS/24.
gateway_ns_add() {
    local ns=$1 addr=$2 mtu=$3
    h_netns_add "$ns" || die "cannot create namespace $ns"
    gateway_ns+=("$ns")
    ip -n "$lan" link add "p$ns" mtu "$mtu" type veth peer name aoe0 netns "$ns" mtu "$mtu"
    ip -n "$lan" link set "p$ns" master aoebr up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$ns" addr add "$addr/24" dev aoe0
    ip -n "$ns" link set aoe0 up
}

# log_time FILE TEXT AFTER: epoch seconds of the first line of FILE (host-sim log) containing TEXT
# stamped after epoch AFTER; empty if none.
log_time() {
    local t line
    while IFS= read -r line; do
        t=$(date -d "${line%% *}" +%s.%N 2>/dev/null) || continue
        if awk -v a="$t" -v b="$3" 'BEGIN { exit !(a >= b) }'; then
            echo "$t"
            return
        fi
    done < <(grep -F -- "$2" "$1" || true)
}

# wait_log FILE TEXT AFTER SECONDS: waits for log_time; prints it, or fails.
wait_log() {
    local i t
    for ((i = 0; i < $4 * 10; i++)); do
        t=$(log_time "$1" "$2" "$3")
        [[ -n $t ]] && { echo "$t"; return 0; }
        sleep 0.1
    done
    return 1
}

runsh_pid=""
runsh() { # runsh LOG ARGS...: tests/linux-vm/run.sh in the background; sets runsh_pid
    local log=$1
    shift
    h_spawn runsh_pid bash "$repo/tests/linux-vm/run.sh" "$@" >"$log" 2>&1
}

case_rbd() {
    local mib=320 sectors ok=1
    sectors=$((mib * 2048))
    say "==== case rbd: one gateway, MTU 9000, image rbd/vmfs of $mib MiB"
    ceph_cmd rbd create --size "${mib}M" rbd/vmfs
    gateway_ns_add aoeg1$$ 10.15.0.2 9000
    local gw
    h_spawn gw ip netns exec aoeg1$$ "$host_sim" 1 1 aoe0 "rbd:rbd/vmfs:conf=$CEPH_CONF" >"$dir/rbd-gateway.log" 2>&1
    sleep 1
    h_alive "$gw" || { cat "$dir/rbd-gateway.log"; die "the gateway exited"; }
    runsh "$dir/rbd-vm.log" --attach "$lan/aoebr" --mtu 9000 --expect "1.1:$sectors:fs" \
        --disk "$dir/vmfs.img" \
        --disk-from "ip netns exec $lan env CEPH_CONF=$CEPH_CONF rbd export --no-progress rbd/vmfs $dir/vmfs.img"
    h_wait "$runsh_pid" || ok=0
    grep -E 'guest: STEP|host:|PASS|FAIL' "$dir/rbd-vm.log" | sed 's/^/    /'
    h_alive "$gw" || { ok=0; say "the gateway died"; }
    h_stop "$gw"
    rm -f "$dir/vmfs.img"
    if ((ok)); then say "PASS case rbd"; else say "FAIL case rbd (log $dir/rbd-vm.log)"; status=1; fi
}

case_failover() {
    local mib=256 sectors ok=1 rounds=$((cuts + 1)) ns=(aoega$$ aoegb$$) gw=("" "") log
    sectors=$((mib * 2048))
    say "==== case failover: two gateways, $cuts cuts, image rbd/vmha of $mib MiB"
    ceph_cmd rbd create --size "${mib}M" rbd/vmha
    gateway_ns_add "${ns[0]}" 10.15.0.3 1500
    gateway_ns_add "${ns[1]}" 10.15.0.4 1500
    start_gateway() { # start_gateway INDEX
        local pid
        h_spawn pid ip netns exec "${ns[$1]}" "$host_sim" --ha rbd-lock 2 1 aoe0 \
            "rbd:rbd/vmha:conf=$CEPH_CONF" >>"$dir/gateway-$1.log" 2>&1
        gw[$1]=$pid
    }
    local t0
    t0=$(date +%s.%N)
    start_gateway 0
    wait_log "$dir/gateway-0.log" "ACTIVE" "$t0" 30 >/dev/null || die "gateway 0 never became active"
    start_gateway 1
    wait_log "$dir/gateway-1.log" "standby until" "$t0" 30 >/dev/null || die "gateway 1 did not start"
    runsh "$dir/failover-vm.log" --attach "$lan/aoebr" --mtu 1500 --ctl --expect "2.1:$sectors:rounds" \
        --guest "ROUNDS=$rounds ROUND_MIB=16" --disk "$dir/vmha.img" \
        --disk-from "ip netns exec $lan env CEPH_CONF=$CEPH_CONF rbd export --no-progress rbd/vmha $dir/vmha.img"
    local case_dir=$repo/target/linux-vm/run-$runsh_pid/attach
    local console=$case_dir/console.log active=0 round=0 line cut_at kind took first blocklist
    blocklist=$(ceph_cmd ceph osd blocklist ls 2>/dev/null | grep -c : || true)
    while h_alive "$runsh_pid"; do
        line=$(grep -a "AOETEST HOOK round=$((round + 1))" "$console" 2>/dev/null || true)
        if [[ -z $line ]]; then sleep 0.2; continue; fi
        round=$((round + 1))
        local fd
        exec {fd}<>"$case_dir/ctl.in"
        echo "go$round" >&"$fd"
        exec {fd}>&-
        ((round > cuts)) && continue # the last round runs without a cut
        sleep 0.5                    # the round's O_DIRECT writes are under way
        local standby=$((1 - active))
        cut_at=$(date +%s.%N)
        if ((round % 2 == 1)); then
            kind=sigkill
            h_kill "${gw[$active]}"
        else
            kind=link-down
            ip -n "${ns[$active]}" link set aoe0 down
        fi
        log=$dir/gateway-$standby.log
        if ! took=$(wait_log "$log" "ACTIVE" "$cut_at" 30) ||
            ! first=$(wait_log "$log" "first I/O answered" "$cut_at" 30); then
            say "cut $round ($kind): the standby did not take over and answer"
            ok=0
            break
        fi
        local takeover_s first_s entries
        takeover_s=$(awk -v a="$took" -v b="$cut_at" 'BEGIN { printf "%.2f", a - b }')
        first_s=$(awk -v a="$first" -v b="$cut_at" 'BEGIN { printf "%.2f", a - b }')
        echo "RESULT failover cut=$round kind=$kind takeover_s=$takeover_s first_io_s=$first_s"
        awk -v s="$first_s" 'BEGIN { exit !(s < 15) }' || { say "cut $round: I/O resumed after $first_s s"; ok=0; }
        entries=$(ceph_cmd ceph osd blocklist ls 2>/dev/null | grep -c : || true)
        if ((entries <= blocklist)); then say "cut $round: the old gateway was not blocklisted"; ok=0; fi
        blocklist=$entries
        # The cut gateway comes back as the standby.
        local back
        back=$(date +%s.%N)
        if [[ $kind == sigkill ]]; then
            start_gateway "$active"
            wait_log "$dir/gateway-$active.log" "standby until" "$back" 30 >/dev/null ||
                { say "cut $round: the restarted gateway did not start"; ok=0; }
        else
            wait_log "$dir/gateway-$active.log" "FENCED" "$cut_at" 15 >/dev/null ||
                { say "cut $round: the cut-off gateway did not fence itself"; ok=0; }
            ip -n "${ns[$active]}" link set aoe0 up
            wait_log "$dir/gateway-$active.log" "; standby" "$back" 60 >/dev/null ||
                { say "cut $round: the cut-off gateway did not come back as the standby"; ok=0; }
        fi
        active=$standby
    done
    h_wait "$runsh_pid" || ok=0
    grep -E 'guest: STEP|host:|PASS|FAIL' "$dir/failover-vm.log" | sed 's/^/    /'
    ((round == rounds)) || { say "the guest ran $round of $rounds rounds"; ok=0; }
    h_stop "${gw[0]}"
    h_stop "${gw[1]}"
    rm -f "$dir/vmha.img"
    if ((ok)); then say "PASS case failover ($cuts cuts)"; else say "FAIL case failover (logs in $dir)"; status=1; fi
}

IFS=, read -r -a case_list <<<"$cases"
for c in "${case_list[@]}"; do
    case $c in
    rbd) case_rbd ;;
    failover) case_failover ;;
    *) die "unknown case $c (rbd, failover)" ;;
    esac
done
say "total $((SECONDS - started)) s: $( ((status == 0)) && echo PASS || echo FAIL)"
exit "$status"
