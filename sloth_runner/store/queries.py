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


def attempts_since(store: Store, since: float, per_task: int = 5000) -> list[dict[str, Any]]:
    """Attempts (not skipped) for analytics, oldest first, with what their run recorded
    around them (commit, changed files, parameters): each task's attempts in its `per_task`
    most recent runs since `since`. Each step is an index seek on (workflow, task,
    started_at), so a long history never reaches Python whole and is never scanned."""
    tasks: list[tuple[str, str]] = []
    last: tuple[str, str] | None = None
    while True:  # the distinct tasks, by skipping through the index
        row = store.query("SELECT workflow, task FROM attempts WHERE (workflow, task) > (?, ?)"
                          " ORDER BY workflow, task LIMIT 1", last or ("", "")) \
            if last is not None else store.query(
                "SELECT workflow, task FROM attempts ORDER BY workflow, task LIMIT 1")
        if not row:
            break
        last = (row[0][0], row[0][1])
        tasks.append(last)
    out: list[dict[str, Any]] = []
    for workflow, task in tasks:
        cut = store.query("SELECT started_at FROM attempts WHERE workflow = ? AND task = ? AND"
                          " started_at >= ? AND attempt = 1 ORDER BY started_at DESC"
                          " LIMIT 1 OFFSET ?", (workflow, task, since, per_task - 1))
        start = max(since, cut[0][0]) if cut else since
        out += [dict(r) for r in store.query(
            "SELECT a.run_id, a.workflow, a.task, a.attempt, a.final, a.status, a.started_at,"
            " a.ended_at, a.duration_s, a.exit_code, a.error, a.error_template, a.host,"
            " a.cpu_s, a.max_rss_kb, a.load_1m, a.mem_free_mb, a.backoff_s, r.git_commit,"
            " r.changed_files, r.params_json FROM attempts a LEFT JOIN runs r"
            " ON r.id = a.run_id WHERE a.workflow = ? AND a.task = ? AND a.started_at >= ?"
            " AND a.attempt > 0", (workflow, task, start))]
    out.sort(key=lambda r: r["started_at"])
    return out


def heals_since(store: Store, since: float) -> list[dict[str, Any]]:
    """Healing rounds (see engine/healing.py), oldest first."""
    return [dict(r) for r in store.query(
        "SELECT run_id, workflow, task, round, action, method, healed, action_error, at"
        " FROM heals WHERE at >= ? ORDER BY at", (since,))]
