"""Kernel dm-thin, measured in a qemu VM by tests/vm/kernel_perf.sh (`scenarios/run --kernel`,
or a finished `make vm-perf` merged with --kernel-results DIR); docs/vm-harness.md.

The run keeps that output dir as RUN/kernel/; kernel.csv and the report's kernel section are
computed from its kernel_perf.csv. Absolute times in an emulated guest mean nothing next to
the host's, so only ratios within the VM are reported: each case's mean latency ÷ the
overwrite mean of the same setup, engine and write size (the same device). A CSV with
repetitions (columns reps, ratio_min, ratio_max after the first ten) gives per row the median
ratio over the repetitions (each taken against its own repetition's overwrite) and its range;
those are used as they are. The single-run CSV (the first ten columns only) gives one
measurement: its ratio is computed from the two mean latencies, and the range is that one
value.
"""
import csv
import os
import statistics

from .case import cid
from .units import bs_bytes

KERNEL_DIR = "kernel"
KERNEL_NOTE = ("not measured in this run: `scenarios/run --kernel` measures it in a qemu VM "
               "(tests/vm/kernel_perf.sh, several minutes under TCG), `scenarios/run "
               "--kernel-results DIR` merges a finished `make vm-perf` (build/vm/kernel_perf)")
KERNEL_PERF_COLUMNS = ["setup", "engine", "case", "bs", "iops", "lat_mean_us", "lat_p50_us",
                       "lat_p99_us", "ratio_to_overwrite", "accel"]
KERNEL_PERF_REP_COLUMNS = ["reps", "ratio_min", "ratio_max"]
KERNEL_SETUPS = {"loop-lvm": "loop", "direct-lvm": "direct"}
KERNEL_ENGINES = ("kernel", "libthinp")
KERNEL_CASES = ("provision", "overwrite", "cow", "cow-overwrite")
KERNEL_RATIO_CASES = ("provision", "cow", "cow-overwrite")
KERNEL_CASE_TEXT = {"provision": "provision ÷ overwrite", "cow": "CoW ÷ overwrite",
                    "cow-overwrite": "overwrite after CoW ÷ overwrite"}
KERNEL_CSV_COLUMNS = [
    "setup", "bs", "case", "kernel_ratio", "libthinp_vm_ratio", "libthinp_vs_kernel",
    "host_ratio", "host_ratio_min", "host_ratio_max", "host_case", "host_overwrite_case",
    "kernel_lat_mean_us", "kernel_overwrite_lat_mean_us", "libthinp_vm_lat_mean_us",
    "libthinp_vm_overwrite_lat_mean_us", "accel",
    "kernel_ratio_min", "kernel_ratio_max", "kernel_reps",
    "libthinp_vm_ratio_min", "libthinp_vm_ratio_max", "libthinp_vm_reps",
]
KERNEL_HINT = ("a tests/vm/kernel_perf.sh output dir is expected (`make vm-perf` writes "
               "build/vm/kernel_perf; `scenarios/run --kernel` makes one in the run)")


class KernelDataError(Exception):
    pass


def load_kernel(d):
    """Read and check a kernel_perf output dir. Returns a dict (rows by (setup, engine, bs,
    case), accel, autoextend, ...); raises KernelDataError naming the problem."""
    if not os.path.isdir(d):
        raise KernelDataError(f"{d}: no such directory ({KERNEL_HINT})")
    path = os.path.join(d, "kernel_perf.csv")
    if not os.path.isfile(path):
        job = os.path.join(d, "job.log")
        raise KernelDataError(
            f"{d} has no kernel_perf.csv: " + (
                f"the VM job did not get as far as its results (see {job})"
                if os.path.exists(job) else KERNEL_HINT))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise KernelDataError(f"{path} is empty ({KERNEL_HINT})")
    head = [h.strip() for h in rows[0]]
    missing = [c for c in KERNEL_PERF_COLUMNS if c not in head]
    if missing:
        raise KernelDataError(f"{path}: header {','.join(head)!r} lacks column(s) "
                              f"{', '.join(missing)} (expected {','.join(KERNEL_PERF_COLUMNS)})")
    has_reps = any(c in head for c in KERNEL_PERF_REP_COLUMNS)
    missing = [c for c in KERNEL_PERF_REP_COLUMNS if c not in head]
    if has_reps and missing:
        raise KernelDataError(f"{path}: header {','.join(head)!r} has some of the repetition "
                              f"columns but lacks {', '.join(missing)} (expected all of "
                              f"{', '.join(KERNEL_PERF_REP_COLUMNS)}, or none)")
    by, order_bs = {}, []
    for n, r in enumerate(rows[1:], start=2):
        if not any(x.strip() for x in r):
            continue
        if len(r) != len(head):
            raise KernelDataError(f"{path} line {n}: {len(r)} fields, the header has {len(head)}")
        x = check_row(dict(zip(head, (v.strip() for v in r))), f"{path} line {n}", has_reps)
        key = (x["setup"], x["engine"], x["bs"], x["case"])
        if key in by:
            raise KernelDataError(f"{path} line {n}: a second row for {' '.join(key)}")
        by[key] = x
        if x["bs"] not in order_bs:
            order_bs.append(x["bs"])
    if not by:
        raise KernelDataError(f"{path} has a header but no result rows (the VM job failed? "
                              f"see {os.path.join(d, 'job.log')})")
    k = {"dir": d, "rows": by, "bs": sorted(order_bs, key=bs_bytes),
         "setups": [s for s in KERNEL_SETUPS if any(key[0] == s for key in by)],
         "has_reps": has_reps, "reps": max(x["reps"] for x in by.values())}
    if not any(kernel_ratio(k, s, e, bs, c) is not None for (s, e, bs, c) in by
               if c in KERNEL_RATIO_CASES):
        raise KernelDataError(f"{path}: no case has an overwrite row of the same setup, engine "
                              "and bs, so no ratio can be computed")
    read_accel(k, d)
    k["autoextend"] = None
    aep = os.path.join(d, "autoextend.txt")
    if os.path.isfile(aep):
        k["autoextend"] = open(aep).read().strip()
    k["vm_times"] = kv_line(os.path.join(d, "vm-times.txt"))
    info = os.path.join(d, "info.txt")
    k["guest"] = kv_line(info) if os.path.isfile(info) else {}
    k["quick"] = "1m" not in k["bs"]
    return k


