#!/usr/bin/env bash
# Builds the Debian package of vblade-rs: host-sim and aoe (the `dist` profile: release code,
# no debug information, stripped), their man pages (made by `--help-man` from the same text
# as `--help`), the systemd units, the example /etc/vblade-rs/exports.toml and the
# maintainer scripts. Our own script around `dpkg-deb --build` rather than cargo-deb: it needs
# nothing but dpkg and binutils, where cargo-deb would be one more crate tree to compile in CI.
#
# Usage: packaging/build-deb.sh [--out DIR] [--no-build]
#   --out DIR    where the .deb goes (default target/debian)
#   --no-build   use target/dist as it is
# Prints the path of the package on stdout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=target/debian build=1
while (($#)); do
    case $1 in
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if ((build)); then
    cargo build --profile dist -p aoe-host-sim -p aoe-initiator --bins >&2
fi
bin=$repo/target/dist
for program in host-sim aoe; do
    [[ -x $bin/$program ]] || { echo "build-deb.sh: $bin/$program is missing" >&2; exit 1; }
done

version=$("$bin/host-sim" --version | awk '{ print $2 }')
revision=1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -D -m 755 "$bin/host-sim" "$stage/usr/sbin/host-sim"
install -D -m 755 "$bin/aoe" "$stage/usr/sbin/aoe"
install -d -m 755 "$stage/usr/share/man/man8"
"$bin/host-sim" --help-man | gzip -9n >"$stage/usr/share/man/man8/host-sim.8.gz"
"$bin/aoe" --help-man | gzip -9n >"$stage/usr/share/man/man8/aoe.8.gz"
install -D -m 644 packaging/exports.toml "$stage/etc/vblade-rs/exports.toml"
install -D -m 644 packaging/vblade-rs.service "$stage/lib/systemd/system/vblade-rs.service"
install -D -m 644 packaging/vblade-rs@.service "$stage/lib/systemd/system/vblade-rs@.service"
install -D -m 644 packaging/README.md "$stage/usr/share/doc/vblade-rs/README.md"
install -D -m 644 packaging/debian/copyright "$stage/usr/share/doc/vblade-rs/copyright"
install -d -m 700 "$stage/var/lib/vblade-rs"

# The newest glibc symbol version either program uses is the glibc it needs.
glibc=$(objdump -T "$bin/host-sim" "$bin/aoe" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' |
    sort -uV | tail -n 1)
install -d -m 755 "$stage/DEBIAN"
install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
    "$stage/DEBIAN/"
install -m 644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: vblade-rs
Version: $version-$revision
Architecture: $arch
Maintainer: vblade-rs developers <vblade-rs@invalid.example>
Installed-Size: $(du -sk "$stage" | cut -f1)
Depends: libc6 (>= $glibc), libgcc-s1, util-linux
Suggests: aoetools
Section: admin
Priority: optional
Description: ATA over Ethernet target (vblade-compatible) and AoE admin tool
 host-sim exports files and block devices as AoE targets. It takes vblade's
 command line, so it replaces vblade in scripts and in Debian's
 /etc/vblade.conf.d units (vblade-rs@NAME), and serves many exports from one
 TOML file (vblade-rs.service). Config strings, MAC masks and reservations
 survive restarts; exported files are locked, and a second target with the
 same shelf.slot on the LAN is refused; Prometheus metrics on request.
 .
 aoe discovers, checks, reads, writes, verifies and benchmarks AoE targets from
 userspace, and shows and drives the Linux aoe driver's devices.
CONTROL

mkdir -p "$out"
deb=$out/vblade-rs_$version-${revision}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
