#!/usr/bin/env bash
# A single-node Ceph cluster (one monitor, one OSD, pool "rbd") in a directory of the test's own,
# for the RBD tests and benchmarks. No mgr, no containers, no systemd: the daemons run as plain
# processes, write pid files into DIR/run and are stopped by those PIDs.
#
# Usage: tests/ceph/cluster.sh up DIR [--addr ADDR] [--store memstore|bluestore] [--size MIB]
#        tests/ceph/cluster.sh down DIR
#        tests/ceph/cluster.sh status DIR
#
#   up      a fresh cluster in DIR (wiped first), unless the one in DIR already runs: then
#           nothing changes. Prints `CEPH_CONF=DIR/ceph.conf` last; clients find the cluster
#           through that variable (rbd, ceph, qemu-nbd's rbd driver, host-sim's librados).
#   down    stops the daemons by their pid files (SIGTERM, SIGKILL after 10 s) and removes
#           DIR. Never fails; safe to call twice.
#   status  exit 0 when both daemons of DIR run.
#
#   --addr ADDR   the address the monitor and OSD bind to (default 127.0.0.1). A cluster on
#                 127.0.0.1 is reachable only from its own network namespace: run this script
#                 with `ip netns exec NS` and give an address of NS that the clients' namespaces
#                 reach (a veth or bridge address) when gateways run in other namespaces.
#   --store S     memstore (default: fastest start, RAM grows with data written; small tests) or
#                 bluestore (a block file in DIR, needs O_DIRECT: DIR must not be on tmpfs).
#   --size MIB    the OSD's capacity (default 2048 for memstore, 4096 for bluestore).
#
# Needs root and the Debian packages ceph-mon ceph-osd ceph-common (installed when missing,
# unless AOE_CEPH_NO_INSTALL=1).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

(($# >= 2)) || { usage >&2; exit 2; }
action=$1 dir=$2
shift 2
addr=127.0.0.1 store=memstore size=""
while (($#)); do
    (($# >= 2)) || { echo "cluster.sh: $1 needs a value" >&2; exit 2; }
    case $1 in
    --addr) addr=$2 ;;
    --store) store=$2 ;;
    --size) size=$2 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
[[ $store == memstore || $store == bluestore ]] || { echo "cluster.sh: --store memstore|bluestore" >&2; exit 2; }
size=${size:-$([[ $store == memstore ]] && echo 2048 || echo 4096)}

say() { printf '[ceph %s] %s\n' "$(date +%T)" "$*" >&2; }

# alive NAME: the daemon NAME (mon.a, osd.0) of DIR runs.
alive() {
    local pid
    pid=$(cat "$dir/run/$1.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

stop_daemons() {
    local name pid i
    for name in osd.0 mon.a; do
        pid=$(cat "$dir/run/$name.pid" 2>/dev/null) || continue
        [[ -n $pid ]] || continue
        # Only the PID the daemon wrote itself, and only while it is still that daemon.
        grep -qs "ceph-${name%%.*}" "/proc/$pid/cmdline" || continue
        kill -TERM "$pid" 2>/dev/null || continue
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

case $action in
status)
    alive mon.a && alive osd.0
    exit
    ;;
down)
    [[ -d $dir ]] || exit 0
    stop_daemons
    rm -rf "$dir"
    exit 0
    ;;
up) ;;
*) usage >&2; exit 2 ;;
esac

if alive mon.a && alive osd.0; then
    say "already running in $dir"
    echo "CEPH_CONF=$dir/ceph.conf"
    exit 0
fi

packages=(ceph-mon ceph-osd ceph-common uuid-runtime)
missing=()
for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ -z ${AOE_CEPH_NO_INSTALL:-} ]] || { echo "cluster.sh: missing packages: ${missing[*]}" >&2; exit 1; }
    say "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 -qq update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq install -y \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

started=$SECONDS
stop_daemons
rm -rf "$dir"
mkdir -p "$dir"/{run,log,mon,osd}
dir=$(cd "$dir" && pwd)
fsid=$(uuidgen)
conf=$dir/ceph.conf
keyring=$dir/keyring

{
    cat <<EOF
[global]
fsid = $fsid
mon host = [v2:$addr:3300,v1:$addr:6789]
public addr = $addr
keyring = $keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.\$pid.asok
log file = $dir/log/\$name.log
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
ms bind ipv6 = false

[mon]
mon data = $dir/mon
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
osd data = $dir/osd
osd objectstore = $store
EOF
    if [[ $store == memstore ]]; then
        echo "memstore device bytes = $((size << 20))"
    else
        echo "bluestore block create = true"
        echo "bluestore block size = $((size << 20))"
        echo "bluestore fsck on mkfs = false"
    fi
} >"$conf"
export CEPH_CONF=$conf

ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$fsid" --addv a "[v2:$addr:3300,v1:$addr:6789]" "$dir/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$keyring"
ceph-mon -i a
say "monitor up on $addr ($((SECONDS - started)) s)"

osd_uuid=$(uuidgen)
osd_key=$(ceph-authtool --gen-print-key)
osd_id=$(echo "{\"cephx_secret\": \"$osd_key\"}" | ceph osd new "$osd_uuid" -i -)
printf '[osd.%s]\n\tkey = %s\n' "$osd_id" "$osd_key" >"$dir/osd/keyring"
ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" --keyring "$dir/osd/keyring" >/dev/null 2>&1 ||
    { echo "cluster.sh: ceph-osd --mkfs failed (see $dir/log)" >&2; exit 1; }
ceph-osd -i "$osd_id" --keyring "$dir/osd/keyring" 2>>"$dir/log/osd-start.log"
say "OSD $osd_id up ($store, $size MiB, $((SECONDS - started)) s)"

ceph osd pool create rbd 8 8 >/dev/null 2>&1
ceph osd pool application enable rbd rbd >/dev/null 2>&1
rbd pool init rbd
# The first write blocks until the placement groups are active: the cluster is usable then.
echo ready | timeout 60 rados -p rbd put aoe-cluster-ready - ||
    { echo "cluster.sh: the pool did not become writable in 60 s" >&2; exit 1; }
say "pool rbd ready in $((SECONDS - started)) s"
echo "CEPH_CONF=$conf"
