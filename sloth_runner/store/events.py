"""Events, registered hooks and hook executions (tables of migration 006).

Writes and reads for `sloth-runner hook` and `sloth-runner events`, the run's event recorder
and the hook dispatcher. Event data is stored as JSON, already scrubbed by whoever recorded it.
"""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

EVENT_COLUMNS = "(type, at, run_id, workflow, task, stack, source, data_json)"
OUTPUT_CAP = 64 * 1024  # characters of a hook's log output kept per execution (its tail)


def insert_events(store: Store, rows: Iterable[tuple]) -> None:
    """One transaction for a batch of (type, at, run_id, workflow, task, stack, source,
    data_json) rows."""
    with store.transaction() as c:
        c.executemany(f"INSERT INTO events {EVENT_COLUMNS} VALUES (?,?,?,?,?,?,?,?)", rows)


def events_after(store: Store, run_id: str, after: int) -> list[dict[str, Any]]:
    """The run's events with an id above `after` that hooks may see (not those hooks
    dispatched), oldest first."""
    rows = store.query("SELECT * FROM events WHERE run_id = ? AND id > ? AND source NOT LIKE "
                       "'hook:%' ORDER BY id", (run_id, after))
    return [event_dict(r) for r in rows]


def event_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["data"] = json.loads(d.pop("data_json"))
    return d


def list_events(store: Store, types: list[str] | None = None, run_id: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
    """Newest first. `types` are exact names or patterns ending in `*` (`task.*`)."""
    where, args = [], []
    if types:
        alternatives = []
        for t in types:
            if t.endswith("*"):
                alternatives.append("type LIKE ? ESCAPE '\\'")
                args.append(_like_prefix(t[:-1]))
            else:
                alternatives.append("type = ?")
                args.append(t)
        where.append("(" + " OR ".join(alternatives) + ")")
    if run_id:
        where.append("run_id LIKE ? ESCAPE '\\'")
        args.append(_like_prefix(run_id))
    sql = "SELECT * FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store.query(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
    events = [event_dict(r) for r in rows]
    _add_hook_counts(store, events)
    return events


def get_event(store: Store, event_id: int) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM events WHERE id = ?", (event_id,))
    if not rows:
        return None
    event = event_dict(rows[0])
    event["hook_runs"] = [dict(r) for r in store.query(
        "SELECT * FROM hook_runs WHERE event_id = ? ORDER BY id", (event_id,))]
    return event


def _add_hook_counts(store: Store, events: list[dict[str, Any]]) -> None:
    """Each event's hook executions by status ({"success": 2, "error": 1})."""
    for e in events:
        e["hooks"] = {}
    if not events:
        return
    by_id = {e["id"]: e for e in events}
    marks = ",".join("?" * len(by_id))
    for r in store.query(f"SELECT event_id, status, count(*) AS n FROM hook_runs WHERE "
                         f"event_id IN ({marks}) GROUP BY event_id, status", tuple(by_id)):
        by_id[r["event_id"]]["hooks"][r["status"]] = r["n"]


# -- hooks ------------------------------------------------------------------------------------
def hook_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["event_types"] = json.loads(d["event_types"])
    d["enabled"] = bool(d["enabled"])
    return d


def add_hook(store: Store, name: str, file: str, event_types: list[str], stack: str | None,
             description: str, timeout_s: float, replace: bool, enabled: bool | None = None
             ) -> bool:
    """Register a hook; False if one of that name exists and `replace` is not set. `enabled`
    None: a new hook is enabled, a replaced one stays as it was (`hook disable` is not undone
    by re-adding the file after an edit)."""
    with store.transaction() as c:
        old = c.execute("SELECT enabled FROM hooks WHERE name = ?", (name,)).fetchone()
        if old:
            if not replace:
                return False
            c.execute("DELETE FROM hooks WHERE name = ?", (name,))
        if enabled is None:
            enabled = bool(old[0]) if old else True
        c.execute("INSERT INTO hooks (name, file, event_types, stack, description, timeout_s,"
                  " enabled, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (name, file, json.dumps(event_types), stack, description, timeout_s,
                   int(enabled), time.time()))
    return True


def set_hook_enabled(store: Store, name: str, enabled: bool) -> bool | None:
    """Enable or disable a hook: whether it was enabled before (None: no such hook)."""
    with store.transaction() as c:
        row = c.execute("SELECT enabled FROM hooks WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        c.execute("UPDATE hooks SET enabled = ? WHERE name = ?", (int(enabled), name))
        return bool(row[0])


def remove_hook(store: Store, name: str) -> bool:
    with store.transaction() as c:
        return c.execute("DELETE FROM hooks WHERE name = ?", (name,)).rowcount > 0


def get_hook(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM hooks WHERE name = ?", (name,))
    return hook_dict(rows[0]) if rows else None


def list_hooks(store: Store, name: str | None = None, stack: str | None = None
               ) -> list[dict[str, Any]]:
    """Every hook (or the one named, or those of a stack), with how often it ran and how its
    last execution ended."""
    where, args = [], []
    for column, value in (("name", name), ("stack", stack)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    sql = "SELECT * FROM hooks" + (" WHERE " + " AND ".join(where) if where else "")
    hooks = [hook_dict(r) for r in store.query(sql + " ORDER BY name", tuple(args))]
    for h in hooks:
        row = store.query("SELECT count(*) AS n, max(id) AS last FROM hook_runs WHERE hook = ?",
                          (h["name"],))[0]
        h["runs"] = row["n"]
        last = store.query("SELECT status, started_at FROM hook_runs WHERE id = ?",
                           (row["last"],)) if row["last"] is not None else []
        h["last_status"] = last[0]["status"] if last else None
        h["last_run_at"] = last[0]["started_at"] if last else None
    return hooks


def applicable_hooks(store: Store, stack: str | None) -> list[dict[str, Any]]:
    rows = store.query("SELECT * FROM hooks WHERE enabled = 1 AND (stack IS NULL OR stack = ?)"
                       " ORDER BY name", (stack,))
    return [hook_dict(r) for r in rows]


# -- hook executions --------------------------------------------------------------------------
def hook_run_started(store: Store, hook: str, event: dict[str, Any] | None,
                     started_at: float) -> int:
    """A `running` row for an execution that starts now; its id."""
    with store.transaction() as c:
        cur = c.execute("INSERT INTO hook_runs (hook, event_id, event_type, run_id, started_at,"
                        " status) VALUES (?, ?, ?, ?, ?, 'running')",
                        (hook, event.get("id") if event else None,
                         event.get("type") if event else None,
                         event.get("run_id") if event else None, started_at))
        return int(cur.lastrowid or 0)


def hook_run_finished(store: Store, row_id: int, status: str, duration_s: float,
                      error: str | None, output: str) -> None:
    if len(output) > OUTPUT_CAP:
        output = "…" + output[-OUTPUT_CAP:]
    with store.transaction() as c:
        c.execute("UPDATE hook_runs SET status = ?, duration_s = ?, error = ?, output = ? "
                  "WHERE id = ?", (status, duration_s, error, output, row_id))


def hook_history(store: Store, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The hook's executions, newest first."""
    rows = store.query("SELECT * FROM hook_runs WHERE hook = ? ORDER BY id DESC LIMIT ?",
                       (name, limit))
    return [dict(r) for r in rows]


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
