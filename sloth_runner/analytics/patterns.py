"""Patterns in execution history (`ai.analyze_patterns`, `sloth-runner analyze`), measured
rather than generated.

Five kinds, each computed from recorded attempts:
  failure_correlation  tasks that fail often, and tasks that fail in the same runs
  performance_trends   tasks whose duration moved by 20 % or more between the older and the
                       newer half of the window
  resource_usage       tasks whose child processes use the most memory and CPU
  anomalies            single runs far outside a task's usual duration or memory (robust
                       z-score over the median absolute deviation, so one outlier cannot hide
                       itself by inflating the spread, as it would a standard deviation)
  retry_advice         whether retries pay off: first-attempt failures that a retry recovered,
                       and the time spent on retries that never did

`confidence` grows with the evidence: the strength of the effect, shrunk by n / (n + 3) for n
observations, so two runs never look as sure as fifty.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("failure_correlation", "performance_trends", "resource_usage", "anomalies",
         "retry_advice")
MIN_TREND_SAMPLES = 6
MIN_ANOMALY_SAMPLES = 8
ANOMALY_Z = 3.5        # Iglewicz and Hoaglin's cut-off for the modified z-score
ANOMALY_RATIO = 1.5    # and at least this far above the median, to matter in practice
MAX_ANOMALIES_PER_TASK = 3
FAILED = ("failed", "timeout")


def analyze(records: list[dict[str, Any]], kinds: list[str] | None = None) -> list[dict[str, Any]]:
    wanted = kinds or list(KINDS)
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown pattern type '{unknown[0]}' (types: {', '.join(KINDS)})")
    found: list[dict[str, Any]] = []
    if "failure_correlation" in wanted:
        found += _failures(records)
    if "performance_trends" in wanted:
        found += _trends(records)
    if "resource_usage" in wanted:
        found += _resources(records)
    if "anomalies" in wanted:
        found += _anomalies(records)
    if "retry_advice" in wanted:
        found += _retry_advice(records)
    return sorted(found, key=lambda p: -p["confidence"])


def _shrink(n: int) -> float:
    return n / (n + 3)


def _name(r: dict[str, Any]) -> str:
    return f"{r['workflow']}/{r['task']}"


def _failures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    finals = [r for r in records if r.get("final", 1)]
    runs_by_task: dict[str, list[dict]] = defaultdict(list)
    for r in finals:
        runs_by_task[_name(r)].append(r)
    retried_ok = {_name(r) for r in finals if r["status"] == "success" and r["attempt"] > 1}
    failed_runs: dict[str, set[str]] = defaultdict(set)
    out = []
    for task, rows in runs_by_task.items():
        failed = [r for r in rows if r["status"] in ("failed", "timeout")]
        if not failed:
            continue
        for r in failed:
            failed_runs[task].add(r["run_id"])
        rate = len(failed) / len(rows)
        timeouts = sum(r["status"] == "timeout" for r in failed)
        if task in retried_ok or rate < 0.5:
            advice = ("intermittent: add :retries(2, \"exponential\") with a :retry_delay, "
                      "or find what makes it flaky")
        else:
            advice = "fails most runs: fix the task or its inputs before retrying it"
        if timeouts > len(failed) / 2:
            advice = "mostly timeouts: raise :timeout() or find what makes it slow"
        out.append({"type": "failure_correlation", "task": task,
                    "description": f"{task} failed {len(failed)} of {len(rows)} runs "
                                   f"({rate:.0%}), {timeouts} by timeout",
                    "confidence": round(min(1.0, rate) * _shrink(len(rows)), 3),
                    "recommendation": advice,
                    "evidence": {"runs": len(rows), "failures": len(failed),
                                 "timeouts": timeouts}})
    tasks = sorted(failed_runs)
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            both = failed_runs[a] & failed_runs[b]
            if len(both) < 2:
                continue
            overlap = len(both) / min(len(failed_runs[a]), len(failed_runs[b]))
            if overlap < 0.8:
                continue
            out.append({"type": "failure_correlation", "tasks": [a, b],
                        "description": f"{a} and {b} failed together in {len(both)} runs",
                        "confidence": round(overlap * _shrink(len(both)), 3),
                        "recommendation": "look for a shared cause (a dependency, host or "
                                          "service both use)",
                        "evidence": {"runs_failed_together": len(both)}})
    return out


def _trends(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_task: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["status"] == "success":
            by_task[_name(r)].append(float(r["duration_s"]))
    out = []
    for task, durations in by_task.items():
        if len(durations) < MIN_TREND_SAMPLES:
            continue
        half = len(durations) // 2
        older, newer = durations[:half], durations[half:]
        before, after = statistics.median(older), statistics.median(newer)
        if before <= 0:
            continue
        change = (after - before) / before
        if abs(change) < 0.2:
            continue
        # how consistently the newer runs sit on the new side of the old median
        side = sum((d > before) if change > 0 else (d < before) for d in newer) / len(newer)
        word = "slower" if change > 0 else "faster"
        out.append({"type": "performance_trends", "task": task,
                    "description": f"{task} got {abs(change):.0%} {word} "
                                   f"({before:.2f}s -> {after:.2f}s median)",
                    "confidence": round(side * _shrink(len(durations)), 3),
                    "recommendation": ("find what changed when it slowed down; consider a "
                                       ":timeout() with headroom" if change > 0 else
                                       "faster now: timeouts sized for the old duration can "
                                       "be tightened"),
                    "evidence": {"samples": len(durations), "median_before_s": before,
                                 "median_after_s": after}})
    return out


def _resources(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("max_rss_kb") or r.get("cpu_s"):
            by_task[_name(r)].append(r)
    out = []
    ranked = sorted(by_task.items(), key=lambda kv: -max(r["max_rss_kb"] or 0 for r in kv[1]))
    for task, rows in ranked[:3]:
        peak = max(r["max_rss_kb"] or 0 for r in rows) / 1024
        cpu = statistics.mean(r["cpu_s"] or 0.0 for r in rows)
        out.append({"type": "resource_usage", "task": task,
                    "description": f"{task} peaks at {peak:.0f} MiB RSS and uses "
                                   f"{cpu:.2f} s CPU per run on average",
                    "confidence": round(_shrink(len(rows)), 3),
                    "recommendation": ("keep it off parallel waves with other heavy tasks "
                                       "(max_parallel_tasks)" if peak > 512 else
                                       "no action needed"),
                    "evidence": {"runs": len(rows), "peak_rss_mib": round(peak, 1),
                                 "mean_cpu_s": round(cpu, 3)}})
    return out


def _anomalies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["status"] == "success":
            by_task[_name(r)].append(r)
    out = []
    for task, rows in by_task.items():
        if len(rows) < MIN_ANOMALY_SAMPLES:
            continue
        for metric, floor, verb, show in (
                ("duration_s", 0.005, "took", lambda v: f"{v:.2f}s"),
                ("max_rss_kb", 1024.0, "peaked at", lambda v: f"{v / 1024:.0f} MiB")):
            values = [float(r.get(metric) or 0.0) for r in rows]
            median = statistics.median(values)
            if median <= 0:
                continue
            # MAD, floored so a task with near-constant values doesn't flag timing noise
            mad = max(statistics.median(abs(v - median) for v in values), 0.01 * median, floor)
            flagged = []
            for r, v in zip(rows, values, strict=True):
                z = 0.6745 * (v - median) / mad
                if z > ANOMALY_Z and v >= ANOMALY_RATIO * median:
                    flagged.append((r, v, z))
            for r, v, z in flagged[-MAX_ANOMALIES_PER_TASK:]:
                out.append({"type": "anomalies", "task": task, "run_id": r.get("run_id"),
                            "metric": metric,
                            "description": f"{task} {verb} {show(v)} in run "
                                           f"{str(r.get('run_id'))[:12]}, {v / median:.1f}x "
                                           f"its usual {show(median)}",
                            "confidence": round(min(1.0, z / (2 * ANOMALY_Z))
                                                * _shrink(len(values)), 3),
                            "recommendation": "look at what was different in that run (inputs, "
                                              "host, load); if it repeats, it is a trend",
                            "evidence": {"samples": len(values), "median": median, "value": v,
                                         "robust_z": round(z, 1)}})
    return out


def _retry_advice(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    attempts: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        attempts[(_name(r), r["run_id"])].append(r)
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"first_failed": 0, "retried": 0, "recovered": 0, "needed": 0, "wasted_s": 0.0})
    for (task, _), rows in attempts.items():
        rows.sort(key=lambda r: r["attempt"])
        if rows[0]["status"] not in FAILED or rows[0]["attempt"] != 1:
            continue
        s = stats[task]
        s["first_failed"] += 1
        if len(rows) < 2:
            continue
        s["retried"] += 1
        if rows[-1]["status"] == "success":
            s["recovered"] += 1
            s["needed"] = max(s["needed"], rows[-1]["attempt"] - 1)
        else:
            s["wasted_s"] += sum(float(r["duration_s"] or 0.0) for r in rows[1:])
    out = []
    for task, s in stats.items():
        if s["retried"] < 2:
            continue
        rate = s["recovered"] / s["retried"]
        evidence = {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}
        if s["recovered"]:
            description = (f"{task}: retries recovered {s['recovered']} of {s['retried']} "
                           f"retried failures (needing up to {s['needed']} "
                           f"{'retry' if s['needed'] == 1 else 'retries'})")
            advice = (f"keep :retries({s['needed']}) with a :retry_delay; the first attempt "
                      "fails for a passing reason (a flaky dependency?)")
            confidence = rate * _shrink(s["retried"])
        else:
            description = (f"{task}: retries never recovered it ({s['retried']} retried "
                           f"failures, {s['wasted_s']:.1f}s spent retrying)")
            advice = "drop its :retries(); the failure is not transient, fix the cause"
            confidence = _shrink(s["retried"])
        out.append({"type": "retry_advice", "task": task, "description": description,
                    "confidence": round(confidence, 3), "recommendation": advice,
                    "evidence": evidence})
    return out
