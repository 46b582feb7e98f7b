#!/usr/bin/env python3
"""host-sim on real storage: the benchmark of issue 12, item 5, beside target-bench.py (whose
namespaces, process handling and `aoe bench` runs it reuses; target-bench.py keeps the tmpfs
table).

One run writes a backing file on a real filesystem (by default under target/ of this
checkout, which must not be tmpfs), then for each workload (4 KiB random read and write, 64 KiB
sequential read and write) and queue depth (1, 16, 64) measures, on that same file:

* the ceiling, `fio` with its io_uring engine straight on the file: `fio-direct` (O_DIRECT;
  writes with `--sync=dsync`, the durability host-sim's default gives) and `fio-direct-nosync`
  (O_DIRECT writes without sync: what a page-cache acknowledgement hides);
* host-sim in its three modes: `host-sim` (durable default, page cache), `host-sim-d` (`-d`,
  O_DIRECT, durable), `host-sim-wb` (`--writeback`, vblade's page-cache acknowledgement);
* Debian's vblade: `vblade` (page cache, unsafe) and `vblade-d` (`-d`);

each target driven by `aoe bench` over a veth pair, all at one MTU (9000 by default). The
page cache is dropped for the file (posix_fadvise DONTNEED after fsync) before every target
start, so reads come from the disk. Output: per cell the IOPS of every configuration and the
ratios the issue asks for side by side (host-sim-d / fio-direct for reads, durable host-sim /
fio-direct for writes, host-sim / vblade), as table.md / table.txt in --out, runs.jsonl, and
`RESULT` lines.

Needs root, iproute2, fio, vblade (`apt-get install -y fio vblade`).
"""

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("target_bench", os.path.join(HERE, "target-bench.py"))
tb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tb)

WORKLOADS = [("rand-read", 4096), ("rand-write", 4096), ("seq-read", 65536),
             ("seq-write", 65536)]
FIO_RW = {"rand-read": "randread", "rand-write": "randwrite", "seq-read": "read",
          "seq-write": "write"}
# name: (program, options)
TARGETS = {
    "host-sim": ("host-sim", []),
    "host-sim-d": ("host-sim", ["-d"]),
    "host-sim-wb": ("host-sim", ["--writeback"]),
    "vblade": ("vblade", []),
    "vblade-d": ("vblade", ["-d"]),
}
CEILINGS = ["fio-direct", "fio-direct-nosync"]


class DiskTarget:
    """A target configuration for target-bench's start_target."""

    def __init__(self, name):
        self.name = name
        self.kind, self.options = TARGETS[name]

    def command(self, bins, disk, _size):
        program = os.path.join(bins, "host-sim") if self.kind == "host-sim" else "vblade"
        return ["ip", "netns", "exec", tb.NS_TARGET, program, "-b", "64", *self.options,
                str(tb.SHELF), str(tb.SLOT), tb.IF_TARGET, disk]


