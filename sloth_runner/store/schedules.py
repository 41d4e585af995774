"""Schedules and what became of each of their due times (tables of migration 013).

Written by the schedule service (`sloth_runner/schedules`), read by `sloth-runner schedule` and
the dashboard. The store knows nothing of cron or time zones: `next_run_at` is computed above
and only kept here, so this module stays as cheap to import as the rest of the store.

A started run is linked to its `runs` row by the pid and host of the process that recorded it
(a `run` process makes its own run id, and the scheduler only knows the pid it spawned), looked
up among runs that began after the start and, once the process has ended, before its end, so a
recycled pid cannot be mistaken for it.
"""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store
from sloth_runner.store.runs import HOST

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

# what became of a due time (or of "run now")
STARTED = "started"
SKIPPED_OVERLAP = "skipped_overlap"
SKIPPED_MISSED = "skipped_missed"
FAILED_TO_START = "failed_to_start"
OUTCOMES = (STARTED, SKIPPED_OVERLAP, SKIPPED_MISSED, FAILED_TO_START)
# why it was considered: its cron time, catching up after downtime, or a person asking
SOURCES = ("cron", "catch_up", "manual")

_RUN_COLUMNS = ("schedule", "at", "due_at", "source", "outcome", "reason", "missed",
                "started_at", "pid", "pid_start", "log_file", "run_id", "ended_at", "exit_code")


def schedule_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["workflows"] = json.loads(d["workflows"])
    d["params"] = json.loads(d["params"])
    d["values_files"] = json.loads(d["values_files"])
    d["catch_up"] = bool(d["catch_up"])
    d["paused"] = bool(d["paused"])
    return d


def add_schedule(store: Store, name: str, *, cron: str, timezone: str, file: str,
                 workflows: list[str], params: dict[str, str], values_files: list[str],
                 catch_up: bool, next_run_at: float | None, created_at: float | None = None,
                 replace: bool = False) -> bool:
    """Store a schedule; False if one of that name exists and `replace` is not set. A replaced
    schedule keeps being paused if it was (re-adding after an edit does not undo a pause) and
    keeps its history, which is by name."""
    created_at = time.time() if created_at is None else created_at
    with store.transaction() as c:
        old = c.execute("SELECT paused FROM schedules WHERE name = ?", (name,)).fetchone()
        if old and not replace:
            return False
        c.execute("DELETE FROM schedules WHERE name = ?", (name,))
        c.execute("INSERT INTO schedules (name, cron, timezone, file, workflows, params, "
                  "values_files, catch_up, paused, created_at, next_run_at) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (name, cron, timezone, file, json.dumps(workflows), json.dumps(params),
                   json.dumps(values_files), int(catch_up), int(bool(old and old[0])),
                   created_at, next_run_at))
    return True


