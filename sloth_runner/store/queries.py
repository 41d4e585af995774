"""Read-side of history: the queries `history` and (later) analytics use. No SQL in the CLI."""

from __future__ import annotations

from sloth_runner.store.db import Store

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def recent_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    runs = store.query("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
    ids = [run["id"] for run in runs]
    counts_by_run: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        for r in store.query(f"SELECT run_id, status, count(*) AS n FROM attempts WHERE final = 1"
                             f" AND run_id IN ({marks}) GROUP BY run_id, status", tuple(ids)):
            counts_by_run[r["run_id"]][r["status"]] = r["n"]
    out = []
    for run in runs:
        counts = counts_by_run[run["id"]]
        ended = run["ended_at"]
        out.append({
            "run_id": run["id"], "file": run["file"], "workflows": run["workflows"],
            "status": run["status"], "started_at": run["started_at"], "ended_at": ended,
            "duration_s": (ended - run["started_at"]) if ended else None,
            "host": run["host"], "tasks": counts, "error": run["error"],
            "grants": run["grants"] or "", "stack": run["stack"],
        })
    return out


def run_row(store: Store, run_id: str) -> dict[str, Any]:
    rows = store.query("SELECT * FROM runs WHERE id = ?", (run_id,))
    return dict(rows[0]) if rows else {}


def run_attempts(store: Store, run_id: str, task: str | None = None) -> list[dict[str, Any]]:
    """The run's attempts in the order they ended; with `task`, only that task's."""
    if task is None:
        rows = store.query("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run_id,))
    else:
        rows = store.query("SELECT * FROM attempts WHERE run_id = ? AND task = ? ORDER BY id",
                           (run_id, task))
    return [dict(row) for row in rows]


def find_run(store: Store, prefix: str) -> str | None:
    rows = store.query("SELECT id FROM runs WHERE id LIKE ? ORDER BY started_at DESC LIMIT 2",
                       (prefix + "%",))
    return rows[0][0] if len(rows) == 1 else None


def attempts_since(store: Store, since: float) -> list[dict[str, Any]]:
    """Raw attempts (not skipped) for analytics, oldest first."""
    rows = store.query("SELECT run_id, workflow, task, attempt, final, status, started_at,"
                       " duration_s, exit_code, error, cpu_s, max_rss_kb FROM attempts"
                       " WHERE started_at >= ? AND attempt > 0 ORDER BY started_at", (since,))
    return [dict(r) for r in rows]
