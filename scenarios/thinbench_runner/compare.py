#!/usr/bin/env python3
"""Compare two scenarios/run output dirs on everything that is not a timing (a refactoring of
the runner must leave these identical, case by case): per case,
repetition, step and class the exact counters in cases.json (ios, bytes, blocks, bytes per
outcome class, commits, pool blocks used, allocated bytes, errors, ...), the engine's stats
JSON and the fill driver's summaries and timelines (counts, not times), the case list and
summary.csv's schema. dev_read/dev_written (the kernel's block-layer accounting of the
process: buffered IO, writeback) are listed apart, as information.
  python3 scenarios/thinbench_runner/compare.py OLD_RUN NEW_RUN     (exit 1 on a difference)

A qcow2 image's allocated size (alloc_bytes of the qemu peers) is the filesystem's and moves by
a block between repetitions of one run: expect those to differ by 4 KiB now and then."""
import csv
import json
import os
import re
import sys

TIMING = re.compile(r"(lat|latency|_us$|_ms$|_ns$|^iops$|^mbps$|^secs$|time|^t_ms$|"
                    r"^mean$|^min$|^max$|^p\d|^buckets$|^stddev$)")
DEV = ("dev_read", "dev_written")
PATHS = ("data", "metadata", "commands", "error")


def flat(x, p=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from flat(v, f"{p}.{k}" if p else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from flat(v, f"{p}[{i}]")
    else:
        yield p, x


def counters(x):
    out, dev = {}, {}
    for k, v in flat(x):
        leaf = re.sub(r"\[\d+\]$", "", k.rsplit(".", 1)[-1])
        if any(TIMING.search(part) for part in k.split(".")):
            continue
        if leaf in PATHS or k.startswith(("pool.data", "pool.metadata")):
            continue
        (dev if leaf in DEV else out)[k] = v
    return out, dev


def main(old, new):
    bad, n, devdiff = [], 0, 0
    a = json.load(open(os.path.join(old, "cases.json")))["cases"]
    b = json.load(open(os.path.join(new, "cases.json")))["cases"]
    # what a thinp.loop case measured: loop devices since they exist, the files before (the
    # same id, another store: never compared as one thing)
    la, lb = (json.load(open(os.path.join(r, "env.json"))).get("loop_lvm")
              if os.path.exists(os.path.join(r, "env.json")) else None for r in (old, new))
    if la != lb:
        bad.append(f"loop-lvm store differs: old {la!r}, new {lb!r}")
    if list(a) != list(b):
        bad.append(f"case lists differ: only old {sorted(set(a) - set(b))}, only new {sorted(set(b) - set(a))}")
    for cid in a:
        if cid not in b:
            continue
        for k in ("scenario", "backend", "mode", "params", "group", "quick", "label", "baselines"):
            if a[cid].get(k) != b[cid].get(k):
                bad.append(f"{cid}: {k} {a[cid].get(k)!r} != {b[cid].get(k)!r}")
        for ra, rb in zip(a[cid]["reps"], b[cid]["reps"]):
            if ra["status"] != rb["status"]:
                bad.append(f"{cid} r{ra['rep']}: status {ra['status']} != {rb['status']}")
                continue
            ca, da = counters(ra.get("steps", {}))
            cb, db = counters(rb.get("steps", {}))
            n += len(ca)
            for k in sorted(set(ca) | set(cb)):
                if ca.get(k, "<absent>") != cb.get(k, "<absent>"):
                    bad.append(f"{cid} r{ra['rep']} {k}: {ca.get(k, '<absent>')} != {cb.get(k, '<absent>')}")
            devdiff += sum(1 for k in da if da[k] != db.get(k))
    # the engine's statistics and the fill driver's files
    files = 0
    for d, _, fs in os.walk(os.path.join(old, "stats")):
        for f in fs:
            pa = os.path.join(d, f)
            pb = os.path.join(new, os.path.relpath(pa, old))
            if not os.path.exists(pb):
                bad.append(f"missing in new: {os.path.relpath(pa, old)}")
                continue
            files += 1
            if f.endswith(".json"):
                ca, _ = counters(json.load(open(pa)))
                cb, _ = counters(json.load(open(pb)))
                n += len(ca)
                for k in sorted(set(ca) | set(cb)):
                    if ca.get(k, "<absent>") != cb.get(k, "<absent>"):
                        bad.append(f"{os.path.relpath(pa, old)} {k}: {ca.get(k, '<absent>')} != {cb.get(k, '<absent>')}")
            elif f.endswith("timeline.txt"):  # io t_ms lat_us class free_blocks rc phase
                cut = lambda p: [(l.split()[0],) + tuple(l.split()[3:]) for l in open(p)
                                 if not l.startswith("#")]
                ta, tb = cut(pa), cut(pb)
                n += len(ta)
                if ta != tb:
                    bad.append(f"{os.path.relpath(pa, old)}: timelines differ (io, class, free, rc, phase)")
    # file sets and summary.csv's schema
    def tree(r):
        return {os.path.relpath(os.path.join(d, f), r) for d, _, fs in os.walk(r) for f in fs}
    ta, tb = tree(old), tree(new)
    if ta != tb:
        bad.append(f"file sets differ: only old {sorted(ta - tb)[:10]}, only new {sorted(tb - ta)[:10]}")
    ha = next(csv.reader(open(os.path.join(old, "summary.csv"))))
    hb = next(csv.reader(open(os.path.join(new, "summary.csv"))))
    if ha != hb:
        bad.append("summary.csv header differs")
    ka = [(r[0], r[8], r[9]) for r in list(csv.reader(open(os.path.join(old, "summary.csv"))))[1:]]
    kb = [(r[0], r[8], r[9]) for r in list(csv.reader(open(os.path.join(new, "summary.csv"))))[1:]]
    if ka != kb:
        bad.append("summary.csv rows (case, step, class) differ")
    print(f"{len(a)} cases, {n} counters compared, {files} stats files, {len(ta)} files in the run; "
          f"{len(bad)} differences; dev_* (block-layer accounting, not exact) differ in {devdiff} places")
    for x in bad[:60]:
        print("  DIFF", x)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
