#!/usr/bin/env bash
# Installs the Debian package on this machine and checks it as an administrator would meet it:
# the file list (packaging/files.txt), stripped binaries, man pages equal to `--help-man` that
# groff reads without a warning, `systemd-analyze verify` of both units (no systemd needs to
# run), the installed programs serving the netns demo, and a clean purge. Needs root.
#
# Usage: packaging/check-deb.sh PACKAGE.deb
set -euo pipefail
deb=$(realpath "${1:?usage: check-deb.sh PACKAGE.deb}")
repo=$(cd "$(dirname "$0")/.." && pwd)
step() { printf '\n== %s\n' "$*"; }
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }

step "ownership and modes in the archive"
# Every entry root's, and the archive's root directory 0755 (dpkg must not see / as 0700).
listing=$(dpkg-deb -c "$deb")
if grep -v ' root/root ' <<<"$listing"; then fail "entries not owned by root/root (above)"; fi
[[ $(head -n 1 <<<"$listing") == 'drwxr-xr-x root/root'* ]] || fail "./ is not drwxr-xr-x: $(head -n 1 <<<"$listing")"
echo "all entries root/root; ./ is drwxr-xr-x"

step "install $deb"
dpkg -i "$deb"
dpkg -s vblade-rs | grep -E '^(Version|Depends|Installed-Size):'

step "file list"
# Directories every Debian system has are not ours to list.
common='/\.|/etc|/lib|/lib/systemd|/lib/systemd/system|/usr|/usr/sbin|/usr/share|/usr/share/doc|/usr/share/man|/usr/share/man/man8|/var|/var/lib'
dpkg -L vblade-rs | grep -vxE "$common" | sort >/tmp/vblade-rs-files.$$
if ! diff -u "$repo/packaging/files.txt" /tmp/vblade-rs-files.$$; then
    rm -f /tmp/vblade-rs-files.$$
    fail "the package's files differ from packaging/files.txt"
fi
rm -f /tmp/vblade-rs-files.$$
ls -l /usr/sbin/host-sim /usr/sbin/aoe
[[ $(stat -c %a /var/lib/vblade-rs) == 700 ]] || fail "/var/lib/vblade-rs is not mode 700"

step "binaries stripped"
for program in /usr/sbin/host-sim /usr/sbin/aoe; do
    if readelf -S --wide "$program" | grep -qE '\.debug_|\.symtab'; then
        fail "$program has debug information or a symbol table"
    fi
    echo "$program: no .debug_* sections, no .symtab"
done

step "man pages are the --help text, and groff reads them cleanly"
for program in host-sim aoe; do
    page=/usr/share/man/man8/$program.8.gz
    zcat "$page" | cmp - <("/usr/sbin/$program" --help-man) || fail "$page differs from $program --help-man"
    warnings=$(zcat "$page" | groff -man -ww -z 2>&1)
    [[ -z $warnings ]] || fail "groff warns about $page: $warnings"
    echo "$page: equals $program --help-man; groff: no warnings"
done

step "systemd-analyze verify"
out=$(systemd-analyze verify /lib/systemd/system/vblade-rs.service \
    /lib/systemd/system/vblade-rs@instance.service 2>&1) || fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify printed: $out"
echo "vblade-rs.service, vblade-rs@instance.service: verified, no output"

step "the example config: host-sim --check-config reads it (no export uncommented yet)"
if out=$(/usr/sbin/host-sim --check-config /etc/vblade-rs/exports.toml 2>&1); then
    fail "the shipped example has no export, yet --check-config accepted it: $out"
fi
grep -q 'no \[\[export\]\] tables' <<<"$out" || fail "unexpected refusal: $out"
echo "$out"

step "the installed programs run the netns demo"
"$repo/host-sim/tests/netns-demo.sh" --bin /usr/sbin

step "purge"
dpkg --purge vblade-rs
for path in /usr/sbin/host-sim /usr/sbin/aoe /lib/systemd/system/vblade-rs.service \
    /etc/vblade-rs /var/lib/vblade-rs; do
    [[ ! -e $path ]] || fail "$path is still there after purge"
done
echo "purged: no file left"
echo
echo "check-deb: OK"
