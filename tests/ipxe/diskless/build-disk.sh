#!/usr/bin/env bash
# Builds the disk a PC boots diskless from over AoE (the `diskless` case of tests/ipxe/run.sh):
#   LBA 0      syslinux's MBR (boots the active partition) and an MBR partition table
#   p1         ext4 root filesystem: busybox (static) and root-init.sh as /sbin/init
#   p2 active  FAT16 boot partition: syslinux (ldlinux.sys/.c32), syslinux.cfg, Debian's kernel
#              and an initramfs (tests/linux-vm's, with initramfs-init.sh laid over it as /init)
# Nothing is mounted: mke2fs -d fills the ext4 at its offset, mtools fill the FAT, and the
# partition table is written by ipxe_test.py.
#
# Usage: build-disk.sh OUT_IMAGE AOE_ROOT TOKEN [CACHE_DIR]
#   AOE_ROOT  the root partition as the guest's aoe driver names it, e.g. e0.0p1
#   TOKEN     a word the booted system writes into /proof.txt
#   CACHE_DIR the kernel cache shared with tests/linux-vm (default target/linux-vm/cache)
# Needs: syslinux, syslinux-common, mtools, e2fsprogs, busybox-static, cpio, gzip, and what
# tests/linux-vm/build-image.sh needs (it fetches and unpacks Debian's kernel package).
set -euo pipefail

out=${1:?usage: build-disk.sh OUT_IMAGE AOE_ROOT TOKEN [CACHE_DIR]}
aoe_root=${2:?AOE_ROOT}
token=${3:?TOKEN}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source=tests/lib/harness.sh
. "$repo/tests/lib/harness.sh"
cache=${4:-${AOE_VM_CACHE:-$repo/target/linux-vm/cache}}

# Layout in 512-byte sectors; 64 MiB in all.
disk_sectors=131072
root_start=2048 root_sectors=32768
boot_start=$((root_start + root_sectors)) boot_sectors=65536

log() { printf 'build-disk: %s\n' "$*" >&2; }
missing=$(h_missing_tools mformat mcopy syslinux mke2fs busybox cpio gzip python3)
if [[ -n $missing ]]; then
    log "missing ${missing//$'\n'/ } (apt-get install -y syslinux syslinux-common mtools e2fsprogs busybox-static cpio)"
    exit 1
fi
syslinux_mbr=/usr/lib/syslinux/mbr/mbr.bin
[[ -r $syslinux_mbr ]] || { log "missing $syslinux_mbr (apt-get install -y syslinux-common)"; exit 1; }

# Debian's kernel and a module-carrying initramfs, built and cached by the linux-vm test.
[[ -f $repo/tests/linux-vm/build-image.sh ]] ||
    { log "needs tests/linux-vm/build-image.sh (the linux-vm test's kernel cache)"; exit 1; }
kimage=$(bash "$repo/tests/linux-vm/build-image.sh" "$cache")
[[ -f $kimage/vmlinuz && -f $kimage/initrd.gz ]] || { log "no kernel image in $kimage"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vbrs-diskless.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The initramfs: linux-vm's archive, then ours; the later /init wins.
mkdir -p "$work/overlay"
install -m 0755 "$here/initramfs-init.sh" "$work/overlay/init"
(cd "$work/overlay" && echo init | cpio -o -H newc --quiet) | gzip -1 >"$work/overlay.gz"
cat "$kimage/initrd.gz" "$work/overlay.gz" >"$work/initrd.gz"

# The root filesystem.
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc}
h_busybox_tree "$root"
install -m 0755 "$here/root-init.sh" "$root/sbin/init"
echo "vblade-rs diskless root, written by tests/ipxe/diskless/build-disk.sh" >"$root/etc/motd"

rm -f "$out"
truncate -s $((disk_sectors * 512)) "$out"
mke2fs -q -F -t ext4 -L vbrs-root -E offset=$((root_start * 512)) -d "$root" "$out" \
    $((root_sectors / 2))k

# The boot partition: FAT16 whose hidden-sector count is its start, as ldlinux.sys expects.
boot=$work/boot.img
mformat -i "$boot" -C -T "$boot_sectors" -H "$boot_start" -h 255 -s 63 -v VBRSBOOT ::
syslinux --install "$boot"
cat >"$work/syslinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
SAY VBRS-SYSLINUX loading Debian's kernel and initramfs through int 13h (iPXE, AoE)
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 loglevel=4 panic=-1 aoe_root=$aoe_root vbrs_token=$token
CFG
mcopy -i "$boot" "$work/syslinux.cfg" "$kimage/vmlinuz" "$work/initrd.gz" ::/
dd if="$boot" of="$out" bs=512 seek="$boot_start" conv=notrunc status=none

python3 "$here/../ipxe_test.py" mbr --image "$out" --code "$syslinux_mbr" \
    --partition "$root_start:$root_sectors:0x83" --partition "$boot_start:$boot_sectors:0x06:active"
log "disk ready: $out (root $aoe_root = sectors $root_start+$root_sectors, boot = $boot_start+$boot_sectors, kernel $(basename "$kimage"))"
