#!/usr/bin/env python3
"""Host half of tests/vm/kernel_perf.sh: the guest's output dir -> CSVs and summary.md.

  kernel_perf_report.py RES [--bs "4k 64k 1m"] [--rc N] [--wall S] [--from-reps]

1. Per repetition (RES/fio/<setup>-<engine>-<case>-<bs>-r<rep>.json, fio JSON):
   RES/kernel_perf_reps.csv, one row per setup x engine x case x bs x rep:
     setup,engine,case,bs,rep,iops,lat_mean_us,lat_p50_us,lat_p99_us,ratio_to_overwrite,accel
   where ratio_to_overwrite is the case's mean latency / the overwrite mean of the same
   repetition, setup, engine and bs. --from-reps reads an existing kernel_perf_reps.csv instead
   of fio/ (a fixture without fio JSON; the test regenerates kernel_perf.csv from it).
2. RES/kernel_perf.csv, aggregated from kernel_perf_reps.csv as written (so that it is a
   function of that file alone):
     setup,engine,case,bs,iops,lat_mean_us,lat_p50_us,lat_p99_us,ratio_to_overwrite,accel,
     reps,ratio_min,ratio_max
   iops and latencies: the median over the repetitions that have the case; ratio_to_overwrite:
   the median of the per-repetition ratios (those with the overwrite too), ratio_min/ratio_max
   their range; reps: how many repetitions have the case. The first ten columns are those of
   the single-run CSV, so readers of that keep working.
3. RES/summary.md (also printed): the tables, the order the engines ran in (times.tsv), the
   pool-block checks per repetition (checks.tsv), the engine's classes, autoextend, fill times.
Python 3 standard library only.
"""
import argparse
import csv
import json
import os
import re
import statistics
import sys

# fio's JSON through the benchmark runner's one reader (which latency, and why: its docstring)
sys.dont_write_bytecode = True  # (no __pycache__ in the tree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scenarios"))
import thinbench_runner.fiojson as fiojson  # noqa: E402

SETUPS = ["loop-lvm", "direct-lvm"]
ENGINES = ["kernel", "libthinp"]
CASES = ["provision", "overwrite", "cow", "cow-overwrite"]
RATIO_CASES = ["provision", "cow", "cow-overwrite"]
BLK = {"loop-lvm": 64 << 10, "direct-lvm": 512 << 10}
GEOM = {"loop-lvm": "loop", "direct-lvm": "direct"}
REPS_COLUMNS = ["setup", "engine", "case", "bs", "rep", "iops", "lat_mean_us", "lat_p50_us",
                "lat_p99_us", "ratio_to_overwrite", "accel"]
CSV_COLUMNS = ["setup", "engine", "case", "bs", "iops", "lat_mean_us", "lat_p50_us", "lat_p99_us",
               "ratio_to_overwrite", "accel", "reps", "ratio_min", "ratio_max"]
FIO_NAME = re.compile(r"^(loop-lvm|direct-lvm)-(kernel|libthinp)-(provision|overwrite|cow|"
                      r"cow-overwrite)-(\d+[kmg]?)-r(\d+)\.json$")


def size(bs):
    m = re.fullmatch(r"(\d+)([kmg]?)", bs)
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2)]


def read_text(path, default=None):
    return open(path).read() if os.path.exists(path) else default


def fio_reps(res, accel):
    """Per-repetition rows from RES/fio/*-r<rep>.json (fio JSON, maybe after a warning line):
    fio's lat, the whole IO (thinbench_runner/fiojson.py)."""
    rows = []
    d = os.path.join(res, "fio")
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        m = FIO_NAME.match(name)
        if not m:
            continue
        s, e, c, bs, rep = m.groups()
        try:
            w = fiojson.jobs(fiojson.load(os.path.join(d, name)))[0]["write"]
            if not w["total_ios"]:
                raise ValueError("no writes completed")
            lat = fiojson.latency(w)
            rows.append(dict(setup=s, engine=e, case=c, bs=bs, rep=int(rep), iops=w["iops"],
                             mean=lat.mean / 1e3, p50=lat.p50 / 1e3, p99=lat.p99 / 1e3,
                             accel=accel))
        except Exception as ex:  # a failed fio leaves an empty or partial file
            print(f"kernel_perf: no result in fio/{name}: {ex!r}", file=sys.stderr)
    by = {(r["setup"], r["engine"], r["bs"], r["rep"], r["case"]): r for r in rows}
    for r in rows:
        ow = by.get((r["setup"], r["engine"], r["bs"], r["rep"], "overwrite"))
        r["ratio"] = r["mean"] / ow["mean"] if ow and ow["mean"] else None
    order = lambda r: (SETUPS.index(r["setup"]), ENGINES.index(r["engine"]), size(r["bs"]),
                       r["rep"], CASES.index(r["case"]))
    return sorted(rows, key=order)


