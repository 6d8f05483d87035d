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
KERNEL_NOTE = ("not measured in this run: `scenarios/run --kernel` measures it in a qemu VM "
               "(tests/vm/kernel_perf.sh, several minutes under TCG), `scenarios/run "
               "--kernel-results DIR` merges a finished `make vm-perf` (build/vm/kernel_perf)")

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
        # the kernel's dm-thin, measured in a VM (RUN/kernel/, see load_kernel)
        self.kernel, self.kernel_error = None, None
        kd = os.path.join(d, KERNEL_DIR)
        if os.path.isdir(kd):
            try:
                self.kernel = load_kernel(kd)
            except KernelDataError as e:
                self.kernel_error = str(e)

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
            if not ok or not self.steps(cid):
                # (a failed case; or one without steps of its own, the kernel's VM run, whose
                # numbers are in kernel.csv)
                row = dict(base, step="", **{"class": "all"}, reps_ok=len(ok))
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
    vals = sorted({p[0] for _, pts, *_ in chart.series for p in pts})
    idx = {v: i for i, v in enumerate(vals)}
    chart.series = [(t, [(idx[p[0]],) + tuple(p[1:]) for p in pts], *rest)
                    for t, pts, *rest in chart.series]
    tics = ", ".join(f'"{human(v * unit)}" {i}' for i, v in enumerate(vals))
    return [f"set xtics ({tics})", f"set xrange [-0.4:{len(vals) - 0.6}]"]


class Chart:
    def __init__(self, run, name, title, xlabel, ylabel):
        self.run, self.name, self.title = run, name, title
        self.xlabel, self.ylabel = xlabel, ylabel
        self.series = []  # (title, points, style, axes, errorbars)
        self.settings = []
        self.y2 = []

    def add(self, title, points, style="linespoints", axes="x1y1", errorbars=False):
        """POINTS: (x, y) or, with ERRORBARS, (x, y, ylow, yhigh), drawn as bars too."""
        pts = [p for p in points if p[1] is not None]
        if pts:
            self.series.append((title, pts, style, axes, errorbars))

    def render(self):
        if not self.series:
            return None
        d = os.path.join(self.run.dir, "charts")
        os.makedirs(d, exist_ok=True)
        dat = os.path.join(d, self.name + ".dat")
        with open(dat, "w") as f:
            for i, (title, pts, _, _, _) in enumerate(self.series):
                f.write(f"# [{i}] {title}\n")
                for p in pts:
                    f.write(" ".join(f"{x:.6g}" if isinstance(x, float) else str(x)
                                     for x in p) + "\n")
                f.write("\n\n")
        plots = []
        keys = []
        for i, (title, _, style, axes, errorbars) in enumerate(self.series):
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
            if errorbars:
                lc = style[style.index("lc "):] if "lc " in style else ""
                plots.append(f'"{self.name}.dat" index {i} using 1:2:3:4 with yerrorbars '
                             f'pt 0 lw 1 {lc} axes {axes} notitle')
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
    "kernel-ratios-loop": "kernel dm-thin vs libthinp in one VM, ratios to overwrite (loop-lvm)",
    "kernel-ratios-direct": "kernel dm-thin vs libthinp in one VM, ratios to overwrite "
                            "(direct-lvm)",
}


