"""The few statistical tests the analyses need, in plain Python (no SciPy: the runner must not
depend on it, and these are exact or standard approximations in a few lines each).

Every pattern the analyses report is a claim with a test behind it: its p-value is the
probability of evidence at least this strong if the claim were false. Many claims are tested
at once (every task, every attribute value), so p-values are adjusted with Benjamini and
Hochberg's procedure, which keeps the expected share of false claims among those reported
(the false discovery rate) at the chosen level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher's exact test for the 2x2 table [[a, b], [c, d]] (rows: inside /
    outside a group; columns: failed / succeeded): the probability, with the margins fixed,
    of `a` or more failures inside. Small when failures concentrate inside the group."""
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0 or row1 == 0 or col1 == 0:
        return 1.0
    top = min(row1, col1)
    denominator = _log_choose(n, col1)
    total = 0.0
    for x in range(a, top + 1):
        if col1 - x > n - row1:
            continue
        total += math.exp(_log_choose(row1, x) + _log_choose(n - row1, col1 - x) - denominator)
    return min(1.0, total)


def binomial_greater(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how surprising k successes in n tries are."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    return min(1.0, sum(math.exp(_log_choose(n, i) + i * lp + (n - i) * lq)
                        for i in range(k, n + 1)))


def binomial_less(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k >= n:
        return 1.0
    return max(0.0, 1.0 - binomial_greater(k + 1, n, p))


def normal_upper(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U test (normal approximation with tie correction and
    continuity correction): the p-value that `xs` and `ys` come from one distribution.
    Rank-based, so a single extreme run cannot make a trend, and no normality is assumed."""
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = sorted([(v, 0) for v in xs] + [(v, 1) for v in ys])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, side) in zip(ranks, pooled, strict=True) if side == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u1 - mean) - 0.5) / math.sqrt(variance)
    return min(1.0, 2 * normal_upper(max(0.0, z)))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Adjusted p-values (q-values), in the input's order: reporting every claim with q <= a
    keeps the expected share of false claims among those reported at most a."""
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of nothing")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
