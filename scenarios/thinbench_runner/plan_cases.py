"""The planning validation cases (issue #13; docs/capacity-planning.md, "Validation"): each
committed spec in scenarios/plans/ is planned (`thinp plan --format json`) and replayed on a
real libthinp pool (plan_replay), and the two are compared step by step: data blocks within
DATA_BAR, metadata blocks within META_BAR, every event's time within EVENT_BAR. A case
passes when all three hold. Output per case in OUT/plan/NAME/: spec.yaml (as planned and
replayed, scaled), predicted.json, measured.json, comparison.json, commands.txt and the
chart (usage.png: predicted vs measured over time, with the thresholds).

The cases run once per run (seeded; nothing in them is timed), after the matrix's
repetitions; --only selects them by id (plan.NAME) like the matrix's cases."""
import fnmatch
import json
import os
import re
import shutil
import subprocess

from . import ROOT
from .plan_chart import usage_chart
from .plan_replay import Replay
from .plan_spec import dump, parse, scaled, values
from .procs import CaseError, log

PLANS = os.path.join(ROOT, "scenarios", "plans")
DATA_BAR, META_BAR, EVENT_BAR = 5.0, 10.0, 10.0  # percent (issue #13)
# the specs are written at the quick scale; tiny divides their sizes (same shape and times)
SCALE_FACTOR = {"tiny": 0.25, "quick": 1, "full": 1}
# the events whose times are compared (the data side: what the specs drive the pool into)
EVENTS = ("low_water", "autoextend_data", "vg_full", "min_free_data", "data_full")


def case_ids():
    return [f"plan.{f[:-5]}" for f in sorted(os.listdir(PLANS)) if f.endswith(".yaml")]


def selected(args):
    """The planning cases a run's options select: libthinp's (none with --backend kernel
    alone), by --only and --exclude as the matrix's cases are."""
    if "libthinp" not in (getattr(args, "backends", None) or ["libthinp"]):
        return []

    def match(i, pats):
        return any(re.search(p, i) or fnmatch.fnmatch(i, p) for p in pats)
    only, exclude = getattr(args, "only", None), getattr(args, "exclude", None) or []
    return [i for i in case_ids() if (not only or match(i, only)) and not match(i, exclude)]


class PlanCtx:
    """What the replay's commands need of a case's context (procs.sh logs to .commands)."""

    def __init__(self, env, work):
        self.env, self.work, self.commands = env, work, []


