"""Failure predictions made before runs (`run --predict`), and the history's final outcomes
the failure model learns from (analytics/predict.py). No modelling here: rows in, rows out.

Each prediction is kept with its run id, so what was predicted can later be set against what
happened (the run's final attempts).
"""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_OUTCOMES = 200_000  # the most recent final outcomes a model is trained on


def final_outcomes(store: Store, after_id: int = 0, limit: int = MAX_OUTCOMES
                   ) -> list[dict[str, Any]]:
    """Final attempts (of tasks that ran) with id above `after_id`, the most recent `limit`,
    with the run's changed files and parameters, in the order they were recorded. The id
    range is the table's primary key, so reading what came since a model was saved is an
    index seek, whatever the history's size."""
    rows = store.query(
        "SELECT a.id, a.run_id, a.workflow, a.task, a.attempt, a.status, a.started_at,"
        " a.ended_at, a.host, a.load_1m, r.changed_files, r.params_json FROM attempts a"
        " LEFT JOIN runs r ON r.id = a.run_id WHERE a.id > ? AND a.final = 1 AND"
        " a.attempt > 0 ORDER BY a.id DESC LIMIT ?", (after_id, limit))
    return [dict(r) for r in reversed(rows)]


def record(store: Store, run_id: str, predictions: list[dict[str, Any]]) -> None:
    """Store a run's predictions (each: workflow, task, probability, method, n_history,
    top_factors), in one transaction."""
    now = time.time()
    with store.transaction() as c:
        c.executemany(
            "INSERT INTO predictions (run_id, workflow, task, at, probability, method,"
            " n_history, top_factors_json, reason) VALUES (?,?,?,?,?,?,?,?,?)",
            [(run_id, p["workflow"], p["task"], now, p.get("probability"), p["method"],
              p.get("n_history", 0), json.dumps(p.get("top_factors") or []), p.get("reason"))
             for p in predictions])


def for_run(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The predictions recorded for a run, in the order they were made."""
    rows = store.query("SELECT workflow, task, at, probability, method, n_history,"
                       " top_factors_json, reason FROM predictions WHERE run_id = ?"
                       " ORDER BY id", (run_id,))
    out = []
    for r in rows:
        item = dict(r)
        item["top_factors"] = json.loads(item.pop("top_factors_json") or "[]")
        out.append(item)
    return out
