"""Durations and memory: trends, anomalies and heavy tasks, each a claim with a test.

- A trend is a change between the older and the newer half of a task's successful runs that
  is large enough to matter (at least 1 s, and at least 10 % of its typical duration) and
  unlikely by chance (Mann-Whitney U, rank-based: no normality assumed, one extreme run cannot
  make a trend). Millisecond jitter is never a trend.
- An anomaly is one run far from the task's usual: a robust z-score (median and median
  absolute deviation, which one outlier cannot inflate) beyond 3.5, and an absolute deviation
  that matters (1 s and half the median for durations; 64 MiB and half the median for memory).
  Its p-value is the normal tail of the z-score times the task's number of runs (Bonferroni
  within the task: with many runs, a big z is less surprising).
- A heavy task is one whose child processes (not the runner: see services/process.
  child_peak_kb) peak above max(512 MiB, a tenth of this host's memory) in most runs: a
  binomial test against "half the runs or fewer". A task that starts no process has no figure.

Each claim returns its p-value and a function that builds the pattern once the p-values of
all claims of the analysis are adjusted together (patterns.py).
"""

from __future__ import annotations

import math
from collections import defaultdict

from sloth_runner.analytics import stats
from sloth_runner.analytics.records import SUCCESS, number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Claim = tuple[float, Callable[[float], dict[str, Any]]]

MIN_TREND_RUNS = 12         # six in each half
TREND_MIN_S = 1.0
TREND_MIN_SHARE = 0.10
MIN_ANOMALY_RUNS = 12
ANOMALY_Z = 3.5             # Iglewicz and Hoaglin's cut-off for the modified z-score
ANOMALY_MIN = {"duration_s": (1.0, 0.5), "max_rss_kb": (64 * 1024, 0.5)}  # (absolute, × median)
MAX_ANOMALIES_PER_TASK = 3
MIN_RESOURCE_RUNS = 5
HEAVY_FLOOR_KB = 512 * 1024


