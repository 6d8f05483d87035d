"""Turn one run of scenarios/run (cases.json + env.json) into summary.csv, charts and report.md.

Everything here is computed from the run's own files: no number is typed in. Used by
scenarios/run at the end of a run, by `scenarios/run --report DIR` and by
scenarios/benchmarks (BENCHMARKS.md).
"""
import csv
import json
import os
import statistics
import subprocess

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
MODE_LABEL = {"loop": "loop-lvm", "direct": "direct-lvm"}
KERNEL_NOTE = "not yet: needs the VM harness, see issue 6"

CSV_COLUMNS = [
    "case", "scenario", "backend", "mode", "params", "bs", "block", "zero", "step", "class",
    "reps_ok", "ios", "bytes_per_io",
    "median_us", "min_us", "max_us", "spread",
    "lat_p50_us", "lat_p99_us", "iops", "mbps",
    "blocks_per_io", "alloc_per_io", "bytes_amp", "data_w_amp", "zero_amp", "read_amp",
    "meta_amp", "dev_w_amp", "dev_r_amp",
    "ratio_raw", "ratio_raw_min", "ratio_raw_max", "ratio_raw_p50", "raw_baseline",
    "ratio_qcow2", "ratio_qcow2_min", "ratio_qcow2_max", "qcow2_case",
    "kernel_us", "ratio_kernel", "status",
]