def filesystem_type(path):
    """The type of the filesystem holding `path` (from /proc/mounts, longest mount prefix)."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            _, point, fstype = line.split()[:3]
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, kind = point, fstype
    return kind


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write_file(path, size):
    """Writes every block once (reads of holes would never reach the disk)."""
    chunk = b"\x5a" * (4 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())


def fio_once(path, size, mode, bs, qd, seconds, sync):
    cmd = ["fio", "--name=ceiling", f"--filename={path}", "--ioengine=io_uring", "--direct=1",
           f"--rw={FIO_RW[mode]}", f"--bs={bs}", f"--iodepth={qd}", f"--size={size}",
           f"--runtime={seconds}", "--time_based", "--output-format=json"]
    if sync and "write" in mode:
        cmd.append("--sync=dsync")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise tb.BenchError(f"{shlex.join(cmd)} failed: {done.stderr.strip()}")
    job = json.loads(done.stdout)["jobs"][0]
    side = job["write"] if "write" in mode else job["read"]
    return {"iops": side["iops"], "mb_per_s": side["bw_bytes"] / 1e6,
            "p99_us": side["clat_ns"]["percentile"].get("99.000000", 0) / 1000}


def aoe_once(bins, mode, bs, qd, seconds):
    cmd = tb.aoe_cmd(bins, "bench", "--mode", mode, "--bs", str(bs), "--qd", str(qd),
                     "--seconds", str(seconds), "--json", "--timeout", "10")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise tb.BenchError(f"{shlex.join(cmd)} failed ({done.returncode}): "
                            f"{done.stderr.strip() or done.stdout.strip()}")
    result = json.loads(done.stdout)
    return {"iops": result["iops"], "mb_per_s": result["mb_per_s"], "p99_us": result["p99_us"],
            "retransmits": result["retransmits"]}


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def tables(summary, configs, cells):
    """Markdown and text tables: IOPS per configuration, then the ratios."""
    by = {(s["config"], s["mode"], s["qd"]): s for s in summary}

    def iops(config, mode, qd):
        s = by.get((config, mode, qd))
        return s["iops"] if s else 0

    ratio_heads = ["hs-d/fio", "hs/fio", "hs/vb", "hs-d/vb-d", "hs-wb/vb"]
    head = ["workload", "qd"] + configs + ratio_heads
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    txt = ["  ".join(f"{h:>12}" for h in head)]
    for mode, bs, qd in cells:
        values = [iops(c, mode, qd) for c in configs]
        ratios = [ratio(iops("host-sim-d", mode, qd), iops("fio-direct", mode, qd)),
                  ratio(iops("host-sim", mode, qd), iops("fio-direct", mode, qd)),
                  ratio(iops("host-sim", mode, qd), iops("vblade", mode, qd)),
                  ratio(iops("host-sim-d", mode, qd), iops("vblade-d", mode, qd)),
                  ratio(iops("host-sim-wb", mode, qd), iops("vblade", mode, qd))]
        work = f"{mode} {bs // 1024} KiB"
        row = [work, str(qd)] + [f"{v:.0f}" if v else "-" for v in values] + ratios
        md.append("| " + " | ".join(row) + " |")
        txt.append("  ".join(f"{c:>12}" for c in row))
    return md, txt


def main(argv):
    p = argparse.ArgumentParser(description="host-sim, vblade and fio on a real disk (root)")
    p.add_argument("--dir", default=os.path.join(tb.REPO, "target", "aoe-disk-bench"),
                   help="where the backing file goes; must not be tmpfs [target/aoe-disk-bench]")
    p.add_argument("--size", default="2G", help="backing file size [2G]")
    p.add_argument("--seconds", type=float, default=5.0, help="per run [5]")
    p.add_argument("--repeat", type=int, default=1, help="runs per cell [1]")
    p.add_argument("--mtu", type=int, default=9000)
    p.add_argument("--qds", default="1,16,64")
    p.add_argument("--modes", default=",".join(m for m, _ in WORKLOADS))
    p.add_argument("--configs", default=",".join(CEILINGS + list(TARGETS)))
    p.add_argument("--bin", help="directory with host-sim and aoe [target/release, built]")
    p.add_argument("--out", default=os.path.join(tb.REPO, "target", "aoe-disk-bench-out"))
    p.add_argument("--keep-file", action="store_true", help="keep (and reuse) the backing file")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise tb.BenchError("needs root (network namespaces, raw sockets)")
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if c not in TARGETS and c not in CEILINGS:
            raise tb.BenchError(f"unknown config {c}: {', '.join(CEILINGS + list(TARGETS))}")
    tools = ["ip"] + (["fio"] if any(c in CEILINGS for c in configs) else []) \
        + (["vblade"] if any(c.startswith("vblade") for c in configs) else [])
    for tool in tools:
        if shutil.which(tool) is None:
            raise tb.BenchError(f"needs {tool} (apt-get install -y iproute2 fio vblade)")
    modes = [m for m in args.modes.split(",") if m]
    cells = [(m, bs, qd) for m, bs in WORKLOADS if m in modes for qd in tb.ints(args.qds)]
    os.makedirs(args.dir, exist_ok=True)
    fstype = filesystem_type(args.dir)
    if fstype in ("tmpfs", "ramfs"):
        raise tb.BenchError(f"{args.dir} is on {fstype}: this benchmark is for a real disk")
    size = tb.parse_size(args.size)
    bins = args.bin
    if bins is None:
        tb.run(["cargo", "build", "--release", "-q", "-p", "aoe-host-sim", "-p", "aoe-initiator",
                "--bins"], cwd=tb.REPO)
        bins = os.path.join(tb.REPO, "target", "release")
    bins = os.path.abspath(bins)
    disk = os.path.join(args.dir, "disk.img")
    import atexit
    import signal
    atexit.register(tb.cleanup)
    signal.signal(signal.SIGTERM, tb.on_signal)
    signal.signal(signal.SIGINT, tb.on_signal)
    if not (args.keep_file and os.path.exists(disk) and os.path.getsize(disk) == size):
        print(f"disk-bench: writing {args.size} to {disk} ({fstype})", flush=True)
        write_file(disk, size)
    if not args.keep_file:
        atexit.register(lambda: os.path.exists(disk) and os.unlink(disk))
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "targets.log")
    open(log_path, "w").close()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    tb.make_pair(args.mtu)
    runs = []
    with open(os.path.join(args.out, "runs.jsonl"), "w", encoding="utf-8") as runs_file:
        for round_no in range(args.repeat):
            for config in configs:
                proc = None
                drop_cache(disk)
                if config in TARGETS:
                    proc = tb.start_target(DiskTarget(config), bins, disk, None, log_path)
                try:
                    for mode, bs, qd in cells:
                        if proc is None:
                            res = fio_once(disk, size, mode, bs, qd, args.seconds,
                                           config == "fio-direct")
                        else:
                            res = aoe_once(bins, mode, bs, qd, args.seconds)
                        rec = {"config": config, "mode": mode, "bs": bs, "qd": qd,
                               "round": round_no, "load1": os.getloadavg()[0], **res}
                        runs.append(rec)
                        runs_file.write(json.dumps(rec) + "\n")
                        runs_file.flush()
                        print(f"  {config:<18} {mode:<10} {bs // 1024:>3} KiB qd {qd:>2}: "
                              f"{res['iops']:8.0f} IOPS {res['mb_per_s']:8.1f} MB/s "
                              f"p99 {res['p99_us']:7.0f} us", flush=True)
                finally:
                    if proc is not None:
                        tb.stop_process(proc)
    summary = []
    groups = {}
    for r in runs:
        groups.setdefault((r["config"], r["mode"], r["qd"]), []).append(r)
    for (config, mode, qd), items in groups.items():
        summary.append({"config": config, "mode": mode, "qd": qd, "bs": items[0]["bs"],
                        "iops": statistics.median(i["iops"] for i in items),
                        "mb_per_s": statistics.median(i["mb_per_s"] for i in items),
                        "p99_us": statistics.median(i["p99_us"] for i in items)})
        s = summary[-1]
        print(f"RESULT disk config={config} mode={mode} bs={s['bs']} qd={qd} "
              f"iops={s['iops']:.1f} mb_per_s={s['mb_per_s']:.2f} p99_us={s['p99_us']:.0f}")
    md, txt = tables(summary, configs, cells)
    header = [f"Command: `tests/bench/disk-bench.py {shlex.join(argv)}` ({started}; load "
              f"average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
              f"{os.cpu_count()} CPUs shared with other work).",
              f"Backing file: {args.size}, written once, on {fstype} ({args.dir}); page cache "
              f"dropped for it before each configuration; MTU {args.mtu}; {args.seconds} s "
              f"per run, median of {args.repeat}. IOPS. fio-direct: O_DIRECT, writes with "
              f"--sync=dsync; host-sim: durable default (page cache), -d (O_DIRECT, durable), "
              f"-wb (--writeback); vblade: page cache (unsafe) and -d."]
    for name, lines in (("table.md", header + [""] + md), ("table.txt", header + [""] + txt)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(header + [""] + txt))
    print(f"disk-bench: tables in {args.out}/table.md and table.txt")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except tb.BenchError as error:
        print(f"disk-bench: {error}", file=sys.stderr)
        sys.exit(1)
