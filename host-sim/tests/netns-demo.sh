#!/usr/bin/env bash
# The newcomer's demo: two private network namespaces joined by a veth pair (MTU 9000), a
# sparse 64 MiB disk exported by host-sim in one, and the `aoe` initiator in the other, which
# discovers the target, writes 4 MiB of random data, reads it back, compares, verifies the
# whole export and runs a 2-second benchmark. Sends nothing on any real interface.
#
# Usage: host-sim/tests/netns-demo.sh [--no-build | --bin DIR]
# As a normal user it builds with your cargo, then runs the rest through sudo (namespaces and
# raw sockets need root). As root it builds too, unless given --no-build. With --bin DIR it
# runs the host-sim and aoe of DIR (e.g. /usr/sbin, from the Debian package) and builds
# nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
script=$PWD/host-sim/tests/netns-demo.sh

bin=$PWD/target/release build=1
case ${1:-} in
--no-build) build=0 ;;
--bin) bin=${2:?--bin needs a directory}; build=0 ;;
"") ;;
*) echo "netns-demo: unknown option $1 (--no-build, --bin DIR)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
    if ((build)); then
        cargo build --release -p aoe-host-sim -p aoe-initiator --bins
        exec sudo "$script" --no-build
    fi
    exec sudo "$script" "$@"
fi
if ((build)); then
    cargo build --release -p aoe-host-sim -p aoe-initiator --bins
fi
if [ ! -x "$bin/host-sim" ] || [ ! -x "$bin/aoe" ]; then
    echo "netns-demo: $bin/host-sim and $bin/aoe are missing: run cargo build --release -p aoe-host-sim -p aoe-initiator" >&2
    exit 1
fi
echo "netns-demo: $bin/host-sim ($("$bin/host-sim" --version))"
if ! command -v ip >/dev/null; then
    apt-get update -qq && apt-get install -y -qq iproute2
fi

ns_target=aoe-demo-t-$$
ns_init=aoe-demo-i-$$
if_target=dt$$
if_init=di$$
work=$(mktemp -d)
target_pid=

cleanup() {
    if [ -n "$target_pid" ]; then
        kill "$target_pid" 2>/dev/null || true
        wait "$target_pid" 2>/dev/null || true
    fi
    ip netns del "$ns_target" 2>/dev/null || true
    ip netns del "$ns_init" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }
aoe() { ip netns exec "$ns_init" "$bin/aoe" "$@" -i "$if_init"; }

step "namespaces $ns_target and $ns_init, veth $if_target <-> $if_init, MTU 9000"
ip netns add "$ns_target"
ip netns add "$ns_init"
ip -n "$ns_target" link add "$if_target" mtu 9000 type veth peer name "$if_init" \
    netns "$ns_init" mtu 9000
ip -n "$ns_target" link set "$if_target" up
ip -n "$ns_init" link set "$if_init" up

step "host-sim exports a sparse 64 MiB file as e1.1"
truncate -s 64M "$work/disk.img"
ip netns exec "$ns_target" "$bin/host-sim" 1 1 "$if_target" "$work/disk.img" &
target_pid=$!
for _ in $(seq 50); do
    if aoe identify -t 1.1 --timeout 0.2 >/dev/null 2>&1; then break; fi
    sleep 0.1
done

step "aoe discover"
aoe discover
step "aoe identify -t 1.1"
aoe identify -t 1.1

step "write 4 MiB of random data, read it back, compare"
head -c 4M /dev/urandom >"$work/in.bin"
aoe write "$work/in.bin" -t 1.1
aoe read "$work/out.bin" -t 1.1 --count 8192
cmp "$work/in.bin" "$work/out.bin"
echo "read back: identical"

step "verify the whole export (pattern write, flush, read back)"
aoe verify -t 1.1

step "benchmark: sequential read, 2 s"
aoe bench -t 1.1 --mode seq-read --seconds 2

step "stop host-sim (SIGTERM: finish in-flight writes, flush, exit 0)"
kill -TERM "$target_pid"
wait "$target_pid"
target_pid=
echo
echo "demo OK"
