"""The timing layer: noisy times judged by a rank test and a minimum effect, never by one
number.

Paired (the default): the two sides of one A/B run (`scenarios/run --ab-base-engine SO`,
scenarios/thinbench_runner/abrun.py), where each repetition ran a case with the base engine
and with the new one back to back, so both saw the same machine. Per case, step and
repetition the log of new / base of the step's statistic; the Wilcoxon signed-rank test on
them, one-sided each way, and their Hodges-Lehmann estimate as the effect. The load of a
shared machine changes between minutes, not between two adjacent runs of a few seconds:
pairing cancels it where comparing runs made apart did not (ci/README.md's figures).

Unpaired (--unpaired: two ordinary runs): per repetition the case's statistic as a ratio
to its first baseline (raw) in the same repetition, base against new by Mann-Whitney U and
the change of the median ratio. Kept for runs that cannot be paired (another kernel, another
machine); on a shared machine its verdicts are hints.

Any backend: every case with per-repetition steps is judged (libthinp's, the kernel's), but
in a paired run not the cases the engine does not touch (their one record is in both
sides). The statistic (--timing-stat): p10 (default), the step's 10th-percentile IO
latency; p50, its median; mean, its mean cost per IO (cases.json's cost_us). Other processes
slow some IOs (preempted, their caches evicted) and not others, so a loaded machine moves the
upper part of a step's latencies; a slower IO path moves all of them, the fastest tenth too.
The mean of a short step is dominated by a few IOs stalled behind writeback or a commit's
flush. Runs recorded before lat_p10_us existed are judged on p50 (the detail says so).

Verdicts: regressed / improved (p < alpha and |effect| >= the minimum effect), unchanged
(neither side significant and |effect| below the minimum), inconclusive (anything else: too
few repetitions, significant but small, large but not significant). Only regressed fails.

Pairs and the minimum effect go together: the estimate's spread shrinks as 1/sqrt(pairs),
and the minimum effect must sit above what unchanged runs estimate and below what a real
30% slowdown does. Under load, with 10 pairs these overlapped (unchanged up to +16%, a ~30%
slowdown down to +18%); with 20 pairs 15% lies between them (ci/README.md's figures), so 20
pairs (REPEAT) and 15% are the defaults the gate is tuned for."""
import math
from statistics import median

from . import ranktest
from .model import BadInput

MIN_REPS = 5
REPEAT = 20  # the repetitions (pairs) an A/B run for the gate should have (the docstring)
MIN_EFFECT = 15.0  # %, for REPEAT pairs (the docstring; cli.py's note)
STATS = {"p10": "lat_p10_us", "p50": "lat_p50_us", "mean": "cost_us"}
FALLBACK = {"lat_p10_us": "lat_p50_us"}  # for runs made before the runner recorded p10


def _has(reps, key):
    """Whether REPS's ok repetitions recorded KEY."""
    return any(isinstance(c.get("all", {}).get(key), (int, float))
               for r in reps if r.get("status") == "ok" for c in r.get("steps", {}).values())


def _verdict(p_up, p_down, effect, alpha, min_effect):
    if p_up < alpha and effect >= min_effect:
        return "regressed"
    if p_down < alpha and effect <= -min_effect:
        return "improved"
    if p_up >= alpha and p_down >= alpha and abs(effect) < min_effect:
        return "unchanged"
    return "inconclusive"


def judge(base, new, alpha, min_effect):
    """Unpaired: (verdict, detail) for two lists of ratios."""
    if len(base) < MIN_REPS or len(new) < MIN_REPS:
        return "inconclusive", (f"{len(base)} and {len(new)} repetitions: the rank test needs "
                                f">= {MIN_REPS} each side (scenarios/run --repeat {MIN_REPS})")
    mb, mn = median(base), median(new)
    effect = 100.0 * (mn - mb) / mb if mb else 0.0
    p_up, p_down = ranktest.p_greater(new, base), ranktest.p_greater(base, new)
    detail = (f"unpaired: median ratio to raw {mb:.3f} -> {mn:.3f} ({effect:+.1f}%), "
              f"p(slower) {p_up:.3g}, p(faster) {p_down:.3g}, {len(base)}/{len(new)} reps")
    return _verdict(p_up, p_down, effect, alpha, min_effect), detail


def judge_paired(ds, alpha, min_effect, note=""):
    """Paired: (verdict, detail) for the per-repetition log(new / base)."""
    if len(ds) < MIN_REPS:
        return "inconclusive", (f"{len(ds)} pairs{note}: the signed-rank test needs >= "
                                f"{MIN_REPS} (scenarios/run --ab-base-engine SO --repeat "
                                f"{REPEAT})")
    effect = 100.0 * (math.exp(ranktest.hodges_lehmann(ds)) - 1)
    p_up, p_down = ranktest.p_positive(ds), ranktest.p_positive([-d for d in ds])
    lo, hi = (100.0 * (math.exp(x) - 1) for x in (min(ds), max(ds)))
    slower = sum(d > 0 for d in ds)
    if len(ds) < REPEAT:  # the estimate is wider than the minimum effect was set for
        note += f"; fewer pairs than the {REPEAT} the minimum effect is set for (--repeat {REPEAT})"
    detail = (f"paired: new/base {effect:+.1f}% (Hodges-Lehmann; pairs {lo:+.0f}%..{hi:+.0f}%, "
              f"{slower} of {len(ds)} slower), p(slower) {p_up:.3g}, p(faster) {p_down:.3g}"
              f"{note}")
    return _verdict(p_up, p_down, effect, alpha, min_effect), detail


