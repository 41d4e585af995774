"""Whether retries pay off, per task: of the runs whose first attempt failed and were
retried, how many a retry recovered, and what the retries cost (their attempts and the
backoff waited before them, which is most of it with exponential backoff).

Two claims, each with a binomial test:
  "retries recover it"      more recoveries than a 10 % recovery rate would give
  "retries never help it"   fewer than a 30 % recovery rate would give: drop them

The backoff of an attempt is the `backoff_s` the history records, else the gap between the
previous attempt's end and its start when both times are known.
"""

from __future__ import annotations

from collections import defaultdict

from sloth_runner.analytics import stats
from sloth_runner.analytics.records import SUCCESS, failed, number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Claim = tuple[float, Callable[[float], dict[str, Any]]]

MIN_RETRIED = 3
HELPS_NULL = 0.10
USELESS_NULL = 0.30


def _backoff(prev: dict[str, Any], r: dict[str, Any]) -> float:
    recorded = number(r, "backoff_s")
    if recorded is not None:
        return recorded
    start, end = number(r, "started_at"), number(prev, "ended_at")
    return max(0.0, start - end) if start is not None and end is not None else 0.0


def retry_claims(records: list[dict[str, Any]]) -> list[Claim]:
    attempts: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        attempts[(r["name"], r["run_id"])].append(r)
    tally: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"first_failed": 0, "retried": 0, "recovered": 0, "most_retries_needed": 0,
                 "retry_s": 0.0, "backoff_s": 0.0, "wasted_s": 0.0})
    for (task, _), rows in attempts.items():
        rows.sort(key=lambda r: r["attempt"])
        if rows[0]["attempt"] != 1 or not failed(rows[0]):
            continue
        t = tally[task]
        t["first_failed"] += 1
        if len(rows) < 2:
            continue
        t["retried"] += 1
        spent = waited = 0.0
        for prev, r in zip(rows, rows[1:], strict=False):
            spent += number(r, "duration_s") or 0.0
            waited += _backoff(prev, r)
        t["retry_s"] += spent
        t["backoff_s"] += waited
        if rows[-1]["status"] == SUCCESS:
            t["recovered"] += 1
            t["most_retries_needed"] = max(t["most_retries_needed"], rows[-1]["attempt"] - 1)
        else:
            t["wasted_s"] += spent + waited
    claims: list[Claim] = []
    for task, t in tally.items():
        n, k = t["retried"], t["recovered"]
        if n < MIN_RETRIED:
            continue
        if k / n > HELPS_NULL:
            p = stats.binomial_greater(k, n, HELPS_NULL)
            claims.append((p, _build(task, t, p, helps=True)))
        if k / n < USELESS_NULL:
            p = stats.binomial_less(k, n, USELESS_NULL)
            claims.append((p, _build(task, t, p, helps=False)))
    return claims


def _build(task: str, t: dict[str, Any], p: float, helps: bool
           ) -> Callable[[float], dict[str, Any]]:
    def build(q: float) -> dict[str, Any]:
        n, k = t["retried"], t["recovered"]
        cost = f"{t['retry_s'] + t['backoff_s']:.1f}s spent retrying ({t['backoff_s']:.1f}s " \
               "of it waiting)"
        if helps:
            needed = t["most_retries_needed"]
            description = (f"{task}: retries recovered {k} of {n} retried failures (needing up "
                           f"to {needed}); {cost}")
            advice = (f"keep :retries({max(needed, 1)}) with a :retry_delay: its first attempt "
                      "fails for a passing reason (a flaky dependency?)")
        else:
            description = f"{task}: retries recovered {k} of {n} retried failures; {cost}"
            advice = "drop its :retries(): the failure is not transient; fix the cause " \
                     "(sloth-runner analyze --type failure_correlation)"
        evidence = {key: round(v, 3) if isinstance(v, float) else v for key, v in t.items()}
        evidence.update({"p_value": p, "q_value": q,
                         "test": f"binomial, against a {HELPS_NULL if helps else USELESS_NULL:.0%}"
                                 " recovery rate"})
        return {"type": "retry_advice", "task": task, "description": description,
                "confidence": round(1.0 - q, 4), "recommendation": advice,
                "evidence": evidence}
    return build
