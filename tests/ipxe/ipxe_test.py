#!/usr/bin/env python3
"""Helpers for the iPXE SAN-boot test (tests/ipxe/run.sh); Python 3 standard library only.

Subcommands:
  make-image   build the disk image: boot program (with its plan patched in) at export LBA 0..3,
               the host pattern in every other exported sector, and a distinct "outside" pattern
               in the sectors before/after the export (for the target's -o/-l options).
  check-image  compare the whole file with what it must hold after a passing boot: the sectors
               the plan writes hold the boot program's pattern, every other byte is unchanged.
  mbr          write boot code (up to 440 bytes) and an MBR partition table into an image.
  console      run QEMU, timestamp its console lines into a log, stop it early on a failure
               marker or a timeout, and exit with QEMU's exit status (124 on timeout).

The plan and the sector pattern here must match tests/ipxe/bootsector.S.
"""

import argparse
import os
import select
import signal
import struct
import subprocess
import sys
import time

SECTOR = 512
STAGE2_SECTORS = 3
BOOT_SECTORS = 1 + STAGE2_SECTORS
PLAN_MAX_OPS = 24
BUFFER_MAX_SECTORS = 56
PLAN_MAGIC = b"VBRSPLAN"
PATTERN_MAGIC = b"VBLADERS"
KIND_HOST = 0x00
KIND_BOOT = 0x80
KIND_OUTSIDE = 0x40
# iPXE loads LBA 0 through its own CHS emulation, with a geometry guessed from the partition
# table (255x63 without one); a disk smaller than one cylinder then fails `sanboot` with EIO
# (measured with Debian's 1.0.0+git-20190125: 16064 sectors fail, 16065 boot). The boot sector
# therefore carries one dummy partition that implies GEOMETRY (heads, sectors per track).
GEOMETRY = (2, 32)
DUMMY_PARTITION_START = 32
MIN_SECTORS = 256

# Printed by the boot program, by iPXE or by SeaBIOS when the boot cannot succeed.
FAILURE_MARKERS = (
    b"VBRS-FAIL",
    b"IPXE-SCRIPT-FAILED",
    b"No bootable device",
    b"Boot failed",
    b"DISKLESS-FAIL",
    b"Kernel panic",
)

_RAMP = bytes(range(256)) * 3


def pattern_sector(lba, kind):
    """The 512 bytes the host pattern (kind 0), the boot program's writes (kind 0x80) or the
    outside-the-export filler (kind 0x40) put at `lba`."""
    start = (lba + 16 + kind) & 0xFF
    return struct.pack("<IB3x", lba & 0xFFFFFFFF, kind) + PATTERN_MAGIC + _RAMP[start : start + 496]