def _stat(rep, step, key):
    v = rep.get("steps", {}).get(step, {}).get("all", {}).get(key)
    return v if isinstance(v, (int, float)) and v > 0 else None


def ratios(cases, key="lat_p10_us"):
    """Unpaired: {(case, step): [ratio per repetition]}, each case's statistic over its first
    baseline's (present in the run) in the same repetition, whatever the backend."""
    out = {}
    for cid, c in cases.items():
        raw = next((cases[b] for b in c.get("baselines") or [] if b in cases), None)
        if raw is None:
            continue  # a reference itself (raw), or its baseline was not run
        raw_reps = {r.get("rep"): r for r in raw.get("reps", []) if r.get("status") == "ok"}
        reps = c.get("reps", []) + raw.get("reps", [])
        ckey = FALLBACK[key] if key in FALLBACK and not _has(reps, key) else key
        for rep in c.get("reps", []):
            rr = raw_reps.get(rep.get("rep"))
            if rep.get("status") != "ok" or not rr:
                continue
            for step in rep.get("steps", {}):
                a, b = _stat(rep, step, ckey), _stat(rr, step, ckey)
                if a and b:
                    out.setdefault((cid, step), []).append(a / b)
    return out


def check_pair(base, new):
    """The two sides of one A/B run, base then new, or a BadInput naming what is wrong."""
    ab, an = base.get("run_ab"), new.get("run_ab")
    bs, ns = base["path"], new["path"]
    if not ab or not an:
        which = " and ".join(s for s, a in ((bs, ab), (ns, an)) if not a)
        raise BadInput(f"{which}: not a side of an A/B run (no \"ab\" in cases.json): the "
                       f"paired timing layer compares OUT/base and OUT/new of one `scenarios/run "
                       f"--ab-base-engine BASE_SO --repeat {REPEAT} --out OUT`; two ordinary "
                       f"runs: --unpaired")
    if ab.get("pair") != an.get("pair"):
        raise BadInput(f"{bs} and {ns} are sides of two different A/B runs (pair "
                       f"{ab.get('pair')} and {an.get('pair')}): compare OUT/base and OUT/new of "
                       f"one run")
    if (ab.get("side"), an.get("side")) != ("base", "new"):
        raise BadInput(f"{bs} is the {ab.get('side')!r} side and {ns} the {an.get('side')!r} "
                       f"side: give the base side first (ci/gate compare OUT/base OUT/new)")


def paired_rows(bc, nc, alpha, min_effect, key, bsrc, nsrc):
    only = sorted(set(bc) ^ set(nc))
    if only:
        where = ", ".join(f"{c} (only in {bsrc if c in bc else nsrc})" for c in only[:5])
        raise BadInput(f"A/B sides with different cases: {where}: both sides of one A/B run "
                       f"hold the same cases; rerun it")
    out = []
    for cid in sorted(bc):
        rb, rn = bc[cid].get("reps", []), nc[cid].get("reps", [])
        if len(rb) != len(rn):
            raise BadInput(f"{cid}: {len(rb)} repetitions in {bsrc}, {len(rn)} in {nsrc}: the "
                           f"sides of one A/B run pair repetition by repetition (an interrupted "
                           f"or edited run?); rerun it")
        if all(r.get("ab_shared") for r in rb + rn):
            continue  # the engine does not touch it: one record, in both sides
        by_rep = {r.get("rep"): r for r in rn}
        if len(by_rep) != len(rn) or set(by_rep) != {r.get("rep") for r in rb}:
            raise BadInput(f"{cid}: the repetition numbers of {bsrc} and {nsrc} differ: the "
                           f"sides do not pair; rerun the A/B run")
        steps = {}
        lost = 0
        ckey = FALLBACK[key] if key in FALLBACK and not _has(rb + rn, key) else key
        for b in rb:
            n = by_rep[b.get("rep")]
            if b.get("status") != "ok" or n.get("status") != "ok":
                lost += 1
                continue
            for step in b.get("steps", {}):
                x, y = _stat(b, step, ckey), _stat(n, step, ckey)
                if x and y:
                    steps.setdefault(step, []).append(math.log(y / x))
        note = f", {lost} pairs dropped (a side not ok)" if lost else ""
        if ckey != key:
            note += f", on {ckey} (no {key} in these runs)"
        if not steps:
            out.append({"case": cid, "class": "-", "layer": "timing", "verdict": "inconclusive",
                        "detail": f"no repetition with {ckey} ok on both sides{note}"})
        for step, ds in sorted(steps.items()):
            v, detail = judge_paired(ds, alpha, min_effect, note)
            out.append({"case": cid, "class": step, "layer": "timing", "verdict": v,
                        "detail": detail})
    return out


def rows(base, new, alpha=0.05, min_effect=MIN_EFFECT, stat="p10", paired=True):
    """The timing rows of two loaded run directories (model.load_run_dir)."""
    key = STATS[stat]
    if paired:
        check_pair(base, new)
        return paired_rows(base["run_cases"], new["run_cases"], alpha, min_effect, key,
                           base["path"], new["path"])
    rb, rn = ratios(base["run_cases"], key), ratios(new["run_cases"], key)
    out = []
    for k in sorted(set(rb) & set(rn)):
        v, detail = judge(rb[k], rn[k], alpha, min_effect)
        out.append({"case": k[0], "class": k[1], "layer": "timing", "verdict": v,
                    "detail": detail})
    return out
