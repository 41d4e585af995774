"""Write-side of run history: one run row, one row per task attempt, crash recovery.

Attempts are buffered and written in one transaction whenever the scheduler is idle or a
quarter-second has passed, so a 10,000-task run does not pay 10,000 commits, and a `kill -9`
loses at most the attempts of that last moment: never anything committed.

A running process holds an exclusive lock on `locks/<run_id>.lock`. A run still marked
`running` whose lock can be taken belongs to a dead process: it is marked `interrupted`.
That test cannot be fooled by a recycled pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

from sloth_runner import paths
from sloth_runner.store.db import Store

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

HOST = os.uname().nodename
LOG_LIMIT = 256 * 1024  # per attempt: a task logging in a loop must not fill the database


def recover_interrupted(store: Store) -> list[str]:
    """Mark runs whose process died as `interrupted`; return their ids."""
    rows = store.query("SELECT id FROM runs WHERE status = 'running'")
    dead: list[str] = []
    for row in rows:
        lock_path = paths.lock_file(row[0])
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            dead.append(row[0])
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its process is alive
        finally:
            os.close(fd)
        dead.append(row[0])
    for run_id in dead:
        with store.transaction() as c:
            last = c.execute("SELECT max(ended_at) FROM attempts WHERE run_id = ?",
                             (run_id,)).fetchone()[0]
            c.execute("UPDATE runs SET status = 'interrupted', ended_at = coalesce(?, started_at),"
                      " error = 'the process running it died' WHERE id = ?", (last, run_id))
        _unlink(paths.lock_file(run_id))
    return dead


def new_run_id() -> str:
    return os.urandom(6).hex()  # not uuid: importing it costs ~10 ms


class RunRecorder:
    """Persists a run's events (it has the engine Listener's shape, without importing it: the
    store sits below the engine)."""

    def __init__(self, store: Store, run_id: str, file: str, params: dict[str, Any],
                 grants: str = "", stack: str | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self._pending: list[tuple] = []
        # What each running task's Lua code logged (log.*, print, io.write, os.execute's
        # output) since its last attempt ended: kept with the attempt, for `history --task`.
        self._logs: dict[tuple[str | None, str], list[str]] = {}
        self._log_sizes: dict[tuple[str | None, str], int] = {}
        self._log_dropped: dict[tuple[str | None, str], int] = {}
        self._lock_fd = os.open(paths.lock_file(self.run_id), os.O_RDWR | os.O_CREAT)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self.started_at = time.time()
        with store.transaction() as c:
            c.execute("INSERT INTO runs (id, file, started_at, status, pid, host, params_json,"
                      " grants, stack) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                      (self.run_id, file, self.started_at, os.getpid(), HOST,
                       json.dumps(params, default=str), grants, stack))

    def attempt_finished(self, r: Any) -> None:
        outputs = json.dumps(r.outputs, default=str) if r.outputs is not None else None
        self._pending.append((self.run_id, r.workflow, r.task, r.attempt, int(r.final), r.status,
                              r.started_at, r.ended_at, r.duration_s, r.exit_code, r.message,
                              r.error, HOST, outputs, r.cpu_s, r.max_rss_kb,
                              self._take_log(r.workflow, r.task)))

    def _take_log(self, workflow: str | None, task: str) -> str | None:
        key = (workflow, task)
        lines = self._logs.pop(key, None)
        self._log_sizes.pop(key, None)
        dropped = self._log_dropped.pop(key, 0)
        if not lines:
            return None
        cut = [f"[{dropped} earlier lines not kept: the last {LOG_LIMIT // 1024} KiB are]"] \
            if dropped else []
        return "\n".join(cut + lines)

    def idle(self) -> None:
        self.flush()

    # the rest of the Listener interface: nothing to store
    def workflow_started(self, workflow: Any) -> None: ...

    def task_started(self, workflow: str, task: str, attempt: int) -> None: ...

    def task_finished(self, workflow: str, result: Any) -> None: ...

    def workflow_finished(self, result: Any) -> None: ...

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        if task is None:
            return
        key = (workflow, task)
        line = message if level == "print" else f"{level.upper()}: {message}"
        lines = self._logs.setdefault(key, [])
        lines.append(line)
        size = self._log_sizes.get(key, 0) + len(line) + 1
        while size > LOG_LIMIT and len(lines) > 1:  # the end matters most: drop the oldest
            size -= len(lines.pop(0)) + 1
            self._log_dropped[key] = self._log_dropped.get(key, 0) + 1
        self._log_sizes[key] = size

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None: ...

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        with self.store.transaction() as c:
            c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, status,"
                          " started_at, ended_at, duration_s, exit_code, message, error, host,"
                          " outputs_json, cpu_s, max_rss_kb, log)"
                          " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def finish_elsewhere(self, workflow: str, running: list[tuple[str, int, float]],
                         not_started: list[str], error: str) -> None:
        """Record the run as interrupted from another thread, on a connection of its own,
        while the thread that owns this recorder is stuck: what was buffered, a final row
        for each task still running, the run's status."""
        now = time.time()
        rows = list(self._pending)
        rows += [(self.run_id, workflow, task, attempt, 1, "interrupted", started, now,
                  now - started, None, "", "interrupted", HOST, None, 0.0, 0,
                  self._take_log(workflow, task))
                 for task, attempt, started in running]
        rows += [(self.run_id, workflow, task, 0, 1, "skipped", now, now, 0.0, None,
                  "not run: run interrupted", None, HOST, None, 0.0, 0, None)
                 for task in not_started]
        store = Store(self.store.path)
        try:
            with store.transaction() as c:
                c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, "
                              "status, started_at, ended_at, duration_s, exit_code, message, "
                              "error, host, outputs_json, cpu_s, max_rss_kb, log)"
                              " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                c.execute("UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? "
                          "WHERE id = ?", (now, error, self.run_id))
        finally:
            store.close()
        _unlink(paths.lock_file(self.run_id))

    def finish(self, status: str, workflows: list[str], error: str | None = None) -> None:
        self.flush()
        with self.store.transaction() as c:
            c.execute("UPDATE runs SET status = ?, ended_at = ?, workflows = ?, error = ?"
                      " WHERE id = ?", (status, time.time(), ",".join(workflows), error,
                                         self.run_id))
        os.close(self._lock_fd)
        _unlink(paths.lock_file(self.run_id))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
