"""Issue #14's performance goals, one row each: what the goal asks, what this run measured,
met or not, and where the number comes from. The matrix's cases give the CoW, commit and
multi-block rows; `make bench` puts the micro-benchmarks' output beside them in the run dir
(bench_threads.txt: lock scope; bench_metadata.json: lookup cost at 10k / 1M / 10M mappings;
commit_syscalls.txt: the commit's writes and waits per 4 KiB first write + fsync). A file the
run does not hold gives a row that says so, never a number."""
import json
import os
import re

from .case import cid
from .claims import KERNEL_FLOOR_GOAL, MERGED_FLOOR_GOAL, MERGED_QCOW2_GOAL, x
from .units import FILE_MODE, KiB, MiB, MODE_LABEL, fnum, fratio, fspread

# 4 KiB first write + fsync each, direct-lvm: at most this of qcow2 with a flush per write.
FSYNC_QCOW2_GOAL = 1.0
# per such write through the engine: at most this many writes (the data write included) and
# waits (fdatasync/fsync)
FSYNC_WRITES_GOAL = 3
FSYNC_WAITS_GOAL = 2
# 1 MiB first write, direct-lvm: at most this of the same write on the raw store.
MULTIBLOCK_RAW_GOAL = 1.10
# 2 threads' throughput of 4 KiB overwrites on a memory device: at least this of one thread's.
THREADS_GOAL = 1.80
# ns per random lookup at 10M mappings: at most this of the cost at 10k.
LOOKUP_10M_GOAL = 1.50

THREADS_FILE = "bench_threads.txt"
LOOKUP_FILE = "bench_metadata.json"
COMMIT_FILE = "commit_syscalls.txt"

# bench_threads' summary line: "RESULT overwrite mem: 1 thread N ops/s, 2 threads N ops/s,
# 2/1 ratio R [LO-HI] (median [min-max] of N)"
THREADS_RE = re.compile(r"^RESULT (\S+) (\S+): 1 thread (\S+) ops/s, 2 threads (\S+) ops/s, "
                        r"2/1 ratio (\S+) \[(\S+)-(\S+)\]", re.M)
# commit_syscalls.sh: "per 4 KiB first write + fsync (N vs 2N writes): writes=W waits=S"
COMMIT_RE = re.compile(r"writes=([0-9.]+) waits=([0-9.]+)")


def verdict(ok):
    return "met" if ok else "not met"


def read_file(run, name):
    p = os.path.join(run.dir, name)
    return open(p).read() if os.path.exists(p) else None


def threads_results(run):
    """{(workload, store): (ratio, lo, hi, one, two)} from the run's bench_threads.txt."""
    text = read_file(run, THREADS_FILE)
    if text is None:
        return None
    return {(m[1], m[2]): (float(m[5]), float(m[6]), float(m[7]), float(m[3]), float(m[4]))
            for m in THREADS_RE.finditer(text)}


def lookup_results(run):
    """bench_metadata --json's object, or None."""
    text = read_file(run, LOOKUP_FILE)
    return None if text is None else json.loads(text)


def cow_rows(run):
    out = []
    floor = cid("cow", "floor", "direct", None, bs=4 * KiB, order="seq")
    for pol, goal_f, goal_q in (("merged", MERGED_FLOOR_GOAL, MERGED_QCOW2_GOAL),
                                ("kernel", KERNEL_FLOOR_GOAL, None)):
        i = cid("cow", "thinp", "direct", None, cow=pol, bs=4 * KiB, order="seq")
        goal = f"{pol}-policy CoW 4 KiB, direct-lvm ≤ {x(goal_f)} the floor" + (
            f" and ≤ {x(goal_q)} qcow2" if goal_q else "")
        r = run.row(i, "first")
        f = run.pair_ratio(i, floor, "first") if floor in run.cases else None
        if not r or not f:
            out.append((goal, "not in this run", "not measured", f"case `{i}`"))
            continue
        ok = f[0] <= goal_f
        meas = f"{fspread(f)} the floor"
        if goal_q:
            q = r.get("ratio_qcow2")
            ok = ok and q is not None and q <= goal_q
            meas += f", {fratio(r, 'ratio_qcow2')} qcow2"
        out.append((goal, meas, verdict(ok), f"cases `{i}`, `{floor}`"))
    return out


