#!/usr/bin/env bash
# Runs the firmware's QEMU tests on QEMU 10.0 from bookworm-backports as well, without touching
# the system: apt downloads qemu-system-arm and qemu-system-common 10.0 with a private source
# list and cache, dpkg unpacks them under $DIR (default target/qemu10), and run.sh uses that
# binary with QEMU_MODULE_DIR pointing at its own modules. (Installing 10.0 properly would
# replace Debian 12's 7.2 packages, which other QEMU users on the machine may need.)
#
# Usage: tests/firmware-qemu/qemu10.sh   (about 11 MB downloaded once; then as run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/lib/harness.sh
. tests/lib/harness.sh

dir=${DIR:-$PWD/target/qemu10}
qemu=$dir/root/usr/bin/qemu-system-arm
if [[ ! -x $qemu ]]; then
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
    cat >"$dir/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm-backports main
deb http://deb.debian.org/debian bookworm main
LIST
    apt_private=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
    apt-get "${apt_private[@]}" update -qq
    for pkg in qemu-system-arm/bookworm-backports qemu-system-common/bookworm-backports; do
        deb=$(h_fetch_deb "$dir/debs" "$pkg" "${apt_private[@]}")
        dpkg -x "$deb" "$dir/root"
    done
fi
export QEMU_MODULE_DIR=$dir/root/usr/lib/x86_64-linux-gnu/qemu
"$qemu" --version | head -1
QEMU=$qemu tests/firmware-qemu/run.sh
