"""How good a confidence is, measured against outcomes: accuracy, expected calibration error,
Brier score, AUROC, and what a `threshold` keeps.

Plain Python on lists (a few hundred decisions at most), so the package needs no numpy for it.
Each takes `confidence` (numbers in [0, 1]) and `correct` (booleans) of the same length.

- **ECE** (expected calibration error): confidences are put in `bins` equal-width bins over
  [0, 1] (1.0 falls in the last); each bin contributes |accuracy - mean confidence| weighted by
  its share of the decisions. 0 is perfectly calibrated. With few decisions it is biased
  upwards: perfectly calibrated confidences on 100 decisions, 25 in each of four bins, still
  show about 0.08 from sampling noise alone (0.06 in two bins of 50).
- **Brier score**: mean squared difference between confidence and outcome (1 right, 0 wrong).
  It rewards calibration and discrimination together; always answering 0.5 scores 0.25.
- **AUROC**: the probability that a right decision got a higher confidence than a wrong one
  (ties count half); 0.5 is no better than chance. Undefined (None) when every decision was
  right, or every one wrong.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_BINS = 10


def _checked(confidence: Sequence[float], correct: Sequence[bool]) -> int:
    if len(confidence) != len(correct):
        raise ValueError(f"{len(confidence)} confidences but {len(correct)} outcomes")
    for c in confidence:
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"a confidence must be between 0 and 1, got {c!r}")
    return len(confidence)


def accuracy(correct: Sequence[bool]) -> float | None:
    return sum(map(bool, correct)) / len(correct) if correct else None


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool],
                               bins: int = DEFAULT_BINS) -> float | None:
    n = _checked(confidence, correct)
    if n == 0:
        return None
    if bins < 1:
        raise ValueError("bins must be at least 1")
    totals = [[0, 0.0, 0] for _ in range(bins)]  # count, sum of confidence, right
    for c, ok in zip(confidence, correct, strict=True):
        slot = totals[min(int(c * bins), bins - 1)]
        slot[0] += 1
        slot[1] += c
        slot[2] += bool(ok)
    return sum(abs(right / count - conf / count) * count / n
               for count, conf, right in totals if count)


def brier_score(confidence: Sequence[float], correct: Sequence[bool]) -> float | None:
    n = _checked(confidence, correct)
    if n == 0:
        return None
    return sum((c - float(bool(ok))) ** 2 for c, ok in zip(confidence, correct, strict=True)) / n


def auroc(confidence: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Mann-Whitney U / (right x wrong), from ranks with ties averaged: O(n log n)."""
    n = _checked(confidence, correct)
    right = sum(map(bool, correct))
    wrong = n - right
    if right == 0 or wrong == 0:
        return None
    order = sorted(range(n), key=lambda i: confidence[i])
    rank_sum = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and confidence[order[j + 1]] == confidence[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1  # 1-based ranks i+1 .. j+1, averaged over the tie
        rank_sum += mean_rank * sum(bool(correct[order[k]]) for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - right * (right + 1) / 2) / (right * wrong)


def selective(confidence: Sequence[float], correct: Sequence[bool],
              threshold: float) -> tuple[float, float | None]:
    """(coverage, accuracy) of the decisions with confidence >= threshold: what share a
    workflow acting only on `confident` decisions would act on, and how often those are right."""
    n = _checked(confidence, correct)
    kept = [ok for c, ok in zip(confidence, correct, strict=True) if c >= threshold]
    return (len(kept) / n if n else 0.0), accuracy(kept)


def summary(confidence: Sequence[float], correct: Sequence[bool],
            bins: int = DEFAULT_BINS) -> dict[str, float | int | None]:
    return {"n": len(correct), "accuracy": accuracy(correct),
            "ece": expected_calibration_error(confidence, correct, bins),
            "brier": brier_score(confidence, correct), "auroc": auroc(confidence, correct)}
