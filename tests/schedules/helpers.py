"""Workflow files and waits shared by the schedule tests (real runs, real SQLite)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sloth_runner.store import Store
from sloth_runner.store.schedules import schedule_history
from tests.conftest import poll

# appends params.word (or values.word, or "ran") to the file params.marker, once per run
MARKER = '''
task("mark"):command(function(p)
    local f = assert(io.open(p.marker, "a"))
    f:write(p.word or (values and values.word) or "ran", "\\n")
    f:close()
    return true, "marked"
end):build()
'''

# marks, then waits until the file given by %s exists (a run that is "still running")
BLOCKING = MARKER + '''
task("wait"):depends_on("mark"):command("while [ ! -f '%s' ]; do sleep 0.05; done"):build()
'''


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def lines(path: str) -> list[str]:
    try:
        with open(path) as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def wait_lines(path: str, count: int, timeout: float = 30) -> list[str]:
    assert poll(lambda: len(lines(path)) >= count, timeout), (path, lines(path))
    return lines(path)


def wait_run_done(name: str, row_id: int, timeout: float = 30) -> dict:
    """The schedule_runs row `row_id`, once its process has ended and its run is linked."""
    found: dict = {}

    def done() -> bool:
        store = Store()
        try:
            row = next((r for r in schedule_history(store, name, 100) if r["id"] == row_id),
                       None)
        finally:
            store.close()
        if row is not None and row["ended_at"] is not None:
            found.update(row)
            return True
        return False

    assert poll(done, timeout), f"start {row_id} of {name} did not end"
    return found


def release(path: str) -> None:
    with open(path, "w"):
        pass
    assert os.path.exists(path)