def _successes(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["status"] == SUCCESS:
            by_task[r["name"]].append(r)
    for rows in by_task.values():
        if all(isinstance(r.get("started_at"), (int, float)) for r in rows):
            rows.sort(key=lambda r: r["started_at"])
    return by_task


def trends(records: list[dict[str, Any]]) -> list[Claim]:
    claims: list[Claim] = []
    for task, rows in _successes(records).items():
        durations = [d for d in (number(r, "duration_s") for r in rows) if d is not None]
        if len(durations) < MIN_TREND_RUNS:
            continue
        half = len(durations) // 2
        older, newer = durations[:half], durations[half:]
        before, after = stats.median(older), stats.median(newer)
        change = after - before
        needed = max(TREND_MIN_S, TREND_MIN_SHARE * before)
        if abs(change) < needed:
            continue
        p = stats.mann_whitney(older, newer)
        claims.append((p, _trend(task, before, after, len(older), len(newer), needed, p)))
    return claims


def _trend(task: str, before: float, after: float, n_old: int, n_new: int, needed: float,
           p: float) -> Callable[[float], dict[str, Any]]:
    def build(q: float) -> dict[str, Any]:
        slower = after > before
        share = abs(after - before) / before if before > 0 else math.inf
        amount = f"{share:.0%} " if math.isfinite(share) else ""
        return {
            "type": "performance_trends", "task": task,
            "description": f"{task} got {amount}{'slower' if slower else 'faster'}: median "
                           f"{before:.2f}s over its older {n_old} runs, {after:.2f}s over the "
                           f"newer {n_new}",
            "confidence": round(1.0 - q, 4),
            "recommendation": ("find what changed when it slowed down; check that its "
                               ":timeout() still has headroom" if slower else
                               "faster now: a timeout sized for the old duration can be "
                               "tightened (sloth-runner tune)"),
            "evidence": {"runs_before": n_old, "runs_after": n_new, "median_before_s": before,
                         "median_after_s": after, "min_effect_s": round(needed, 3),
                         "p_value": p, "q_value": q, "test": "Mann-Whitney U, two-sided"},
        }
    return build


def anomalies(records: list[dict[str, Any]]) -> list[Claim]:
    claims: list[Claim] = []
    for task, rows in _successes(records).items():
        for metric in ("duration_s", "max_rss_kb"):
            pairs = [(r, v) for r in rows if (v := number(r, metric))]
            if len(pairs) < MIN_ANOMALY_RUNS:
                continue
            values = [v for _, v in pairs]
            med = stats.median(values)
            mad = max(stats.median([abs(v - med) for v in values]), 0.01 * med, 1e-3)
            absolute, share = ANOMALY_MIN[metric]
            found = []
            for r, v in pairs:
                z = 0.6745 * (v - med) / mad
                if z > ANOMALY_Z and v - med >= max(absolute, share * med):
                    p = min(1.0, stats.normal_upper(z) * len(values))
                    found.append((p, _anomaly(task, metric, r, v, med, z, len(values), p)))
            claims += found[-MAX_ANOMALIES_PER_TASK:]
    return claims


def _anomaly(task: str, metric: str, r: dict[str, Any], v: float, med: float, z: float,
             n: int, p: float) -> Callable[[float], dict[str, Any]]:
    def show(x: float) -> str:
        return f"{x:.2f}s" if metric == "duration_s" else f"{x / 1024:.0f} MiB"

    def build(q: float) -> dict[str, Any]:
        said = f"{task} took" if metric == "duration_s" else f"{task}'s processes peaked at"
        run = str(r.get("run_id"))[:12]
        return {
            "type": "anomalies", "task": task, "run_id": r.get("run_id"), "metric": metric,
            "description": f"{said} {show(v)} in run {run}, {v / med:.1f}x its usual "
                           f"{show(med)}",
            "confidence": round(1.0 - q, 4),
            "recommendation": "look at what was different in that run (inputs, host, load); "
                              "if it repeats, it becomes a trend",
            "evidence": {"runs": n, "median": med, "value": v, "robust_z": round(z, 1),
                         "p_value": p, "q_value": q,
                         "test": "robust z (median, MAD), Bonferroni over the task's runs"},
        }
    return build


def heavy_tasks(records: list[dict[str, Any]], host_memory_kb: int | None) -> list[Claim]:
    heavy = max(HEAVY_FLOOR_KB, (host_memory_kb or 0) // 10)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if number(r, "max_rss_kb"):  # 0 or absent: no child figure (see module docstring)
            by_task[r["name"]].append(r)
    claims: list[Claim] = []
    for task, rows in by_task.items():
        if len(rows) < MIN_RESOURCE_RUNS:
            continue
        peaks = [float(r["max_rss_kb"]) for r in rows]
        above = sum(p >= heavy for p in peaks)
        if above * 2 <= len(peaks):
            continue
        p = stats.binomial_greater(above, len(peaks), 0.5)
        cpu = [c for c in (number(r, "cpu_s") for r in rows) if c is not None]
        claims.append((p, _heavy(task, peaks, above, heavy, cpu, p)))
    return claims


def _heavy(task: str, peaks: list[float], above: int, heavy: int, cpu: list[float],
           p: float) -> Callable[[float], dict[str, Any]]:
    def build(q: float) -> dict[str, Any]:
        mean_cpu = sum(cpu) / len(cpu) if cpu else 0.0
        return {
            "type": "resource_usage", "task": task,
            "description": f"{task}'s processes peak above {heavy / 1024:.0f} MiB in {above} "
                           f"of {len(peaks)} runs (median {stats.median(peaks) / 1024:.0f} "
                           f"MiB, max {max(peaks) / 1024:.0f} MiB; {mean_cpu:.2f}s CPU a run)",
            "confidence": round(1.0 - q, 4),
            "recommendation": "keep it out of waves with other heavy tasks "
                              "(max_parallel_tasks) or give it a :memory_limit()",
            "evidence": {"runs": len(peaks), "runs_above": above, "threshold_mib": heavy // 1024,
                         "median_peak_mib": round(stats.median(peaks) / 1024, 1),
                         "max_peak_mib": round(max(peaks) / 1024, 1),
                         "mean_cpu_s": round(mean_cpu, 3), "p_value": p, "q_value": q,
                         "test": "binomial, against half the runs or fewer"},
        }
    return build
