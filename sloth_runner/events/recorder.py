"""The run's side of hooks: record its events, and start the dispatcher that runs the hooks.

Events are buffered and written in one transaction when the scheduler is about to wait (at
most every 0.1 s, as attempts are: store/runs.py) and at the end of each workflow, so a task
costs a tuple and a list append here. Hooks never run in this process: the dispatcher
(events/dispatcher.py) is a detached process that reads committed events back from the store,
so an event is stored before any hook can see it, and a `kill -9` of the run loses at most the
events of its last 0.1 s (the dispatcher still runs the hooks of everything committed).

Only events some hook subscribes to are recorded. The dispatcher is started just before the
first of them is written: by this process, or by a worker process, which writes the events its
task dispatches itself (one dispatcher per run: it holds the run's dispatcher lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from sloth_runner import paths
from sloth_runner.engine.events import Listener, map_strings
from sloth_runner.events import TypeMatcher
from sloth_runner.store.events import insert_events

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.store.db import Store

_FINISHED = {"success": "task.succeeded", "up_to_date": "task.skipped", "skipped": "task.skipped",
             "timeout": "task.timed_out"}  # anything else (failed, error, interrupted): failed
_JSON = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode


class RunEvents(Listener):
    """The engine Listener that records a run's events, and the sink of `event.dispatch`."""

    def __init__(self, store: Store, run_id: str, stack: str | None, subscriptions: list[str],
                 scrub: Callable[[str], str]) -> None:
        self.store = store
        self.run_id = run_id
        self.stack = stack
        self.scrub = scrub
        self.pid = os.getpid()  # a worker forked from this process writes on its own
        self.wants = wants = TypeMatcher(t for types in subscriptions for t in json.loads(types))
        # Only what a hook subscribes to is recorded: with hooks on workflow.failed alone, a
        # task costs a few attribute reads here.
        self._wf_started = wants("workflow.started")
        self._started = wants("task.started")
        self._retried = wants("task.retried")
        self._finished = any(wants(t) for t in ("task.succeeded", "task.failed",
                                                "task.timed_out", "task.skipped"))
        self._pending: list[tuple] = []
        self._exit_codes: dict[tuple[str, str], int] = {}
        self._spawned_from: int | None = None  # the process that started the dispatcher
        self._own: tuple[int, Store] | None = None  # (pid, store) of a worker process

    # -- the engine's events ------------------------------------------------------------------
    def _add(self, kind: str, workflow: str | None, task: str | None, data: dict[str, Any],
             source: str = "run", at: float | None = None) -> None:
        self._pending.append((kind, at or time.time(), workflow, task, source, data))

    def workflow_started(self, workflow: Any) -> None:
        if self._wf_started:
            self._add("workflow.started", workflow.name, None,
                      {"workflow": workflow.name, "tasks": len(workflow.tasks)})

    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        if attempt == 1 and self._started:  # later attempts are told as task.retried
            self._add("task.started", workflow, task, {"workflow": workflow, "task": task})

    def attempt_finished(self, r: Any) -> None:
        if r.final:
            if r.exit_code is not None and self._finished:
                self._exit_codes[(r.workflow, r.task)] = r.exit_code
            return
        if self._retried:
            self._add("task.retried", r.workflow, r.task, {
                "workflow": r.workflow, "task": r.task, "attempt": r.attempt,
                "next_attempt": r.attempt + 1, "status": r.status,
                "error": r.error or r.message, "exit_code": r.exit_code,
                "duration_s": round(r.ended_at - r.started_at, 6)})

    def task_finished(self, workflow: str, result: Any) -> None:
        if not self._finished:
            return
        status = result.status
        kind = _FINISHED.get(status, "task.failed")
        if not self.wants(kind):
            return
        self._add(kind, workflow, result.name, {
            "workflow": workflow, "task": result.name, "status": status,
            "attempts": result.attempts, "duration_s": round(result.duration_s, 6),
            "message": result.message, "error": result.error,
            "exit_code": self._exit_codes.pop((workflow, result.name), None)})

    def workflow_finished(self, result: Any) -> None:
        kind = "workflow.completed" if result.status == "success" else "workflow.failed"
        if not self.wants(kind):
            self.flush()
            return
        counts: dict[str, int] = {}
        for t in result.tasks:
            counts[t.status] = counts.get(t.status, 0) + 1
        failed = [t.name for t in result.tasks
                  if t.status not in ("success", "up_to_date", "skipped")]
        self._add(kind, result.name, None, {
            "workflow": result.name, "status": result.status,
            "duration_s": round(result.duration_s, 6), "error": result.error,
            "tasks": counts, "failed_tasks": failed})
        self.flush()  # the run may end now: its last events must be stored before it does

    def idle(self) -> None:
        self.flush()

    def close(self) -> None:
        self.flush()

    # -- event.dispatch -----------------------------------------------------------------------
    def dispatch(self, kind: str, data: Any, workflow: str | None, task: str | None,
                 scrubber: Callable[[], Any], at: float | None = None) -> None:
        """An event from Lua code, scrubbed like log output (if a hook subscribes to it). In
        this process it joins the batch; in a worker process (forked from this one) it is
        written at once, scrubbed by the run's scrubber over the worker's link."""
        if not self.wants(kind):
            return
        if os.getpid() == self.pid:
            self._add(kind, workflow, task, map_strings(data, self.scrub), "lua", at)
            return
        scrub = scrubber()
        clean = map_strings(data, lambda text: str(scrub.scrub(text)[0]))
        store = self._worker_store()
        if self._spawned_from != os.getpid():  # this process's first: make sure hooks run
            self._spawned_from = os.getpid()
            start_dispatcher(self.run_id, self.stack, reap=False)
        insert_events(store, [(kind, at or time.time(), self.run_id, workflow, task,
                               self.stack, "lua", _JSON(clean))])

    def _worker_store(self) -> Store:
        pid = os.getpid()
        if self._own is None or self._own[0] != pid:  # a connection never crosses a fork
            from sloth_runner.store.db import Store

            self._own = (pid, Store(self.store.path))
        return self._own[1]

    # -- writing --------------------------------------------------------------------------------
    def flush(self) -> None:
        if not self._pending or os.getpid() != self.pid:
            return
        rows, self._pending = self._pending, []
        if self._spawned_from is None:  # before the write: a kill between them loses no hook
            self._spawned_from = self.pid
            start_dispatcher(self.run_id, self.stack, reap=True)
        run_id, stack = self.run_id, self.stack
        insert_events(self.store, [(kind, at, run_id, workflow, task, stack, source, _JSON(data))
                                   for kind, at, workflow, task, source, data in rows])