def plan(sectors):
    """The operations the boot program runs on an export of `sectors` sectors, as
    (op, lba, count); 'R' reads the host pattern, 'W' writes the boot pattern, 'V' reads it
    back. Reads span iPXE's 2-sector AoE commands with odd counts; writes hit a low LBA, the
    last LBA and an odd run near the end; the neighbours of every write are read afterwards."""
    last = sectors - 1
    ops = [
        ("R", BOOT_SECTORS, 1),  # first pattern sector
        ("R", BOOT_SECTORS + 1, 5),  # odd count: 2 + 2 + 1 AoE commands
        ("R", sectors // 2 - 3, 7),  # middle
        ("R", 64, BUFFER_MAX_SECTORS),  # the largest transfer the buffer holds
        ("R", last, 1),  # last sector
        ("R", sectors - 17, 17),  # a run that ends on the last sector
        ("W", 8, 1),
        ("W", last, 1),
        ("W", sectors - 12, 5),
        ("V", 8, 1),
        ("V", last, 1),
        ("V", sectors - 12, 5),
        ("R", 7, 1),  # neighbours: the writes stayed where they belong
        ("R", 9, 1),
        ("R", sectors - 13, 1),
        ("R", sectors - 7, 6),
    ]
    assert len(ops) <= PLAN_MAX_OPS
    return ops


def written_lbas(sectors):
    return {lba + i for op, lba, count in plan(sectors) if op == "W" for i in range(count)}


def patched_boot(boot_bin, sectors):
    """The boot program with the plan for `sectors` patched in."""
    code = bytearray(boot_bin)
    if len(code) != BOOT_SECTORS * SECTOR or code[510:512] != b"\x55\xaa":
        raise SystemExit(f"boot program must be {BOOT_SECTORS * SECTOR} bytes ending sector 0 in 55aa")
    at = code.find(PLAN_MAGIC)
    if at < 0:
        raise SystemExit("boot program has no plan magic")
    body = struct.pack("<Q", sectors)
    for op, lba, count in plan(sectors):
        body += struct.pack("<BBI", ord(op), count, lba)
    body += b"\0"
    room = 8 + 6 * PLAN_MAX_OPS + 1
    code[at + 8 : at + 8 + room] = body.ljust(room, b"\0")
    code[446:462] = dummy_partition(sectors)
    return bytes(code)


def dummy_partition(sectors):
    """A partition table entry (type 0xda, "non-filesystem data") over LBA 32..end whose CHS
    start (cylinder 0, head 1) and end (last head, last sector) make iPXE guess GEOMETRY."""
    heads, per_track = GEOMETRY
    start = DUMMY_PARTITION_START
    assert start == per_track  # cylinder 0, head 1, sector 1
    end = min(sectors - 1, 1024 * heads * per_track - 1)
    cylinder = end // (heads * per_track)
    end_chs = bytes([heads - 1, per_track | ((cylinder >> 2) & 0xC0), cylinder & 0xFF])
    return (bytes([0, 1, 1, 0, 0xDA]) + end_chs
            + struct.pack("<II", start, sectors - start))


def expected_image(boot, sectors, offset, trailer, after_boot):
    """The whole file, before the boot (after_boot False) or after a passing one."""
    written = written_lbas(sectors) if after_boot else set()
    parts = [pattern_sector(i, KIND_OUTSIDE) for i in range(offset)]
    parts.append(boot)
    for lba in range(BOOT_SECTORS, sectors):
        parts.append(pattern_sector(lba, KIND_BOOT if lba in written else KIND_HOST))
    parts += [pattern_sector(offset + sectors + i, KIND_OUTSIDE) for i in range(trailer)]
    return b"".join(parts)


def check_sectors(args):
    if args.sectors < MIN_SECTORS or args.sectors >= 1 << 32:
        raise SystemExit(f"--sectors must be in {MIN_SECTORS}..2^32-1")


def cmd_make_image(args):
    check_sectors(args)
    with open(args.boot, "rb") as f:
        boot = patched_boot(f.read(), args.sectors)
    with open(args.image, "wb") as f:
        f.write(expected_image(boot, args.sectors, args.offset, args.trailer, False))
    return 0


def cmd_check_image(args):
    check_sectors(args)
    with open(args.boot, "rb") as f:
        boot = patched_boot(f.read(), args.sectors)
    want = expected_image(boot, args.sectors, args.offset, args.trailer, args.after_boot)
    with open(args.image, "rb") as f:
        have = f.read()
    if args.export_only:
        # Only the exported sectors are ours (e.g. a blade keeps its own state after them).
        start = args.offset * SECTOR
        want = want[start : start + args.sectors * SECTOR]
        have = have[start : start + args.sectors * SECTOR]
    if have == want:
        if not args.after_boot:
            print("image ok: unchanged")
            return 0
        written = sorted(written_lbas(args.sectors))
        rest = "every other exported byte" if args.export_only else "every other byte"
        print(f"image ok: {len(written)} written sectors hold the boot pattern "
              f"(export LBAs {', '.join(map(str, written))}), {rest} unchanged")
        return 0
    if len(have) != len(want):
        print(f"image size changed: {len(have)} bytes, expected {len(want)}")
        return 1
    bad = [i for i in range(0, len(want), SECTOR) if have[i : i + SECTOR] != want[i : i + SECTOR]]
    for i in bad[:8]:
        file_sector = i // SECTOR + (args.offset if args.export_only else 0)
        lba = file_sector - args.offset
        print(f"file sector {file_sector} (export LBA {lba}) differs; first 16 bytes "
              f"{have[i:i + 16].hex()} expected {want[i:i + 16].hex()}")
    print(f"image check FAILED: {len(bad)} sectors differ")
    return 1


def chs(lba):
    """The CHS bytes of `lba` for 255 heads and 63 sectors, or the 1023/254/63 marker beyond."""
    cylinder, rest = divmod(lba, 255 * 63)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head, sector = divmod(rest, 63)
    return bytes([head, (sector + 1) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF])


def cmd_mbr(args):
    with open(args.code, "rb") as f:
        code = f.read()
    if len(code) > 440:
        raise SystemExit(f"{args.code}: {len(code)} bytes of boot code, at most 440 fit")
    if not 1 <= len(args.partition) <= 4:
        raise SystemExit("give 1 to 4 --partition START:SECTORS:TYPE[:active]")
    table = b""
    for spec in args.partition:
        fields = spec.split(":")
        try:
            start, count, kind = int(fields[0]), int(fields[1]), int(fields[2], 0)
        except (IndexError, ValueError):
            raise SystemExit(f"bad --partition {spec!r}: want START:SECTORS:TYPE[:active]")
        active = fields[3:] == ["active"]
        if start < 1 or count < 1 or not 0 < kind < 256 or fields[3:] not in ([], ["active"]):
            raise SystemExit(f"bad --partition {spec!r}")
        table += (bytes([0x80 if active else 0]) + chs(start) + bytes([kind])
                  + chs(start + count - 1) + struct.pack("<II", start, count))
    sector = code.ljust(440, b"\0") + b"\0" * 6 + table.ljust(64, b"\0") + b"\x55\xaa"
    with open(args.image, "r+b") as f:
        f.write(sector)
    return 0


def cmd_console(args):
    """Run the command; print and log its console with time stamps since start."""
    log = open(args.log, "ab")
    start = time.monotonic()
    proc = subprocess.Popen(args.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        return _drive_console(args, log, start, proc)
    finally:
        # Also on SIGTERM/SIGINT from run.sh's cleanup: never leave QEMU behind.
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def _drive_console(args, log, start, proc):
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    pending = b""
    deadline = start + args.timeout
    stop_at = None
    seen = []
    reason = None

    def emit(line):
        stamp = f"{time.monotonic() - start:7.3f} ".encode()
        text = line.rstrip(b"\r\n").replace(b"\r", b"")
        log.write(stamp + text + b"\n")
        log.flush()
        if not args.quiet:
            sys.stdout.buffer.write(b"  " + stamp + text + b"\n")
            sys.stdout.flush()

    while True:
        now = time.monotonic()
        if stop_at is not None and now >= stop_at:
            break
        if now >= deadline:
            reason = f"timeout after {args.timeout} s"
            break
        ready, _, _ = select.select([fd], [], [], min(0.1, deadline - now))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                emit(line)
                for marker in FAILURE_MARKERS:
                    if marker in line and stop_at is None:
                        seen.append(marker.decode())
                        # Give the boot program a moment to exit with its step number.
                        stop_at = time.monotonic() + 1.0
    if pending:
        emit(pending)
    status = proc.poll()
    if status is None:
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        status = 124 if reason else status
    elapsed = time.monotonic() - start
    summary = f"qemu exit status {status} after {elapsed:.2f} s"
    if reason:
        summary += f" ({reason})"
    if seen:
        summary += f" (failure marker: {', '.join(seen)})"
    log.write((summary + "\n").encode())
    log.close()
    print(summary)
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("make-image", "check-image"):
        p = sub.add_parser(name)
        p.add_argument("--boot", required=True, help="assembled boot program (2048 bytes)")
        p.add_argument("--image", required=True)
        p.add_argument("--sectors", type=int, required=True, help="exported sectors")
        p.add_argument("--offset", type=int, default=0, help="file sectors before the export")
        p.add_argument("--trailer", type=int, default=0, help="file sectors after the export")
        if name == "check-image":
            p.add_argument("--export-only", action="store_true",
                           help="compare only the exported sectors, not the rest of the file")
            p.add_argument("--after-boot", action="store_true",
                           help="expect the plan's writes (default: expect the file unchanged)")
    p = sub.add_parser("mbr")
    p.add_argument("--image", required=True)
    p.add_argument("--code", required=True, help="boot code, at most 440 bytes")
    p.add_argument("--partition", action="append", default=[],
                   help="START:SECTORS:TYPE[:active], in 512-byte sectors; repeat up to 4 times")
    p = sub.add_parser("console")
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.cmd == "console":
        signal.signal(signal.SIGTERM, _terminate)
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        if not args.command:
            parser.error("console needs a command")
        return cmd_console(args)
    return {"make-image": cmd_make_image, "check-image": cmd_check_image,
            "mbr": cmd_mbr}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
