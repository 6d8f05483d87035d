"""The timing layer: noisy times judged by a rank test, never by one number.

For each libthinp case of a scenarios/run directory and each step, the per-repetition ratio
of its cost per IO to its raw baseline's in the same repetition (the runner interleaves the
repetitions, so both saw the same machine), base against new: Mann-Whitney U (exact when
there are no ties, else the normal approximation with the tie correction), one-sided each
way, and the change of the median ratio as the effect size.

Verdicts: regressed / improved (p < alpha and |effect| >= the minimum effect), unchanged
(no significant difference and |effect| below the minimum), inconclusive (anything else:
too few repetitions, significant but small, large but not significant). Only regressed is
a failure."""
import math
from functools import lru_cache
from statistics import median

MIN_REPS = 5


@lru_cache(maxsize=None)
def _count(u, n, m):
    """Orderings of n + m distinct values whose U statistic (pairs x < y) is u."""
    if u < 0:
        return 0
    if n == 0 or m == 0:
        return 1 if u == 0 else 0
    # U counts pairs x > y: the largest value is an x (beating all m ys) or a y (none)
    return _count(u - m, n - 1, m) + _count(u, n, m - 1)


def p_greater(xs, ys):
    """P-value of 'xs tend to be larger than ys' (one-sided)."""
    n, m = len(xs), len(ys)
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)
    ties = len(set(xs) | set(ys)) < n + m
    if not ties and n + m <= 40:
        total = math.comb(n + m, n)
        return sum(_count(k, n, m) for k in range(int(u), n * m + 1)) / total
    allv = sorted(xs + ys)
    groups = {}
    for v in allv:
        groups[v] = groups.get(v, 0) + 1
    tie = sum(t ** 3 - t for t in groups.values())
    N = n + m
    var = n * m / 12.0 * ((N + 1) - tie / (N * (N - 1)))
    if var <= 0:
        return 1.0
    z = (u - n * m / 2.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def judge(base, new, alpha, min_effect):
    """(verdict, detail) for two lists of ratios."""
    if len(base) < MIN_REPS or len(new) < MIN_REPS:
        return "inconclusive", (f"{len(base)} and {len(new)} repetitions: the rank test needs "
                                f">= {MIN_REPS} each side (scenarios/run --repeat {MIN_REPS})")
    mb, mn = median(base), median(new)
    effect = 100.0 * (mn - mb) / mb if mb else 0.0
    p_up, p_down = p_greater(new, base), p_greater(base, new)
    detail = (f"median ratio to raw {mb:.3f} -> {mn:.3f} ({effect:+.1f}%), "
              f"p(slower) {p_up:.3g}, p(faster) {p_down:.3g}, {len(base)}/{len(new)} reps")
    if p_up < alpha and effect >= min_effect:
        return "regressed", detail
    if p_down < alpha and effect <= -min_effect:
        return "improved", detail
    if p_up >= alpha and p_down >= alpha and abs(effect) < min_effect:
        return "unchanged", detail
    return "inconclusive", detail


def ratios(cases):
    """{(case, step): [ratio per repetition]} from a runner's cases.json "cases"."""
    out = {}
    for cid, c in cases.items():
        if c.get("backend") != "thinp" or not c.get("baselines"):
            continue
        raw = cases.get(c["baselines"][0])
        if not raw:
            continue
        raw_reps = {r.get("rep"): r for r in raw.get("reps", []) if r.get("status") == "ok"}
        for rep in c.get("reps", []):
            rr = raw_reps.get(rep.get("rep"))
            if rep.get("status") != "ok" or not rr:
                continue
            for step, classes in rep.get("steps", {}).items():
                a = classes.get("all", {}).get("cost_us")
                b = rr.get("steps", {}).get(step, {}).get("all", {}).get("cost_us")
                if a and b:
                    out.setdefault((cid, step), []).append(a / b)
    return out


def rows(base_cases, new_cases, alpha=0.05, min_effect=10.0):
    rb, rn = ratios(base_cases), ratios(new_cases)
    out = []
    for key in sorted(set(rb) & set(rn)):
        v, detail = judge(rb[key], rn[key], alpha, min_effect)
        out.append({"case": key[0], "class": key[1], "layer": "timing", "verdict": v,
                    "detail": detail})
    return out