def human(n):
    if n is None or n == "":
        return ""
    n = int(n)
    for unit, size in (("m", MiB), ("k", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Run:
    """One run directory: cases, per-repetition metrics, aggregated rows."""

    def __init__(self, d):
        self.dir = d
        self.env = json.load(open(os.path.join(d, "env.json")))
        self.cases = json.load(open(os.path.join(d, "cases.json")))["cases"]
        self.rows = []
        self.by_key = {}
        self._aggregate()

    # -- per repetition ----------------------------------------------------------------------
    def rep_values(self, cid, step, cls, key):
        out = {}
        c = self.cases.get(cid)
        if not c:
            return out
        for r in c["reps"]:
            if r.get("status") != "ok":
                continue
            v = r.get("steps", {}).get(step, {}).get(cls, {}).get(key)
            if v is not None:
                out[r["rep"]] = v
        return out

    def ratio(self, cid, step, cls, base_cid, key="cost_us"):
        """Median [min, max] over repetitions of cost(case)/cost(baseline), each ratio taken
        within one repetition; the baseline's whole-job cost of the same step."""
        a = self.rep_values(cid, step, cls, key)
        bsteps = self.steps(base_cid)
        bstep = step if step in bsteps else (bsteps[0] if bsteps else None)
        b = self.rep_values(base_cid, bstep, "all", key)
        rs = [a[r] / b[r] for r in a if r in b and b[r]]
        if not rs:
            return None, None, None
        return statistics.median(rs), min(rs), max(rs)

    def steps(self, cid):
        seen = []
        for r in self.cases.get(cid, {}).get("reps", []):
            for s in r.get("steps", {}) or {}:
                if s not in seen:
                    seen.append(s)
        return seen

    def classes(self, cid, step):
        seen = ["all"]
        for r in self.cases[cid]["reps"]:
            for k in (r.get("steps", {}) or {}).get(step, {}):
                if k not in seen:
                    seen.append(k)
        return seen

    # -- aggregation -----------------------------------------------------------------------
    def _aggregate(self):
        for cid, c in self.cases.items():
            reps = c["reps"]
            ok = [r for r in reps if r.get("status") == "ok"]
            status = ("ok" if len(ok) == len(reps) else
                      "skipped" if all(r.get("status") == "skipped" for r in reps) else
                      f"failed {len(reps) - len(ok)}/{len(reps)}")
            p = c["params"]
            base = dict(case=cid, scenario=c["scenario"], backend=c["backend"], mode=c["mode"],
                        params=";".join(f"{k}={human(v) if k in ('bs', 'block') else v}"
                                        for k, v in p.items()),
                        bs=p.get("bs", ""), block=p.get("block", 65536 if c["backend"] ==
                                                          "thinp" else ""),
                        zero=("" if "zero" not in p else int(bool(p["zero"]))), status=status)
            if not ok:
                row = dict(base, step="", **{"class": "all"}, reps_ok=0)
                self._add(row)
                continue
            raw_b = next((b for b in c.get("baselines", [])
                          if self.cases.get(b, {}).get("backend", "").startswith("raw")), None)
            q_b = next((b for b in c.get("baselines", [])
                        if self.cases.get(b, {}).get("backend", "").startswith("qcow2")), None)
            for step in self.steps(cid):
                for cls in self.classes(cid, step):
                    row = dict(base, step=step, **{"class": cls})
                    self._fill(row, cid, step, cls, raw_b, q_b)
                    self._add(row)

    def _add(self, row):
        self.rows.append(row)
        self.by_key[(row["case"], row["step"], row["class"])] = row

    def _fill(self, row, cid, step, cls, raw_b, q_b):
        v = lambda k: self.rep_values(cid, step, cls, k)
        cost = v("cost_us")
        row["reps_ok"] = len(cost)
        m = med(cost.values())
        row["median_us"] = m
        row["min_us"] = min(cost.values()) if cost else None
        row["max_us"] = max(cost.values()) if cost else None
        row["spread"] = (row["max_us"] - row["min_us"]) / m if m else None
        for k in ("lat_p50_us", "lat_p99_us", "iops", "mbps", "ios"):
            row[k] = med(v(k).values())
        ios = v("ios")
        byts = v("bytes")

        def per(key, denom):
            xs = v(key)
            return med([xs[r] / denom[r] for r in xs if r in denom and denom[r]])
        row["bytes_per_io"] = per("bytes", ios)
        row["blocks_per_io"] = per("blocks", ios)
        row["alloc_per_io"] = per("alloc_bytes", ios)
        row["data_w_amp"] = per("data_written", byts)
        row["zero_amp"] = per("data_zeroed", byts)
        row["read_amp"] = per("data_read", byts)
        row["meta_amp"] = per("meta_written", byts)
        row["dev_w_amp"] = per("dev_written", byts)
        row["dev_r_amp"] = per("dev_read", byts)
        if row["data_w_amp"] is not None:
            dw, dz, mw = v("data_written"), v("data_zeroed"), v("meta_written")
            row["bytes_amp"] = med([(dw[r] + dz.get(r, 0) + mw.get(r, 0)) / byts[r]
                                    for r in dw if byts.get(r)])
        if raw_b:
            row["ratio_raw"], row["ratio_raw_min"], row["ratio_raw_max"] = \
                self.ratio(cid, step, cls, raw_b)
            row["raw_baseline"] = raw_b
            # the same ratio of the typical IO (p50 latencies; fsyncs not included): robust
            # against the stalls a shared machine adds to means
            if not self.rep_values(cid, step, "all", "syncs"):  # (p50s leave the fsyncs out)
                row["ratio_raw_p50"] = self.ratio(cid, step, cls, raw_b, "lat_p50_us")[0]
        if q_b:
            row["ratio_qcow2"], row["ratio_qcow2_min"], row["ratio_qcow2_max"] = \
                self.ratio(cid, step, cls, q_b)
            row["qcow2_case"] = q_b

    # -- lookups ---------------------------------------------------------------------------
    def row(self, cid, step=None, cls="all"):
        if step is None:
            st = self.steps(cid)
            step = st[0] if st else ""
        return self.by_key.get((cid, step, cls))

    def get(self, cid, key, step=None, cls="all"):
        r = self.row(cid, step, cls)
        return None if r is None else r.get(key)

    def dominant_class(self, cid, step):
        """The engine class with the most IOs in this step (None for non-thinp cases)."""
        best, n = None, -1
        for cls in self.classes(cid, step):
            if cls == "all":
                continue
            r = self.by_key.get((cid, step, cls))
            if r and (r.get("ios") or 0) > n:
                best, n = cls, r.get("ios") or 0
        return best

    def extra(self, cid, step, key, cls="all"):
        return med(self.rep_values(cid, step, cls, key).values())


# ---------------------------------------------------------------------------------------------
def write_csv(run):
    path = os.path.join(run.dir, "summary.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in run.rows:
            out = {}
            for k in CSV_COLUMNS:
                x = r.get(k)
                if isinstance(x, float):
                    x = f"{x:.6g}"
                out[k] = "" if x is None else x
            w.writerow(out)
    return path


# ---------------------------------------------------------------------------------------------
# charts (gnuplot: PNG through cairo and SVG, from .dat files written here)
SIZES_K = [4, 8, 16, 32, 56, 64, 128, 256, 512, 1024]


def size_tics(values_k):
    vals = sorted(set(values_k))
    return "(" + ", ".join(f'"{human(v * KiB)}" {v}' for v in vals) + ")"


def categorical(chart, unit=KiB):
    """Evenly spaced sizes (56k and 64k stay apart): x of every point becomes the index of its
    size among the sizes present; the tics carry the sizes."""
    vals = sorted({p[0] for _, pts, _, _ in chart.series for p in pts})
    idx = {v: i for i, v in enumerate(vals)}
    chart.series = [(t, [(idx[p[0]],) + tuple(p[1:]) for p in pts], st, ax)
                    for t, pts, st, ax in chart.series]
    tics = ", ".join(f'"{human(v * unit)}" {i}' for i, v in enumerate(vals))
    return [f"set xtics ({tics})", f"set xrange [-0.4:{len(vals) - 0.6}]"]


class Chart:
    def __init__(self, run, name, title, xlabel, ylabel):
        self.run, self.name, self.title = run, name, title
        self.xlabel, self.ylabel = xlabel, ylabel
        self.series = []  # (title, points, style)
        self.settings = []
        self.y2 = []

    def add(self, title, points, style="linespoints", axes="x1y1"):
        pts = [p for p in points if p[1] is not None]
        if pts:
            self.series.append((title, pts, style, axes))

    def render(self):
        if not self.series:
            return None
        d = os.path.join(self.run.dir, "charts")
        os.makedirs(d, exist_ok=True)
        dat = os.path.join(d, self.name + ".dat")
        with open(dat, "w") as f:
            for i, (title, pts, _, _) in enumerate(self.series):
                f.write(f"# [{i}] {title}\n")
                for p in pts:
                    f.write(" ".join(f"{x:.6g}" if isinstance(x, float) else str(x)
                                     for x in p) + "\n")
                f.write("\n\n")
        plots = []
        keys = []
        for i, (title, _, style, axes) in enumerate(self.series):
            t = title.replace('"', "'")
            if "lc " not in style:
                # one colour per series, the same for its loop-lvm and direct-lvm lines (those
                # differ by dash type)
                key = title.replace(" (loop-lvm)", "").replace(" (direct-lvm)", "")
                if key not in keys:
                    keys.append(key)
                style += f" lc rgb '{COLORS[keys.index(key) % len(COLORS)]}'"
            plots.append(f'"{self.name}.dat" index {i} using 1:2 with {style} axes {axes} '
                         f'title "{t}"')
        body = "\n".join([
            f'set title "{self.title}" noenhanced',
            f'set xlabel "{self.xlabel}" noenhanced',
            f'set ylabel "{self.ylabel}" noenhanced',
            "set grid", "set key outside bottom center horizontal maxcols 2 noenhanced Left reverse",
            "set border lw 1.2",
            *self.settings,
            "plot " + ", \\\n     ".join(plots),
        ])
        gp = os.path.join(d, self.name + ".gp")
        with open(gp, "w") as f:
            f.write("# made by scenarios/lib/analyze.py from " + self.name + ".dat\n")
            f.write(f'set terminal pngcairo size 1000,760 font "DejaVu Sans,11"\n'
                    f'set output "{self.name}.png"\n{body}\n'
                    f'set terminal svg size 1000,760 dynamic font "DejaVu Sans,11"\n'
                    f'set output "{self.name}.svg"\nreplot\n')
        p = subprocess.run(["gnuplot", os.path.basename(gp)], cwd=d, stderr=subprocess.PIPE,
                           text=True)
        if p.returncode:
            raise RuntimeError(f"gnuplot {gp}: {p.stderr}")
        return self.name


COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939"]


# series styles: loop solid, direct dashed
def style(mode, pt):
    return f"linespoints lw 2 pt {pt} ps 1.2 dt {1 if mode == 'loop' else 2}"


def cid(scenario, backend, mode, zero=None, **params):
    """Rebuild a case id from its parts (scenarios/run's Case naming)."""
    parts = [scenario] + [f"{k}={human(v) if k in ('bs', 'block') else v}"
                          for k, v in params.items()]
    z = "" if zero is None else f".z{int(zero)}"
    return ".".join(parts) + f".{backend}.{mode}{z}"


def chart_latency(run):
    c = Chart(run, "latency-per-class", "Latency per outcome class vs write size (time inside libthinp, median of repetitions)",
              "write size", "mean latency per IO (µs, log scale)")
    xs = []
    for mode in ("loop", "direct"):
        for label, scen, step, zero, pt, params in (
                ("allocate, zeroing off", "alloc", "first-write", False, 7, {"order": "seq"}),
                ("allocate, zeroing on", "alloc", "first-write", True, 5, {"order": "seq"}),
                ("CoW first write", "cow", "first", None, 9, {"order": "seq"}),
                ("overwrite (CoW already broken)", "cow", "second", None, 13, {"order": "seq"})):
            pts = []
            for bs in [s * KiB for s in SIZES_K]:
                i = cid(scen, "thinp", mode, zero, bs=bs, **params)
                if i not in run.cases:
                    continue
                cls = run.dominant_class(i, step)
                if cls:
                    pts.append((bs // KiB, run.get(i, "median_us", step, cls), cls))
                    xs.append(bs // KiB)
            c.add(f"{label} ({MODE_LABEL[mode]})", [(x, y) for x, y, _ in pts], style(mode, pt))
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
    xs = []
    for label, scen, step, zero, st in (
            ("allocate, zeroing off (Docker loop-lvm preset)", "alloc", "first-write", False,
             "linespoints lw 2 pt 7 ps 1.3"),
            ("allocate, zeroing on (kernel default): the rest of the block is zeroed", "alloc",
             "first-write", True, "linespoints lw 4 pt 5 ps 2.0 dt 1"),
            ("CoW first write: the block is copied (also read: see summary.csv read_amp)", "cow",
             "first", None, "linespoints lw 2 pt 9 ps 1.3 dt 2")):
        pts = []
        for bs in [s * KiB for s in SIZES_K]:
            i = cid(scen, "thinp", "loop", zero, bs=bs, order="seq")
            if i in run.cases:
                pts.append((bs // KiB, run.get(i, "bytes_amp", step)))
                xs.append(bs // KiB)
        c.add(label, pts, st)
    # by block size: blocksize scenario, 4 KiB writes
    c2 = Chart(run, "amplification-blocksize", "Write amplification (data + metadata bytes per byte requested) vs pool block size, zeroing off",
               "pool block size", "write amplification (log scale)")
    bx = []
    series = {}
    for bs in (4 * KiB, 64 * KiB, 1 * MiB):
        for op, step, pt in (("alloc", "alloc", 7), ("cow", "first", 9)):
            for mode in ("loop", "direct"):
                pts = []
                for block in [s * KiB for s in (64, 128, 256, 512, 1024)]:
                    i = cid("blocksize", "thinp", mode, None, op=op, block=block, bs=bs)
                    if i in run.cases:
                        a = run.get(i, "bytes_amp", step)
                        if a is not None:
                            pts.append((block // KiB, a))
                            bx.append(block // KiB)
                series[(bs, op, mode)] = (pts, pt)
    # the byte counts are the library's exact counters: when both modes agree (to 1%), one line
    same = all(abs(a[1] - b[1]) <= 0.01 * max(a[1], b[1])
               for (bs, op, mode), (pts, _) in series.items() if mode == "loop"
               for a, b in zip(pts, series.get((bs, op, "direct"), ([], 0))[0]))
    for (bs, op, mode), (pts, pt) in series.items():
        if same and mode == "direct" and series.get((bs, op, "loop"), ([],))[0]:
            continue
        name = f"{'allocate' if op == 'alloc' else 'CoW first write'}, {human(bs)} writes"
        c2.add(name + ("" if same else f" ({MODE_LABEL[mode]})"), pts, style(mode, pt))
    if same:
        c2.ylabel += "; both modes count the same bytes"
    c.settings = categorical(c) + ["set logscale y 10", "set format y '%g'"]
    c2.settings = categorical(c2) + ["set logscale y 10", "set format y '%g'"]
    return [x for x in (c.render(), c2.render()) if x]


def chart_ratio(run):
    c = Chart(run, "cost-vs-raw", "Provision and CoW cost relative to the same write on the raw backing store (median of per-repetition ratios)",
              "write size", "× raw (fio psync, same offsets, same store)")
    xs = []
    for mode in ("loop", "direct"):
        for label, scen, step, zero, pt in (("allocate, zeroing off", "alloc", "first-write", False, 7),
                                            ("allocate, zeroing on", "alloc", "first-write", True, 5),
                                            ("CoW first write", "cow", "first", None, 9),
                                            ("CoW already broken", "cow", "second", None, 13)):
            pts = []
            for bs in [s * KiB for s in SIZES_K]:
                i = cid(scen, "thinp", mode, zero, bs=bs, order="seq")
                if i in run.cases:
                    pts.append((bs // KiB, run.get(i, "ratio_raw", step)))
                    xs.append(bs // KiB)
            c.add(f"{label} ({MODE_LABEL[mode]})", pts, style(mode, pt))
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
                i = cid("chain", backend, mode, None, depth=depth)
                if i in run.cases:
                    pts.append((depth, run.get(i, "median_us", "read")))
                    ds.append(depth)
            c.add(f"{label} ({MODE_LABEL[mode]})", pts, style(mode, pt))
        i = cid("chain", "raw-psync", mode, None, depth=0)
        r = run.get(i, "median_us", "read") if i in run.cases else None
        if r is not None and ds:
            c.add(f"raw read, no chain ({MODE_LABEL[mode]})", [(min(ds), r), (max(ds), r)],
                  f"lines lw 1 lc rgb 'gray40' dt {1 if mode == 'loop' else 2}")
    c.settings = ["set logscale x 2", "set xtics (1, 2, 4, 8, 16)", "set xrange [0.8:20]",
                  "set logscale y 10", "set format y '%g'"]
    return c.render()


def chart_fill(run):
    d = os.path.join(run.dir, "charts")
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
        lw_ms = run.extra(i, "fill", "low_water_ms")
        full_ms = run.get(i, "full_ms", "fill")
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
                i = cid("commit", backend, mode, False if backend == "thinp" else None, fsync=f)
                if i in run.cases:
                    pts.append((f, run.get(i, "median_us", "first-write")))
            c.add(f"{label} ({MODE_LABEL[mode]})", pts, style(mode, pt))
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


# ---------------------------------------------------------------------------------------------
# report.md
def fnum(x, unit="", digits=3):
    if x is None or x == "":
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 and abs(x) >= 1:
        x = int(x)
    if isinstance(x, int):
        return f"{x:,}" + unit
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.{digits}g}"
    return s + unit


def fratio(row, key="ratio_raw"):
    if not row or row.get(key) is None:
        return "—"
    return (f"{row[key]:.2f}× [{row[key + '_min']:.2f}–{row[key + '_max']:.2f}]")


def fbytes(n):
    if n is None:
        return "—"
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


SCEN_TITLES = [
    ("alloc", "1. Allocate-on-demand (first write to a fresh thin device)"),
    ("cow", "2. Copy-on-write (first write to a snapshot of a written origin; second pass)"),
    ("overwrite", "3. Overwrite steady state (provisioned, exclusive blocks)"),
    ("chain", "4. Reads through snapshot chains"),
    ("blocksize", "5. Block-size trade-off"),
    ("edge", "6. qcow2-style edge cases (4 KiB front / middle, 8 KiB crossing two blocks)"),
    ("commit", "7. Commit cost (fsync every N writes)"),
    ("fill", "8. Fill to full"),
    ("seed", "9. The seed's example: update 32 KiB of a 1 GiB file"),
]


def case_table(run, scenario):
    lines = ["| case | step | median µs/IO [min–max] | p50 µs | p99 µs | IOPS | MB/s | × raw | × qcow2 | "
             "bytes amp | alloc/IO | dominant class (µs) | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cid_, c in run.cases.items():
        if c["scenario"] != scenario:
            continue
        steps = run.steps(cid_) or [""]
        for step in steps:
            r = run.row(cid_, step)
            if r is None:
                continue
            dom = run.dominant_class(cid_, step) if c["backend"].startswith("thinp") else None
            domtxt = "—"
            if dom:
                dr = run.row(cid_, step, dom)
                domtxt = f"{dom} ({fnum(dr.get('median_us'))})"
            med_ = r.get("median_us")
            rng = (f"{fnum(med_)} [{fnum(r.get('min_us'))}–{fnum(r.get('max_us'))}]"
                   if med_ is not None else "—")
            lines.append("| " + " | ".join([
                c["label"], step or "—", rng, fnum(r.get("lat_p50_us")), fnum(r.get("lat_p99_us")),
                fnum(r.get("iops")), fnum(r.get("mbps")), fratio(r), fratio(r, "ratio_qcow2"),
                fnum(r.get("bytes_amp")), fbytes(r.get("alloc_per_io")), domtxt,
                r.get("status", "")]) + " |")
    return "\n".join(lines)


def headline_rows(run):
    """(label, thinp case, step, qcow2 case) for the headline table."""
    out = []
    for mode in ("loop", "direct"):
        items = [
            ("allocate 4 KiB, zeroing off (Docker preset)", cid("alloc", "thinp", mode, False, bs=4 * KiB, order="seq"), "first-write"),
            ("allocate 4 KiB, zeroing on", cid("alloc", "thinp", mode, True, bs=4 * KiB, order="seq"), "first-write"),
            ("allocate 56 KiB, zeroing off", cid("alloc", "thinp", mode, False, bs=56 * KiB, order="seq"), "first-write"),
            ("allocate 64 KiB (whole block)", cid("alloc", "thinp", mode, False, bs=64 * KiB, order="seq"), "first-write"),
            ("allocate 1 MiB", cid("alloc", "thinp", mode, False, bs=MiB, order="seq"), "first-write"),
            ("allocate 4 KiB, random order", cid("alloc", "thinp", mode, False, bs=4 * KiB, order="rand"), "first-write"),
            ("CoW 4 KiB first write", cid("cow", "thinp", mode, None, bs=4 * KiB, order="seq"), "first"),
            ("CoW 4 KiB, already broken", cid("cow", "thinp", mode, None, bs=4 * KiB, order="seq"), "second"),
            ("CoW 64 KiB first write (whole block)", cid("cow", "thinp", mode, None, bs=64 * KiB, order="seq"), "first"),
            ("overwrite 4 KiB random (steady state)", cid("overwrite", "thinp", mode, None, bs=4 * KiB), "steady"),
            ("read 4 KiB through 16 snapshots", cid("chain", "thinp", mode, None, depth=16), "read"),
            ("4 KiB first write + fsync each", cid("commit", "thinp", mode, False, fsync=1), "first-write"),
        ]
        for label, i, step in items:
            if i in run.cases and run.row(i, step):
                out.append((label, mode, i, step))
    return out


def headline_table(run, with_cmd=False):
    lines = ["| workload | mode | thinp µs/IO | × raw | × raw, p50 | qcow2 µs/IO | qcow2 × raw | "
             "thinp ÷ qcow2 | kernel dm-thin |" + (" reproduce |" if with_cmd else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if with_cmd else "")]
    rep = run.env.get("options", {}).get("repeat", 3)
    for label, mode, i, step in headline_rows(run):
        r = run.row(i, step)
        q = r.get("qcow2_case")
        qr = run.row(q, step) if q else None
        lines.append("| " + " | ".join([
            label, MODE_LABEL[mode], fnum(r.get("median_us")), fratio(r),
            f"{r['ratio_raw_p50']:.2f}×" if r.get("ratio_raw_p50") is not None else "—",
            fnum(qr.get("median_us")) if qr else "—", fratio(qr) if qr else "—",
            fratio(r, "ratio_qcow2"), "— ¹"]
            + ([f"`scenarios/run --only '^{i.replace('.', chr(92) + '.')}$' --repeat {rep}`"]
               if with_cmd else [])) + " |")
    lines.append("")
    lines.append("µs/IO: mean time per IO (fsyncs included where there are any), median of the "
                 "repetitions. × raw: median [min–max] of the per-repetition ratios of those "
                 "means; × raw, p50: the same for the median IO latency (fsyncs not included), "
                 "which stalls of a busy machine move less (not for fsync rows). qcow2: "
                 "`qemu-img bench` (no p50); its × raw is against `qemu-img bench` on a raw image, "
                 "so it is the format's own cost. thinp ÷ qcow2 also compares two harnesses: "
                 "qemu's block layer adds its own per-request cost even on a raw image (with "
                 "cache=writeback each request goes through a thread pool), so compare the two "
                 "× raw columns for the cost of the formats themselves.")
    lines.append("")
    lines.append(f"¹ kernel dm-thin: {KERNEL_NOTE}.")
    return "\n".join(lines)


def reproduce(run, scenario):
    ids = [i for i, c in run.cases.items() if c["scenario"] == scenario]
    if not ids:
        return ""
    rep = run.env.get("options", {}).get("repeat", 3)
    scale = run.env.get("options", {}).get("scale", "quick")
    full = " --full" if run.env.get("options", {}).get("full") else ""
    s = (f"scenarios/run{full} --only '^{scenario}\\.' --repeat {rep}"
         + (f" --scale {scale}" if scale not in ("quick", "full") else ""))
    return s


def write_commands(run):
    """commands.md: every case's exact commands (repetition 1), as the runner ran them."""
    lines = ["# Exact commands of this run (repetition 1 of each case)", "",
             "Paths under the scratch dir (`" + str(run.env.get("scratch", {}).get("dir")) +
             "`) existed only during the run; `scenarios/run --only CASE` recreates them.", ""]
    for i, c in run.cases.items():
        r1 = next((r for r in c["reps"] if r["rep"] == 1), None)
        if not r1:
            continue
        lines.append(f"## {i}")
        lines.append("")
        lines.append(f"{c['label']} — status {r1['status']}"
                     + (f": {r1.get('error')}" if r1.get("error") else ""))
        lines.append("")
        lines.append("```sh")
        lines += r1.get("commands", [])
        lines.append("```")
        lines.append("")
    with open(os.path.join(run.dir, "commands.md"), "w") as f:
        f.write("\n".join(lines))


def write_report(run, made):
    e = run.env
    L = []
    L.append(f"# thinbench run {os.path.basename(os.path.abspath(run.dir))}")
    L.append("")
    L.append(f"- **Date**: {e.get('date')}  **Host**: {e.get('host')}  "
             f"**Commit**: `{e.get('git_describe')}`" + (" (dirty tree)" if e.get("git_dirty") else ""))
    L.append(f"- **Machine**: {e.get('cpu')}, {e.get('cpus')} CPUs, "
             f"{fbytes(e.get('memory_bytes'))} RAM, {e.get('virtualization') or 'bare metal?'}; "
             f"kernel {e.get('kernel')}; {e.get('os')}")
    L.append(f"- **Tools**: {e.get('fio')}, {e.get('qemu_img')}, {e.get('gnuplot')}")
    L.append(f"- **Scratch**: `{e.get('scratch', {}).get('dir')}` on "
             f"{e.get('scratch', {}).get('filesystem')} ({e.get('scratch', {}).get('device')})")
    L.append(f"- **loop-lvm**: {e.get('loop_lvm')}")
    dl = e.get("direct_lvm")
    L.append(f"- **direct-lvm**: " + (f"{dl['kind']} — {dl['detail']}; {dl['engine']}"
                                      if dl else "not measured in this run"))
    L.append(f"- **overlayfs**: {e.get('overlayfs')}")
    L.append(f"- **kernel dm-thin**: {e.get('kernel_dm_thin')}")
    L.append(f"- **Command**: `{e.get('command')}` ({e.get('options', {}).get('repeat')} "
             f"repetitions, interleaved; {e.get('elapsed_s', '?')} s)")
    L.append("")
    L.append("Files: [summary.csv](summary.csv) (one row per case × step × class), "
             "[env.json](env.json), [cases.json](cases.json) (every repetition), "
             "[commands.md](commands.md) (exact commands), `fio/` (fio JSON), `stats/` "
             "(the engine's per-class JSON), `charts/`.")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append(
        "Every case runs once per repetition and the repetitions are interleaved (all cases of "
        "repetition 1, then of repetition 2, ...). A case's cost is the mean per IO in one "
        "repetition (fio's total latency `lat`, slat+clat; for `qemu-img bench`, run time / "
        "count; with fsyncs, (write time + fsync time) / writes); the tables show the median "
        "over repetitions and [min–max]. Every ratio (× raw, × qcow2) is taken inside one "
        "repetition between two cases of the same workload, run within seconds of each other "
        "on the same store (each repetition shuffles the order of the workloads and of the "
        "backends inside each workload), then its median [min–max] is shown. Per-class latencies (`write_provision`, `write_cow`, ...) are the "
        "engine's own: time inside the libthinp call, without fio's overhead. *bytes amp* = "
        "(data written + data zeroed + metadata written) / bytes requested, the library's exact "
        "counters; CoW's copy read is in `read_amp` in summary.csv. *alloc/IO* = pool (or file, "
        "or image) space allocated per IO. First-write cases never touch a block twice (iologs: "
        "one write per block). Baselines: *raw* = the same fio job on the backing store (loop-lvm: "
        "a sparse file, buffered; direct-lvm: the data device, O_DIRECT); *qcow2* = 64 KiB "
        "clusters, `qemu-img bench` in-process (cache=writeback/threads for loop-lvm, "
        "cache=none/native for direct-lvm) against `qemu-img bench` on a raw image, and qemu-nbd "
        "on a unix socket + fio's nbd engine against the same on a raw image.")
    L.append("")
    failed = [r for r in run.rows if r.get("status", "ok") != "ok" and r["class"] == "all"]
    if failed:
        L.append("## Failed or skipped cases")
        L.append("")
        seen = set()
        for r in failed:
            if r["case"] in seen:
                continue
            seen.add(r["case"])
            errs = {x.get("error") for x in run.cases[r["case"]]["reps"] if x.get("error")}
            L.append(f"- `{r['case']}`: {r['status']} — {'; '.join(sorted(errs))[:300]}")
        L.append("")
    L.append("## Headline")
    L.append("")
    L.append(headline_table(run))
    L.append("")
    if made:
        L.append("## Charts")
        L.append("")
        for m in made:
            L.append(f"### {CHART_TEXT.get(m, m)}")
            L.append("")
            L.append(f"![{CHART_TEXT.get(m, m)}](charts/{m}.png)")
            L.append("")
            L.append(f"[SVG](charts/{m}.svg) · [data](charts/{m}.dat) · [gnuplot](charts/{m}.gp)")
            L.append("")
    for scen, title in SCEN_TITLES:
        if not any(c["scenario"] == scen for c in run.cases.values()):
            continue
        L.append(f"## {title}")
        L.append("")
        L.append(f"Job file: [scenarios/jobs/{JOBFILE[scen]}]({rel_jobs(run)}/{JOBFILE[scen]}). "
                 f"Reproduce: `{reproduce(run, scen)}`.")
        L.append("")
        if scen == "fill":
            L.append(fill_text(run))
            L.append("")
        if scen == "seed":
            L.append(seed_text(run))
            L.append("")
        L.append(case_table(run, scen))
        L.append("")
    with open(os.path.join(run.dir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


JOBFILE = {"alloc": "01-alloc.fio", "cow": "02-cow.fio", "overwrite": "03-overwrite.fio",
           "chain": "04-chain.fio", "blocksize": "05-blocksize.fio", "edge": "06-edge.fio",
           "commit": "07-commit.fio", "fill": "08-fill.fio", "seed": "09-seed.fio"}


def rel_jobs(run):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.relpath(os.path.join(root, "scenarios", "jobs"), os.path.abspath(run.dir))


def fill_text(run):
    L = []
    i = cid("fill", "thinp", "loop", None, nospace="error-fio")
    if i in run.cases and run.row(i, "fill"):
        L.append(f"- **fio view, loop-lvm, error mode**: {fnum(run.extra(i, 'fill', 'ios'))} first "
                 f"writes (one per block of a range 1.25× the pool), "
                 f"{fnum(run.extra(i, 'fill', 'errors'))} of them refused with ENOSPC; "
                 f"provision {fnum(run.get(i, 'median_us', 'fill', 'write_provision'))} µs, then "
                 f"overwrites at 100% {fnum(run.get(i, 'median_us', 'at-full', 'write_overwrite'))} µs "
                 "(engine classes).")
    for mode in ("loop", "direct"):
        for ns in ("error", "queue"):
            i = cid("fill", "thinp-tool", mode, None, nospace=ns)
            if i not in run.cases or not run.row(i, "fill"):
                continue
            g = lambda k, cls="all": run.extra(i, "fill", k, cls)
            lat = lambda cls: run.get(i, "median_us", "fill", cls)
            s = (f"- **{MODE_LABEL[mode]}, {ns} mode** ({fnum(g('pool_blocks'))} blocks, low water "
                 f"{fnum(g('low_water_blocks'))}): the low-water event fired at timeline IO "
                 f"{fnum(g('low_water_io'))} ({fnum(g('low_water_ms'))} ms; the timeline counts the "
                 f"overwrites at 1/8 full too), the pool was full at IO "
                 f"{fnum(g('full_io'))} ({fnum(g('full_ms'))} ms). Provision "
                 f"{fnum(lat('provision'))} µs; overwrite at 1/8 full {fnum(lat('overwrite_12'))} µs, "
                 f"at 100% {fnum(lat('overwrite_100'))} µs; the first write needing a block at 100% "
                 f"returned ENOSPC after {fnum(g('first_refusal_us'))} µs"
                 + (f" (no_space_timeout {fnum(g('timeout_ms'))} ms)" if ns == "queue" else "")
                 + (f", later ones after {fnum(lat('need_block_at_100'))} µs"
                    if lat("need_block_at_100") is not None else ""))
            if g("resume_us") is not None:
                s += (f"; a write queued at 100% completed {fnum(g('resume_us') / 1e3)} ms later, "
                      "when the pool grew (resize after 100 ms)")
            L.append(s + ".")
    return "\n".join(L)


def seed_text(run):
    t = cid("seed", "thinp", "loop", None, update="32k")
    o = cid("seed", "overlayfs", "loop", None, update="32k")
    L = []
    for i, name in ((t, "block-level CoW (thinp, loop-lvm)"),
                    (cid("seed", "thinp", "direct", None, update="32k"),
                     "block-level CoW (thinp, direct-lvm)"),
                    (o, "file-level copy-up (overlayfs)"),
                    (cid("seed", "raw-file", "loop", None, update="32k"),
                     "in place, no CoW (the file itself)")):
        r = run.row(i, "update")
        if not r or r.get("median_us") is None:
            if i in run.cases:
                errs = {x.get("error") for x in run.cases[i]["reps"] if x.get("error")}
                L.append(f"- {name}: not measured ({'; '.join(sorted(errs))})")
            continue
        copied = run.extra(i, "update", "copied")
        L.append(f"- {name}: {fnum(r['median_us'] / 1e3)} ms for the 32 KiB update incl. fsync "
                 f"[{fnum(r['min_us'] / 1e3)}–{fnum(r['max_us'] / 1e3)}], copied {fbytes(copied)}")
    return "\n".join(L)


def build(d):
    run = Run(d)
    write_csv(run)
    made = charts(run)
    write_commands(run)
    write_report(run, made)
    return run
