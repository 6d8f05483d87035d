"""Kernel dm-thin beside libthinp, from a run's own rows: every `...kernel.loop` /
`...kernel.direct` twin of summary.csv/cases.json paired with libthinp's case of the same
scenario, parameters and mode (`...thinp.loop`, `...thinp.direct`), step by step.

The rows come from the run itself (`scenarios/run --backend libthinp,kernel`, natively or in
the VM by `make vm-bench`), or from such a run merged into a host run as RUN/kernel/
(`scenarios/run --report RUN --kernel-results VMRUN`: its cases.json, env.json and vm/). Where
the kernel ran emulated (the run's vm/accel.txt names TCG, or has no accelerator), absolute
times mean nothing beside a host's: the section shows each case's cost as ratios to the same
backend's overwrite steady state and to the case's raw baseline, both taken inside one
repetition of the same boot. Natively, the absolute mean latencies are shown as well."""
import csv
import os
import statistics

from .units import human

KERNEL_DIR = "kernel"
KERNEL_NOTE = ("not measured in this run: `scenarios/run --backend libthinp,kernel` measures "
               "it (root, device-mapper), `make vm-bench` in a qemu VM; `scenarios/run "
               "--report RUN --kernel-results VMRUN` merges a finished `make vm-bench` run")
KERNEL_SETUPS = {"loop-lvm": "loop", "direct-lvm": "direct"}
MODE_SETUP = {v: k for k, v in KERNEL_SETUPS.items()}
KERNEL_CSV_COLUMNS = [
    "kernel_case", "thinp_case", "setup", "scenario", "params", "step", "ios",
    "kernel_us", "thinp_us", "thinp_vs_kernel",
    "kernel_ratio_overwrite", "thinp_ratio_overwrite",
    "kernel_ratio_raw", "thinp_ratio_raw",
    "kernel_data_read_per_io", "thinp_data_read_per_io",
    "kernel_data_written_per_io", "thinp_data_written_per_io",
    "kernel_meta_written_per_io", "thinp_meta_written_per_io", "accel",
    # issue 11's fidelity figures (kernel_fidelity.py): class ÷ overwrite per repetition,
    # median and range; per IO µs of the devices' busy time and the rest; bytes per commit
    "reps", "kernel_ratio_overwrite_min", "kernel_ratio_overwrite_max",
    "thinp_ratio_overwrite_min", "thinp_ratio_overwrite_max",
    "thinp_vs_kernel_overwrite", "thinp_vs_kernel_overwrite_min",
    "thinp_vs_kernel_overwrite_max", "within_25pct",
    "kernel_total_us_per_io", "kernel_data_busy_us_per_io", "kernel_meta_busy_us_per_io",
    "kernel_rest_us_per_io", "thinp_total_us_per_io", "thinp_data_busy_us_per_io",
    "thinp_meta_busy_us_per_io", "thinp_rest_us_per_io",
    "kernel_meta_per_commit", "thinp_meta_per_commit", "thinp_vs_kernel_per_commit",
    "within_10pct",
]
KERNEL_HINT = ("a run dir with kernel rows is expected (`make vm-bench` writes one under "
               "results/; `scenarios/run --backend libthinp,kernel` makes one natively)")


class KernelDataError(Exception):
    pass


def twin_of(cid):
    """libthinp's case id for the kernel case CID (the id differs only in the backend)."""
    parts = cid.split(".")
    i = max(n for n, p in enumerate(parts) if p == "kernel")
    return ".".join(parts[:i] + ["thinp"] + parts[i + 1:])


def overwrite_of(c, backend):
    """The overwrite steady-state case of C's mode and write size for BACKEND."""
    bs = c["params"].get("bs")
    return f"overwrite.bs={human(bs)}.{backend}.{c['mode']}" if bs else None


def read_vm(d):
    """The VM's files of a run (vm/accel.txt: first line the accelerator, 'reason: ...',
    'cpu: ...'; vm/vm-times.txt: key=value words); None for a run made on its host."""
    vd = os.path.join(d, "vm")
    if not os.path.isdir(vd):
        return None
    vm = {"accel": None, "reason": "", "cpu": "", "times": {}}
    ap = os.path.join(vd, "accel.txt")
    if os.path.isfile(ap):
        lines = [l.strip() for l in open(ap).read().splitlines()]
        vm["accel"] = (lines[0] if lines else "") or None
        for l in lines[1:]:
            for key in ("reason", "cpu"):
                if l.startswith(key + ":"):
                    vm[key] = l.split(":", 1)[1].strip()
    tp = os.path.join(vd, "vm-times.txt")
    if os.path.isfile(tp):
        vm["times"] = dict(w.split("=", 1) for w in open(tp).read().split() if "=" in w)
    return vm


