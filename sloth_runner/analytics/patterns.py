"""Patterns in execution history (`ai.analyze_patterns`, `sloth-runner analyze`), measured
rather than generated.

Five kinds:
  failure_correlation  why a task fails: the host, hour, weekday, parameter value, commit,
                       another task's outcome or the host's load that goes with its failures
                       (analytics/causes.py)
  performance_trends   durations that changed between the older and the newer runs by an
                       amount that matters (analytics/performance.py)
  resource_usage       tasks whose child processes are heavy for this host
  anomalies            single runs far outside a task's usual duration or memory
  retry_advice         whether retries recover a task, and what they cost (analytics/retries.py)
  heal_advice          how often each declared repair action heals its task (analytics/heals.py)

Every pattern is a claim with a statistical test. All the claims of one analysis are adjusted
together for multiple testing (Benjamini-Hochberg), and `confidence` means the same for every
kind: 1 - q, where q is the claim's adjusted p-value. A pattern is reported when its
confidence is at least 1 - alpha (0.99 by default): among the patterns reported, the expected
share of false ones is at most alpha. Each pattern's evidence has its counts, p and q values
and the name of its test. Each task is judged on its 5,000 most recent runs at most.
"""

from __future__ import annotations

from sloth_runner.analytics import causes, performance, retries, stats
from sloth_runner.analytics.records import normalize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("failure_correlation", "performance_trends", "resource_usage", "anomalies",
         "retry_advice", "heal_advice")
ALPHA = 0.01


def analyze(records: list[Any], kinds: list[str] | None = None, alpha: float = ALPHA,
            host_memory_kb: int | None = None,
            heals: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The patterns of `records` (attempt records: see analytics/records.py), most certain
    first. Raises ValueError for an unknown kind, RecordError for an unreadable record."""
    wanted = kinds or list(KINDS)
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown pattern type '{unknown[0]}' (types: {', '.join(KINDS)})")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    rows = normalize(records)
    claims: list[tuple[float, Any]] = []
    tests: list[causes.Test] = []
    if "failure_correlation" in wanted:
        tests = causes.failure_tests(rows)
    if "performance_trends" in wanted:
        claims += performance.trends(rows)
    if "anomalies" in wanted:
        claims += performance.anomalies(rows)
    if "resource_usage" in wanted:
        memory = host_memory_kb if host_memory_kb is not None else _host_memory_kb()
        claims += performance.heavy_tasks(rows, memory)
    if "retry_advice" in wanted:
        claims += retries.retry_claims(rows)
    if "heal_advice" in wanted and heals:
        from sloth_runner.analytics.heals import heal_claims

        claims += heal_claims(heals)
    q_values = stats.benjamini_hochberg([t.p for t in tests] + [p for p, _ in claims])
    for t, q in zip(tests, q_values, strict=False):
        t.q = q
    found = causes.report(tests, alpha)
    found += [build(q) for (_, build), q in zip(claims, q_values[len(tests):], strict=True)
              if q <= alpha]
    return sorted(found, key=lambda p: (-p["confidence"], p["type"], p.get("task", "")))


def _host_memory_kb() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
