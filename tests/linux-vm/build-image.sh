#!/usr/bin/env bash
# Builds (once, cached) what the Linux-initiator VM boots: Debian's own kernel, unpacked from the
# package `apt-get download` fetches, and an initramfs holding busybox, the real e2fsprogs, GNU
# dd/date/cmp, the kernel modules the guest needs (in dependency order) and guest-init.sh as /init.
#
# Usage: build-image.sh CACHE_DIR
# Prints the image directory (CACHE_DIR/<kernel version>) on stdout; it holds `vmlinuz` and
# `initrd.gz`. A finished image is reused as long as guest-init.sh, this script and
# tests/lib/harness.sh are unchanged.
# Environment: AOE_VM_KERNEL_PKG overrides the kernel package (default: what linux-image-amd64
# depends on today).
set -euo pipefail

cache=${1:?usage: build-image.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../lib/harness.sh
# shellcheck source=tests/lib/harness.sh
. "$lib"
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { printf 'build-image: %s\n' "$*" >&2; }

missing=$(h_missing_tools busybox mke2fs e2fsck cpio gzip depmod modprobe dpkg apt-get ldd)
if [[ -n $missing ]]; then
    log "missing ${missing//$'\n'/ } (apt-get install -y busybox-static e2fsprogs cpio kmod dpkg)"
    exit 1
fi

pkg=${AOE_VM_KERNEL_PKG:-}
if [[ -z $pkg ]]; then
    resolve() {
        apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
    }
    pkg=$(resolve)
    if [[ -z $pkg ]]; then # no package lists yet (a fresh container)
        apt-get -o DPkg::Lock::Timeout=300 -qq update >&2 || true
        pkg=$(resolve)
    fi
    [[ -n $pkg ]] || { log "apt-cache cannot resolve linux-image-amd64"; exit 1; }
fi
kver=${pkg#linux-image-}
image=$cache/$kver
# The image depends on this script, the guest init and the helpers: rebuild when one changes.
stamp=$(cat "$0" "$here/guest-init.sh" "$lib" | sha256sum | cut -c1-16)
if [[ -f $image/stamp && $(cat "$image/stamp") == "$stamp" && -f $image/initrd.gz ]]; then
    echo "$image"
    exit 0
fi

mkdir -p "$image"
kroot=$image/kernel
if [[ ! -f $kroot/boot/vmlinuz-$kver ]]; then
    deb=$(h_fetch_deb "$cache" "$pkg") || { log "cannot download $pkg"; exit 1; }
    rm -rf "$kroot"
    dpkg -x "$deb" "$kroot"
    depmod -b "$kroot" "$kver"
fi
cp "$kroot/boot/vmlinuz-$kver" "$image/vmlinuz"

root=$(mktemp -d "$image/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,run,lib/modules}

h_busybox_tree "$root" # static busybox-static: no libraries to copy

# Copies a dynamically linked program and the libraries it loads, at their own paths.
copy_with_libs() {
    local src=$1 dst=$2 lib
    cp "$src" "$root$dst"
    for lib in $(ldd "$src" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
        if [[ ! -e $root$lib ]]; then
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        fi
    done
}
# The real e2fsprogs replace busybox's mke2fs/e2fsck applets (no ext4 in busybox's).
rm -f "$root"/bin/mke2fs "$root"/bin/mkfs.ext2 "$root"/bin/e2fsck "$root"/bin/fsck*
copy_with_libs "$(command -v mke2fs)" /sbin/mke2fs
copy_with_libs "$(command -v e2fsck)" /sbin/e2fsck
# busybox dd prints no rate and busybox date has no %N: the GNU ones, under their own names.
copy_with_libs /usr/bin/dd /bin/gdd
copy_with_libs /usr/bin/date /bin/gdate
copy_with_libs /usr/bin/cmp /bin/gcmp
cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"

# Modules in load order: modprobe resolves the dependencies of each wanted module.
# virtio_blk: the power-cut test's target (powercut.sh) exports the guest's virtual disks.
wanted=(virtio_pci virtio_net virtio_blk crc32c_generic ext4 aoe)
order=$root/lib/modules/order
: >"$order"
for mod in "${wanted[@]}"; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$mod" | while read -r kind path _; do
        [[ $kind == insmod ]] || continue
        name=$(basename "$path")
        plain=${name%.xz}
        plain=${plain%.zst}
        grep -qx "$plain" "$order" && continue
        # Needs SSE4.2, which TCG's default CPU lacks; crc32c_generic does the same job.
        [[ $plain == crc32c-intel.ko ]] && continue
        case $name in
        *.xz) xz -dc "$path" >"$root/lib/modules/$plain" ;;
        *.zst) zstd -qdc "$path" >"$root/lib/modules/$plain" ;;
        *) cp "$path" "$root/lib/modules/$plain" ;;
        esac
        echo "$plain" >>"$order"
    done
done
grep -qx aoe.ko "$order" || { log "aoe.ko not found in $pkg"; exit 1; }

install -m 0755 "$here/guest-init.sh" "$root/init"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$image/initrd.gz.new"
mv "$image/initrd.gz.new" "$image/initrd.gz"
echo "$stamp" >"$image/stamp"
log "image ready: $image ($(du -h "$image/initrd.gz" | cut -f1) initrd, modules: $(tr '\n' ' ' <"$order"))"
echo "$image"
