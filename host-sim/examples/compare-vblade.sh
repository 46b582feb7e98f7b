#!/bin/bash
# Quick comparison of host-sim and vblade 25 (apt install vblade) on one veth pair in a private
# network namespace, MTU $1, $2 seconds per case. Needs root and release builds:
#   cargo build --release -p aoe-host-sim --bin host-sim --example blast
#   sudo host-sim/examples/compare-vblade.sh 1500 2
set -u
MTU=${1:-1500}; SECS=${2:-3}
NS=hsb$$; A=hba$$; B=hbb$$
cleanup() { [ -n "${TPID:-}" ] && kill $TPID 2>/dev/null; wait 2>/dev/null; ip netns del $NS 2>/dev/null; rm -f /tmp/hsb-$$.img; }
trap cleanup EXIT
ip netns add $NS
ip netns exec $NS ip link add $A mtu $MTU type veth peer name $B mtu $MTU
ip netns exec $NS ip link set $A up; ip netns exec $NS ip link set $B up
head -c 256M /dev/urandom > /tmp/hsb-$$.img; cat /tmp/hsb-$$.img > /dev/null
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BLAST=$ROOT/target/release/examples/blast
for TARGET in host-sim vblade; do
  if [ $TARGET = host-sim ]; then CMD="$ROOT/target/release/host-sim 1 1 $A /tmp/hsb-$$.img"; else CMD="vblade 1 1 $A /tmp/hsb-$$.img"; fi
  ip netns exec $NS $CMD >/dev/null 2>&1 & TPID=$!
  sleep 0.5
  for case in "read seq 1" "read seq 16" "read seq 64" "write seq 16" "write seq 64" "read rand 16" "write rand 16"; do
    set -- $case
    printf "%-8s MTU %5s " $TARGET $MTU
    ip netns exec $NS $BLAST $B 1 1 $1 $2 $3 $SECS $TPID 2>/dev/null || echo failed
  done
  kill $TPID; wait $TPID 2>/dev/null; TPID=
done
