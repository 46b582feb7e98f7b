#!/usr/bin/env bash
# Benchmark of the network storage back ends, in one run on one cluster: 4 KiB random writes and
# reads at each queue depth,
#   RBD: `rbd bench` (librbd, client cache off) against `aoe bench` through host-sim exporting
#        the same image (MTU 9000, so that one 4 KiB request is one AoE frame);
#   NBD: fio's nbd engine against `aoe bench` through host-sim exporting the same qemu-nbd export
#        (a raw file, `--cache=none`).
# The cluster is tests/ceph/cluster.sh with bluestore, on a LAN of this run's own (a bridge in a
# namespace; the gateway and the initiator in namespaces of their own). Prints a table and
# `RESULT` lines, and writes them to OUT/table.md and OUT/results.txt. The ratio column is
# AoE IOPS / direct IOPS (the target for RBD is >= 0.8).
#
# Usage: tests/ceph/bench.sh [--seconds S] [--depths 16,64] [--image-mib N] [--out DIR]
#   --seconds S      per measurement (default 10; CI's smoke run uses 1)
#   --depths LIST    queue depths (default 16,64)
#   --image-mib N    image and NBD file size (default 1024)
#   --out DIR        where the table goes (default target/ceph-bench)
# Needs root; installs fio (for its nbd engine), qemu-utils and Ceph when missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"

seconds=10 depths=16,64 image_mib=1024 out=$repo/target/ceph-bench
while (($#)); do
    (($# >= 2)) || { echo "bench.sh: $1 needs a value" >&2; exit 2; }
    case $1 in
    --seconds) seconds=$2 ;;
    --depths) depths=$2 ;;
    --image-mib) image_mib=$2 ;;
    --out) out=$2 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done

