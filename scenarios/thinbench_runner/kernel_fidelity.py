"""Issue 11's fidelity targets, from the run's own rows (docs/kernel-backend.md):

- class ÷ overwrite: for every provision (alloc, z0 and z1) and CoW step (first write, second
  pass) at 4 KiB and 64 KiB, each backend's step cost ÷ its own overwrite steady state of the
  same set-up and write size, taken inside one repetition; libthinp's ratio ÷ the kernel's;
  within ±25% or not. Median over repetitions, [min–max] beside it.
- where the time goes: per IO, the step's mean latency beside the time its data and metadata
  devices were busy (/sys/block io_ticks), and the rest (CPU: mapping, locks, copies,
  emulation), for both backends.
- metadata bytes per commit, both backends, within ±10% or not."""
import statistics

from .units import human

FIDELITY = 0.25   # issue 11: class ÷ overwrite ratios within ±25% of the kernel's
META_COMMIT = 0.10  # and metadata bytes per commit within ±10%
SIZES = (4096, 65536)


def fidelity_pair(p):
    """True for the steps the class ÷ overwrite target names."""
    return (p["scenario"] in ("alloc", "cow") and p["params"].get("bs") in SIZES and
            p["thinp_case"] and p["params"].get("order", "seq") != "stream")


def overwrite_id(cid, c, backend):
    return f"overwrite.bs={human(c['params']['bs'])}.{backend}.{c['mode']}"


def per_rep_ratios(run, cid, oid, step):
    """{rep: cost(CID's STEP) ÷ cost(OID's steady)} for the repetitions that have both."""
    a = run.rep_values(cid, step, "all", "cost_us")
    b = run.rep_values(oid, "steady", "all", "cost_us")
    return {r: a[r] / b[r] for r in a if b.get(r)}


def spread(xs):
    """(median, min, max) of XS, or (None, None, None)."""
    xs = list(xs)
    return (statistics.median(xs), min(xs), max(xs)) if xs else (None, None, None)


def within(q, tol):
    return None if q is None else (1 - tol) <= q <= (1 + tol)


def fidelity_rows(k):
    """One row per provision/CoW step at 4 and 64 KiB: the two backends' class ÷ overwrite
    ratios and libthinp's ÷ the kernel's, each (median, min, max) over repetitions."""
    run, out = k["run"], []
    for p in k["pairs"]:
        if not fidelity_pair(p):
            continue
        c = run.cases[p["kernel_case"]]
        kr = per_rep_ratios(run, p["kernel_case"], overwrite_id(p["kernel_case"], c, "kernel"),
                            p["step"])
        tr = per_rep_ratios(run, p["thinp_case"], overwrite_id(p["thinp_case"], c, "thinp"),
                            p["step"])
        q = {r: tr[r] / kr[r] for r in kr if r in tr and kr[r]}
        med = spread(q.values())[0]
        out.append({"pair": p, "kernel": spread(kr.values()), "thinp": spread(tr.values()),
                    "quotient": spread(q.values()), "reps": len(q),
                    "within": within(med, FIDELITY), "gap": gap_parts(run, p)})
    order = [s for s in k["setups"]]
    return sorted(out, key=lambda r: order.index(r["pair"]["setup"]))


def parts_per_rep(run, cid, oid, step):
    """{rep: {data, meta, rest}}: CID's STEP per IO split as in the time table (data and
    metadata devices busy, the rest), each ÷ OID's overwrite steady mean latency of the same
    repetition, so the three add up to the class ÷ overwrite ratio; {} without the time
    fields."""
    v = lambda i, s, key: run.rep_values(i, s, "all", key)
    ios, cost = v(cid, step, "ios"), v(cid, step, "cost_us")
    db, mb, ow = v(cid, step, "data_busy_ms"), v(cid, step, "meta_busy_ms"), \
        v(oid, "steady", "cost_us")
    out = {}
    for r in cost:
        if ios.get(r) and r in db and r in mb and ow.get(r):
            d, m = db[r] * 1e3 / ios[r], mb[r] * 1e3 / ios[r]
            out[r] = {"data": d / ow[r], "meta": m / ow[r], "rest": (cost[r] - d - m) / ow[r]}
    return out


PARTS = (("data", "data device"), ("meta", "metadata device"), ("rest", "rest (CPU)"))