def start_dispatcher(run_id: str, stack: str | None, reap: bool) -> int | None:
    """Start the detached process that runs the run's hooks (a second one, started by a
    worker process, finds the first holding the run's dispatcher lock and leaves). It has a
    session of its own (Ctrl-C in the run's terminal does not stop the hooks of a failure)
    and its output goes to /dev/null; with `reap`, a thread of ours waits for it if we
    outlive it. Its pid, or None (said on stderr) if it cannot start: the events are still
    stored, but their hooks do not run; None also when one runs already."""
    import sloth_runner

    if dispatcher_running(run_id):
        return None

    root = os.path.dirname(os.path.dirname(os.path.abspath(sloth_runner.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "sloth_runner.events.dispatcher", run_id]
    if stack:
        argv += ["--stack", stack]
    try:
        pid = os.posix_spawn(sys.executable, argv, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)])
    except OSError as exc:
        sys.stderr.write(f"sloth-runner: cannot start the hook dispatcher, hooks will not "
                         f"run: {exc}\n")
        return None
    if reap:
        import threading

        threading.Thread(target=_reap, args=(pid,), name="sloth-hooks-reaper",
                         daemon=True).start()
    return pid


def dispatcher_lock(run_id: str) -> str:
    return paths.lock_file(run_id + ".hooks")


def dispatcher_running(run_id: str) -> bool:
    """Whether a dispatcher holds the run's dispatcher lock now."""
    try:
        fd = os.open(dispatcher_lock(run_id), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