started=$SECONDS
say() { printf '[ceph-bench %4ds] %s\n' $((SECONDS - started)) "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (namespaces, Ceph daemons)"

missing=()
for p in fio qemu-utils; do
    [[ $(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 -qq update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq install -y \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

dir=$repo/target/ceph-bench-run-$$
mkdir -p "$dir" "$out"
: >"$out/aoe-bench.json"
lan=aoebl$$ gw=aoebg$$ ini=aoebi$$
h_netns_sweep aoebl aoebg aoebi
cluster_dir=$dir/ceph
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    h_cleanup
    bash "$here/cluster.sh" down "$cluster_dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$repo" && cargo build --release --quiet -p aoe-host-sim -p aoe-initiator --bins) ||
    die "host-sim/aoe do not build"
host_sim=$repo/target/release/host-sim aoe=$repo/target/release/aoe

for ns in "$lan" "$gw" "$ini"; do h_netns_add "$ns" || die "cannot create namespace $ns"; done
ip -n "$lan" link add aoebr mtu 9000 type bridge
ip -n "$lan" link set aoebr type bridge forward_delay 0
ip -n "$lan" addr add 10.15.0.1/24 dev aoebr
ip -n "$lan" link set aoebr up
attach() { # attach NS [ADDRESS]: a veth from NS to the bridge, named aoe0 in NS
    ip -n "$lan" link add "p$1" mtu 9000 type veth peer name aoe0 netns "$1" mtu 9000
    ip -n "$lan" link set "p$1" master aoebr up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    [[ -z ${2:-} ]] || ip -n "$1" addr add "$2/24" dev aoe0
    ip -n "$1" link set aoe0 up
}
attach "$gw" 10.15.0.2
attach "$ini"
ip netns exec "$lan" bash "$here/cluster.sh" up "$cluster_dir" --addr 10.15.0.1 --store bluestore \
    --size $((image_mib * 2 + 2048)) >"$dir/cluster.log" 2>&1 ||
    { cat "$dir/cluster.log" >&2; die "the cluster did not come up"; }
export CEPH_CONF=$cluster_dir/ceph.conf
in_gw() { ip netns exec "$gw" env CEPH_CONF="$CEPH_CONF" "$@"; }

say "image rbd/bench of $image_mib MiB, filled (reads must hit data)"
in_gw rbd create --size "${image_mib}M" rbd/bench
in_gw rbd bench --io-type write --io-size 4M --io-threads 4 --io-total "${image_mib}M" \
    --io-pattern seq rbd/bench >/dev/null 2>&1

results=()
hs="" qn=""
# record KIND MODE QD DIRECT_IOPS AOE_IOPS
record() {
    local ratio
    ratio=$(awk -v a="$5" -v d="$4" 'BEGIN { if (d > 0) printf "%.2f", a / d; else print "-" }')
    results+=("$1 $2 $3 $4 $5 $ratio")
    echo "RESULT backend=$1 mode=$2 qd=$3 direct_iops=$4 aoe_iops=$5 ratio=$ratio seconds=$seconds"
}

rbd_bench() { # rbd_bench write|read QD: ops/s of `rbd bench` with the cache off
    # rbd bench runs for a byte total, not a time: about $seconds at the IOPS measured on this
    # kind of machine (writes ~5k, reads ~19k), at least 4 MiB.
    local iops=6000 line total
    [[ $1 == read ]] && iops=20000
    total=$((seconds * iops * 4096))
    ((total < 4 << 20)) && total=$((4 << 20))
    line=$(in_gw timeout $((seconds * 6 + 60)) rbd bench --io-type "$1" --io-size 4K --io-threads "$2" \
        --io-total "$total" --io-pattern rand --rbd-cache=false rbd/bench 2>/dev/null | grep -E '^elapsed' | tail -1)
    awk '{ for (i = 1; i < NF; i++) if ($i == "ops/sec:") { printf "%.0f", $(i + 1); exit } }' <<<"$line"
}

aoe_bench() { # aoe_bench rand-write|rand-read QD TARGET: IOPS of aoe bench
    local json
    json=$(ip netns exec "$ini" "$aoe" bench -t "$3" -i aoe0 --mode "$1" --bs 4k --qd "$2" \
        --seconds "$seconds" --json 2>/dev/null) || true
    echo "$json" >>"$out/aoe-bench.json"
    sed -n 's/.*"iops":\([0-9.]*\).*/\1/p' <<<"$json" | awk '{ printf "%.0f", $1 }'
}

IFS=, read -r -a qds <<<"$depths"
say "rbd bench (librbd, --rbd-cache=false), 4 KiB random, ${seconds}s-ish each"
declare -A direct=()
for qd in "${qds[@]}"; do
    direct[write-$qd]=$(rbd_bench write "$qd")
    direct[read-$qd]=$(rbd_bench read "$qd")
done

say "host-sim exporting rbd:rbd/bench, aoe bench from another namespace"
h_spawn hs ip netns exec "$gw" "$host_sim" 1 1 aoe0 "rbd:rbd/bench:conf=$CEPH_CONF" >"$dir/host-sim-rbd.log" 2>&1
h_poll 50 0.2 ip netns exec "$ini" "$aoe" identify -t 1.1 -i aoe0 --timeout 0.5 >/dev/null 2>&1 ||
    { cat "$dir/host-sim-rbd.log" >&2; die "host-sim did not answer"; }
for qd in "${qds[@]}"; do
    record rbd rand-write "$qd" "${direct[write-$qd]:-0}" "$(aoe_bench rand-write "$qd" 1.1)"
    record rbd rand-read "$qd" "${direct[read-$qd]:-0}" "$(aoe_bench rand-read "$qd" 1.1)"
done
h_stop "$hs"

say "qemu-nbd (raw file, --cache=none) vs fio's nbd engine"
truncate -s "${image_mib}M" "$dir/nbd.raw"
head -c $((image_mib < 256 ? image_mib << 20 : 256 << 20)) /dev/urandom | dd of="$dir/nbd.raw" conv=notrunc status=none
h_spawn qn ip netns exec "$gw" qemu-nbd -f raw -t --cache=none -k "$dir/nbd.sock" "$dir/nbd.raw" >"$dir/qemu-nbd.log" 2>&1
h_wait_socket "$dir/nbd.sock" "$qn" 100 || die "qemu-nbd did not start"
fio_bench() { # fio_bench randwrite|randread QD: IOPS of fio's nbd engine
    # Writes are flushed one by one (--fsync=1): AoE acknowledges only durable writes (FUA).
    local sync=()
    [[ $1 == randwrite ]] && sync=(--fsync=1)
    in_gw fio --name=nbd --ioengine=nbd --uri="nbd+unix:///?socket=$dir/nbd.sock" --rw="$1" \
        --bs=4k --iodepth="$2" --time_based --runtime="$seconds" --size="${image_mib}M" \
        "${sync[@]}" --output-format=terse --terse-version=3 2>/dev/null |
        awk -F';' -v w="$1" 'NF > 100 { v = (w == "randwrite") ? $49 : $8 } END { printf "%.0f", v }'
}
declare -A nbd_direct=()
for qd in "${qds[@]}"; do
    nbd_direct[write-$qd]=$(fio_bench randwrite "$qd")
    nbd_direct[read-$qd]=$(fio_bench randread "$qd")
done
h_spawn hs ip netns exec "$gw" "$host_sim" 1 2 aoe0 "nbd+unix:///?socket=$dir/nbd.sock" >"$dir/host-sim-nbd.log" 2>&1
h_poll 50 0.2 ip netns exec "$ini" "$aoe" identify -t 1.2 -i aoe0 --timeout 0.5 >/dev/null 2>&1 ||
    { cat "$dir/host-sim-nbd.log" >&2; die "host-sim (nbd) did not answer"; }
for qd in "${qds[@]}"; do
    record nbd rand-write "$qd" "${nbd_direct[write-$qd]:-0}" "$(aoe_bench rand-write "$qd" 1.2)"
    record nbd rand-read "$qd" "${nbd_direct[read-$qd]:-0}" "$(aoe_bench rand-read "$qd" 1.2)"
done
h_stop "$hs"
h_stop "$qn"

{
    echo "4 KiB random I/O, ${seconds} s per measurement, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "direct: rbd bench --rbd-cache=false (RBD); fio --ioengine=nbd, writes with --fsync=1 (NBD)"
    echo "AoE: aoe bench through host-sim, MTU 9000 (details in aoe-bench.json)"
    echo
    echo "| back end | mode | qd | direct IOPS | AoE IOPS (host-sim) | ratio |"
    echo "|---|---|---|---|---|---|"
    for row in "${results[@]}"; do
        read -r b m q d a r <<<"$row"
        echo "| $b | $m | $q | $d | $a | $r |"
    done
} | tee "$out/table.md"
printf '%s\n' "${results[@]}" >"$out/results.txt"
say "done in $((SECONDS - started)) s"
