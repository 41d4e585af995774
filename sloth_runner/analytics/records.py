"""Attempt records as the analyses read them, whether they come from the history or from a
workflow (`ai.analyze_patterns{data = …}`, the seed's `data = workflow_execution_history`).

A record a user brings needs only `task` and `status`; every other field is used when it is
there and the analyses that need it skip records without it. Records from the history carry
everything the runner records (see store/queries.attempts_for_analysis).
"""

from __future__ import annotations

import json
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FAILED = frozenset(("failed", "timeout", "error"))
SUCCESS = "success"
RECENT_RUNS = 5000  # per task: enough for every test here, and a bound on the work


class RecordError(ValueError):
    """A record the analyses cannot read; says which one and why."""


def normalize(records: list[Any], per_task: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """Records checked, each task's `per_task` most recent runs kept (records are oldest
    first: old behaviour says little about today's, and the analyses stay fast on a long
    history), and given defaults: `workflow` "" (the name is then the task's), `attempt` 1,
    `final` true, `run_id` one of its own. Raises RecordError naming the first bad record."""
    for i, r in enumerate(records, start=1):
        if not isinstance(r, dict):
            raise RecordError(f"record {i} is a {type(r).__name__}, not a table")
        task, status = r.get("task"), r.get("status")
        if not isinstance(task, str) or not task:
            raise RecordError(f"record {i} has no task name (`task`)")
        if not isinstance(status, str) or not status:
            raise RecordError(f"record {i} ({task}) has no `status`")
    runs: dict[tuple[Any, str], set[Any]] = {}
    kept: list[int] = []
    for i in range(len(records) - 1, -1, -1):  # newest first
        r = records[i]
        seen = runs.setdefault((r.get("workflow"), r["task"]), set())
        run = r.get("run_id", i)
        if run in seen or len(seen) < per_task:
            seen.add(run)
            kept.append(i)
    out: list[dict[str, Any]] = []
    params_cache: dict[str, dict[str, Any]] = {}
    for i in reversed(kept):
        rec = dict(records[i])
        rec["workflow"] = rec.get("workflow") or ""
        rec["name"] = f"{rec['workflow']}/{rec['task']}" if rec["workflow"] else rec["task"]
        rec["attempt"] = _int(rec.get("attempt"), 1)
        final = rec.get("final", True)
        rec["final"] = bool(final) if not isinstance(final, (int, float)) else final != 0
        if rec.get("run_id") is None:
            rec["run_id"] = f"record-{i + 1}"
        if "params" not in rec:
            raw = rec.get("params_json")
            if isinstance(raw, str) and raw:
                if raw not in params_cache:
                    try:
                        parsed = json.loads(raw)
                    except ValueError:
                        parsed = {}
                    params_cache[raw] = parsed if isinstance(parsed, dict) else {}
                rec["params"] = params_cache[raw]
        out.append(rec)
    return out


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def failed(record: dict[str, Any]) -> bool:
    return record["status"] in FAILED


def local_time(record: dict[str, Any]) -> Any:
    """The attempt's start as local time (hour, weekday), or None without `started_at`."""
    at = record.get("started_at")
    if not isinstance(at, (int, float)):
        return None
    return time.localtime(at)


def number(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