def check_row(x, where, has_reps):
    """One kernel_perf.csv row, its numbers converted; KernelDataError naming a bad field."""
    if x["setup"] not in KERNEL_SETUPS:
        raise KernelDataError(f"{where}: unknown setup {x['setup']!r} "
                              f"(expected {' or '.join(KERNEL_SETUPS)})")
    if x["engine"] not in KERNEL_ENGINES:
        raise KernelDataError(f"{where}: unknown engine {x['engine']!r} "
                              f"(expected {' or '.join(KERNEL_ENGINES)})")
    if x["case"] not in KERNEL_CASES:
        raise KernelDataError(f"{where}: unknown case {x['case']!r} "
                              f"(expected one of {', '.join(KERNEL_CASES)})")
    if bs_bytes(x["bs"]) is None:
        raise KernelDataError(f"{where}: bs {x['bs']!r} is not a size like 4k, 64k, 1m")
    for k in ("iops", "lat_mean_us", "lat_p50_us", "lat_p99_us"):
        try:
            x[k] = float(x[k])
        except ValueError:
            raise KernelDataError(f"{where}: {k} {x[k]!r} is not a number") from None
    if not x["lat_mean_us"] > 0:
        raise KernelDataError(f"{where}: lat_mean_us {x['lat_mean_us']} is not positive")
    for k in ("ratio_to_overwrite",) + (("ratio_min", "ratio_max") if has_reps else ()):
        try:
            x[k] = float(x[k]) if x[k] != "" else None
        except ValueError:
            raise KernelDataError(f"{where}: {k} {x[k]!r} is not a number") from None
        if x[k] is not None and not x[k] > 0:
            raise KernelDataError(f"{where}: {k} {x[k]} is not positive")
    if has_reps:
        if not x["reps"].isdigit() or int(x["reps"]) < 1:
            raise KernelDataError(f"{where}: reps {x['reps']!r} is not a positive integer")
        x["reps"] = int(x["reps"])
        r, lo, hi = x["ratio_to_overwrite"], x["ratio_min"], x["ratio_max"]
        if (r is None) != (lo is None) or (r is None) != (hi is None):
            raise KernelDataError(f"{where}: ratio_to_overwrite, ratio_min and ratio_max "
                                  "must be all given or all empty")
        if r is not None and not lo - 1e-9 <= r <= hi + 1e-9:
            raise KernelDataError(f"{where}: ratio_to_overwrite {r} is not within "
                                  f"[ratio_min {lo}, ratio_max {hi}]")
    else:
        x["reps"] = 1
    return x


def read_accel(k, d):
    """The accelerator: accel.txt (first line; 'reason: ...', 'cpu: ...'), else the CSV's
    accel column when all rows agree."""
    k["accel"], k["accel_reason"], k["accel_detail"] = None, "", ""
    ap = os.path.join(d, "accel.txt")
    if os.path.isfile(ap):
        lines = [l.strip() for l in open(ap).read().splitlines()]
        k["accel"] = (lines[0] if lines else "") or None
        for l in lines[1:]:
            if l.startswith("reason:"):
                k["accel_reason"] = l.split(":", 1)[1].strip()
            elif l.startswith("cpu:"):
                k["accel_detail"] = l.split(":", 1)[1].strip()
    k["accel_source"] = "accel.txt" if k["accel"] else None
    if not k["accel"]:
        vals = {x["accel"] for x in k["rows"].values() if x["accel"]}
        k["accel"] = vals.pop() if len(vals) == 1 else None
        k["accel_source"] = "kernel_perf.csv" if k["accel"] else None


def kv_line(path):
    """key=value words of a one-line file (vm-times.txt, info.txt); {} if absent."""
    if not os.path.isfile(path):
        return {}
    out = {}
    for w in open(path).read().split():
        if "=" in w:
            a, b = w.split("=", 1)
            out[a] = b
    return out


