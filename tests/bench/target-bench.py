#!/usr/bin/env python3
"""host-sim against Debian's vblade on one veth pair: the benchmark of issue 3, item 9.

One run makes two private network namespaces joined by a veth pair (named with this process's
PID), then, for each MTU, runs each target in turn in one namespace on a fresh sparse file (same
size, same directory for every target) and drives it with `aoe bench --json` from the other
namespace over the same matrix: sequential read/write of full frames and random 4 KiB
read/write, at queue depths 1, 16 and 64. Each target configuration is measured `--repeat`
times, rounds interleaved (host-sim, vblade, host-sim, vblade, ...) so that load from other
processes on the machine hits both alike; the tables show medians.

Measured per run: MB/s, IOPS, p99 latency and retransmits (from `aoe bench --json`), the
target's CPU time (utime + stime of /proc/PID/stat, before and after the run, all threads),
and the initiator's CPU time (rusage of the `aoe` child) to show whether the initiator, not
the target, was the bottleneck.

Outputs (in --out, default target/aoe-bench/):
  runs.jsonl    one JSON object per run (every repeat), with the raw `aoe bench` object
  summary.jsonl one JSON object per (target, cell): medians, spread, retransmit total
  table.md      side-by-side markdown tables (paste into the README), plus the command line
  table.txt     the same as plain text (also printed)
  plot.png      bar charts of MB/s, IOPS and target CPU per GB (needs matplotlib; the tables
                never depend on it)
and on stdout `RESULT key=value ...` lines, one per (target, cell).

The script stops only the processes it started (by PID) and deletes only its own namespaces
and files, also on error or Ctrl-C. It never touches any other interface.

Why a Python script and not a Rust binary: this is glue (namespaces, processes, /proc, JSON,
medians, tables, a plot); the standard library does all of it except the plot, and the plot
comes from Debian's python3-matplotlib. The measuring is done by the Rust `aoe` initiator.
"""

import argparse
import atexit
import json
import os
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PID = os.getpid()
NS_TARGET = f"aoeb-t-{PID}"
NS_INIT = f"aoeb-i-{PID}"
IF_TARGET = f"abt{PID}"
IF_INIT = f"abi{PID}"
SHELF, SLOT = 7, 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = ["seq-write", "seq-read", "rand-write", "rand-read"]
SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_CONFIGS = ("host-sim:64,host-sim-xdp:64,host-sim-socket:64,host-sim-2w:64,null:64,"
                   "vblade:64,vblade:16")
BASELINE_BIN = None  # --baseline: another build of host-sim, for before/after comparisons


class BenchError(Exception):
    """A failure that ends the run with a message."""


# ---------------------------------------------------------------------------------------------
# Clean-up: every namespace, process and file this run made, and nothing else.

_started = []  # Popen objects of targets started by this run
_namespaces = []
_scratch = []


def cleanup():
    for proc in list(_started):
        stop_process(proc)
    for ns in reversed(_namespaces):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)
    _namespaces.clear()
    for path in _scratch:
        shutil.rmtree(path, ignore_errors=True)
    _scratch.clear()


def on_signal(signum, _frame):
    raise SystemExit(f"target-bench: stopped by signal {signum}")