def charts(run):
    made = []
    for f in (chart_latency, chart_amp, chart_ratio, chart_chain, chart_commit, chart_fill,
              chart_kernel):
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
            fratio(r, "ratio_qcow2"), kernel_cell(run, i, step) if run.kernel else "— ¹"]
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
    if run.kernel:
        k = run.kernel
        lines.append(f"² kernel dm-thin: this write's mean latency ÷ the overwrite mean (same size, "
                     f"same device) of the kernel's dm-thin, in the row's set-up inside a qemu VM "
                     f"({k['accel'] or 'accelerator unknown'}"
                     f"{': emulated' if emulated(k) else ''}), and libthinp's same ratio in that "
                     f"VM. Only ratios: absolute times in the VM are not comparable with the "
                     f"columns to the left. See the kernel section.")
    else:
        lines.append(f"¹ kernel dm-thin: {run.kernel_error or KERNEL_NOTE}.")
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
    if run.kernel:
        k = run.kernel
        L.append(f"- **kernel dm-thin**: in a qemu VM ({k['accel'] or 'accelerator unknown'}"
                 f"{', emulated: ratios only' if emulated(k) else ''}); "
                 f"{e.get('kernel_dm_thin') or ''} — see *Kernel dm-thin in a VM* below")
    else:
        L.append(f"- **kernel dm-thin**: {run.kernel_error or e.get('kernel_dm_thin')}")
    L.append(f"- **Command**: `{e.get('command')}` ({e.get('options', {}).get('repeat')} "
             f"repetitions, interleaved; {e.get('elapsed_s', '?')} s)")
    L.append("")
    L.append("Files: [summary.csv](summary.csv) (one row per case × step × class), "
             "[env.json](env.json), [cases.json](cases.json) (every repetition), "
             "[commands.md](commands.md) (exact commands), `fio/` (fio JSON), `stats/` "
             "(the engine's per-class JSON), `charts/`" +
             (", [kernel.csv](kernel.csv) (the kernel's ratios in a VM; its raw output in "
              f"`{KERNEL_DIR}/`)" if run.kernel else "") + ".")
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
    if run.kernel or run.kernel_error:
        L += kernel_section(run, charts_made=made)
    if [m for m in made if not m.startswith("kernel-")]:
        L.append("## Charts")
        L.append("")
        for m in made:
            if m.startswith("kernel-"):  # (in the kernel section)
                continue
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
    write_kernel_csv(run)
    made = charts(run)
    write_commands(run)
    write_report(run, made)
    return run


# ---------------------------------------------------------------------------------------------
# kernel dm-thin, measured in a qemu VM by tests/vm/kernel_perf.sh (`scenarios/run --kernel`,
# or a finished `make vm-perf` merged with --kernel-results DIR). The run keeps that output dir
# as RUN/kernel/; kernel.csv and the report's kernel section are computed from its
# kernel_perf.csv. Absolute times in an emulated guest mean nothing next to the host's, so
# only ratios within the VM are reported: each case's mean latency ÷ the overwrite mean of the
# same setup, engine and write size (the same device). A CSV with repetitions (columns reps,
# ratio_min, ratio_max after the first ten) gives per row the median ratio over the
# repetitions (each taken against its own repetition's overwrite) and its range; those are
# used as they are. The single-run CSV (the first ten columns only) gives one measurement:
# its ratio is computed from the two mean latencies, and the range is that one value.
KERNEL_DIR = "kernel"
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


def bs_bytes(bs):
    """'4k' -> 4096, '1m' -> 1048576, '512' -> 512; None if it is not a size."""
    s = str(bs).strip().lower()
    mult = {"k": KiB, "m": MiB, "g": GiB}.get(s[-1:], 1)
    num = s[:-1] if s[-1:] in ("k", "m", "g") else s
    return int(num) * mult if num.isdigit() and int(num) > 0 else None


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
        x = dict(zip(head, (v.strip() for v in r)))
        where = f"{path} line {n}"
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
        key = (x["setup"], x["engine"], x["bs"], x["case"])
        if key in by:
            raise KernelDataError(f"{where}: a second row for {' '.join(key)}")
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
    # accelerator: accel.txt (first line; 'reason: ...'), else the CSV's accel column
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
        vals = {x["accel"] for x in by.values() if x["accel"]}
        k["accel"] = vals.pop() if len(vals) == 1 else None
        k["accel_source"] = "kernel_perf.csv" if k["accel"] else None
    k["autoextend"] = None
    aep = os.path.join(d, "autoextend.txt")
    if os.path.isfile(aep):
        k["autoextend"] = open(aep).read().strip()
    k["vm_times"] = kv_line(os.path.join(d, "vm-times.txt"))
    info = os.path.join(d, "info.txt")
    k["guest"] = kv_line(info) if os.path.isfile(info) else {}
    k["quick"] = "1m" not in k["bs"]
    return k


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


def emulated(k):
    return (k.get("accel") or "").lower() != "kvm"


KERNEL_COLORS = {"provision": ("#1f77b4", "#74a9cf"), "cow": ("#d62728", "#fc9272"),
                 "cow-overwrite": ("#2ca02c", "#a1d99b")}


