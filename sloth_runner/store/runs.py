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


class RunContext:
    """What the recorder asks of the run's surroundings (services/runcontext.py builds the
    parts; the store only calls them): a host sampler, the workspace's git facts, the error
    template function and the parameters' hash."""

    __slots__ = ("host", "workspace", "error_template", "failure_text", "params_hash")

    def __init__(self, host: Any, workspace: Any, error_template: Any, failure_text: Any,
                 params_hash: str) -> None:
        self.host = host
        self.workspace = workspace
        self.error_template = error_template
        self.failure_text = failure_text
        self.params_hash = params_hash


def run_lock_held(run_id: str) -> bool:
    """Whether the process running `run_id` (on this host) is alive: it holds the run's lock
    until it ends, and the kernel drops the lock when it dies, whatever killed it."""
    try:
        fd = os.open(paths.lock_file(run_id), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def recover_interrupted(store: Store) -> list[str]:
    """Mark runs whose process died as `interrupted`; return their ids."""
    rows = store.query("SELECT id FROM runs WHERE status = 'running'")
    dead = [row[0] for row in rows if not run_lock_held(row[0])]
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
                 grants: str = "", stack: str | None = None,
                 context: RunContext | None = None, graph: Any = None) -> None:
        self.store = store
        self.run_id = run_id
        self.context = context
        self._pending: list[tuple] = []
        self._heals: list[tuple] = []
        self.file = file
        # per running task: (load, free memory) when its attempt started; when its last
        # attempt ended (the time until the next one is its backoff)
        self._at_start: dict[tuple[str | None, str], tuple[Any, Any]] = {}
        self._last_end: dict[tuple[str | None, str], float] = {}
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
                      " grants, stack, params_hash, graph_json)"
                      " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                      (self.run_id, file, self.started_at, os.getpid(), HOST,
                       json.dumps(params, default=str), grants, stack,
                       context.params_hash if context is not None else None,
                       json.dumps(graph, separators=(",", ":")) if graph else None))

    def attempt_finished(self, r: Any) -> None:
        outputs = json.dumps(r.outputs, default=str) if r.outputs is not None else None
        key = (r.workflow, r.task)
        load, free = self._at_start.pop(key, (None, None))
        previous_end = self._last_end.pop(key, None) if r.attempt > 1 else None
        backoff = max(0.0, r.started_at - previous_end) if previous_end is not None else None
        if not r.final:
            self._last_end[key] = r.ended_at
        context = self.context
        template = None
        if context is not None and r.status != "success":
            # a failed command has no error text: its message or exit code says what happened
            said = context.failure_text(r.error, r.message, r.exit_code, r.outputs)
            template = context.error_template(said) if said else None
        self._pending.append((self.run_id, r.workflow, r.task, r.attempt, int(r.final), r.status,
                              r.started_at, r.ended_at, r.duration_s, r.exit_code, r.message,
                              r.error, r.host or HOST, outputs, r.cpu_s, r.max_rss_kb or None,
                              self._take_log(r.workflow, r.task), load, free, template,
                              backoff))

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

    def heal_finished(self, h: Any) -> None:
        context = self.context
        template = context.error_template(h.error) if context is not None and h.error else None
        self._heals.append((self.run_id, self.file, h.workflow, h.task, h.round, h.attempt,
                            h.action, h.method, h.reasoning, h.confidence, h.error, template,
                            h.action_error, None if h.healed is None else int(h.healed), h.at))

    def idle(self) -> None:
        self.flush()

    # the rest of the Listener interface: nothing to store
    def workflow_started(self, workflow: Any) -> None: ...

    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        if self.context is not None:
            self._at_start[(workflow, task)] = self.context.host.sample()

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
        if not self._pending and not self._heals:
            return
        rows, self._pending = self._pending, []
        heals, self._heals = self._heals, []
        with self.store.transaction() as c:
            if heals:
                c.executemany("INSERT INTO heals (run_id, file, workflow, task, round, attempt,"
                              " action, method, reasoning, confidence, error, error_template,"
                              " action_error, healed, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                              heals)
            c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, status,"
                          " started_at, ended_at, duration_s, exit_code, message, error, host,"
                          " outputs_json, cpu_s, max_rss_kb, log, load_1m, mem_free_mb,"
                          " error_template, backoff_s)"
                          " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def finish_elsewhere(self, workflow: str, running: list[tuple[str, int, float]],
                         not_started: list[str], error: str) -> None:
        """Record the run as interrupted from another thread, on a connection of its own,
        while the thread that owns this recorder is stuck: what was buffered, a final row
        for each task still running, the run's status."""
        now = time.time()
        rows = list(self._pending)
        rows += [(self.run_id, workflow, task, attempt, 1, "interrupted", started, now,
                  now - started, None, "", "interrupted", HOST, None, 0.0, None,
                  self._take_log(workflow, task), None, None, None, None)
                 for task, attempt, started in running]
        rows += [(self.run_id, workflow, task, 0, 1, "skipped", now, now, 0.0, None,
                  "not run: run interrupted", None, HOST, None, 0.0, None, None, None, None,
                  None, None) for task in not_started]
        store = Store(self.store.path)
        try:
            with store.transaction() as c:
                c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, "
                              "status, started_at, ended_at, duration_s, exit_code, message, "
                              "error, host, outputs_json, cpu_s, max_rss_kb, log, load_1m, "
                              "mem_free_mb, error_template, backoff_s)"
                              " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                c.execute("UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? "
                          "WHERE id = ?", (now, error, self.run_id))
        finally:
            store.close()
        _unlink(paths.lock_file(self.run_id))

    def finish(self, status: str, workflows: list[str], error: str | None = None) -> None:
        self.flush()
        facts = self.context.workspace.result() if self.context is not None else {}
        with self.store.transaction() as c:
            c.execute("UPDATE runs SET status = ?, ended_at = ?, workflows = ?, error = ?,"
                      " git_commit = ?, changed_files = ? WHERE id = ?",
                      (status, time.time(), ",".join(workflows), error,
                       facts.get("git_commit"), facts.get("changed_files"), self.run_id))
        os.close(self._lock_fd)
        _unlink(paths.lock_file(self.run_id))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