def emulated(k):
    """True unless the kernel ran on its host or under KVM (an unknown accelerator counts as
    emulated)."""
    vm = k.get("vm")
    return vm is not None and (vm.get("accel") or "").lower() != "kvm"


def load_kernel(src, d):
    """The kernel side of the run SRC (a rundata.Run holding the kernel rows) whose dir is D:
    the step pairs and what the run says about where they ran. KernelDataError without a
    kernel row."""
    kc = [i for i, c in src.cases.items() if c["backend"] == "kernel"]
    if not kc:
        raise KernelDataError(f"{d}: no kernel case in cases.json ({KERNEL_HINT})")
    pairs = []
    for i in kc:
        c = src.cases[i]
        t = twin_of(i)
        for step in src.steps(i):
            pairs.append(step_pair(src, i, t if t in src.cases else None, step))
    if not any(p["kernel_us"] for p in pairs):
        raise KernelDataError(f"{d}: no kernel case has a successful repetition "
                              "(see cases.json's errors)")
    vm = read_vm(d)
    return {"dir": d, "run": src, "vm": vm, "pairs": pairs,
            "setups": [s for s, m in KERNEL_SETUPS.items()
                       if any(p["mode"] == m for p in pairs)],
            "reps": max(len(src.rep_values(i, s, "all", "cost_us")) or 0
                        for i in kc for s in src.steps(i) or [""]),
            "accel": (vm or {}).get("accel") or ("host" if vm is None else None)}


def per_io(run, cid, step, keys):
    """The median over repetitions of the sum of KEYS per IO of CID's STEP (class all)."""
    ios = run.rep_values(cid, step, "all", "ios")
    vals = [run.rep_values(cid, step, "all", k) for k in keys]
    xs = [sum(v.get(r, 0) for v in vals) / ios[r] for r in ios
          if ios[r] and any(r in v for v in vals)]
    return statistics.median(xs) if xs else None


def step_pair(run, kid, tid, step):
    """One kernel step beside libthinp's same step: costs, ratios, bytes per IO."""
    c = run.cases[kid]
    row = {"kernel_case": kid, "thinp_case": tid or "", "setup": MODE_SETUP.get(c["mode"], c["mode"]),
           "mode": c["mode"], "scenario": c["scenario"], "params": c["params"], "step": step}
    for side, cid in (("kernel", kid), ("thinp", tid)):
        r = run.row(cid, step) if cid else None
        ok = bool(r and r.get("median_us"))
        row[f"{side}_us"] = r["median_us"] if ok else None
        row[f"{side}_ratio_raw"] = r.get("ratio_raw") if ok else None
        if side == "kernel":
            row["ios"] = r.get("ios") if ok else None
        ow = overwrite_of(c, "kernel" if side == "kernel" else "thinp")
        pr = run.pair_ratio(cid, ow, step, "steady") if ok and ow in run.cases else None
        row[f"{side}_ratio_overwrite"] = pr[0] if pr else None
        if not ok:
            for k in ("data_read", "data_written", "meta_written"):
                row[f"{side}_{k}_per_io"] = None
            continue
        row[f"{side}_data_read_per_io"] = per_io(run, cid, step, ["data_read"])
        # (libthinp counts its zeroing apart; the kernel's is a data-device write like any)
        row[f"{side}_data_written_per_io"] = per_io(
            run, cid, step, ["data_written"] + (["data_zeroed"] if side == "thinp" else []))
        row[f"{side}_meta_written_per_io"] = per_io(run, cid, step, ["meta_written"])
    k, t = row["kernel_us"], row["thinp_us"]
    row["thinp_vs_kernel"] = t / k if k and t else None
    return row


def loop_direct(k):
    """The seed's claim (loop-lvm performs poorly vs direct-lvm) per backend: for every step
    both set-ups ran, loop-lvm's cost ÷ direct-lvm's (each the median over repetitions).
    {backend: [(kernel case id without its mode, step, ratio)]}."""
    run, out = k["run"], {"kernel": [], "thinp": []}
    for p in k["pairs"]:
        if p["mode"] != "loop":
            continue
        for side in out:
            lid = p["kernel_case"] if side == "kernel" else p["thinp_case"]
            if not lid:
                continue
            did = lid.replace(f".{side}.loop", f".{side}.direct")
            a, b = run.row(lid, p["step"]), run.row(did, p["step"])
            if a and b and a.get("median_us") and b.get("median_us"):
                out[side].append((lid.replace(f".{side}.loop", ""), p["step"],
                                  a["median_us"] / b["median_us"]))
    return out