def gap_parts(run, p):
    """Where libthinp's class ÷ overwrite ratio departs from the kernel's, by part: per
    repetition libthinp's part − the kernel's (in overwrites of each one's own), the median
    over repetitions per part and of the whole gap; None without the time fields."""
    c = run.cases[p["kernel_case"]]
    k = parts_per_rep(run, p["kernel_case"], overwrite_id(p["kernel_case"], c, "kernel"),
                      p["step"])
    t = parts_per_rep(run, p["thinp_case"], overwrite_id(p["thinp_case"], c, "thinp"),
                      p["step"])
    reps = [r for r in k if r in t]
    if not reps:
        return None
    out = {key: statistics.median(t[r][key] - k[r][key] for r in reps) for key, _ in PARTS}
    out["gap"] = statistics.median(sum(t[r][x] - k[r][x] for x, _ in PARTS) for r in reps)
    out["largest"] = max((key for key, _ in PARTS), key=lambda x: abs(out[x]))
    return out


def gap_table(rows):
    """The fidelity steps' gaps split by part (rows that have the time fields)."""
    L = ["| set-up | case | step | libthinp − kernel | data device | metadata device | "
         "rest (CPU) | most of it |", "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        g = r.get("gap")
        if not g:
            continue
        p = r["pair"]
        L.append(f"| {p['setup']} | `{short(p)}` | {p['step']} | {g['gap']:+.2f} | " +
                 " | ".join(f"{g[key]:+.2f}" for key, _ in PARTS) +
                 f" | {dict(PARTS)[g['largest']]} |")
    return L


def fx(t, digits=2):
    """A (median, min, max) ratio: '3.10×' or '3.10× [2.90–3.40]'."""
    m, lo, hi = t
    if m is None:
        return "—"
    s = f"{m:.{digits}f}×"
    return s if lo == hi else s + f" [{lo:.{digits}f}–{hi:.{digits}f}]"


def yes_no(b):
    return "—" if b is None else ("yes" if b else "**no**")


def count_line(rows, setups):
    """'N of M within ±25%' overall and per set-up."""
    judged = [r for r in rows if r["within"] is not None]
    per = []
    for s in setups:
        js = [r for r in judged if r["pair"]["setup"] == s]
        if js:
            per.append(f"{s} {sum(r['within'] for r in js)} of {len(js)}")
    return (f"**{sum(r['within'] for r in judged)} of {len(judged)} provision/CoW steps within "
            f"±{FIDELITY:.0%} of the kernel's class ÷ overwrite ratio**" +
            (" (" + ", ".join(per) + ")" if per else "") + ".")


def fidelity_table(rows):
    L = ["| set-up | case | step | kernel ÷ overwrite | libthinp ÷ overwrite | "
         "libthinp ÷ kernel | within ±25% |", "|---|---|---|---:|---:|---:|:---:|"]
    for r in rows:
        p = r["pair"]
        L.append(f"| {p['setup']} | `{short(p)}` | {p['step']} | {fx(r['kernel'])} | "
                 f"{fx(r['thinp'])} | {fx(r['quotient'])} | {yes_no(r['within'])} |")
    return L


def short(p):
    return p["kernel_case"].replace(f".kernel.{p['mode']}", "")


# -- where the time goes ------------------------------------------------------------------------
def time_split(run, cid, step):
    """Per IO, µs (median over repetitions): total (mean latency), data busy, metadata busy,
    the rest; the window checks: (busiest device's ms ÷ the counted window, fio's IO time
    ÷ the window), the largest over repetitions. None without the time fields."""
    v = lambda key: run.rep_values(cid, step, "all", key)
    ios, cost, db, mb, win = v("ios"), v("cost_us"), v("data_busy_ms"), v("meta_busy_ms"), \
        v("window_ms")
    reps = [r for r in cost if ios.get(r) and r in db and r in mb]
    if not reps:
        return None
    t = {"total": [cost[r] for r in reps], "data": [db[r] * 1e3 / ios[r] for r in reps],
         "meta": [mb[r] * 1e3 / ios[r] for r in reps]}
    t["rest"] = [a - b - c for a, b, c in zip(t["total"], t["data"], t["meta"])]
    t["window"] = [win[r] * 1e3 / ios[r] for r in reps if win.get(r)]
    out = {k: (statistics.median(x) if x else None) for k, x in t.items()}
    busy = [max(db[r], mb[r]) / win[r] for r in reps if win.get(r)]
    io = [cost[r] * ios[r] / 1e3 / win[r] for r in reps if win.get(r)]
    out["busy_of_window"] = max(busy) if busy else None
    out["io_of_window"] = max(io) if io else None
    # libthinp's window: its IO phase (the engine's io_phase) in every repetition, or the whole
    # job (a run from before the engine counted it: its busy times hold the pool's open,
    # prefill and closing commit too)
    ph = v("devtime_io_phase")
    out["io_phase"] = all(ph.get(r) for r in reps)
    return out


def time_rows(k):
    """(pair, kernel split, libthinp split) for every pair both of whose sides have the time
    fields."""
    run, out = k["run"], []
    for p in k["pairs"]:
        if not p["thinp_case"]:
            continue
        a, b = time_split(run, p["kernel_case"], p["step"]), time_split(run, p["thinp_case"],
                                                                          p["step"])
        if a and b:
            out.append((p, a, b))
    return out


def us(x):
    return "—" if x is None else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def pct(part, total):
    return "" if not total else f" ({part / total:.0%})"


def time_table(rows, setup):
    L = ["| case | step | total µs/IO, kernel / libthinp | data busy | metadata busy | "
         "rest (CPU) | counted window |", "|---|---|---:|---:|---:|---:|---:|"]
    for p, a, b in rows:
        if p["setup"] != setup:
            continue
        cells = [f"`{short(p)}`", p["step"], f"{us(a['total'])} / {us(b['total'])}"]
        for key in ("data", "meta", "rest"):
            cells.append(f"{us(a[key])}{pct(a[key], a['total'])} / "
                         f"{us(b[key])}{pct(b[key], b['total'])}")
        cells.append(f"{us(a['window'])} / {us(b['window'])} ({window_name(b)})")
        L.append("| " + " | ".join(cells) + " |")
    return L


def window_name(split):
    """Which window libthinp's busy times were counted in."""
    return "IO phase" if split["io_phase"] else "whole job"


def kernel_window_note(rows):
    """The kernel's windows in words: to its last IO (a run whose kernel rows have
    devtime_io_phase), else with the closing sync and status commit."""
    n = sum(a["io_phase"] for _, a, _ in rows)
    if n == len(rows):
        return ("the kernel's: from after the step's opening sync and status commit to its "
                "last IO, without the closing ones")
    return "the kernel's: the `sync` and status commit around the step"


def window_note(rows):
    """libthinp's windows in words, for the section's paragraph."""
    n = sum(b["io_phase"] for _, _, b in rows)
    if n == len(rows):
        return ("libthinp's: its IO phase alone, first IO to last with fio's flushes, "
                "without the pool's open, prefill and closing commit")
    old = ("the whole job (this run's engine did not count its IO phase): from the pool's "
           "open to its end on loop-lvm, the whole fio process on direct-lvm, with its pool "
           "open, prefill and closing commit")
    return (f"libthinp's: {old}" if not n else
            f"libthinp's: its IO phase in {n} of {len(rows)} steps, else {old}")


def window_check(rows):
    """The largest busy ÷ window and IO time ÷ window over every step and side (both must be
    at most 1: a device cannot be busy, nor fio's IOs last, longer than the window)."""
    busy = [x["busy_of_window"] for _, a, b in rows for x in (a, b)
            if x["busy_of_window"] is not None]
    io = [x["io_of_window"] for _, a, b in rows for x in (a, b) if x["io_of_window"] is not None]
    return (max(busy) if busy else None), (max(io) if io else None)


# -- metadata bytes per commit ------------------------------------------------------------------
def per_commit(run, cid, step):
    """Median over repetitions of meta_written ÷ commits (repetitions with commits only)."""
    mw, cm = run.rep_values(cid, step, "all", "meta_written"), \
        run.rep_values(cid, step, "all", "commits")
    xs = [mw[r] / cm[r] for r in mw if cm.get(r)]
    return statistics.median(xs) if xs else None


def commit_rows(k):
    """(pair, kernel bytes/commit, libthinp bytes/commit, libthinp ÷ kernel, within ±10%)."""
    run, out = k["run"], []
    for p in k["pairs"]:
        if not p["thinp_case"]:
            continue
        a, b = per_commit(run, p["kernel_case"], p["step"]), per_commit(run, p["thinp_case"],
                                                                        p["step"])
        q = b / a if a and b is not None else None
        out.append((p, a, b, q, within(q, META_COMMIT)))
    return out


def fb(x):
    return "—" if x is None else f"{x:.0f}"


def commit_table(rows, setup):
    L = ["| case | step | kernel B/commit | libthinp B/commit | libthinp ÷ kernel | "
         "within ±10% |", "|---|---|---:|---:|---:|:---:|"]
    for p, a, b, q, ok in rows:
        if p["setup"] != setup:
            continue
        L.append(f"| `{short(p)}` | {p['step']} | {fb(a)} | {fb(b)} | "
                 f"{'—' if q is None else f'{q:.2f}×'} | {yes_no(ok)} |")
    return L


def commit_count(rows, setups):
    judged = [r for r in rows if r[4] is not None]
    per = []
    for s in setups:
        js = [r for r in judged if r[0]["setup"] == s]
        if js:
            per.append(f"{s} {sum(r[4] for r in js)} of {len(js)}")
    none = sorted({r[0]["setup"] for r in rows if r[1] is None})
    return judged, per, none
