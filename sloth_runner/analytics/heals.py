"""How well each declared repair heals its task (the `heal_advice` patterns): of the rounds in
which an action ran, how many left the task succeeding on the attempt after it.

Two claims per (task, action), each a binomial test, like retry advice:
  "it heals"          more successes than a 10 % healing rate would give
  "it rarely heals"   fewer than a 30 % rate would give: fix the cause, or drop the action
"""

from __future__ import annotations

from collections import defaultdict

from sloth_runner.analytics import stats

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Claim = tuple[float, Callable[[float], dict[str, Any]]]

MIN_ROUNDS = 3
HEALS_NULL = 0.10
RARELY_NULL = 0.30


def heal_claims(heals: list[dict[str, Any]]) -> list[Claim]:
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    methods: dict[tuple[str, str], set[str]] = defaultdict(set)
    for h in heals:
        if not h.get("action"):
            continue
        key = (f"{h['workflow']}/{h['task']}" if h.get("workflow") else h["task"], h["action"])
        t = tally[key]
        t[1] += 1
        if h.get("healed"):
            t[0] += 1
        if h.get("action_error"):
            t[2] += 1
        methods[key].add(str(h.get("method")))
    claims: list[Claim] = []
    for (task, action), (k, n, broken) in tally.items():
        if n < MIN_ROUNDS:
            continue
        if k / n > HEALS_NULL:
            p = stats.binomial_greater(k, n, HEALS_NULL)
            claims.append((p, _build(task, action, k, n, broken, methods[(task, action)], p,
                                     True)))
        if k / n < RARELY_NULL:
            p = stats.binomial_less(k, n, RARELY_NULL)
            claims.append((p, _build(task, action, k, n, broken, methods[(task, action)], p,
                                     False)))
    return claims


def _build(task: str, action: str, k: int, n: int, broken: int, methods: set[str], p: float,
           heals: bool) -> Callable[[float], dict[str, Any]]:
    def build(q: float) -> dict[str, Any]:
        failed = f", the action itself failed {broken} times" if broken else ""
        return {
            "type": "heal_advice", "task": task, "action": action,
            "description": f"{task}: '{action}' healed it {k} of {n} times it ran{failed}",
            "confidence": round(1.0 - q, 4),
            "recommendation": (f"'{action}' works: it will be chosen first for the same error "
                               "(and consider fixing what it repairs for good)" if heals else
                               f"'{action}' rarely heals {task}: fix the cause, or remove the "
                               "action so no time is spent on it"),
            "evidence": {"healed": k, "rounds": n, "action_failed": broken,
                         "chosen_by": sorted(methods), "p_value": p, "q_value": q,
                         "test": f"binomial, against a "
                                 f"{HEALS_NULL if heals else RARELY_NULL:.0%} healing rate"},
        }
    return build
