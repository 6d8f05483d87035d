"""Rank tests for the timing layer: Mann-Whitney U (two independent samples) and the Wilcoxon
signed-rank test (paired samples), one-sided, exact for small samples without ties and the
normal approximation with the tie correction otherwise; the Hodges-Lehmann estimate of a
paired shift. Ranks, not means: one disturbed repetition moves a rank by one, not the
answer by its size."""
import math
from functools import lru_cache
from statistics import median

EXACT_MAX = 40  # samples up to this size get the exact distribution (cached counts)


@lru_cache(maxsize=None)
def _count_u(u, n, m):
    """Orderings of n + m distinct values whose U statistic (pairs x > y) is u."""
    if u < 0:
        return 0
    if n == 0 or m == 0:
        return 1 if u == 0 else 0
    # the largest value is an x (beating all m ys) or a y (beating none)
    return _count_u(u - m, n - 1, m) + _count_u(u, n, m - 1)


def p_greater(xs, ys):
    """Mann-Whitney: p-value of 'xs tend to be larger than ys' (one-sided)."""
    n, m = len(xs), len(ys)
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in xs for y in ys)
    ties = len(set(xs) | set(ys)) < n + m
    if not ties and n + m <= EXACT_MAX:
        total = math.comb(n + m, n)
        return sum(_count_u(k, n, m) for k in range(int(u), n * m + 1)) / total
    groups = {}
    for v in xs + ys:
        groups[v] = groups.get(v, 0) + 1
    tie = sum(t ** 3 - t for t in groups.values())
    N = n + m
    var = n * m / 12.0 * ((N + 1) - tie / (N * (N - 1)))
    if var <= 0:
        return 1.0
    z = (u - n * m / 2.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


@lru_cache(maxsize=None)
def _count_w(w, n):
    """Subsets of the ranks 1..n whose sum is w."""
    if w < 0:
        return 0
    if n == 0:
        return 1 if w == 0 else 0
    return _count_w(w - n, n - 1) + _count_w(w, n - 1)


def _ranks(vals):
    """Ranks of VALS (1-based), ties given their average rank."""
    order = sorted(range(len(vals)), key=lambda i: vals[i])
    ranks = [0.0] * len(vals)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and vals[order[j + 1]] == vals[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1
        i = j + 1
    return ranks


def p_positive(ds):
    """Wilcoxon signed-rank: p-value of 'the differences DS tend to be positive' (one-sided).
    Zero differences are dropped (Wilcoxon's rule); none left gives 1."""
    d = [x for x in ds if x != 0]
    n = len(d)
    if n == 0:
        return 1.0
    absd = [abs(x) for x in d]
    r = _ranks(absd)
    w = sum(rk for rk, x in zip(r, d) if x > 0)
    ties = len(set(absd)) < n
    if not ties and n <= EXACT_MAX:
        total = 2 ** n
        top = n * (n + 1) // 2
        return sum(_count_w(k, n) for k in range(int(w), top + 1)) / total
    groups = {}
    for v in absd:
        groups[v] = groups.get(v, 0) + 1
    var = n * (n + 1) * (2 * n + 1) / 24.0 - sum(t ** 3 - t for t in groups.values()) / 48.0
    if var <= 0:
        return 1.0
    z = (w - n * (n + 1) / 4.0 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def hodges_lehmann(ds):
    """The paired shift's Hodges-Lehmann estimate: the median of the Walsh averages
    (d_i + d_j) / 2, i <= j (the estimate that goes with the signed-rank test)."""
    return median((ds[i] + ds[j]) / 2.0 for i in range(len(ds)) for j in range(i, len(ds)))
