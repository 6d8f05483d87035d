"""The planning cases' section of report.md and BENCHMARKS.md: per case the plan's prediction
and the replay's measurement side by side (peak data, metadata at the end, every event's
time), the largest errors against the bars, the verdict, and the chart."""
import json
import os

from . import ROOT
from .plan_cases import DATA_BAR, EVENT_BAR, META_BAR, reserve

TITLE = "Capacity planning: `thinp plan` against a replay on a real pool"


def load(d):
    """[(name, case.json, predicted, measured, comparison)] of the run in D (the files that
    exist; a failed case may lack some)."""
    root = os.path.join(d, "plan")
    if not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        f = lambda n: os.path.join(root, name, n)  # noqa: E731
        if not os.path.exists(f("case.json")):
            continue
        get = lambda n: json.load(open(f(n))) if os.path.exists(f(n)) else None  # noqa: E731
        out.append((name, get("case.json"), get("predicted.json"), get("measured.json"),
                    get("comparison.json")))
    return out


def pct(x):
    return "—" if x is None else ("∞" if x == float("inf") else f"{x:.2f}%")


def events_cell(cmp_):
    if not cmp_ or not cmp_["events"]:
        return "none predicted or measured"
    parts = []
    for e in cmp_["events"]:
        ph = "none" if e["predicted_hours"] is None else f"{e['predicted_hours']:.2f}"
        mh = "none" if e["measured_hours"] is None else f"{e['measured_hours']:.2f}"
        parts.append(f"{e['event']}: {ph} / {mh} h ({pct(e['error_pct'])})")
    return "<br>".join(parts)


def side(pred, meas):
    """(peak data predicted / measured, metadata at the end predicted / measured) in
    blocks, the metadata without the kernel's reserve."""
    if not pred or not meas:
        return "—", "—"
    steps = [s for s in meas["samples"] if s.get("step") is not None]
    pd = max(p["data_used"] for p in pred["series"])
    md = max(s["data_used"] for s in steps)
    pe, me = pred["series"][-1], steps[-1]
    pm = pe["metadata_used"] - reserve(int(pe["metadata_total"]))
    mm = me["metadata_used"] - reserve(me["metadata_total"])
    return f"{pd:.0f} / {md}", f"{pm:.0f} / {mm}"


def section(d, prefix="", page_dir=None):
    """Markdown lines of the section for the run in D, its files linked as PREFIX + path
    (PREFIX: the run dir as seen from the page; empty inside the run's own report), the
    repository's files from PAGE_DIR (the page's directory; default the run dir)."""
    cases = load(d)
    if not cases:
        return []
    top = os.path.relpath(ROOT, os.path.abspath(page_dir or d))
    top = "" if top == "." else top + "/"
    L = [f"## {TITLE}", "",
         f"Each case is a committed workload spec ([scenarios/plans/]({top}scenarios/plans/)) "
         "planned by `thinp plan --format json` and replayed on a real libthinp pool in the "
         "plan's own time steps: the image's layers written at time 0, the containers "
         "(snapshots of the top layer) writing through the fio engine at the model's rate, "
         "churn deleting each container as its life ends, and after every step "
         "`thinp pool report`, LVM's autoextend (dmeventd's rule, bounded by the volume "
         "group's free space: `thinp pool extend`) and dm-thin's low-water mark. Bars: data "
         f"blocks within {DATA_BAR:g}% at every step, metadata blocks (without the kernel's "
         f"reserve, which both count) within {META_BAR:g}%, every event's time within "
         f"{EVENT_BAR:g}%. Data and metadata in pool blocks (predicted / measured); events "
         "in hours of the plan (predicted / measured, error). See "
         f"[docs/capacity-planning.md]({top}docs/capacity-planning.md#validation).", "",
         "| case | block | peak data | metadata at the end | max error: data | max error: "
         "metadata | events | verdict |", "|---|---|---|---|---|---|---|---|"]
    for name, rec, pred, meas, cmp_ in cases:
        block = f"{pred['pool']['block_size'] >> 10} KiB" if pred else "—"
        data, meta = side(pred, meas)
        verdict = "**pass**" if rec["status"] == "ok" else \
            "**FAIL**: " + "; ".join(rec.get("why", []))[:300]
        L.append(f"| [{name}]({prefix}plan/{name}/comparison.json) "
                 f"([spec]({top}{rec['spec']})) | {block} | {data} | {meta} | "
                 f"{pct(cmp_ and cmp_['data_error_pct'])} | "
                 f"{pct(cmp_ and cmp_['metadata_error_pct'])} | {events_cell(cmp_)} | "
                 f"{verdict} |")
    scale = cases[0][1].get("scale")
    L += ["", f"Scale: {scale} (the specs' sizes{' x 1/4' if scale == 'tiny' else ''}); "
          f"seed {cases[0][1].get('seed')}. Per case: `plan/NAME/` holds the spec as "
          "planned, predicted.json, measured.json (every sample and event, with how its "
          "time was found), comparison.json (every step) and commands.txt. Reproduce: "
          "`scenarios/run --only '^plan\\.' --repeat 1`.", ""]
    for name, _, _, _, _ in cases:
        png = os.path.join(d, "plan", name, "charts", "usage.png")
        if os.path.exists(png):
            L += [f"### {name}", "", f"![{name}: predicted vs measured]"
                  f"({prefix}plan/{name}/charts/usage.png)", ""]
    return L