def stop_process(proc):
    """SIGTERM to one PID we started, SIGKILL if it lingers; reaps it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in _started:
        _started.remove(proc)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# Network and targets.


# The initiators' interfaces: the veth end, or (--initiators N > 1) N macvlan devices on it,
# each with a MAC of its own, so that N initiators drive the one target link at once.
INITIATOR_IFS = [IF_INIT]


def make_pair(mtu, initiators=1):
    for ns in (NS_TARGET, NS_INIT):
        run(["ip", "netns", "add", ns])
        _namespaces.append(ns)
    run(["ip", "-n", NS_TARGET, "link", "add", IF_TARGET, "mtu", str(mtu), "type", "veth",
         "peer", "name", IF_INIT, "netns", NS_INIT, "mtu", str(mtu)])
    run(["ip", "-n", NS_TARGET, "link", "set", IF_TARGET, "up"])
    run(["ip", "-n", NS_INIT, "link", "set", IF_INIT, "up"])
    if initiators > 1:
        INITIATOR_IFS.clear()
        for index in range(initiators):
            name = f"am{index}{PID}"[:15]
            run(["ip", "-n", NS_INIT, "link", "add", name, "link", IF_INIT, "type", "macvlan",
                 "mode", "bridge"])
            run(["ip", "-n", NS_INIT, "link", "set", name, "up"])
            INITIATOR_IFS.append(name)


def set_mtu(mtu):
    run(["ip", "-n", NS_TARGET, "link", "set", IF_TARGET, "mtu", str(mtu)])
    run(["ip", "-n", NS_INIT, "link", "set", IF_INIT, "mtu", str(mtu)])
    for name in INITIATOR_IFS:
        if name != IF_INIT:
            run(["ip", "-n", NS_INIT, "link", "set", name, "mtu", str(mtu)])


def cpu_seconds(pid):
    """utime + stime of every thread of `pid`, in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def aoe_cmd(bins, *args, interface=None):
    return ["ip", "netns", "exec", NS_INIT, os.path.join(bins, "aoe"), *args,
            "-i", interface or INITIATOR_IFS[0], "-t", f"{SHELF}.{SLOT}"]


# The target programs --configs may name: host-sim with each link back end (and with two
# workers), the null responder (our RAM target on recvmmsg/sendmmsg: the socket path's
# ceiling), and Debian's vblade. Value: extra host-sim options, or None for another program.
KINDS = {
    "host-sim": [],                                    # automatic back end
    "host-sim-xdp": ["--link", "xdp"],                 # AF_XDP (copy mode on veth)
    "host-sim-ring": ["--link", "ring"],               # PACKET_MMAP receive ring
    "host-sim-socket": ["--link", "socket"],           # recvmmsg/sendmmsg
    "host-sim-2w": ["--link", "ring", "--workers", "2"],  # two workers, one fan-out group
    "host-sim-wb": ["--writeback"],                    # vblade's page-cache acknowledgement
    "null": None,
    "vblade": None,
}


