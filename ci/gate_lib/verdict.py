"""Comparing two measurements, layer by layer, into verdict rows: one per case x class x
layer, each {"case", "class", "layer", "verdict", "detail"}.

Verdicts: pass; changed (exact layer: any counter differs); regressed / improved
(instruction layer: beyond the tolerance, up / down; timing layer: see timing.py, which
adds unchanged and inconclusive); missing (a case on one side only);
skipped (a layer one side did not measure). Failures: changed, regressed, missing."""

from . import timing

FAILING = ("changed", "regressed", "missing")


def _fmt(v):
    return "absent" if v is None else (f"{v:,}" if isinstance(v, int) else str(v))


def change(name, a, b):
    """"what changed, by how much": NAME: A -> B (+D, +P%)"""
    s = f"{name}: {_fmt(a)} -> {_fmt(b)}"
    nums = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    if nums:
        d = b - a
        d = round(d, 6) if isinstance(d, float) else d
        s += f" ({'+' if d >= 0 else ''}{_fmt(d)}"
        pct = 100.0 * d / a if a else None
        if pct is None:
            s += ")"
        else:  # a small change keeps its digits: +0.0% would read as none
            s += f", {pct:+.1f}%)" if abs(pct) >= 0.1 or not d else f", {pct:+.2g}%)"
    return s


def exact_rows(case, a, b):
    rows = []
    for cls in sorted(set(a) | set(b)):
        ca, cb = a.get(cls, {}), b.get(cls, {})
        diffs = [change(k, ca.get(k), cb.get(k)) for k in sorted(set(ca) | set(cb))
                 if ca.get(k) != cb.get(k)]
        if not ca:
            diffs.insert(0, "class only in the new run")
        elif not cb:
            diffs.insert(0, "class only in the base")
        rows.append({"case": case, "class": cls, "layer": "exact",
                     "verdict": "changed" if diffs else "pass",
                     "detail": "; ".join(diffs) if diffs else f"{len(ca)} counters equal"})
    return rows


def instruction_row(case, a, b, tolerance):
    row = {"case": case, "class": "ops", "layer": "instructions", "base": a, "new": b}
    if a is None or b is None:
        side = "base" if a is None else "new run"
        row.update(verdict="skipped", detail=f"the {side} has no instruction count")
        return row
    rel = 100.0 * (b - a) / a if a else (0.0 if b == a else float("inf"))
    if rel > tolerance:
        v = "regressed"
    elif rel < -tolerance:
        v = "improved"
    else:
        v = "pass"
    row.update(verdict=v, detail=change("instructions", a, b) + f", tolerance {tolerance}%")
    return row


def compare(base, new, layers, tolerance, alpha=0.05, min_effect=timing.MIN_EFFECT,
            stat="p10", paired=True):
    rows = []
    if "timing" in layers and "run_cases" in base and "run_cases" in new:
        rows += timing.rows(base, new, alpha, min_effect, stat, paired)
    cb, cn = base["cases"], new["cases"]
    for case in sorted(set(cb) | set(cn)):
        if case not in cn:
            rows.append({"case": case, "class": "-", "layer": "-", "verdict": "missing",
                         "detail": "case only in the base: the new run lost it"})
            continue
        if case not in cb:
            rows.append({"case": case, "class": "-", "layer": "-", "verdict": "missing",
                         "detail": "case only in the new run: not in the base (after review, "
                                   "`ci/gate update` adds it to the baseline)"})
            continue
        if "exact" in layers:
            rows += exact_rows(case, cb[case].get("exact", {}), cn[case].get("exact", {}))
        if "instructions" in layers:
            rows.append(instruction_row(case, cb[case].get("instructions"),
                                        cn[case].get("instructions"), tolerance))
    return rows


def failed(rows):
    return any(r["verdict"] in FAILING for r in rows)