def get_schedule(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM schedules WHERE name = ?", (name,))
    return schedule_dict(rows[0]) if rows else None


def list_schedules(store: Store) -> list[dict[str, Any]]:
    """Every schedule, by name, with how its last started run is doing (`last_status`: the
    run's status now, e.g. running, success, failed; or failed_to_start) and what became of its
    latest due time (`last_outcome`, `last_reason`: a skip shows there)."""
    schedules = [schedule_dict(r) for r in store.query("SELECT * FROM schedules ORDER BY name")]
    for s in schedules:
        latest = store.query("SELECT outcome, reason, at FROM schedule_runs WHERE schedule = ?"
                             " ORDER BY id DESC LIMIT 1", (s["name"],))
        s["last_outcome"] = latest[0]["outcome"] if latest else None
        s["last_reason"] = latest[0]["reason"] if latest else None
        if s["last_run_id"] is None and s["last_status"] == STARTED:
            start = latest_start(store, s["name"])  # not linked yet: look it up now
            if start is not None and start["run_id"] is not None:
                s["last_run_id"] = start["run_id"]
        if s["last_run_id"] is not None:
            s["last_status"] = run_status(store, s["last_run_id"]) or s["last_status"]
    return schedules


def set_paused(store: Store, name: str, paused: bool, next_run_at: float | None = None
               ) -> bool | None:
    """Pause or resume; whether it was paused before (None: no such schedule). Resuming sets
    `next_run_at` (from now: the times that passed while paused are not missed runs)."""
    with store.transaction() as c:
        row = c.execute("SELECT paused FROM schedules WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        if paused:
            c.execute("UPDATE schedules SET paused = 1 WHERE name = ?", (name,))
        else:
            c.execute("UPDATE schedules SET paused = 0, next_run_at = ? WHERE name = ?",
                      (next_run_at, name))
        return bool(row[0])


def remove_schedule(store: Store, name: str) -> bool:
    """Remove a schedule (its history stays, as a hook's does); False if there was none."""
    with store.transaction() as c:
        return c.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount > 0


def due_schedules(store: Store, now: float) -> list[dict[str, Any]]:
    """Active schedules whose next run time has come, soonest first."""
    rows = store.query("SELECT * FROM schedules WHERE paused = 0 AND next_run_at IS NOT NULL"
                       " AND next_run_at <= ? ORDER BY next_run_at, name", (now,))
    return [schedule_dict(r) for r in rows]


def earliest_next_run(store: Store) -> float | None:
    """The soonest next run time of an active schedule (how long a scheduler may sleep)."""
    row = store.query("SELECT min(next_run_at) AS t FROM schedules WHERE paused = 0")[0]
    return row["t"]


def claim(store: Store, name: str, expected_next: float, new_next: float | None,
          rows: list[dict[str, Any]]) -> list[int] | None:
    """Move a schedule on from the due time `expected_next` to `new_next` and record what
    became of it (`rows` of schedule_runs), in one transaction; None, with nothing written, if
    the schedule was paused, removed or moved on meanwhile (another scheduler on the same home
    took that due time: each due time is handled once)."""
    with store.transaction() as c:
        row = c.execute("SELECT next_run_at, paused FROM schedules WHERE name = ?",
                        (name,)).fetchone()
        if row is None or row[1] or row[0] != expected_next:
            return None
        c.execute("UPDATE schedules SET next_run_at = ? WHERE name = ?", (new_next, name))
        return [_insert_run(c, name, r) for r in rows]


def record(store: Store, name: str, row: dict[str, Any]) -> int:
    """Record one schedule_runs row outside a due time (run now); its id."""
    with store.transaction() as c:
        return _insert_run(c, name, row)


def _insert_run(c: Any, name: str, row: dict[str, Any]) -> int:
    values = {**row, "schedule": name}
    values.setdefault("at", time.time())
    cur = c.execute(f"INSERT INTO schedule_runs ({', '.join(_RUN_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(_RUN_COLUMNS))})",
                    tuple(values.get(k) for k in _RUN_COLUMNS))
    if row["outcome"] in (STARTED, FAILED_TO_START):
        c.execute("UPDATE schedules SET last_run_at = ?, last_run_id = NULL, last_status = ? "
                  "WHERE name = ?", (values.get("started_at") or values["at"], row["outcome"],
                                     name))
    return int(cur.lastrowid or 0)


def spawned(store: Store, row_id: int, pid: int, pid_start: int | None, log_file: str) -> None:
    """The start's process exists: its pid (and start time, against pid reuse) and log."""
    with store.transaction() as c:
        c.execute("UPDATE schedule_runs SET pid = ?, pid_start = ?, log_file = ? WHERE id = ?",
                  (pid, pid_start, log_file, row_id))


def not_started(store: Store, row_id: int, reason: str, exit_code: int | None = None) -> None:
    """A start that did not become a run (the process could not be spawned, or it ended
    without recording one, e.g. the file no longer loads)."""
    with store.transaction() as c:
        c.execute("UPDATE schedule_runs SET outcome = ?, reason = ?, exit_code = "
                  "coalesce(?, exit_code), ended_at = coalesce(ended_at, ?) WHERE id = ?",
                  (FAILED_TO_START, reason, exit_code, time.time(), row_id))
        _update_last(c, row_id, None, FAILED_TO_START)


def ended(store: Store, row_id: int, exit_code: int | None, ended_at: float) -> None:
    """The start's process has ended (with this exit code, when we were its parent)."""
    with store.transaction() as c:
        c.execute("UPDATE schedule_runs SET exit_code = coalesce(?, exit_code), ended_at = "
                  "coalesce(ended_at, ?) WHERE id = ?", (exit_code, ended_at, row_id))


def set_run_id(store: Store, row_id: int, run_id: str) -> None:
    """Link a start to the run its process recorded (and the schedule's last run, if it is
    the schedule's latest start)."""
    with store.transaction() as c:
        c.execute("UPDATE schedule_runs SET run_id = ? WHERE id = ?", (run_id, row_id))
        status = c.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        _update_last(c, row_id, run_id, status[0] if status else STARTED)


def _update_last(c: Any, row_id: int, run_id: str | None, status: str) -> None:
    """The schedule's last_run_id/last_status, if `row_id` is its latest start."""
    row = c.execute("SELECT schedule FROM schedule_runs WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        return
    latest = c.execute("SELECT max(id) FROM schedule_runs WHERE schedule = ? AND outcome IN "
                       "(?, ?)", (row[0], STARTED, FAILED_TO_START)).fetchone()[0]
    if latest == row_id:
        c.execute("UPDATE schedules SET last_run_id = ?, last_status = ? WHERE name = ?",
                  (run_id, status, row[0]))


def open_starts(store: Store) -> list[dict[str, Any]]:
    """Starts whose process has not been seen to end (as stored: `run_id` may be unlinked)."""
    rows = store.query("SELECT * FROM schedule_runs WHERE outcome = ? AND ended_at IS NULL "
                       "ORDER BY id", (STARTED,))
    return [dict(r) for r in rows]


def schedule_run(store: Store, row_id: int) -> dict[str, Any] | None:
    """One schedule_runs row, with its run's id and status when it started one."""
    rows = store.query("SELECT * FROM schedule_runs WHERE id = ?", (row_id,))
    return _with_run(store, dict(rows[0])) if rows else None


def latest_start(store: Store, name: str) -> dict[str, Any] | None:
    """The schedule's latest started run (manual or not), linked to its run row if there is
    one yet (`run_id`, `run_status`)."""
    rows = store.query("SELECT * FROM schedule_runs WHERE schedule = ? AND outcome = ? "
                       "ORDER BY id DESC LIMIT 1", (name, STARTED))
    return _with_run(store, dict(rows[0])) if rows else None


def schedule_history(store: Store, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """What became of the schedule's due times and manual runs, newest first, each with its
    run's id and status when it started one."""
    rows = store.query("SELECT * FROM schedule_runs WHERE schedule = ? ORDER BY id DESC "
                       "LIMIT ?", (name, limit))
    return [_with_run(store, dict(r)) for r in rows]


def _with_run(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    run_id = row["run_id"]
    if run_id is None and row["pid"] is not None and row["started_at"] is not None:
        run_id = find_run(store, row["pid"], row["started_at"], row["ended_at"])
    row["run_id"] = run_id
    row["run_status"] = run_status(store, run_id) if run_id is not None else None
    return row


def find_run(store: Store, pid: int, since: float, until: float | None = None) -> str | None:
    """The id of the run that process `pid` of this host recorded, begun after `since` (a
    second's slack for clock steps) and, if the process has ended, not after `until`."""
    rows = store.query("SELECT id FROM runs WHERE started_at >= ? AND started_at <= ? AND "
                       "pid = ? AND host = ? ORDER BY started_at LIMIT 1",
                       (since - 1.0, until if until is not None else float("inf"), pid, HOST))
    return rows[0]["id"] if rows else None


def run_status(store: Store, run_id: str) -> str | None:
    rows = store.query("SELECT status FROM runs WHERE id = ?", (run_id,))
    return rows[0]["status"] if rows else None
