"""Waiting on the detached hook dispatcher, by polling the store with a deadline."""

from __future__ import annotations

import os
import sqlite3

from tests.conftest import poll


def db(home) -> sqlite3.Connection:
    conn = sqlite3.connect(os.path.join(home, "sloth.db"), timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def rows(home, sql: str, args: tuple = ()) -> list[dict]:
    conn = db(home)
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def finished_runs(home, hook: str | None = None) -> list[dict]:
    """Hook executions that have ended (not `running`), oldest first."""
    if hook is None:
        return rows(home, "SELECT * FROM hook_runs WHERE status != 'running' ORDER BY id")
    return rows(home, "SELECT * FROM hook_runs WHERE hook = ? AND status != 'running' "
                      "ORDER BY id", (hook,))


def run_events(home, run_id: str) -> list[dict]:
    return rows(home, "SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))


def wait_for_hook_runs(home, count: int, hook: str | None = None, timeout: float = 30
                       ) -> list[dict]:
    """At least `count` finished executions (of `hook`); fails the test after `timeout`."""
    found: list[dict] = []

    def enough() -> bool:
        found[:] = finished_runs(home, hook)
        return len(found) >= count

    assert poll(enough, timeout), f"{len(found)} of {count} hook executions: {found}"
    return found


def dispatcher_gone(home, run_id: str, timeout: float = 30) -> None:
    """The run's dispatcher has exited (it removes its lock file last)."""
    lock = os.path.join(home, "locks", f"{run_id}.hooks.lock")
    assert poll(lambda: not os.path.exists(lock), timeout), "the hook dispatcher is still running"
