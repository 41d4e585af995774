"""Logistic regression for failure prediction, and the measures it is judged by, in plain
Python (no numpy: sloth-runner must not need it to run a workflow).

The model: log-odds of failure = intercept + Σ weight × standardized feature, with an L2
penalty on the weights, fitted by Newton's method (iteratively reweighted least squares). On a
dozen features Newton converges in a handful of steps; each step's sums are computed column by
column with `sum(map(mul, ...))`, which runs at C speed, so 50,000 rows take well under a
second. Standardized features make the weights comparable and the penalty fair, and they give
every prediction its explanation for free: a feature's contribution to the log-odds is its
weight × its standardized value, that is, how far this run is from an average one in that
respect. A feature that is unknown for a run (None) is given the average: contribution 0.

Measures: AUROC (how well the risk ranks failures above successes: 0.5 is chance), the Brier
score (mean squared error of the probability: lower is better, and it punishes confident
mistakes), and F1 at a threshold chosen on training data only.
"""

from __future__ import annotations

import math
from itertools import repeat
from operator import add, mul

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

L2 = 1.0
MIN_SCALE = 0.1
MAX_STEPS = 30


class LogisticModel:
    """A fitted model: names, the standardization (means, scales) and the weights."""

    def __init__(self, names: Sequence[str], means: list[float], scales: list[float],
                 weights: list[float], intercept: float) -> None:
        self.names = list(names)
        self.means, self.scales = means, scales
        self.weights, self.intercept = weights, intercept

    def standardized(self, x: Sequence[float | None]) -> list[float]:
        return [0.0 if v is None or s == 0 else (v - m) / s
                for v, m, s in zip(x, self.means, self.scales, strict=True)]

    def contributions(self, x: Sequence[float | None]) -> list[float]:
        """Each feature's share of the log-odds, relative to an average run."""
        return [w * z for w, z in zip(self.weights, self.standardized(x), strict=True)]

    def probability(self, x: Sequence[float | None]) -> float:
        return sigmoid(self.intercept + sum(self.contributions(x)))

    def to_json(self) -> dict[str, Any]:
        return {"names": self.names, "means": self.means, "scales": self.scales,
                "weights": self.weights, "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogisticModel:
        return cls(data["names"], data["means"], data["scales"], data["weights"],
                   data["intercept"])


def sigmoid(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def fit(names: Sequence[str], rows: list[Sequence[float | None]], labels: list[bool],
        l2: float = L2) -> LogisticModel:
    """Fit on `rows` (feature vectors, None for unknown) and `labels` (True: failed).
    Raises ValueError when both outcomes are not present."""
    n, d = len(rows), len(names)
    positives = sum(1 for y in labels if y)
    if n == 0 or positives in (0, n):
        raise ValueError("need both failures and successes to fit")
    means, scales = [], []
    for j in range(d):
        known = [v for r in rows if (v := r[j]) is not None]
        m = math.fsum(known) / len(known) if known else 0.0
        var = math.fsum((v - m) ** 2 for v in known) / len(known) if known else 0.0
        means.append(m)
        # A feature that barely varies would be blown up to unit variance, its noise with
        # it: scales have a floor (features are log-odds and log counts; 0.1 is small there)
        scales.append(max(math.sqrt(var), MIN_SCALE) if var > 1e-12 else 0.0)
    scaffold = LogisticModel(names, means, scales, [0.0] * d, 0.0)
    columns = [list(c) for c in zip(*(scaffold.standardized(r) for r in rows), strict=True)]
    ys = [1.0 if y else 0.0 for y in labels]
    # intercept first, then the features: beta[0] is not penalised
    cols = [[1.0] * n, *columns]
    beta = [_logit(positives / n)] + [0.0] * d
    loss, p = _loss(beta, cols, ys, l2)
    for _ in range(MAX_STEPS):
        resid = list(map(lambda pi, yi: pi - yi, p, ys))
        w = [pi * (1.0 - pi) for pi in p]
        grad = [sum(map(mul, resid, c)) for c in cols]
        weighted = [list(map(mul, w, c)) for c in cols]
        h = [[0.0] * (d + 1) for _ in range(d + 1)]
        for a in range(d + 1):
            for b in range(a, d + 1):
                h[a][b] = h[b][a] = sum(map(mul, weighted[a], cols[b]))
        for j in range(1, d + 1):
            grad[j] += l2 * beta[j]
            h[j][j] += l2
        step = _solve(h, grad)
        # Newton's full step can overshoot where a few rows sit far out (near-separable
        # data): halve it until the penalised loss goes down
        scale = 1.0
        for _ in range(40):
            trial = [b - scale * s for b, s in zip(beta, step, strict=True)]
            trial_loss, trial_p = _loss(trial, cols, ys, l2)
            if trial_loss <= loss:
                break
            scale /= 2
        else:
            break
        beta, p = trial, trial_p
        converged = loss - trial_loss < 1e-9 * max(1.0, abs(loss))
        loss = trial_loss
        if converged or max(abs(scale * s) for s in step) < 1e-7:
            break
    return LogisticModel(names, means, scales, beta[1:], beta[0])


def _loss(beta: list[float], cols: list[list[float]], ys: list[float], l2: float
          ) -> tuple[float, list[float]]:
    """The penalised negative log-likelihood at `beta`, and the probabilities there."""
    eta = [beta[0]] * len(ys)
    for j in range(1, len(beta)):
        if beta[j]:
            eta = list(map(add, eta, map(mul, cols[j], repeat(beta[j]))))
    # log(1 + e^t) - y t, computed without overflow for large |t|
    nll = math.fsum((t if t > 0 else 0.0) + math.log1p(math.exp(-abs(t))) - y * t
                    for t, y in zip(eta, ys, strict=True))
    return nll + 0.5 * l2 * math.fsum(b * b for b in beta[1:]), [sigmoid(t) for t in eta]


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """x with a·x = b (Gaussian elimination with partial pivoting; a is small and, with the
    penalty, positive definite). A column with nothing in it gets 0."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            continue
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            if f:
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    x = [0.0] * n
    for i in range(n - 1, -1, -1):
        if abs(m[i][i]) < 1e-12:
            continue
        x[i] = (m[i][n] - sum(m[i][j] * x[j] for j in range(i + 1, n))) / m[i][i]
    return x


# -- measures --------------------------------------------------------------------------------
def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The probability that a random failure scores above a random success (ties: half);
    None without both."""
    pairs = sorted(zip(scores, labels, strict=True))
    pos = sum(1 for _, y in pairs if y)
    neg = len(pairs) - pos
    if not pos or not neg:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + 1 + j) / 2
        rank_sum += mid * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def brier(probabilities: Sequence[float], labels: Sequence[bool]) -> float | None:
    if not labels:
        return None
    return math.fsum((p - (1.0 if y else 0.0)) ** 2
                     for p, y in zip(probabilities, labels, strict=True)) / len(labels)


def f1(probabilities: Sequence[float], labels: Sequence[bool], threshold: float) -> float:
    tp = fp = fn = 0
    for p, y in zip(probabilities, labels, strict=True):
        if p >= threshold:
            if y:
                tp += 1
            else:
                fp += 1
        elif y:
            fn += 1
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def best_threshold(probabilities: Sequence[float], labels: Sequence[bool]) -> float:
    """The threshold with the best F1 on these (training) predictions; 0.5 if none helps.
    One sweep down the sorted probabilities: each distinct value is a threshold, and the
    counts above it are running sums."""
    positives = sum(1 for y in labels if y)
    pairs = sorted(zip(probabilities, labels, strict=True), key=lambda py: -py[0])
    best, at = 0.0, 0.5
    tp = fp = 0
    for i, (p, y) in enumerate(pairs):
        if y:
            tp += 1
        else:
            fp += 1
        if i + 1 < len(pairs) and pairs[i + 1][0] == p:
            continue  # the same threshold: count the whole tie first
        score = 2 * tp / (tp + fp + positives) if tp else 0.0
        if score > best:
            best, at = score, p
    return at


def chronological_split(runs: Sequence[Any], share: float, start: Any) -> tuple[int, float]:
    """Where to cut `runs` (sorted by start, oldest first) so that the first `share` of them
    is the past and the rest the future: (index of the first future run, its start time).
    Runs that started at the very same moment stay on one side, so nothing in the past
    started at or after anything in the future."""
    if not 0 < share < 1:
        raise ValueError("share must be between 0 and 1")
    cut = min(len(runs), max(0, round(len(runs) * share)))
    while 0 < cut < len(runs) and start(runs[cut]) == start(runs[cut - 1]):
        cut += 1
    return cut, (start(runs[cut]) if cut < len(runs) else math.inf)