def fsync_rows(run):
    i = cid("commit", "thinp", "direct", False, fsync=1)
    goal = f"4 KiB first write + fsync each, direct-lvm ≤ {x(FSYNC_QCOW2_GOAL)} qcow2"
    r = run.row(i, "first-write")
    if not r or r.get("ratio_qcow2") is None:
        rows = [(goal, "not in this run", "not measured", f"case `{i}`")]
    else:
        rows = [(goal, f"{fratio(r, 'ratio_qcow2')} qcow2 with a flush per write "
                 f"({fnum(r.get('median_us'))} µs per write)",
                 verdict(r["ratio_qcow2"] <= FSYNC_QCOW2_GOAL), f"case `{i}`")]
    goal = (f"per 4 KiB first write + fsync through the engine ≤ {FSYNC_WRITES_GOAL} writes "
            f"and ≤ {FSYNC_WAITS_GOAL} waits")
    text = read_file(run, COMMIT_FILE)
    m = COMMIT_RE.search(text) if text else None
    if not m:
        rows.append((goal, "not in this run", "not measured", f"`{COMMIT_FILE}`"))
    else:
        w, s = float(m[1]), float(m[2])
        rows.append((goal, f"{w:.2f} writes, {s:.2f} waits (strace -c, "
                           f"{MODE_LABEL[FILE_MODE]})",
                     verdict(w <= FSYNC_WRITES_GOAL and s <= FSYNC_WAITS_GOAL),
                     f"`{COMMIT_FILE}` (tests/bench/commit_syscalls.sh)"))
    return rows


def multiblock_row(run):
    i = cid("alloc", "thinp", "direct", False, bs=MiB, order="seq")
    goal = f"1 MiB first write, direct-lvm ≤ {x(MULTIBLOCK_RAW_GOAL)} raw"
    r = run.row(i, "first-write")
    if not r or r.get("ratio_raw") is None:
        return (goal, "not in this run", "not measured", f"case `{i}`")
    p50 = r.get("ratio_raw_p50")
    return (goal, fratio(r) + " raw" + (f" (p50: {p50:.2f}×)" if p50 is not None else ""),
            verdict(r["ratio_raw"] <= MULTIBLOCK_RAW_GOAL), f"case `{i}`")


def threads_rows(run):
    goal = f"2 threads ≥ {x(THREADS_GOAL)} one thread on 4 KiB overwrites (memory device)"
    res = threads_results(run)
    if res is None or ("overwrite", "mem") not in res:
        return [(goal, "not in this run", "not measured", f"`{THREADS_FILE}`")]
    rows = []
    for (wl, store), (ratio, lo, hi, one, two) in sorted(res.items()):
        meas = (f"{ratio:.2f}× [{lo:.2f}–{hi:.2f}] ({one:,.0f} → {two:,.0f} ops/s)")
        if (wl, store) == ("overwrite", "mem"):
            rows.insert(0, (goal, meas, verdict(ratio >= THREADS_GOAL),
                            f"`{THREADS_FILE}` (tests/bench/bench_threads.c)"))
        else:
            rows.append((f"2 threads ÷ one thread, {wl}, {store} (no goal)", meas, "measured",
                         f"`{THREADS_FILE}`"))
    return rows


def lookup_row(run):
    goal = (f"lookup at 10M mappings ≤ {x(LOOKUP_10M_GOAL)} the cost at 10k, with bounded "
            "memory (RSS)")
    res = lookup_results(run)
    sizes = {s["mappings"]: s for s in (res or {}).get("sizes", [])}
    if 10000 not in sizes or 10000000 not in sizes:
        return (goal, "not in this run", "not measured", f"`{LOOKUP_FILE}`")
    a, m, b = sizes[10000], sizes.get(1000000), sizes[10000000]
    ratio = b["ns_per_lookup"] / a["ns_per_lookup"]
    meas = (f"{ratio:.2f}× ({fnum(a['ns_per_lookup'])} ns at 10k"
            + (f", {fnum(m['ns_per_lookup'])} ns ({m['x10k']:.2f}×) at 1M" if m else "")
            + f", {fnum(b['ns_per_lookup'])} ns at 10M; {b['lookups']:,} random lookups each, "
            f"{b['lookup_misses']:,} cache misses at 10M; RSS {fnum(b['rss_mib'])} MiB at 10M = "
            f"{b['rss_mib_per_million']:.1f} MiB per million mappings, metadata "
            f"{fnum(b['meta_mib'])} MiB, cache {b['cache_blocks']:,} blocks; "
            f"{'sequential' if res.get('order') == 'seq' else 'random'} fill)")
    return (goal, meas, verdict(ratio <= LOOKUP_10M_GOAL),
            f"`{LOOKUP_FILE}` (tests/bench/bench_metadata.c)")


def goal_rows(run):
    """(goal, measured, verdict, source) rows, in the issue's order."""
    return (cow_rows(run) + fsync_rows(run) + [multiblock_row(run)] + threads_rows(run)
            + [lookup_row(run)])
