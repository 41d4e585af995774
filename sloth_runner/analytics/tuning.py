"""`sloth-runner tune`: a workflow file's settings, recommended from its own run history.

Each recommendation is plain statistics over recorded attempts, and carries its evidence:

  timeout        per task: the p99 of its successful attempts' durations x 1.5, never below
                 the slowest success (nor 1 s), rounded up to a friendly value (1s, 2s, 3s, 5s,
                 10s, 15s, 20s, 30s, 45s, 1m, 1m30s, 2m, ...). A task with fewer than 5
                 successful attempts gets none: a percentile of 3 numbers is the slowest of
                 them, under another name. When attempts timed out, their true duration is
                 unknown (longer than the timeout), so the timeout is not lowered.
  retries        per task: of the runs whose first attempt failed, how many a retry recovered.
                 Retries that never recovered a failure (2 or more tried) are dropped; kept
                 when they recovered some; one more when recoveries needed every retry
                 allowed and some runs still ran out; one added to a task without retries
                 that failed its only attempt in some runs and succeeded in more.
  max_parallel   per workflow: tuning_schedule.parallelism (the DAG against the host's
                 memory and cores).
  critical path  the longest chain by median duration, and the run time the DAG would take
                 with the recommended limit (tuning_schedule.simulate).

Only successful attempts measure how long a task takes: a failure may stop early, and a
timeout stops at the limit. Why a statistic is this one and not another is said where it is
computed.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from sloth_runner.analytics.tuning_schedule import (
    DEFAULT_MAX_PARALLEL,
    critical_path,
    parallelism,
    simulate,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.engine.model import Task, Workflow

MIN_TIMEOUT_S = 1.0  # a worker's start and a busy host's scheduling jitter are ~ms, not s
MIN_RETRY_EVIDENCE = 2
MAX_RETRIES = 5
FAILED = ("failed", "timeout")
# Friendly timeouts, in seconds; past the last one, whole hours.
LADDER = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200,
          1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400)


class Settings:
    """How a timeout is derived: `percentile` of successful durations x `margin`, given at
    least `min_successes` of them."""

    __slots__ = ("percentile", "margin", "min_successes")

    def __init__(self, percentile: float = 99.0, margin: float = 1.5,
                 min_successes: int = 5) -> None:
        self.percentile = percentile
        self.margin = margin
        self.min_successes = min_successes

    def describe(self) -> dict[str, str]:
        p = f"p{self.percentile:g}"
        return {
            "timeout": f"{p} of each task's successful attempt durations x {self.margin:g}, "
                       f"never below the slowest success (nor {MIN_TIMEOUT_S:g}s), rounded up "
                       "to the next of 1s 2s 3s 5s 10s 15s 20s 30s 45s 1m 1m30s 2m 3m 4m 5m "
                       "7m 10m 15m 20m 30m 45m 1h ...; needs "
                       f"{self.min_successes} successes; not lowered below the current "
                       "timeout when attempts timed out",
            "retries": "from the runs whose first attempt failed: drop when retries never "
                       f"recovered one ({MIN_RETRY_EVIDENCE}+ tried), keep when they did, one "
                       "more when recoveries needed every retry allowed and some runs ran out, "
                       "add 1 when a task without retries failed its only attempt in some runs "
                       "and succeeded in more",
            "max_parallel_tasks": "the heaviest tasks (peak RSS of their processes) must "
                                  "fit together in 80% of the host's memory; within that, "
                                  "the largest limit whose simulated run never asks for more "
                                  "cores than the host has, or the smallest within 5% of the "
                                  "fastest simulated run if that is larger; lowered only for "
                                  "memory or oversubscribed cores, raised only for a run 5% "
                                  "faster",
            "expected": "the DAG replayed with each task's median successful duration, ready "
                        "tasks started in definition order, at most max_parallel_tasks at "
                        "once, tasks sharing the cores when they ask for more than there "
                        "are; retries, retry delays and start-up are not counted",
        }


def tune(workflows: list[Workflow], attempts: list[dict[str, Any]], host: dict[str, Any],
         settings: Settings | None = None,
         in_worker: frozenset[tuple[str, str]] = frozenset()) -> dict[str, Any]:
    """The recommendations for `workflows` from `attempts` (of their file's runs), as a
    document: per workflow, per task, each with its current value, the recommended one, the
    action (set, raise, lower, keep, add, drop, none), a reason and the evidence.
    `in_worker` holds the (workflow, task) pairs that already run in a worker process."""
    settings = settings or Settings()
    rows_by_task: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in attempts:
        rows_by_task[(r["workflow"], r["task"])].append(r)
    out = []
    for wf in workflows:
        tasks, durations, usage = [], {}, {}
        for t in wf.tasks:
            rows = rows_by_task.get((wf.name, t.name), [])
            successes = [r for r in rows if r["status"] == "success"]
            if successes:
                durations[t.name] = statistics.median(float(r["duration_s"]) for r in successes)
            usage[t.name] = _usage(successes)
            tasks.append({
                "name": t.name, "location": t.location,
                "runs": len({r["run_id"] for r in rows}), "attempts": len(rows),
                "median_s": durations.get(t.name),
                "timeout": timeout_advice(t, successes, rows, settings,
                                          (wf.name, t.name) in in_worker or bool(wf.timeout)),
                "retries": retry_advice(t, rows),
                "resources": usage[t.name],
            })
        out.append(_workflow(wf, tasks, durations, usage, host, attempts))
    return {"settings": {"percentile": settings.percentile, "margin": settings.margin,
                         "min_successes": settings.min_successes},
            "method": settings.describe(), "host": host, "workflows": out,
            "expected_s": _total(out, "recommended_s"),
            "expected_now_s": _total(out, "current_s")}


def _workflow(wf: Workflow, tasks: list[dict[str, Any]], durations: dict[str, float],
              usage: dict[str, dict[str, Any]], host: dict[str, Any],
              attempts: list[dict[str, Any]]) -> dict[str, Any]:
    graph = [(t.name, t.depends_on) for t in wf.tasks]
    doc: dict[str, Any] = {"name": wf.name, "location": wf.location, "tasks": tasks,
                           "runs": len({r["run_id"] for r in attempts
                                        if r["workflow"] == wf.name})}
    unknown = [t.name for t in wf.tasks if t.name not in durations]
    if not durations:
        doc["max_parallel_tasks"] = {"current": wf.max_parallel, "recommended": wf.max_parallel,
                                     "action": "none", "reason": "no successful attempt "
                                     "recorded: nothing to measure", "evidence": {}}
        doc["critical_path"] = {"tasks": [], "duration_s": None, "unknown": unknown}
        doc["expected"] = {"current_s": None, "recommended_s": None,
                           "observed_median_s": None, "observed_runs": 0}
        return doc
    par = parallelism(graph, durations, usage, host, wf.max_parallel)
    doc["max_parallel_tasks"] = par
    path, length = critical_path(graph, durations)
    doc["critical_path"] = {"tasks": path, "duration_s": length, "unknown": unknown}
    now = wf.max_parallel or DEFAULT_MAX_PARALLEL
    then = par["recommended"] or now
    observed = _observed(wf, attempts)
    cpu = {name: u["cpu_cores"] for name, u in usage.items()}
    cores = host.get("cores")
    doc["expected"] = {
        "current_s": simulate(graph, durations, now, cpu, cores)["makespan_s"],
        "current_limit": now,
        "recommended_s": simulate(graph, durations, then, cpu, cores)["makespan_s"],
        "recommended_limit": then,
        "observed_median_s": statistics.median(observed) if observed else None,
        "observed_runs": len(observed),
    }
    return doc


def timeout_advice(task: Task, successes: list[dict[str, Any]], rows: list[dict[str, Any]],
                   s: Settings, in_worker: bool) -> dict[str, Any]:
    current = task.timeout
    durations = sorted(float(r["duration_s"]) for r in successes)
    n = len(durations)
    timeouts = sum(r["status"] == "timeout" for r in rows)
    evidence: dict[str, Any] = {"successes": n, "timeouts": timeouts}
    advice: dict[str, Any] = {"current_s": current, "recommended_s": None, "action": "none",
                              "evidence": evidence}
    if n < s.min_successes:
        advice["reason"] = (f"too few successful attempts ({n} of the {s.min_successes} "
                            "needed): no recommendation")
        return advice
    p = percentile(durations, s.percentile)
    slowest = durations[-1]
    raw = max(p * s.margin, slowest, MIN_TIMEOUT_S)
    recommended: float = friendly(raw)
    evidence.update(median_s=statistics.median(durations), percentile_s=p, slowest_s=slowest,
                    raw_s=raw)
    why = (f"{n} successes: median {seconds(evidence['median_s'])}, p{s.percentile:g} "
           f"{seconds(p)}, slowest {seconds(slowest)}; p{s.percentile:g} x {s.margin:g} = "
           f"{seconds(p * s.margin)}")
    if p * s.margin < slowest:
        why += ", below the slowest success"
    why += f" -> {duration_text(recommended)}"
    if timeouts and current:
        why += f"; {timeouts} attempt{'s' if timeouts > 1 else ''} timed out"
        if recommended < current:
            recommended = current
            why += (f": their true duration is unknown, so the current "
                    f"{duration_text(current)} is not lowered")
    advice["recommended_s"] = recommended
    if current is None:
        advice["action"] = "set"
        if not in_worker:
            advice["note"] = ("with a timeout the task runs in a worker process: Lua values "
                              "that other tasks change at run time are not visible to it "
                              "(README, How tasks run)")
    else:
        advice["action"] = ("raise" if recommended > current else
                            "lower" if recommended < current else "keep")
    advice["reason"] = why
    return advice


def retry_advice(task: Task, rows: list[dict[str, Any]]) -> dict[str, Any]:
    current = task.retries
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_run[r["run_id"]].append(r)
    ev = {"runs": 0, "first_failed": 0, "retried": 0, "recovered": 0, "ran_out": 0,
          "needed": 0, "not_retried": 0, "succeeded": 0, "wasted_s": 0.0}
    for attempts in by_run.values():
        attempts.sort(key=lambda r: r["attempt"])
        if attempts[0]["attempt"] != 1:
            continue  # its first attempt is not in the window
        ev["runs"] += 1
        final = attempts[-1]
        ev["succeeded"] += final["status"] == "success"
        if attempts[0]["status"] not in FAILED:
            continue
        ev["first_failed"] += 1
        if len(attempts) == 1:
            ev["not_retried"] += 1
            continue
        ev["retried"] += 1
        if final["status"] == "success":
            ev["recovered"] += 1
            ev["needed"] = max(ev["needed"], final["attempt"] - 1)
        else:
            ev["ran_out"] += 1
            ev["wasted_s"] += sum(float(r["duration_s"] or 0.0) for r in attempts[1:])
    ev["wasted_s"] = round(ev["wasted_s"], 3)
    counts = (f"first attempt failed in {ev['first_failed']} of {ev['runs']} runs")
    recommended, action = current, "keep"
    if ev["retried"] >= MIN_RETRY_EVIDENCE and not ev["recovered"]:
        recommended, action = 0, "drop"
        reason = (f"{counts}; retries never recovered it ({ev['retried']} retried, "
                  f"{ev['wasted_s']:.1f}s spent retrying): the failure is not transient")
    elif ev["recovered"]:
        want = int(ev["needed"])
        reason = (f"{counts}; a retry recovered {ev['recovered']} of {ev['retried']} "
                  f"(needing up to {want})")
        if ev["ran_out"] and want >= current:
            want = min(MAX_RETRIES, want + 1)
            reason += (f"; {ev['ran_out']} ran out of retries while recoveries needed all of "
                       "them: one more")
        if current < want:
            recommended, action = want, "add"
    elif ev["not_retried"] >= MIN_RETRY_EVIDENCE and not current and \
            ev["succeeded"] >= ev["not_retried"]:
        recommended, action = 1, "add"
        reason = (f"failed its only attempt in {ev['not_retried']} of {ev['runs']} runs and "
                  f"succeeded in {ev['succeeded']}: intermittent; a retry is untried, so one "
                  "to start with (check the next runs)")
    elif not ev["first_failed"]:
        reason = f"first attempt never failed in {ev['runs']} runs"
    else:
        reason = f"{counts}; too little evidence to change the retries"
    if recommended == current:
        action = "keep"
    return {"current": current, "recommended": recommended, "action": action, "reason": reason,
            "evidence": ev}


def _usage(successes: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS of the task's processes, and the cores they kept busy while it ran (the p90
    of cpu time / wall time over its successful attempts longer than 50 ms: shorter ones are
    mostly start-up noise)."""
    peak = max((int(r["max_rss_kb"] or 0) for r in successes), default=0)
    ratios = sorted(float(r["cpu_s"] or 0.0) / float(r["duration_s"]) for r in successes
                    if float(r["duration_s"] or 0.0) >= 0.05)
    cores = round(percentile(ratios, 90.0), 2) if ratios else 0.0
    return {"peak_rss_kb": peak, "cpu_cores": cores}


def _observed(wf: Workflow, attempts: list[dict[str, Any]]) -> list[float]:
    """Wall times of the runs in which every task of the workflow (as it is now) succeeded."""
    names = {t.name for t in wf.tasks}
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in attempts:
        if r["workflow"] == wf.name and r["task"] in names:
            runs[r["run_id"]].append(r)
    out = []
    for rows in runs.values():
        ok = {r["task"] for r in rows if r["final"] and r["status"] == "success"}
        if ok == names:
            out.append(max(r["ended_at"] for r in rows) - min(r["started_at"] for r in rows))
    return out


def _total(workflows: list[dict[str, Any]], key: str) -> float | None:
    values = [w["expected"].get(key) for w in workflows]
    return sum(values) if values and all(v is not None for v in values) else None


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile, interpolating linearly between the closest ranks (numpy's
    default); `sorted_values` must be sorted and non-empty."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def friendly(value_s: float) -> int:
    """The smallest friendly duration (LADDER, then whole hours) not below `value_s`."""
    for step in LADDER:
        if step >= value_s:
            return step
    return int(math.ceil(value_s / 3600.0)) * 3600


def duration_text(value_s: float) -> str:
    """A duration as the DSL writes it: 45s, 1m30s, 2h."""
    if value_s < 1 or value_s != int(value_s):
        return f"{value_s:g}s"
    total = int(value_s)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + \
        (f"{secs}s" if secs else "")
    return text or "0s"


def seconds(value: float | None) -> str:
    """A measured duration for people: 0.42s, 12.3s, 4m05s."""
    if value is None:
        return "?"
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