def write_reps(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(REPS_COLUMNS)
        for r in rows:
            w.writerow([r["setup"], r["engine"], r["case"], r["bs"], r["rep"], f"{r['iops']:.1f}",
                        f"{r['mean']:.1f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                        "" if r["ratio"] is None else f"{r['ratio']:.4f}", r["accel"]])


def read_reps(path):
    """kernel_perf_reps.csv -> list of dicts with numbers; exits 2 naming a bad line."""
    if not os.path.exists(path):
        sys.exit(f"kernel_perf_report: {path} does not exist (--from-reps needs it)")
    out = []
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        miss = [c for c in REPS_COLUMNS if c not in (rd.fieldnames or [])]
        if miss:
            sys.exit(f"kernel_perf_report: {path}: no column(s) {', '.join(miss)}")
        for n, x in enumerate(rd, start=2):
            try:
                out.append(dict(setup=x["setup"], engine=x["engine"], case=x["case"], bs=x["bs"],
                                rep=int(x["rep"]), iops=float(x["iops"]),
                                mean=float(x["lat_mean_us"]), p50=float(x["lat_p50_us"]),
                                p99=float(x["lat_p99_us"]), accel=x["accel"],
                                ratio=float(x["ratio_to_overwrite"]) if x["ratio_to_overwrite"]
                                else None))
            except (TypeError, ValueError) as ex:
                sys.exit(f"kernel_perf_report: {path} line {n}: {ex}")
    return out


def aggregate(reps):
    """(setup, engine, bs, case) -> medians over the repetitions, ratio range, the values."""
    groups = {}
    for r in reps:
        groups.setdefault((r["setup"], r["engine"], r["bs"], r["case"]), []).append(r)
    agg = {}
    for key, rs in groups.items():
        rs.sort(key=lambda r: r["rep"])
        ratios = [r["ratio"] for r in rs if r["ratio"] is not None]
        agg[key] = dict(setup=key[0], engine=key[1], bs=key[2], case=key[3], reps=len(rs),
                        iops=statistics.median(r["iops"] for r in rs),
                        mean=statistics.median(r["mean"] for r in rs),
                        p50=statistics.median(r["p50"] for r in rs),
                        p99=statistics.median(r["p99"] for r in rs),
                        ratio=statistics.median(ratios) if ratios else None,
                        rmin=min(ratios) if ratios else None, rmax=max(ratios) if ratios else None,
                        per_rep={r["rep"]: r["ratio"] for r in rs}, accel=rs[0]["accel"])
    return agg


def write_csv(path, agg):
    order = lambda k: (SETUPS.index(k[0]), ENGINES.index(k[1]), size(k[2]), CASES.index(k[3]))
    f4 = lambda v: "" if v is None else f"{v:.4f}"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for key in sorted(agg, key=order):
            a = agg[key]
            w.writerow([a["setup"], a["engine"], a["case"], a["bs"], f"{a['iops']:.1f}",
                        f"{a['mean']:.1f}", f"{a['p50']:.1f}", f"{a['p99']:.1f}", f4(a["ratio"]),
                        a["accel"], a["reps"], f4(a["rmin"]), f4(a["rmax"])])


def spread(a):
    """'1.38 [1.20–1.50]' (median [min–max]); just the median with one repetition."""
    if not a or a["ratio"] is None:
        return "–"
    if a["rmin"] == a["rmax"]:
        return f"{a['ratio']:.2f}"
    return f"{a['ratio']:.2f} [{a['rmin']:.2f}–{a['rmax']:.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("res")
    ap.add_argument("--bs", help="the sizes run, e.g. '4k 64k' (default: those in the results)")
    ap.add_argument("--rc", type=int, default=0, help="run.sh's exit status")
    ap.add_argument("--wall", default="?", help="the host's wall time, seconds")
    ap.add_argument("--from-reps", action="store_true",
                    help="read RES/kernel_perf_reps.csv instead of RES/fio/")
    a = ap.parse_args()
    res, rc, wall = a.res, a.rc, a.wall
    if not os.path.isdir(res):
        sys.exit(f"kernel_perf_report: {res}: no such directory")
    accel_lines = (read_text(f"{res}/accel.txt") or "?").split("\n")
    accel = accel_lines[0].strip() or "?"
    accel_why = accel_lines[1].strip() if len(accel_lines) > 1 else ""
    reps_csv = f"{res}/kernel_perf_reps.csv"
    if not a.from_reps:
        write_reps(reps_csv, fio_reps(res, accel))
    reps = read_reps(reps_csv)
    agg = aggregate(reps)
    write_csv(f"{res}/kernel_perf.csv", agg)
    bs_list = a.bs.split() if a.bs else sorted({r["bs"] for r in reps}, key=size)
    info = dict(w.split("=", 1) for w in (read_text(f"{res}/info.txt") or "").split() if "=" in w)
    nreps = int(info["reps"]) if info.get("reps", "").isdigit() else \
        max((r["rep"] for r in reps), default=0)

    def nlog(setup, bs):
        p = f"{res}/iologs/{GEOM[setup]}-{bs}.log"
        return sum(1 for l in open(p) if " write " in l) if os.path.exists(p) else None

    # checks: pool data blocks used before/after each case vs what distinct-block writes imply
    checks = []
    for line in (read_text(f"{res}/checks.tsv") or "").splitlines():
        f_ = line.split()
        if len(f_) == 6:  # (a single-run guest: no rep column)
            f_.insert(4, "1")
        if len(f_) != 7:
            continue
        s, e, c, bs, rep, u0, u1 = f_
        n = nlog(s, bs)
        exp = (n or 0) * max(1, size(bs) // BLK[s]) if c in ("provision", "cow") else 0
        try:
            got = int(u1) - int(u0)
        except ValueError:
            got = None
        checks.append((s, e, c, bs, rep, got, exp, n is not None))
    # the engine's own classification of the libthinp writes (summed over the repetitions)
    classes = {}
    fdir = f"{res}/fio"
    for name in sorted(os.listdir(fdir)) if os.path.isdir(fdir) else []:
        m = re.match(r"^(loop-lvm|direct-lvm)-libthinp-(.+)-(\d+[kmg]?)-r\d+-stats\.json$", name)
        if not m:
            continue
        try:
            cl = json.load(open(f"{fdir}/{name}"))["classes"]
        except Exception:
            continue
        d = classes.setdefault((m.group(1), m.group(3), m.group(2)), {})
        for k, v in cl.items():
            if v.get("ios"):
                d[k] = d.get(k, 0) + v["ios"]
    # when each engine ran (guest uptime of each group of four cases)
    times = {}
    for line in (read_text(f"{res}/times.tsv") or "").splitlines():
        f_ = line.split()
        if len(f_) == 6:
            s, e, rep, bs, t0, t1 = f_
            times.setdefault((s, e), []).append((float(t0), float(t1)))

    L = ["# Kernel dm-thin vs libthinp, per-write cost in one VM\n"]
    emu = accel.lower() != "kvm"
    L.append(f"**Accelerator: {accel}** ({accel_why}). " + (
        "The guest was **emulated** (TCG software emulation, roughly 10x slower than the host): "
        "absolute IOPS and latencies are TCG-bound and only indicative; compare the **ratios "
        "within a setup and engine** (each case's mean latency divided by the overwrite mean at "
        "the same bs, on the same device)." if emu else
        "The guest ran under KVM; still compare ratios rather than absolute figures with the "
        "host.") + "\n")
    L.append(f"**{nreps} repetition{'s' if nreps != 1 else ''}** of every case (`--reps`, "
             "`KP_REPS`), each on a fresh thin (provision, then overwrite) and a fresh snapshot "
             "of the filled origin (cow, then cow-overwrite). A ratio is taken inside one "
             "repetition (the case's mean latency ÷ that repetition's overwrite mean, same setup, "
             "engine and bs) and reported as the **median [min–max]** over the repetitions; IOPS "
             "and latencies are medians. Every case starts after the pool's status (for the "
             "kernel: a metadata commit) and a `sync`, so one case's write-back (loop-lvm is "
             "buffered) does not land in the next one's measurement.\n")
    L.append("QD1, direct=1, fio replaying seeded iologs of writes into distinct pool blocks; thin "
             "devices 256 MiB; writes per case: " + ", ".join(
                 f"{bs}: loop-lvm {nlog('loop-lvm', bs)}, direct-lvm {nlog('direct-lvm', bs)}"
                 for bs in bs_list) +
             ". loop-lvm: 64k blocks, skip_block_zeroing, loop devices over sparse files on ext4 "
             "(buffered, as Docker's); libthinp there uses thinp_mode=loop on sparse files. "
             "direct-lvm: 512K chunks, zeroing off, on a virtio disk (host file, cache=none when "
             "possible); libthinp there uses thinp_mode=direct on linear LVs on the same disk "
             "(after the pool is removed). Kernel thin devices are created by pool messages on "
             "the pool device, as Docker's driver does. Latencies: fio's lat, slat + clat (for "
             "libthinp this includes the whole engine call; percentiles are clat's when the "
             "guest's fio ran without lat_percentiles=1).\n")

    def span(s, e):
        t = times.get((s, e))
        return f"{min(x[0] for x in t):.0f}–{max(x[1] for x in t):.0f} s" if t else "?"
    L.append("**Order.** loop-lvm: the kernel's pool and libthinp's live side by side on the "
             "scratch disk, and the engines **alternate** per repetition and size (kernel first "
             "in odd repetitions, libthinp first in even ones), so both see the same background "
             f"load (guest uptime: kernel {span('loop-lvm', 'kernel')}, libthinp "
             f"{span('loop-lvm', 'libthinp')}). direct-lvm: the seed's LVM thin pool takes 95 % "
             "of the 1 GiB disk, so libthinp's LVs can only be made after it is removed: **all "
             "kernel repetitions run first, then all libthinp repetitions, in sequence** (kernel "
             f"{span('direct-lvm', 'kernel')}, libthinp {span('direct-lvm', 'libthinp')}); "
             "compare its kernel and libthinp ratios with that in mind.\n")
    if rc:
        L.append(f"**The VM job did not finish cleanly (run.sh exit {rc}); the tables hold what "
                 "came back.**\n")
    for s in SETUPS:
        L.append(f"## {s}\n")
        L.append("| engine | bs | case | reps | IOPS | mean µs | p50 µs | p99 µs | ÷ overwrite, "
                 "median [min–max] |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for e in ENGINES:
            for bs in bs_list:
                for c in CASES:
                    r = agg.get((s, e, bs, c))
                    if not r:
                        L.append(f"| {e} | {bs} | {c} | 0 | – | – | – | – | – |")
                        continue
                    L.append(f"| {e} | {bs} | {c} | {r['reps']} | {r['iops']:.0f} | "
                             f"{r['mean']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | "
                             f"**{spread(r)}** |")
        L.append("")
        L.append("Ratios side by side (mean latency ÷ overwrite mean, same engine, same bs, same "
                 "repetition; median [min–max], then each repetition's):\n")
        L.append("| bs | case | kernel | libthinp | kernel per rep | libthinp per rep |")
        L.append("|---|---|---:|---:|---|---|")
        for bs in bs_list:
            for c in RATIO_CASES:
                k, l = agg.get((s, "kernel", bs, c)), agg.get((s, "libthinp", bs, c))
                per = lambda r: "–" if not r else " · ".join(
                    "–" if v is None else f"{v:.2f}" for _, v in sorted(r["per_rep"].items()))
                L.append(f"| {bs} | {c} | {spread(k)} | {spread(l)} | {per(k)} | {per(l)} |")
        L.append("")
    L.append("## Checks\n")
    bad = [c for c in checks if c[5] != c[6] or not c[7]]
    L.append(f"Pool data blocks allocated per case and repetition vs expected (n writes × blocks "
             f"per write for provision and cow, 0 for the overwrites): {len(checks) - len(bad)} "
             f"of {len(checks)} as expected.")
    for s, e, c, bs, rep, got, exp, have_log in bad:
        L.append(f"- MISMATCH {s} {e} {c} {bs} r{rep}: {got} blocks, expected {exp}" +
                 ("" if have_log else " (no iolog to count the writes)"))
    if classes:
        L.append("\nlibthinp engine classes per case (ios, summed over the repetitions):")
        for (s, bs, c), d in sorted(classes.items()):
            L.append(f"- {s} {bs} {c}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())))
    L.append("\n## Autoextend (direct-lvm, profile threshold 80 / percent 20)\n")
    L.append("dmeventd is not running in the guest, so the check runs `lvextend --use-policies "
             "docker/thinpool` itself (what dmeventd's thin plugin calls), once below 80% and once "
             "after filling the pool past 80% (after all kernel repetitions).\n")
    L.append("```\n" + (read_text(f"{res}/autoextend.txt") or "no autoextend.txt").strip() +
             "\n```\n")
    fill = [l.split() for l in (read_text(f"{res}/fill.tsv") or "").splitlines() if l.strip()]
    if fill:
        L.append("Origin fill (256 MiB, 1 MiB sequential, direct): " + "; ".join(
            f"{x[0]} {x[1]} {float(x[3]):.1f} s" for x in fill if len(x) == 4) + "\n")
    vt = (read_text(f"{res}/vm-times.txt") or "?").strip()
    L.append(f"VM: {vt}; host wall time {wall} s.\n")
    open(f"{res}/summary.md", "w").write("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