def write_kernel_csv(run):
    path = os.path.join(run.dir, "kernel.csv")
    if not run.kernel:
        if os.path.exists(path):
            os.unlink(path)
        return None
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=KERNEL_CSV_COLUMNS, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        fid = fidelity_columns(run.kernel)
        for p in run.kernel["pairs"]:
            out = dict(p, accel=run.kernel["accel"] or "",
                       params=";".join(f"{a}={b}" for a, b in p["params"].items()),
                       **fid.get((p["kernel_case"], p["step"]), {}))
            w.writerow({c: ("" if out.get(c) is None else
                            f"{out[c]:.6g}" if isinstance(out[c], float) else out[c])
                        for c in KERNEL_CSV_COLUMNS})
    return path


def fidelity_columns(k):
    """{(kernel case, step): kernel.csv's fidelity columns} (kernel_fidelity's figures)."""
    from . import kernel_fidelity as kf
    out = {}
    col = lambda p: out.setdefault((p["kernel_case"], p["step"]), {})
    for r in kf.fidelity_rows(k):
        c = col(r["pair"])
        c["reps"] = r["reps"]
        for name, key in (("kernel", "kernel_ratio_overwrite"), ("thinp", "thinp_ratio_overwrite"),
                          ("quotient", "thinp_vs_kernel_overwrite")):
            m, lo, hi = r[name]
            if name == "quotient":
                c[key] = m
            c[key + "_min"], c[key + "_max"] = lo, hi
        c["within_25pct"] = "" if r["within"] is None else ("yes" if r["within"] else "no")
    for p, a, b in kf.time_rows(k):
        for side, t in (("kernel", a), ("thinp", b)):
            for key in ("total", "data", "meta", "rest"):
                name = {"data": "data_busy", "meta": "meta_busy"}.get(key, key)
                col(p)[f"{side}_{name}_us_per_io"] = t[key]
    for p, a, b, q, ok in kf.commit_rows(k):
        col(p).update(kernel_meta_per_commit=a, thinp_meta_per_commit=b,
                      thinp_vs_kernel_per_commit=q,
                      within_10pct="" if ok is None else ("yes" if ok else "no"))
    return out


def fill_summary(run):
    """summary.csv's kernel_us and ratio_kernel on libthinp's rows (class all) whose kernel
    twin is in the same run: ratio_kernel, libthinp's cost ÷ the twin's in the same
    repetition (median), wherever the two ran in one machine (natively or in one VM boot);
    kernel_us, the twin's median µs, only where the kernel ran natively (emulated µs mean
    nothing beside a host's). A merged VM run's twins ran elsewhere: neither."""
    k = run.kernel
    if not k or k["run"] is not run:
        return
    for p in k["pairs"]:
        r = run.row(p["thinp_case"], p["step"]) if p["thinp_case"] else None
        if not r:
            continue
        pr = run.pair_ratio(p["thinp_case"], p["kernel_case"], p["step"])
        r["ratio_kernel"] = pr[0] if pr else None
        r["kernel_us"] = None if emulated(k) else p["kernel_us"]


def kernel_of(run):
    """The kernel side of RUN: from RUN/kernel/ when a VM run was merged there, else from
    RUN's own kernel rows; None when it has neither. KernelDataError when what is there
    cannot be used."""
    kd = os.path.join(run.dir, KERNEL_DIR)
    if os.path.isdir(kd):
        check_dir(kd)
        return load_kernel(type(run)(kd), kd)
    if any(c["backend"] == "kernel" for c in run.cases.values()):
        return load_kernel(run, run.dir)
    return None


def check_dir(d):
    """KernelDataError unless D looks like a run dir (cases.json and env.json)."""
    if os.path.isfile(os.path.join(d, "kernel_perf.csv")):
        raise KernelDataError(
            f"{d} is the output of the removed tests/vm/kernel_perf.sh, which is not read any "
            "more: run `make vm-bench` and merge its run dir with `scenarios/run --report RUN "
            "--kernel-results VMRUN`")
    for f in ("cases.json", "env.json"):
        if not os.path.isfile(os.path.join(d, f)):
            raise KernelDataError(f"{d} has no {f} ({KERNEL_HINT})")