def chart_kernel(run):
    """Per setup: the kernel's ratios beside libthinp's, both measured in the same VM."""
    k = run.kernel
    if not k:
        return []
    out = []
    for setup in k["setups"]:
        mode = KERNEL_SETUPS[setup]
        c = Chart(run, f"kernel-ratios-{mode}",
                  f"{setup} in one qemu VM ({k['accel'] or 'accelerator unknown'}"
                  f"{', emulated' if emulated(k) else ''}): kernel dm-thin vs libthinp, "
                  "mean write latency ÷ overwrite (same engine, same size)",
                  "write size", "÷ overwrite mean (log scale" +
                  (f"; median of {k['reps']} repetitions, bars: min–max)" if k["reps"] > 1
                   else ")"))
        bars = k["reps"] > 1
        for case in KERNEL_RATIO_CASES:
            for n, engine in enumerate(KERNEL_ENGINES):
                pts = []
                for bs in k["bs"]:
                    sp = kernel_spread(k, setup, engine, bs, case)
                    x = bs_bytes(bs) // KiB
                    pts.append((x, None) if not sp else (x,) + sp[:3] if bars else (x, sp[0]))
                st = (f"linespoints lw {3 if engine == 'kernel' else 2} "
                      f"pt {7 if engine == 'kernel' else 6} ps 1.4 "
                      f"dt {1 if engine == 'kernel' else 2} lc rgb '{KERNEL_COLORS[case][n]}'")
                c.add(f"{engine}: {KERNEL_CASE_TEXT[case]}", pts, st, errorbars=bars)
        c.settings = categorical(c) + [
            "set logscale y 2", "set format y '%g'",
            "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1 lc rgb 'black'"]
        r = c.render()
        if r:
            out.append(r)
    return out


def autoextend_lines(text):
    """The autoextend check of kernel_perf-guest.sh (direct-lvm, profile 80/20) in words."""
    if not text:
        return ["No autoextend.txt in the kernel results: the check did not run or was not "
                "copied."]
    kv = {}
    for line in text.splitlines():
        for tag in ("below", "above", "after_vgextend"):
            if line.startswith(tag + ":"):
                kv[tag] = dict(w.split("=", 1) for w in line.split(":", 1)[1].split()
                               if "=" in w)

    def num(d, key):
        try:
            return float(d.get(key))
        except (TypeError, ValueError):
            return None
    L = []
    b, a, v = kv.get("below", {}), kv.get("above", {}), kv.get("after_vgextend", {})
    s0 = num(b, "size_mb")
    if b:
        s1 = num(b, "size_after_mb")
        grew = s0 is not None and s1 is not None and s1 > s0
        L.append(f"- Below the threshold (data {b.get('data_percent', '?')} %): `lvextend "
                 f"--use-policies` exit {b.get('lvextend_rc', '?')}, pool {b.get('size_mb', '?')} → "
                 f"{b.get('size_after_mb', '?')} MiB — "
                 + ("**extended below the threshold (unexpected)**" if grew else
                    "not extended, as expected"))
    fired = False
    if a:
        s2 = num(a, "size_mb")
        grew = s0 is not None and s2 is not None and s2 > s0
        fired |= grew
        why = ""
        m = [l for l in text.splitlines() if l.startswith("above_lvextend_output:")]
        if m and not grew:
            why = " (" + m[0].split(":", 1)[1].strip().split("  ")[0].strip() + ")"
        L.append(f"- Above it (after writing {a.get('wrote_mb', '?')} MiB: data "
                 f"{a.get('data_percent', '?')} %): exit {a.get('lvextend_rc', '?')}, pool "
                 f"{a.get('size_mb', '?')} MiB — " +
                 ("extended by the policy" if grew else
                  f"the policy asked for an extension, the volume group had no room{why}"))
    if v:
        s3 = num(v, "size_mb")
        grew = s0 is not None and s3 is not None and s3 > s0 and v.get("lvextend_rc") == "0"
        fired |= grew
        L.append(f"- After `vgextend` with a spare disk: exit {v.get('lvextend_rc', '?')}, pool "
                 f"{b.get('size_mb', '?')} → {v.get('size_mb', '?')} MiB (data "
                 f"{v.get('data_percent', '?')} %) — " +
                 ("extended by the policy's 20 %" if grew else "not extended"))
    if not L:
        return ["autoextend.txt has no below/above lines: see the raw text."]
    L.insert(0, "**Autoextend " + ("fired** above 80 % (and not below)." if fired and not (
        b and (num(b, "size_after_mb") or 0) > (s0 or 0)) else "did not fire as expected.**"))
    return L