def reserve(total):
    """The kernel's metadata reserve, counted as used by the status (both sides count it;
    the comparison leaves it out so the errors are the btree's and the space maps')."""
    return min(4096, total // 10)


def compare(pred, meas):
    """comparison.json of a plan (thinp plan --format json) against a replay's samples."""
    series = pred["series"]
    rows, worst_d, worst_m = [], 0.0, 0.0
    for s in meas["samples"]:
        if s.get("step") is None or s["step"] >= len(series):
            continue
        p = series[s["step"]]
        md = s["data_used"]
        mm = s["metadata_used"] - reserve(s["metadata_total"])
        pd = p["data_used"]
        pm = p["metadata_used"] - reserve(int(p["metadata_total"]))
        ed = err(pd, md)
        em = err(pm, mm)
        worst_d, worst_m = max(worst_d, ed), max(worst_m, em)
        rows.append({"hours": s["hours"], "data_predicted": round(pd, 2), "data_measured": md,
                     "data_error_pct": round(ed, 3), "metadata_predicted": round(pm, 2),
                     "metadata_measured": mm, "metadata_error_pct": round(em, 3)})
    evs = []
    for kind in EVENTS:
        pe = [e for e in pred["events"] if e["event"] == kind]
        me = [e for e in meas["events"] if e["event"] == kind]
        for k in range(max(len(pe), len(me))):
            ph = pe[k]["hours"] if k < len(pe) else None
            mh = me[k]["hours"] if k < len(me) else None
            e = None if ph is None or mh is None else err(ph, mh)
            evs.append({"event": kind, "n": k + 1, "predicted_hours": ph, "measured_hours": mh,
                        "error_pct": None if e is None else round(e, 3),
                        "ok": e is not None and e <= EVENT_BAR})
    ok_d, ok_m = worst_d <= DATA_BAR, worst_m <= META_BAR
    ok_e = all(e["ok"] for e in evs)
    why = []
    if not ok_d:
        why.append(f"data off by {worst_d:.2f}% (bar {DATA_BAR:g}%)")
    if not ok_m:
        why.append(f"metadata off by {worst_m:.2f}% (bar {META_BAR:g}%)")
    for e in evs:
        if not e["ok"]:
            why.append(f"{e['event']} #{e['n']}: predicted {fmt_h(e['predicted_hours'])}, "
                       f"measured {fmt_h(e['measured_hours'])}"
                       + ("" if e["error_pct"] is None else f" ({e['error_pct']:.1f}%)"))
    return {"bars_pct": {"data": DATA_BAR, "metadata": META_BAR, "events": EVENT_BAR},
            "data_error_pct": round(worst_d, 3), "metadata_error_pct": round(worst_m, 3),
            "events": evs, "steps": rows, "pass": ok_d and ok_m and ok_e, "why": why}


def err(p, m):
    """|P - M| in percent of M (both zero: none; M zero alone: infinitely off)."""
    if m == 0:
        return 0.0 if abs(p) < 0.5 else float("inf")
    return abs(p - m) / abs(m) * 100


def fmt_h(h):
    return "none" if h is None else f"{h:.3f} h"


def plan(env, spec_path, out_json):
    p = subprocess.run([env.cli, "plan", "--format", "json", "--no-chart", spec_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode:
        raise CaseError(f"thinp plan {spec_path} exited {p.returncode}: {p.stderr.strip()}")
    d = json.loads(p.stdout)
    d["spec"] = os.path.basename(spec_path)
    json.dump(d, open(out_json, "w"), indent=1)
    return d


def run_case(env, cid, scale, out, seed):
    """Plan, replay and compare one case; its record (pass/fail, errors) for the report."""
    name = cid.split(".", 1)[1]
    d = os.path.join(out, "plan", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    work = os.path.join(env.tmp, "plan-" + name)
    os.makedirs(work, exist_ok=True)
    ctx = PlanCtx(env, work)
    rec = {"id": cid, "spec": os.path.relpath(os.path.join(PLANS, name + ".yaml"), ROOT),
           "scale": scale, "seed": seed}
    try:
        doc = scaled(parse(os.path.join(PLANS, name + ".yaml")), SCALE_FACTOR[scale])
        spec_path = os.path.join(d, "spec.yaml")
        dump(doc, spec_path)
        pred = plan(env, spec_path, os.path.join(d, "predicted.json"))
        meas = Replay(ctx, values(doc), seed, work).run()
        json.dump(meas, open(os.path.join(d, "measured.json"), "w"), indent=1)
        cmp_ = compare(pred, meas)
        json.dump(cmp_, open(os.path.join(d, "comparison.json"), "w"), indent=1)
        rec.update(status="ok" if cmp_["pass"] else "failed", why=cmp_["why"],
                   data_error_pct=cmp_["data_error_pct"],
                   metadata_error_pct=cmp_["metadata_error_pct"])
        try:
            usage_chart(d, name, values(doc), pred, meas)
        except (OSError, RuntimeError) as e:
            rec["chart_error"] = str(e)
    except CaseError as e:
        rec.update(status="failed", why=[str(e)])
    finally:
        open(os.path.join(d, "commands.txt"), "w").write("\n".join(ctx.commands) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    json.dump(rec, open(os.path.join(d, "case.json"), "w"), indent=1)
    return rec


def run_all(env, args, out):
    """Every selected planning case, in order; [(id, 1, why)] of those that failed."""
    failed = []
    ids = selected(args)
    for k, cid in enumerate(ids, 1):
        log(f"[plan {k}/{len(ids)}] {cid} ({args.scale} scale)")
        rec = run_case(env, cid, args.scale, out, getattr(args, "seed", 1))
        if rec["status"] != "ok":
            msg = "; ".join(rec["why"])
            log(f"    FAILED: {msg}")
            failed.append((cid, 1, msg))
        else:
            log(f"    ok: data {rec['data_error_pct']:.2f}%, metadata "
                f"{rec['metadata_error_pct']:.2f}% at most")
    return failed