def emulated(k):
    return (k.get("accel") or "").lower() != "kvm"


def kernel_ratio(k, setup, engine, bs, case):
    """The case's mean latency ÷ the overwrite mean, same setup, engine and bs (in the VM): the
    median over the repetitions (taken per repetition, by kernel_perf) when the CSV has them,
    else from the two mean latencies of the single run."""
    s = kernel_spread(k, setup, engine, bs, case)
    return s[0] if s else None


def kernel_spread(k, setup, engine, bs, case):
    """(median ratio, min, max, repetitions) of kernel_ratio; None without a ratio."""
    a = k["rows"].get((setup, engine, bs, case))
    b = k["rows"].get((setup, engine, bs, "overwrite"))
    if not a or not b or not b["lat_mean_us"]:
        return None
    if k.get("has_reps"):
        if a["ratio_to_overwrite"] is None:
            return None
        return a["ratio_to_overwrite"], a["ratio_min"], a["ratio_max"], a["reps"]
    r = a["lat_mean_us"] / b["lat_mean_us"]
    return r, r, r, 1


def host_analogs(run, mode, bs, case):
    """The host cases of this run that measure the VM's CASE: ((case id, step), (overwrite
    case id, step)), either None when the run has no such case. Random order first (the VM
    replays a shuffled log of distinct blocks), zeroing off (both VM set-ups skip zeroing)."""
    b = bs_bytes(bs)
    ow = cid("overwrite", "thinp", mode, None, bs=b)
    ow = (ow, "steady") if ow in run.cases and run.row(ow, "steady") else None
    if case == "overwrite":
        return ow, ow
    num = None
    for order in ("rand", "seq"):
        if case == "provision":
            i, step = cid("alloc", "thinp", mode, False, bs=b, order=order), "first-write"
        else:
            i = cid("cow", "thinp", mode, None, bs=b, order=order)
            step = "first" if case == "cow" else "second"
        if i in run.cases and run.row(i, step):
            num = (i, step)
            break
    return num, ow


def host_ratio(run, mode, bs, case):
    """Median [min, max] over repetitions of cost(case) / cost(overwrite), libthinp on the host
    in this run (both taken in the same repetition), and the two case ids."""
    num, ow = host_analogs(run, mode, bs, case)
    if not num or not ow:
        return None, None, None, num, ow
    a = run.rep_values(num[0], num[1], "all", "cost_us")
    b = run.rep_values(ow[0], ow[1], "all", "cost_us")
    rs = [a[r] / b[r] for r in a if r in b and b[r]]
    if not rs:
        return None, None, None, num, ow
    return statistics.median(rs), min(rs), max(rs), num, ow


def kernel_rows(run):
    """One dict per setup × bs × ratio case: kernel.csv's rows."""
    k = run.kernel
    out = []
    for setup in k["setups"]:
        mode = KERNEL_SETUPS[setup]
        for bs in k["bs"]:
            for case in KERNEL_RATIO_CASES:
                kr = kernel_ratio(k, setup, "kernel", bs, case)
                lr = kernel_ratio(k, setup, "libthinp", bs, case)
                if kr is None and lr is None:
                    continue
                h, hmin, hmax, num, ow = host_ratio(run, mode, bs, case)
                g = lambda e, c: (k["rows"].get((setup, e, bs, c)) or {}).get("lat_mean_us")
                ks = kernel_spread(k, setup, "kernel", bs, case) or (None,) * 4
                ls = kernel_spread(k, setup, "libthinp", bs, case) or (None,) * 4
                out.append({
                    "setup": setup, "bs": bs, "case": case, "kernel_ratio": kr,
                    "libthinp_vm_ratio": lr,
                    "libthinp_vs_kernel": lr / kr if kr and lr is not None else None,
                    "host_ratio": h, "host_ratio_min": hmin, "host_ratio_max": hmax,
                    "host_case": f"{num[0]}:{num[1]}" if num else "",
                    "host_overwrite_case": f"{ow[0]}:{ow[1]}" if ow else "",
                    "kernel_lat_mean_us": g("kernel", case),
                    "kernel_overwrite_lat_mean_us": g("kernel", "overwrite"),
                    "libthinp_vm_lat_mean_us": g("libthinp", case),
                    "libthinp_vm_overwrite_lat_mean_us": g("libthinp", "overwrite"),
                    "accel": k["accel"] or "",
                    "kernel_ratio_min": ks[1], "kernel_ratio_max": ks[2], "kernel_reps": ks[3],
                    "libthinp_vm_ratio_min": ls[1], "libthinp_vm_ratio_max": ls[2],
                    "libthinp_vm_reps": ls[3],
                })
    return out


def write_kernel_csv(run):
    path = os.path.join(run.dir, "kernel.csv")
    if not run.kernel:
        if os.path.exists(path):
            os.unlink(path)
        return None
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=KERNEL_CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in kernel_rows(run):
            w.writerow({c: ("" if r.get(c) is None else
                            f"{r[c]:.6g}" if isinstance(r[c], float) else r[c])
                        for c in KERNEL_CSV_COLUMNS})
    return path
