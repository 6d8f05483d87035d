"""The host charts of a run (gnuplot, PNG and SVG, from .dat files written beside them):
latency per outcome class, write amplification, cost relative to raw, snapshot depth, commit
cost, the fill-to-full timelines."""
import os

from .case import cid
from .gnuplot import Chart, categorical, style
from .units import KiB, MiB, MODE_LABEL, human, thinp_loop_mode

SIZES_K = [4, 8, 16, 32, 56, 64, 128, 256, 512, 1024]
# the block-size chart draws one line for both modes when their amplifications agree so far
SAME_BYTES_WITHIN = 0.01


def bmode(run, backend, mode):
    """The mode in BACKEND's ids for store MODE: libthinp's loop-lvm is its file variant in a
    run that had no loop devices (not root)."""
    if backend == "thinp" and mode == "loop":
        return thinp_loop_mode(run.cases)
    return mode


def chart_latency(run):
    c = Chart(run, "latency-per-class", "Latency per outcome class vs write size (time inside libthinp, median of repetitions)",
              "write size", "mean latency per IO (µs, log scale)")
    for mode in ("loop", "direct"):
        for label, scen, step, zero, pt, params in (
                ("allocate, zeroing off", "alloc", "first-write", False, 7, {"order": "seq"}),
                ("allocate, zeroing on", "alloc", "first-write", True, 5, {"order": "seq"}),
                ("CoW first write", "cow", "first", None, 9, {"order": "seq"}),
                ("overwrite (CoW already broken)", "cow", "second", None, 13, {"order": "seq"})):
            pts = []
            for bs in [s * KiB for s in SIZES_K]:
                i = cid(scen, "thinp", bmode(run, "thinp", mode), zero, bs=bs, **params)
                if i not in run.cases:
                    continue
                cls = run.dominant_class(i, step)
                if cls:
                    pts.append((bs // KiB, run.get(i, "median_us", step, cls), cls))
            c.add(f"{label} ({MODE_LABEL[bmode(run, 'thinp', mode)]})", [(x, y) for x, y, _ in pts],
                  style(mode, pt))
        # raw baseline (fio psync on the backing store)
        pts = []
        for bs in [s * KiB for s in SIZES_K]:
            i = cid("alloc", "raw-psync", mode, None, bs=bs, order="seq")
            if i in run.cases:
                pts.append((bs // KiB, run.get(i, "median_us", "first-write")))
        c.add(f"raw write, same offsets ({MODE_LABEL[mode]})", pts,
              f"linespoints lw 1 pt 1 lc rgb 'gray40' dt {1 if mode == 'loop' else 2}")
    c.settings = categorical(c) + ["set logscale y 10", "set format y '%g'"]
    return c.render()


def chart_amp(run):
    c = Chart(run, "write-amplification", "Bytes written (data + zeroed + metadata) per byte requested, first writes, 64 KiB blocks",
              "write size", "write amplification (log scale)")
    for label, scen, step, zero, st in (
            ("allocate, zeroing off (Docker loop-lvm preset)", "alloc", "first-write", False,
             "linespoints lw 2 pt 7 ps 1.3"),
            ("allocate, zeroing on (kernel default): the rest of the block is zeroed", "alloc",
             "first-write", True, "linespoints lw 4 pt 5 ps 2.0 dt 1"),
            ("CoW first write: the block is copied (also read: see summary.csv read_amp)", "cow",
             "first", None, "linespoints lw 2 pt 9 ps 1.3 dt 2")):
        pts = []
        for bs in [s * KiB for s in SIZES_K]:
            i = cid(scen, "thinp", bmode(run, "thinp", "loop"), zero, bs=bs, order="seq")
            if i in run.cases:
                pts.append((bs // KiB, run.get(i, "bytes_amp", step)))
        c.add(label, pts, st)
    # by block size: blocksize scenario, 4 KiB writes
    c2 = Chart(run, "amplification-blocksize", "Write amplification (data + metadata bytes per byte requested) vs pool block size, zeroing off",
               "pool block size", "write amplification (log scale)")
    series = {}
    for bs in (4 * KiB, 64 * KiB, 1 * MiB):
        for op, step, pt in (("alloc", "alloc", 7), ("cow", "first", 9)):
            for mode in ("loop", "direct"):
                pts = []
                for block in [s * KiB for s in (64, 128, 256, 512, 1024)]:
                    i = cid("blocksize", "thinp", bmode(run, "thinp", mode), None, op=op, block=block, bs=bs)
                    if i in run.cases:
                        a = run.get(i, "bytes_amp", step)
                        if a is not None:
                            pts.append((block // KiB, a))
                series[(bs, op, mode)] = (pts, pt)
    # the byte counts are the library's exact counters: when both modes agree, one line
    same = all(abs(a[1] - b[1]) <= SAME_BYTES_WITHIN * max(a[1], b[1])
               for (bs, op, mode), (pts, _) in series.items() if mode == "loop"
               for a, b in zip(pts, series.get((bs, op, "direct"), ([], 0))[0]))
    for (bs, op, mode), (pts, pt) in series.items():
        if same and mode == "direct" and series.get((bs, op, "loop"), ([],))[0]:
            continue
        name = f"{'allocate' if op == 'alloc' else 'CoW first write'}, {human(bs)} writes"
        c2.add(name + ("" if same else f" ({MODE_LABEL[bmode(run, 'thinp', mode)]})"), pts, style(mode, pt))
    if same:
        c2.ylabel += (f"; both modes count the same bytes (within "
                      f"{SAME_BYTES_WITHIN:.0%})")
    c.settings = categorical(c) + ["set logscale y 10", "set format y '%g'"]
    c2.settings = categorical(c2) + ["set logscale y 10", "set format y '%g'"]
    return [x for x in (c.render(), c2.render()) if x]


def chart_ratio(run):
    c = Chart(run, "cost-vs-raw", "Provision and CoW cost relative to the same write on the raw backing store (median of per-repetition ratios)",
              "write size", "× raw (fio psync, same offsets, same store)")
    for mode in ("loop", "direct"):
        for label, scen, step, zero, pt in (("allocate, zeroing off", "alloc", "first-write", False, 7),
                                            ("allocate, zeroing on", "alloc", "first-write", True, 5),
                                            ("CoW first write", "cow", "first", None, 9),
                                            ("CoW already broken", "cow", "second", None, 13)):
            pts = []
            for bs in [s * KiB for s in SIZES_K]:
                i = cid(scen, "thinp", bmode(run, "thinp", mode), zero, bs=bs, order="seq")
                if i in run.cases:
                    pts.append((bs // KiB, run.get(i, "ratio_raw", step)))
            c.add(f"{label} ({MODE_LABEL[bmode(run, 'thinp', mode)]})", pts, style(mode, pt))
        pts = []
        for bs in [s * KiB for s in SIZES_K]:
            i = cid("alloc", "qcow2-bench", mode, None, bs=bs, order="seq")
            if i in run.cases:
                pts.append((bs // KiB, run.get(i, "ratio_raw", "first-write")))
        c.add(f"qcow2 allocate, × raw image ({MODE_LABEL[mode]})", pts,
              f"linespoints lw 1 pt 4 lc rgb 'gray40' dt {1 if mode == 'loop' else 2}")
    c.settings = categorical(c) + [
                  "set logscale y 2", "set format y '%g'",
                  "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1 lc rgb 'black'"]
    return c.render()


def chart_chain(run):
    c = Chart(run, "snapshot-depth", "Read latency through snapshot chains (4 KiB reads, one per 64 KiB block)",
              "snapshots between the base and the reading device (chain depth)",
              "mean read latency (µs, log scale)")
    ds = []
    for mode in ("loop", "direct"):
        for backend, label, pt in (("thinp", "thinp (fio engine)", 7),
                                   ("qcow2-bench", "qcow2 backing chain (qemu-img bench)", 5),
                                   ("qcow2-nbd", "qcow2 backing chain (qemu-nbd + fio)", 9)):
            pts = []
            for depth in (1, 2, 4, 8, 16):
                i = cid("chain", backend, bmode(run, backend, mode), None, depth=depth)
                if i in run.cases:
                    pts.append((depth, run.get(i, "median_us", "read")))
                    ds.append(depth)
            c.add(f"{label} ({MODE_LABEL[bmode(run, backend, mode)]})", pts, style(mode, pt))
        i = cid("chain", "raw-psync", mode, None, depth=0)
        r = run.get(i, "median_us", "read") if i in run.cases else None
        if r is not None and ds:
            c.add(f"raw read, no chain ({MODE_LABEL[mode]})", [(min(ds), r), (max(ds), r)],
                  f"lines lw 1 lc rgb 'gray40' dt {1 if mode == 'loop' else 2}")
    c.settings = ["set logscale x 2", "set xtics (1, 2, 4, 8, 16)", "set xrange [0.8:20]",
                  "set logscale y 10", "set format y '%g'"]
    return c.render()


def chart_fill(run):
    out = []
    for mode in ("loop", "direct"):
        i = cid("fill", "thinp-tool", mode, None, nospace="error")
        tl = os.path.join(run.dir, "stats", i, "r1-timeline.txt")
        if not os.path.exists(tl):
            continue
        rows = [l.split() for l in open(tl) if not l.startswith("#")]
        c = Chart(run, f"fill-timeline-{mode}",
                  f"Fill to full, {MODE_LABEL[mode]}: one 4 KiB first write per 64 KiB block, error_if_no_space (repetition 1)",
                  "time since the pool was formatted (ms)", "write latency (µs, log scale)")
        phases = {}
        for r in rows:
            phases.setdefault(r[6], []).append((float(r[1]), max(float(r[2]), 0.01)))
        names = {"fill": "provision (first write)", "overwrite_12": "overwrite, pool 1/8 full",
                 "need_block": "write needing a block at 100% (ENOSPC)",
                 "overwrite_100": "overwrite at 100%", "resumed": "queued write, resumed"}
        pts_free = [(float(r[1]), int(r[4])) for r in rows]
        for ph, pts in phases.items():
            big = ph in ("need_block", "resumed")  # a handful of points: make them visible
            c.add(names.get(ph, ph), pts, "points pt 7 ps 1.3" if big else "points pt 7 ps 0.4")
        c.add("free data blocks (right axis)", pts_free, "lines lw 2 lc rgb 'black'", "x1y2")
        rep1 = next((r for r in run.cases.get(i, {}).get("reps", []) if r["rep"] == 1), None)
        a = (rep1 or {}).get("steps", {}).get("fill", {}).get("all", {})
        lw_ms, full_ms = a.get("low_water_ms"), a.get("full_ms")
        c.settings = ["set logscale y 10", "set format y '%g'", "set y2tics",
                      "set y2label 'free data blocks'", "set ytics nomirror",
                      ]
        if lw_ms is not None and lw_ms >= 0:
            c.settings.append(f"set arrow from {lw_ms}, graph 0 to {lw_ms}, graph 1 nohead "
                              "lc rgb 'red' lw 2 dt 3")
            c.settings.append(f"set label 'low-water event' at {lw_ms}, graph 0.95 right "
                              "offset -0.5,0 tc rgb 'red'")
        if full_ms is not None:
            c.settings.append(f"set arrow from {full_ms}, graph 0 to {full_ms}, graph 1 nohead "
                              "lc rgb 'blue' lw 2 dt 3")
            c.settings.append(f"set label 'pool full' at {full_ms}, graph 0.88 left offset 0.5,0 "
                              "tc rgb 'blue'")
        r = c.render()
        if r:
            out.append(r)
    return out


def chart_commit(run):
    c = Chart(run, "commit-cost", "Cost per 4 KiB first write with an fsync every N writes (fsync share included)",
              "writes per fsync", "µs per write (log scale)")
    for mode in ("loop", "direct"):
        for backend, label, pt in (("thinp", "thinp", 7), ("raw-psync", "raw (fio psync)", 1),
                                   ("qcow2-bench", "qcow2 (qemu-img bench)", 5)):
            pts = []
            for f in (1, 16, 256):
                i = cid("commit", backend, bmode(run, backend, mode), False if backend == "thinp" else None, fsync=f)
                if i in run.cases:
                    pts.append((f, run.get(i, "median_us", "first-write")))
            c.add(f"{label} ({MODE_LABEL[bmode(run, backend, mode)]})", pts, style(mode, pt))
    c.settings = ["set logscale x 2", "set xtics (1, 16, 256)", "set xrange [0.7:400]",
                  "set logscale y 10",
                  "set format y '%g'"]
    return c.render()


CHART_TEXT = {
    "latency-per-class": "latency per outcome class vs write size, loop-lvm vs direct-lvm",
    "write-amplification": "write amplification vs write size",
    "amplification-blocksize": "write amplification vs pool block size",
    "cost-vs-raw": "provision and CoW cost relative to raw",
    "snapshot-depth": "snapshot chain depth vs read latency",
    "fill-timeline-loop": "fill-to-full timeline (loop-lvm)",
    "fill-timeline-direct": "fill-to-full timeline (direct-lvm)",
    "commit-cost": "commit cost: fsync every 1/16/256 writes",
}


def charts(run):
    made = []
    for f in (chart_latency, chart_amp, chart_ratio, chart_chain, chart_commit, chart_fill):
        r = f(run)
        if isinstance(r, list):
            made += r
        elif r:
            made.append(r)
    return made
