"""One run dir read back (env.json, cases.json, kernel/): every repetition's metrics,
aggregated per case × step × outcome class (median [min–max] over repetitions, ratios taken
inside each repetition), and summary.csv. Everything here is computed from the run's own
files: no number is typed in."""
import csv
import json
import os
import statistics

from .kernel_results import KernelDataError, fill_summary, kernel_of
from .units import SIZE_KEYS, human

# summary.csv's layout version, in its last column "schema" (readers such as ci/gate check it;
# bump it when a column changes meaning or moves)
SUMMARY_SCHEMA = 1
CSV_COLUMNS = [
    "case", "scenario", "backend", "mode", "params", "bs", "block", "zero", "step", "class",
    "reps_ok", "ios", "bytes_per_io",
    "median_us", "min_us", "max_us", "spread",
    "lat_p50_us", "lat_p99_us", "iops", "mbps",
    "blocks_per_io", "alloc_per_io", "bytes_amp", "data_w_amp", "zero_amp", "read_amp",
    "meta_amp", "dev_w_amp", "dev_r_amp",
    "ratio_raw", "ratio_raw_min", "ratio_raw_max", "ratio_raw_p50", "raw_baseline",
    "ratio_qcow2", "ratio_qcow2_min", "ratio_qcow2_max", "qcow2_case",
    "kernel_us", "ratio_kernel", "status", "schema",
]


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
        # the kernel's dm-thin: this run's kernel twins, or a VM run's in RUN/kernel/
        self.kernel, self.kernel_error = None, None
        try:
            self.kernel = kernel_of(self)
        except KernelDataError as e:
            self.kernel_error = str(e)
        fill_summary(self)

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

    def pair_ratio(self, a, b, step_a, step_b=None, cls="all"):
        """Median [min, max] of cost(a)/cost(b) (B's whole step), each ratio within one
        repetition; None when no repetition has both."""
        x = self.rep_values(a, step_a, cls, "cost_us")
        y = self.rep_values(b, step_b or step_a, "all", "cost_us")
        rs = [x[r] / y[r] for r in x if r in y and y[r]]
        if not rs:
            return None
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
                        params=";".join(f"{k}={human(v) if k in SIZE_KEYS else v}"
                                        for k, v in p.items()),
                        bs=p.get("bs", ""), block=p.get("block", 65536 if c["backend"] in
                                                          ("thinp", "kernel") else ""),
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

    def errors(self, cid):
        """The distinct error messages of CID's repetitions, sorted."""
        return sorted({x.get("error") for x in self.cases.get(cid, {}).get("reps", [])
                       if x.get("error")})


def write_csv(run):
    path = os.path.join(run.dir, "summary.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in run.rows:
            out = {}
            for k in CSV_COLUMNS:
                x = SUMMARY_SCHEMA if k == "schema" else r.get(k)
                if isinstance(x, float):
                    x = f"{x:.6g}"
                out[k] = "" if x is None else x
            w.writerow(out)
    return path
