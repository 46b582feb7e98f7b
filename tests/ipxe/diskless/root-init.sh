#!/bin/sh
# /sbin/init of the diskless test's root filesystem, which lives on the AoE disk. It proves the
# system runs from there: it checks that / is the AoE partition, writes /proof.txt (with the
# token from the kernel command line) and makes it durable, remounts / read-only so the host
# finds a clean filesystem, and ends QEMU through isa-debug-exit (status 99 = pass).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev

finish() { # $1: value for the isa-debug-exit port (QEMU exits with $1 * 2 + 1)
    printf "\\$(printf %o "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    poweroff -f
}
fail() {
    echo "DISKLESS-FAIL root: $*"
    finish 48
}

echo "DISKLESS-ROOT-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
token="" aoe_root=""
for word in $(cat /proc/cmdline); do
    case $word in
    vbrs_token=*) token=${word#vbrs_token=} ;;
    aoe_root=*) aoe_root=${word#aoe_root=} ;;
    esac
done
root_dev=$(awk '$2 == "/" && $1 != "rootfs" { dev = $1 } END { print dev }' /proc/mounts)
echo "DISKLESS-ROOT-DEVICE $root_dev"
[ "$root_dev" = "/dev/etherd/$aoe_root" ] || fail "/ is $root_dev, not /dev/etherd/$aoe_root"

{
    echo "token=$token"
    echo "root=$root_dev"
    echo "kernel=$(uname -r)"
    echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
} >/proof.txt || fail "write /proof.txt"
sync
mount -o remount,ro / || fail "remount / read-only"
echo "DISKLESS-PROOF-WRITTEN $(tr '\n' ' ' </proof.txt)"
echo "DISKLESS-PASS"
finish 49
