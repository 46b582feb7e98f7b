#!/bin/sh
# /init of the diskless test's initramfs (busybox sh; laid over tests/linux-vm's initramfs, whose
# busybox and modules it uses). It loads the modules in their order, brings eth0 up, waits for
# the AoE partition named by `aoe_root=` on the kernel command line, mounts it read-write and
# hands over to its /sbin/init with switch_root. Every step prints a DISKLESS- line; a failure
# prints DISKLESS-FAIL and powers off, so the host sees it at once.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "DISKLESS-INITRAMFS uptime=$(cut -d' ' -f1 /proc/uptime)"

fail() {
    echo "DISKLESS-FAIL initramfs: $*"
    dmesg | grep -iE 'aoe|etherd|ext4|virtio' | tail -n 30 | sed 's/^/dmesg: /'
    poweroff -f
}

aoe_root=""
for word in $(cat /proc/cmdline); do
    case $word in aoe_root=*) aoe_root=${word#aoe_root=} ;; esac
done
[ -n "$aoe_root" ] || fail "no aoe_root= on the kernel command line"

while read -r module; do
    insmod "/lib/modules/$module" || fail "insmod $module"
done </lib/modules/order
ip link set eth0 up || fail "eth0 up"

# aoe discovers on module load, before eth0 was up: ask again until the partition shows up.
tries=0
while [ ! -b "/dev/etherd/$aoe_root" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 60 ] || fail "/dev/etherd/$aoe_root did not appear in 30 s"
    [ -c /dev/etherd/discover ] && echo >/dev/etherd/discover
    sleep 0.5
done
echo "DISKLESS-AOE-ROOT /dev/etherd/$aoe_root uptime=$(cut -d' ' -f1 /proc/uptime)"

mkdir -p /newroot
mount -t ext4 -o rw "/dev/etherd/$aoe_root" /newroot || fail "mount /dev/etherd/$aoe_root"
[ -x /newroot/sbin/init ] || fail "no /sbin/init on the root filesystem"
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