class Target:
    """One target configuration: which program, which -b."""

    def __init__(self, kind, bufcnt):
        self.kind = kind
        self.bufcnt = bufcnt

    @property
    def name(self):
        return f"{self.kind} -b {self.bufcnt}"

    @property
    def is_host_sim(self):
        return self.kind.startswith("host-sim")

    def command(self, bins, disk, size):
        if self.kind == "null":
            return ["ip", "netns", "exec", NS_TARGET, os.path.join(bins, "aoe-null-target"),
                    "-b", str(self.bufcnt), str(SHELF), str(SLOT), IF_TARGET, str(size // 512)]
        if self.kind == "host-sim-base":
            program, extra = os.path.join(BASELINE_BIN, "host-sim"), []
        elif self.kind == "vblade":
            program, extra = "vblade", []
        else:
            program, extra = os.path.join(bins, "host-sim"), KINDS[self.kind]
        return ["ip", "netns", "exec", NS_TARGET, program, *extra, "-b", str(self.bufcnt),
                str(SHELF), str(SLOT), IF_TARGET, disk]


def start_target(target, bins, disk, size, log_path):
    log = open(log_path, "ab")
    # `ip netns exec` execs the program, so this PID is the target's own.
    proc = subprocess.Popen(target.command(bins, disk, size), stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    log.close()
    _started.append(proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{target.name} exited with {proc.returncode}; see {log_path}")
        probe = subprocess.run(aoe_cmd(bins, "identify", "--timeout", "0.3", "--json"),
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return proc
        time.sleep(0.1)
    raise BenchError(f"{target.name} did not answer IDENTIFY within 10 s; see {log_path}")


def bench_once(bins, proc, mode, qd, seconds):
    """One `aoe bench` per initiator interface, all at once: their JSON objects combined (sums
    of MB/s, IOPS, requests, bytes, frames and retransmits; the worst p50, p99 and max), plus
    target and initiator CPU seconds."""
    cmds = [aoe_cmd(bins, "bench", "--mode", mode, "--qd", str(qd), "--seconds", str(seconds),
                    "--json", "--timeout", "10", interface=name) for name in INITIATOR_IFS]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    target_before = cpu_seconds(proc.pid)
    wall_start = time.monotonic()
    running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for cmd in cmds]
    outputs = [p.communicate() for p in running]
    wall = time.monotonic() - wall_start
    target_after = cpu_seconds(proc.pid)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    results = []
    for cmd, p, (out, err) in zip(cmds, running, outputs):
        if p.returncode != 0:
            raise BenchError(f"{shlex.join(cmd)} failed ({p.returncode}): "
                             f"{err.strip() or out.strip()}")
        results.append(json.loads(out))
    result = dict(results[0])
    for key in ("mb_per_s", "iops", "requests", "bytes", "frames", "retransmits"):
        if key in result:
            result[key] = sum(r[key] for r in results)
    for key in ("p50_us", "p99_us", "max_us", "seconds"):
        if key in result:
            result[key] = max(r[key] for r in results)
    result["initiators"] = len(results)
    initiator = (children_after.ru_utime - children_before.ru_utime
                 + children_after.ru_stime - children_before.ru_stime)
    return result, target_after - target_before, initiator, wall


# ---------------------------------------------------------------------------------------------
# Summaries, tables, plot.


def cell_key(mtu, mode, qd):
    return (mtu, MODES.index(mode) if mode in MODES else 99, mode, qd)


def summarize(runs):
    groups = {}
    for r in runs:
        groups.setdefault((r["target"], r["mtu"], r["mode"], r["qd"]), []).append(r)
    summary = []
    for (target, mtu, mode, qd), items in groups.items():
        mbs = [i["mb_per_s"] for i in items]
        med = statistics.median(mbs)
        summary.append({
            "target": target, "mtu": mtu, "mode": mode, "qd": qd, "n": len(items),
            "bs": items[0]["bs"], "window": items[0]["window"],
            "mb_per_s": med,
            "iops": statistics.median(i["iops"] for i in items),
            "p99_us": statistics.median(i["p99_us"] for i in items),
            "retransmits": sum(i["retransmits"] for i in items),
            "cpu_s_per_gb": statistics.median(i["cpu_s_per_gb"] for i in items),
            "target_cpu_pct": statistics.median(i["target_cpu_pct"] for i in items),
            "initiator_cpu_pct": statistics.median(i["initiator_cpu_pct"] for i in items),
            # Spread of MB/s over the repeats, relative to the median: how noisy the cell was.
            "spread_pct": 100.0 * (max(mbs) - min(mbs)) / med if med > 0 else 0.0,
            "frames_per_request": items[0]["frames_per_request"],
        })
    summary.sort(key=lambda s: (s["target"],) + cell_key(s["mtu"], s["mode"], s["qd"]))
    return summary


def fmt(value, digits=1):
    return f"{value:,.{digits}f}".replace(",", "")


def pair_rows(summary, left, right):
    """Rows of the side-by-side table of targets `left` and `right` (names)."""
    by = {(s["target"], s["mtu"], s["mode"], s["qd"]): s for s in summary}
    cells = sorted({(s["mtu"], s["mode"], s["qd"]) for s in summary},
                   key=lambda c: cell_key(*c))
    rows = []
    for mtu, mode, qd in cells:
        a, b = by.get((left, mtu, mode, qd)), by.get((right, mtu, mode, qd))
        if a is None or b is None:
            continue
        rows.append((mtu, mode, qd, a, b))
    return rows


def verdicts(rows, left_bufcnt):
    """Which of issue 3's targets each row meets: (faster, cpu_half, no_retx)."""
    out = []
    for mtu, mode, qd, a, b in rows:
        faster = a["mb_per_s"] >= b["mb_per_s"] and a["iops"] >= b["iops"]
        cpu_half = b["cpu_s_per_gb"] > 0 and a["cpu_s_per_gb"] <= b["cpu_s_per_gb"] / 2
        within = qd * a["frames_per_request"] <= left_bufcnt
        no_retx = a["retransmits"] == 0 if within else None
        out.append((faster, cpu_half, no_retx))
    return out


def markdown_table(rows, left, right, left_bufcnt):
    head = ("| MTU | workload | qd | MB/s hs | MB/s vb | IOPS hs | IOPS vb | p99 µs hs | p99 µs vb "
            "| retx hs | retx vb | CPU s/GB hs | CPU s/GB vb | hs ≥ vb | CPU ≤ ½ |")
    lines = [f"hs = `{left}`, vb = `{right}`", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for (mtu, mode, qd, a, b), (faster, cpu_half, _) in zip(rows, verdicts(rows, left_bufcnt)):
        lines.append(
            f"| {mtu} | {mode} {a['bs'] // 1024 if a['bs'] % 1024 == 0 else a['bs'] / 1024} KiB "
            f"| {qd} | {fmt(a['mb_per_s'])} | {fmt(b['mb_per_s'])} | {fmt(a['iops'], 0)} "
            f"| {fmt(b['iops'], 0)} | {fmt(a['p99_us'], 0)} | {fmt(b['p99_us'], 0)} "
            f"| {a['retransmits']} | {b['retransmits']} | {fmt(a['cpu_s_per_gb'], 2)} "
            f"| {fmt(b['cpu_s_per_gb'], 2)} | {'yes' if faster else '**no**'} "
            f"| {'yes' if cpu_half else '**no**'} |")
    return lines


def target_summary(rows, left_bufcnt):
    v = verdicts(rows, left_bufcnt)
    faster = sum(1 for f, _, _ in v if f)
    cpu = sum(1 for _, c, _ in v if c)
    within = [r for _, _, r in v if r is not None]
    retx_ok = sum(1 for r in within if r)
    return (f"host-sim ≥ vblade (MB/s and IOPS) in {faster}/{len(v)} cells; target CPU per GB "
            f"≤ half of vblade's in {cpu}/{len(v)}; zero retransmits in {retx_ok}/{len(within)} "
            f"cells whose frames in flight fit host-sim's buffer count")


def text_table(rows, left, right):
    out = [f"{'MTU':>5} {'workload':<16} {'qd':>3} | {'MB/s':>15} | {'IOPS':>15} | "
           f"{'p99 us':>13} | {'retx':>9} | {'CPU s/GB':>11} | init CPU%",
           f"{'':>5} {'':<16} {'':>3} | {'hs':>7} {'vb':>7} | {'hs':>7} {'vb':>7} | "
           f"{'hs':>6} {'vb':>6} | {'hs':>4} {'vb':>4} | {'hs':>5} {'vb':>5} | hs  vb"]
    for mtu, mode, qd, a, b in rows:
        work = f"{mode} {a['bs']}B"
        out.append(
            f"{mtu:>5} {work:<16} {qd:>3} | {a['mb_per_s']:>7.1f} {b['mb_per_s']:>7.1f} | "
            f"{a['iops']:>7.0f} {b['iops']:>7.0f} | {a['p99_us']:>6.0f} {b['p99_us']:>6.0f} | "
            f"{a['retransmits']:>4} {b['retransmits']:>4} | {a['cpu_s_per_gb']:>5.2f} "
            f"{b['cpu_s_per_gb']:>5.2f} | {a['initiator_cpu_pct']:>3.0f} "
            f"{b['initiator_cpu_pct']:>3.0f}")
    return out


def ratio_tables(summary, targets):
    """Each host-sim variant's MB/s and CPU per GB as ratios to vblade (same -b) and to the
    null responder (same -b): markdown and text lines; empty when either is missing."""
    by = {(s["target"], s["mtu"], s["mode"], s["qd"]): s for s in summary}
    cells = sorted({(s["mtu"], s["mode"], s["qd"]) for s in summary}, key=lambda c: cell_key(*c))
    variants = [t for t in targets if t.is_host_sim and t.kind != "host-sim-base"]
    names = {t.name for t in targets}
    md, txt = [], []
    for bufcnt in sorted({t.bufcnt for t in variants}):
        vb, null = f"vblade -b {bufcnt}", f"null -b {bufcnt}"
        if vb not in names and null not in names:
            continue
        columns = [t.name for t in variants if t.bufcnt == bufcnt]
        head = "| MTU | workload | qd | " + " | ".join(
            f"{c.split(' -b')[0]}: MB/s ×vb / ×null, CPU ×vb" for c in columns) + " |"
        md += ["", f"#### Ratios to vblade -b {bufcnt} and to the null responder -b {bufcnt}",
               "", "MB/s of each host-sim variant divided by vblade's and by the null "
               "responder's; CPU s/GB divided by vblade's (≤ 0.5 is the issue's target).", "",
               head, "|" + "---|" * (head.count("|") - 1)]
        txt += ["", f"== ratios (MB/s ×vblade / ×null, CPU per GB ×vblade), -b {bufcnt}"]
        for mtu, mode, qd in cells:
            parts = []
            for column in columns:
                a = by.get((column, mtu, mode, qd))
                v, n = by.get((vb, mtu, mode, qd)), by.get((null, mtu, mode, qd))

                def ratio(x, y, key):
                    return f"{x[key] / y[key]:.2f}" if x and y and y[key] > 0 else "–"
                parts.append(f"{ratio(a, v, 'mb_per_s')} / {ratio(a, n, 'mb_per_s')}, "
                             f"{ratio(a, v, 'cpu_s_per_gb')}")
            md.append(f"| {mtu} | {mode} | {qd} | " + " | ".join(parts) + " |")
            txt.append(f"{mtu:>5} {mode:<10} qd {qd:>2}: " + "; ".join(
                f"{c.split(' -b')[0]} {p}" for c, p in zip(columns, parts)))
    return md, txt


def plot(summary_path, png_path, left, right):
    """Bar charts of one pair. Returns None on success, else why not."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if sys.executable != SYSTEM_PYTHON and os.path.exists(SYSTEM_PYTHON):
            # Debian's python3-matplotlib lives with the system Python.
            done = subprocess.run([SYSTEM_PYTHON, os.path.abspath(__file__), "--plot-only",
                                   summary_path, png_path, left, right], check=False)
            return None if done.returncode == 0 else "the system Python could not plot"
        return "no matplotlib (apt-get install python3-matplotlib)"
    with open(summary_path, encoding="utf-8") as f:
        summary = [json.loads(line) for line in f if line.strip()]
    rows = pair_rows(summary, left, right)
    if not rows:
        return "nothing to plot"
    short = {"seq-write": "seq W", "seq-read": "seq R", "rand-write": "rand W",
             "rand-read": "rand R"}
    labels = [f"{short.get(mode, mode)}\nqd {qd}\nMTU {mtu}" for mtu, mode, qd, _, _ in rows]
    metrics = [("mb_per_s", "MB/s (median)", True), ("iops", "IOPS (median)", True),
               ("cpu_s_per_gb", "target CPU s per GB (median)", False)]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(12, len(rows) * 0.7), 11))
    xs = range(len(rows))
    width = 0.4
    for ax, (key, title, log) in zip(axes, metrics):
        ax.bar([x - width / 2 for x in xs], [a[key] for *_, a, _ in rows], width, label=left,
               color="#1f77b4")
        ax.bar([x + width / 2 for x in xs], [b[key] for *_, _, b in rows], width, label=right,
               color="#ff7f0e")
        ax.set_ylabel(title)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"AoE targets on one veth pair: {left} vs {right} (aoe bench, medians)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    return None


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="host-sim vs Debian's vblade on one veth pair (root; see the module doc)")
    p.add_argument("--seconds", type=float, default=2.0, help="per run [2]")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell and target [3]")
    p.add_argument("--mtus", default="1500,9000")
    p.add_argument("--qds", default="1,16,64")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help=f"targets as PROGRAM:BUFCNT, run in this order in every round "
                        f"[{DEFAULT_CONFIGS}]. PROGRAM is one of {', '.join(KINDS)}: host-sim "
                        f"with the automatic link back end, forced to AF_XDP, the ring or the "
                        f"socket, or with two workers; the null responder; vblade")
    p.add_argument("--size", default="1G", help="sparse backing file size [1G]")
    p.add_argument("--dir", help="where the backing files go [a fresh directory in /dev/shm]")
    p.add_argument("--bin", help="directory with host-sim and aoe [target/release, built]")
    p.add_argument("--out", default=os.path.join(REPO, "target", "aoe-bench"))
    p.add_argument("--baseline", metavar="DIR",
                   help="also run DIR/host-sim as target 'host-sim-base' (before/after)")
    p.add_argument("--initiators", type=int, default=1,
                   help="initiators driving the target at once, each on a macvlan device with "
                        "a MAC of its own (results summed) [1]; with 2, host-sim-2w can use "
                        "both its workers")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--plot-only", nargs=4, metavar=("SUMMARY", "PNG", "LEFT", "RIGHT"),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def ints(text):
    return [int(x) for x in text.split(",") if x]


def main(argv):
    args = parse_args(argv)
    if args.plot_only:
        why = plot(*args.plot_only)
        if why:
            print(f"target-bench: no plot: {why}", file=sys.stderr)
            return 1
        return 0
    if os.geteuid() != 0:
        raise BenchError("needs root (network namespaces, raw sockets)")
    for tool in ("ip",) + (("vblade",) if "vblade" in args.configs else ()):
        if shutil.which(tool) is None:
            raise BenchError(f"needs {tool} (apt-get install -y iproute2 vblade)")
    if args.seconds <= 0 or args.repeat < 1:
        raise BenchError("--seconds must be > 0 and --repeat >= 1")
    mtus, qds = ints(args.mtus), ints(args.qds)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            raise BenchError(f"unknown mode {m}")
    targets = []
    for item in (c for c in args.configs.split(",") if c):
        kind, _, bufcnt = item.partition(":")
        if kind not in KINDS or not bufcnt.isdigit() or int(bufcnt) < 2:
            raise BenchError(f"bad --configs entry {item!r}: want PROGRAM:N with PROGRAM one "
                             f"of {', '.join(KINDS)}")
        targets.append(Target(kind, int(bufcnt)))
    if args.baseline:
        global BASELINE_BIN
        BASELINE_BIN = os.path.abspath(args.baseline)
        targets += [Target("host-sim-base", t.bufcnt) for t in targets if t.kind == "host-sim"]
    needed = ("host-sim",) + (("aoe-null-target",) if any(t.kind == "null" for t in targets)
                              else ())
    names = {t.name for t in targets}

    bins = args.bin
    if bins is None:
        run(["cargo", "build", "--release", "-q", "-p", "aoe-host-sim", "-p", "aoe-initiator", "--bins"], cwd=REPO)
        bins = os.path.join(REPO, "target", "release")
    bins = os.path.abspath(bins)
    for program in needed:
        if not os.path.exists(os.path.join(bins, program)):
            raise BenchError(f"no {program} in {bins} (cargo build -p aoe-host-sim --bins)")

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    os.makedirs(args.out, exist_ok=True)
    base = args.dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    scratch = tempfile.mkdtemp(prefix=f"aoe-bench-{PID}-", dir=base)
    _scratch.append(scratch)
    runs_path = os.path.join(args.out, "runs.jsonl")
    log_path = os.path.join(args.out, "targets.log")
    for path in (runs_path, log_path):
        open(path, "w").close()

    command = "tests/bench/target-bench.py " + shlex.join(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()
    print(f"target-bench: {len(targets)} targets x {len(mtus) * len(modes) * len(qds)} cells x "
          f"{args.repeat} repeats of {args.seconds} s; files in {scratch}; load {load[0]:.1f}",
          flush=True)

    make_pair(mtus[0], args.initiators)
    runs = []
    with open(runs_path, "a", encoding="utf-8") as runs_file:
        for mtu in mtus:
            set_mtu(mtu)
            for round_no in range(args.repeat):
                for target in targets:
                    disk = os.path.join(scratch, "disk.img")
                    with open(disk, "wb") as f:
                        f.truncate(parse_size(args.size))
                    proc = start_target(target, bins, disk, parse_size(args.size), log_path)
                    try:
                        for mode in modes:
                            for qd in qds:
                                res, tcpu, icpu, wall = bench_once(bins, proc, mode, qd,
                                                                   args.seconds)
                                gb = res["bytes"] / 1e9
                                spf = res["sectors_per_frame"]
                                rec = dict(res)
                                rec.update({
                                    "target": target.name, "kind": target.kind,
                                    "bufcnt": target.bufcnt, "round": round_no,
                                    "target_cpu_s": tcpu, "initiator_cpu_s": icpu,
                                    "cpu_s_per_gb": tcpu / gb if gb > 0 else float("inf"),
                                    "target_cpu_pct": 100 * tcpu / res["seconds"],
                                    "initiator_cpu_pct": 100 * icpu / wall,
                                    "frames_per_request": -(-res["bs"] // (spf * 512)),
                                    "load1": os.getloadavg()[0],
                                })
                                runs.append(rec)
                                runs_file.write(json.dumps(rec) + "\n")
                                runs_file.flush()
                                print(f"  mtu {mtu} round {round_no + 1} {target.name:<16} "
                                      f"{mode:<10} qd {qd:>2}: {res['mb_per_s']:8.1f} MB/s "
                                      f"{res['iops']:8.0f} IOPS p99 {res['p99_us']:7.0f} us "
                                      f"retx {res['retransmits']:>3} target CPU "
                                      f"{rec['cpu_s_per_gb']:5.2f} s/GB "
                                      f"({rec['target_cpu_pct']:3.0f} %) initiator "
                                      f"{rec['initiator_cpu_pct']:3.0f} %", flush=True)
                    finally:
                        stop_process(proc)
                        os.unlink(disk)

    summary = summarize(runs)
    summary_path = os.path.join(args.out, "summary.jsonl")
    with open(summary_path, "w", encoding="utf-8") as f:
        for s in summary:
            f.write(json.dumps(s) + "\n")
    for s in summary:
        print("RESULT " + " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={str(v).replace(' ', '')}"
            for k, v in s.items()))

    spreads = sorted(s["spread_pct"] for s in summary)
    noise = (f"MB/s spread over the {args.repeat} repeats (max − min)/median: median "
             f"{statistics.median(spreads):.0f} %, worst {spreads[-1]:.0f} %") \
        if args.repeat > 1 else "one repeat: no spread measured"
    end_load = os.getloadavg()[0]
    header = [f"Command: `{command}` ({started}; load average {load[0]:.1f} at start, "
              f"{end_load:.1f} at end; {os.cpu_count()} CPUs shared with other work).",
              f"Backing files: sparse {args.size} in {base or tempfile.gettempdir()} "
              f"(a fresh one per target start); {args.seconds} s per run; medians of "
              f"{args.repeat}; retransmits are totals over the repeats. {noise}.",
              "CPU s/GB: target utime+stime per 10^9 bytes moved. Sequential requests are one "
              "full frame (1 KiB at MTU 1500, 8.5 KiB at 9000); random are 4 KiB. The "
              "initiator keeps at most the target's advertised buffer count of frames in "
              "flight."]
    md, txt = header[:], header[:]
    pairs = []
    for t in targets:
        if t.is_host_sim and t.kind != "host-sim-base" and f"vblade -b {t.bufcnt}" in names:
            pairs.append((t.name, f"vblade -b {t.bufcnt}", t.bufcnt,
                          f"{t.kind} and vblade, both with -b {t.bufcnt}"))
    if "host-sim -b 64" in names and "vblade -b 16" in names:
        pairs.append(("host-sim -b 64", "vblade -b 16", 64,
                      "each with its default (host-sim -b 64, vblade -b 16)"))
    pairs += [(t.name.replace("-base", ""), t.name, t.bufcnt,
               f"host-sim against the baseline build, -b {t.bufcnt}")
              for t in targets if t.kind == "host-sim-base"]
    for left, right, left_b, title in pairs:
        rows = pair_rows(summary, left, right)
        verdict = target_summary(rows, left_b)
        md += ["", f"#### {title}", "", verdict + ".", ""] + markdown_table(rows, left, right,
                                                                         left_b)
        txt += ["", f"== {title}: hs = {left}, vb = {right}", verdict] + text_table(rows, left,
                                                                                   right)
    ratio_md, ratio_txt = ratio_tables(summary, targets)
    md += ratio_md
    txt += ratio_txt
    for path, lines in ((os.path.join(args.out, "table.md"), md),
                        (os.path.join(args.out, "table.txt"), txt)):
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(txt))
    if pairs and not args.no_plot:
        png = os.path.join(args.out, "plot.png")
        why = plot(summary_path, png, pairs[0][0], pairs[0][1])
        print(f"target-bench: plot: {png}" if why is None else f"target-bench: no plot: {why}")
    print(f"target-bench: tables in {args.out}/table.md and table.txt, runs in {runs_path}")
    return 0


def parse_size(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"target-bench: {error}", file=sys.stderr)
        sys.exit(1)