def kernel_cell(run, i, step):
    """The headline's kernel column for case I, STEP: the VM's kernel ratio and libthinp's."""
    k = run.kernel
    c = run.cases.get(i)
    if not k or not c:
        return "—"
    p, scen = c["params"], c["scenario"]
    bs = human(p.get("bs")) if p.get("bs") else None
    case = {("alloc", "first-write"): "provision", ("cow", "first"): "cow",
            ("cow", "second"): "cow-overwrite"}.get((scen, step))
    if not case or not bs or (scen == "alloc" and p.get("zero")):
        return "—"
    setup = MODE_LABEL[c["mode"]]
    kr = kernel_ratio(k, setup, "kernel", bs, case)
    lr = kernel_ratio(k, setup, "libthinp", bs, case)
    if kr is None:
        return "—"
    return f"{kr:.2f}× ow (libthinp {lr:.2f}×) ²" if lr is not None else f"{kr:.2f}× ow ²"


def kernel_section(run, prefix="", charts_made=()):
    """The report's section on the kernel (a list of markdown lines); PREFIX is put before
    every link (BENCHMARKS.md links into the run dir)."""
    k = run.kernel
    L = ["## Kernel dm-thin in a VM, beside libthinp", ""]
    if not k:
        if run.kernel_error:
            L += [f"The run has a `{KERNEL_DIR}/` dir, but its results cannot be used: "
                  f"{run.kernel_error}", ""]
        return L
    acc = k["accel"] or "unknown"
    src = run.env.get("kernel_dm_thin") or ""
    L.append(("**The guest was emulated** (qemu " + acc.upper() + ", software emulation, roughly "
              "10× slower than the host" if emulated(k) else
              f"**The guest ran under {acc.upper()}**") +
             (f"; accelerator from {k['accel_source']}" if k["accel_source"] else
              "; no accel.txt: accelerator unknown, treated as emulated") +
             (f" — {k['accel_reason']}" if k["accel_reason"] else "") + "). "
             "Absolute IOPS and latencies in the VM are not comparable with the host numbers "
             "of this report, nor between the two set-ups; only **ratios within the VM** are "
             "shown: a case's mean write latency ÷ the overwrite mean of the same engine, "
             "set-up and write size, on the same device, in the same boot.")
    L.append("")
    if k["reps"] > 1:
        L.append(f"**{k['reps']} repetitions** of every case in the VM, each on a fresh thin "
                 "and a fresh snapshot; a ratio is taken inside one repetition (against that "
                 "repetition's overwrite) and shown as the **median [min–max]** over the "
                 "repetitions. loop-lvm: the kernel's and libthinp's repetitions alternate in "
                 "the same boot; direct-lvm: the LVM pool and libthinp's LVs do not fit the "
                 "VM's 1 GiB disk together, so all kernel repetitions ran before all libthinp "
                 "ones (minutes apart).")
    else:
        L.append("**One measurement per case** in the VM (kernel_perf's CSV has no repetitions, "
                 "or they were set to 1): under TCG a single ratio can be far off (`make vm-perf` "
                 "repeats every case 3 times by default); no spread is shown.")
    L.append("")
    vt, g = k["vm_times"], k["guest"]
    L.append((f"Source: {src}. " if src else "") +
             f"Harness: `tests/vm/kernel_perf.sh{' --quick' if k['quick'] else ''}"
             f"{' --reps ' + str(k['reps']) if k['has_reps'] else ''}`; guest "
             f"kernel {g.get('kernel', '?')}, "
             f"{g.get('fio', 'fio ?')}, {g.get('cpus', '?')} vCPUs ({k['accel_detail'] or '?'}); "
             f"VM wall time {vt.get('wall_s', '?')} s. QD1, direct=1, fio replaying a seeded "
             "shuffled log of writes into distinct pool blocks; the same log for the kernel "
             "and for libthinp (fio's thinp engine) on the same backing. loop-lvm: Docker's "
             "loop preset (64 KiB blocks, skip_block_zeroing, loop devices over sparse files); "
             "direct-lvm: the seed's LVM thin pool on a virtio disk (512 KiB chunks, zeroing "
             "off). Files: "
             f"[kernel.csv]({prefix}kernel.csv) (these ratios, with the VM's mean latencies), "
             f"[{KERNEL_DIR}/kernel_perf.csv]({prefix}{KERNEL_DIR}/kernel_perf.csv) (every "
             "case: IOPS, mean/p50/p99)" +
             (f", [{KERNEL_DIR}/summary.md]({prefix}{KERNEL_DIR}/summary.md) (tables, block "
              "checks)" if os.path.exists(os.path.join(run.dir, KERNEL_DIR, "summary.md"))
              else "") + ".")
    L.append("")
    L.append("*libthinp, host* is this run's libthinp on the host for reference — a different "
             "machine (not emulated), workload and layout (64 KiB blocks in both modes; "
             "direct-lvm there is a loop device with direct I/O, not LVM): the median [min–max] "
             "over repetitions of (provision: `alloc` random order, zeroing off; CoW: `cow` "
             "first pass; overwrite after CoW: its second pass) ÷ `overwrite` steady state, "
             "same mode and size; — where the run has no such case.")
    L.append("")
    rows = kernel_rows(run)
    for setup in k["setups"]:
        L.append(f"### {setup}")
        L.append("")
        L.append("| bs | ratio | kernel, VM | libthinp, VM | libthinp ÷ kernel | libthinp, host | "
                 "VM µs: kernel / libthinp |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        for r in rows:
            if r["setup"] != setup:
                continue
            f2 = lambda x: "—" if x is None else f"{x:.2f}×"

            def vm(pre):  # the median, and its range when there were repetitions
                v = r[pre + "_ratio"]
                if v is None or (r[pre + "_reps"] or 1) < 2:
                    return f2(v)
                return f"{v:.2f}× [{r[pre + '_ratio_min']:.2f}–{r[pre + '_ratio_max']:.2f}]"
            host = ("—" if r["host_ratio"] is None else
                    f"{r['host_ratio']:.2f}× [{r['host_ratio_min']:.2f}–{r['host_ratio_max']:.2f}]")
            us = lambda x: "?" if x is None else f"{x:.0f}"
            lat = (f"{us(r['kernel_lat_mean_us'])} / {us(r['libthinp_vm_lat_mean_us'])} "
                   f"(overwrite {us(r['kernel_overwrite_lat_mean_us'])} / "
                   f"{us(r['libthinp_vm_overwrite_lat_mean_us'])})")
            L.append(f"| {r['bs']} | {KERNEL_CASE_TEXT[r['case']]} | {vm('kernel')} | "
                     f"{vm('libthinp_vm')} | {f2(r['libthinp_vs_kernel'])} | {host} | {lat} |")
        L.append("")
        L.append("*VM µs* are the mean write latencies behind the ratios (emulated: compare them "
                 "only with each other). A ratio also depends on its denominator: where one "
                 "engine's overwrite is much cheaper than the other's, its ratios come out "
                 "higher even when its own case is faster in absolute terms" +
                 (" — here libthinp's overwrite is a buffered write into the guest's page "
                  "cache, the kernel's goes through device-mapper and the loop driver."
                  if setup == "loop-lvm" else "."))
        L.append("")
        name = f"kernel-ratios-{KERNEL_SETUPS[setup]}"
        if name in charts_made:
            L += [f"![{CHART_TEXT[name]}]({prefix}charts/{name}.png)", "",
                  f"[SVG]({prefix}charts/{name}.svg) · [data]({prefix}charts/{name}.dat) · "
                  f"[gnuplot]({prefix}charts/{name}.gp)", ""]
    L.append("### Autoextend (direct-lvm, profile threshold 80 %, extend by 20 %)")
    L.append("")
    L.append("dmeventd does not run in the guest, so the check runs `lvextend --use-policies` "
             "itself (what dmeventd's thin plugin calls) below and above 80 % data use.")
    L.append("")
    L += autoextend_lines(k["autoextend"])
    if k["autoextend"]:
        L += ["", f"Raw: [{KERNEL_DIR}/autoextend.txt]({prefix}{KERNEL_DIR}/autoextend.txt)."]
    L.append("")
    return L
