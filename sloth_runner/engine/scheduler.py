"""Run one workflow's DAG: start ready tasks up to `max_parallel`, skip dependents of failures.

Every task program runs on this (the calling) thread; only `Blocking` requests go to a thread
pool, so a task waiting on a process, a worker or an HTTP call holds no one up. Deadlines and
retry sleeps are timers on a heap, so a waiting task costs no thread at all.

When a task concludes, its dependents are released or concluded by a worklist, never by
recursion: a failure at the head of a 10,000-task chain must not exhaust the stack. Whether a
dependent runs is its trigger rule's call, made once all its dependencies have concluded.

`interrupt()` may be called from a signal handler: it only enqueues a marker (SimpleQueue.put is
reentrant), and the loop then stops every running task as `interrupted`.
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import time
from _queue import Empty, SimpleQueue  # not `queue`: ~1 ms to import
from collections import deque

from sloth_runner.engine.events import Listener
from sloth_runner.engine.lifecycle import AbortWorkflow, Program, task_program
from sloth_runner.engine.model import (
    DONE_OK,
    FAILURES,
    INTERRUPTED,
    SKIPPED,
    TIMEOUT,
    AttemptRecord,
    Blocking,
    Readable,
    Sleep,
    Task,
    TaskContext,
    TaskInterrupted,
    TaskResult,
    TaskTimeout,
    Workflow,
    WorkflowResult,
)
from sloth_runner.engine.workers import WorkerPool

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.lifecycle import Artifacts, Freshness

DEFAULT_MAX_PARALLEL = 8
# History and output are flushed when the scheduler is about to wait, but not more often than
# this: a 10,000-task chain must not pay 10,000 commits. Nothing waits longer than this either.
_FLUSH_EVERY_S = 0.1


_PROGRESS = object()
_INTERRUPT = object()


class _Running:
    __slots__ = ("task", "ctx", "program", "waiting", "request", "fd", "started", "armed")

    def __init__(self, task: Task, ctx: TaskContext, program: Program) -> None:
        self.started = time.time()
        self.task = task
        self.ctx = ctx
        self.program = program
        self.waiting = 0  # sequence number of the request it waits on; 0 = none
        self.request: Blocking | None = None
        self.fd = -1  # the file descriptor it waits to read, if any
        self.armed: float | None = None  # the deadline a timer is set for


class Scheduler:
    def __init__(
        self,
        workflow: Workflow,
        *,
        params: dict[str, Any] | None = None,
        max_parallel: int | None = None,
        listener: Listener | None = None,
        freshness: Freshness | None = None,
        artifacts: Artifacts | None = None,
        gate: Callable[[str], str] | None = None,
    ) -> None:
        self.workflow = workflow
        # asked before each task (--interactive): "run", "skip", "abort" or "interrupted" (the
        # run was interrupted while it asked: the task is left to the interruption)
        self.gate = gate
        self.params = params or {}
        self.max_parallel = max(1, max_parallel or workflow.max_parallel or DEFAULT_MAX_PARALLEL)
        self.listener = listener or Listener()
        self.freshness = freshness
        self.artifacts = artifacts
        self.results: dict[str, TaskResult] = {}
        self.aborted: str | None = None
        self.interrupted: str | None = None
        self._seq = itertools.count(1)
        self._timers: list[tuple[float, int, str, _Running]] = []
        self._done: SimpleQueue = SimpleQueue()
        self._pool: WorkerPool | None = None
        self._deadline: float | None = None
        self._wake_r = self._wake_w = -1
        self._readers: dict[int, _Running] = {}
        self._running: dict[int, _Running] = {}

    # -- public --------------------------------------------------------------------------------
    def run(self) -> WorkflowResult:
        wf = self.workflow
        started = time.time()
        if wf.timeout:
            self._deadline = time.monotonic() + wf.timeout
        tasks = {t.name: t for t in wf.tasks}
        waiting_on = {t.name: len(set(t.depends_on)) for t in wf.tasks}
        dependents: dict[str, list[str]] = {name: [] for name in tasks}
        for t in wf.tasks:
            for dep in set(t.depends_on):
                dependents[dep].append(t.name)
        ready = deque(t for t in wf.tasks if not t.depends_on)
        running: dict[int, _Running] = {}
        self._tasks, self._dependents, self._waiting_on = tasks, dependents, waiting_on
        self._ready, self._running = ready, running
        # One poll over the file descriptors tasks wait on and a wake-up pipe, which worker
        # threads and interrupt() write to after queueing their news in _done.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._poll = select.poll()
        self._poll.register(self._wake_r, select.POLLIN)
        last_flush = time.monotonic()
        dirty = False
        try:
            while True:
                while ready and len(running) < self.max_parallel and self.aborted is None:
                    self._start(ready.popleft())
                    dirty = True
                if not running:
                    self._drain_interrupts()  # one may have ended the last task (the Lua hook)
                    break
                now = time.monotonic()
                wait: float | None = None
                if dirty:
                    if now - last_flush >= _FLUSH_EVERY_S:
                        self.listener.idle()
                        last_flush, dirty = now, False
                    else:
                        wait = _FLUSH_EVERY_S - (now - last_flush)
                if self._timers:
                    until = max(0.0, self._timers[0][0] - now)
                    wait = until if wait is None else min(wait, until)
                if self._done.empty():
                    for fd, _ in self._poll.poll(None if wait is None else wait * 1000 + 0.5):
                        if fd == self._wake_r:
                            os.read(fd, 1 << 16)
                        else:
                            self._readable(fd)
                            dirty = True
                while True:
                    try:
                        item = self._done.get_nowait()
                    except Empty:
                        break
                    dirty = True
                    if item[0] is _INTERRUPT:
                        self._stop_all(item[1])
                    else:
                        self._complete(*item)
                self._fire_timers()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
            for run in list(self._running.values()):  # an escaping error: stop what they started
                run.ctx.cancel.cancel()
                self._release(run.ctx)
            wake_r, wake_w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, -1, -1
            os.close(wake_r)
            os.close(wake_w)
        self.listener.idle()
        for t in wf.tasks:  # anything never reached: aborted, interrupted or timed-out workflow
            if t.name not in self.results:
                reason = self.aborted or "workflow timed out before it could start"
                self._conclude_all([TaskResult(t.name, SKIPPED, message=f"not run: {reason}")])
        ordered = [self.results[t.name] for t in wf.tasks]
        if self.interrupted is not None:
            status = INTERRUPTED
        elif self.aborted is None and all(r.status not in FAILURES for r in ordered):
            status = "success"
        else:
            status = "failed"
        return WorkflowResult(name=wf.name, status=status, tasks=ordered,
                              duration_s=time.time() - started, error=self.aborted)

    def running(self) -> list[tuple[str, int, float]]:
        """(task, attempt, started) of what runs now; readable from another thread."""
        return [(r.task.name, r.ctx.attempt, r.started) for r in list(self._running.values())]

    def not_started(self) -> list[str]:
        """Tasks neither running nor concluded; readable from another thread."""
        busy = {r.task.name for r in list(self._running.values())}
        return [t.name for t in self.workflow.tasks
                if t.name not in self.results and t.name not in busy]

    def interrupt(self, reason: str = "interrupted") -> None:
        """Stop the run: safe to call from a signal handler or another thread."""
        self._done.put((_INTERRUPT, reason))
        self._wake()

    def _wake(self) -> None:
        fd = self._wake_w
        if fd < 0:  # not running (yet, or any more): the loop reads _done when it starts
            return
        try:
            os.write(fd, b"!")
        except OSError:  # full: a wake-up is pending anyway
            pass

    # -- internals -----------------------------------------------------------------------------
    def _start(self, task: Task) -> None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._conclude_all([TaskResult(task.name, SKIPPED,
                                           message="not run: workflow timed out")])
            return
        if self.gate is not None:
            answer = self.gate(task.name)
            if answer == "interrupted":  # Ctrl-C at the prompt: the interruption concludes it
                return
            if answer == "abort":
                self.aborted = "aborted at the prompt"
            if answer != "run":
                verb = "aborted" if answer == "abort" else "skipped"
                self._conclude_all([TaskResult(task.name, SKIPPED,
                                               message=f"not run: {verb} at the prompt")])
                return
        ctx = TaskContext(self.workflow.name, task.name, self.params, self._deps_of(task),
                          workdir=task.workdir, env=task.env, user=task.user)
        program = task_program(task, ctx, self.listener, self._deadline, self.freshness,
                               self.artifacts)
        run = _Running(task, ctx, program)
        self._running[id(run)] = run
        self._step(run, None, None)

    def _deps_of(self, task: Task) -> dict[str, dict[str, Any] | None]:
        """Outputs of each dependency; under a trigger rule, also its status (and error)."""
        if task.trigger_rule == "all_success":
            return {d: self.results[d].outputs for d in task.depends_on}
        deps: dict[str, dict[str, Any] | None] = {}
        for d in task.depends_on:
            r = self.results[d]
            entry = dict(r.outputs) if isinstance(r.outputs, dict) else {}
            entry["status"] = r.status
            if r.error:
                entry["error"] = r.error
            deps[d] = entry
        return deps

    def _step(self, run: _Running, value: Any, error: BaseException | None) -> None:
        run.waiting = 0
        run.request = None
        if run.fd >= 0:
            self._poll.unregister(run.fd)
            del self._readers[run.fd]
            run.fd = -1
        try:
            request = run.program.throw(error) if error is not None else run.program.send(value)
        except StopIteration as stop:
            self._finish(run, stop.value)
            return
        except AbortWorkflow as abort:
            self.aborted = f"task '{run.task.name}' abort_if condition held"
            self._finish(run, abort.result)
            return
        seq = next(self._seq)
        run.waiting = seq
        if isinstance(request, Blocking):
            if self._pool is None:
                self._pool = WorkerPool(self.max_parallel)
            run.request = request
            self._pool.submit(self._call, request, id(run), seq)
            self._arm(run, seq)
        elif isinstance(request, Readable):
            fd = request.source.fileno()
            run.fd = fd
            self._readers[fd] = run
            self._poll.register(fd, select.POLLIN)
            self._arm(run, seq)
        elif isinstance(request, Sleep):
            heapq.heappush(self._timers, (time.monotonic() + request.seconds, seq, "wake", run))
        else:
            self._step(run, None, TypeError(f"action yielded {type(request).__name__}, not a request"))

    def _call(self, request: Blocking, run_id: int, seq: int) -> None:
        def emit(item: Any) -> None:
            self._done.put((run_id, seq, item, _PROGRESS))
            self._wake()

        try:
            value = request.fn(emit) if request.progress is not None else request.fn()
            self._done.put((run_id, seq, value, None))
        except BaseException as exc:  # handed back to the program that asked
            self._done.put((run_id, seq, None, exc))
        self._wake()

    def _drain_interrupts(self) -> None:
        while True:
            try:
                item = self._done.get_nowait()
            except Empty:
                return
            if item[0] is _INTERRUPT:
                self._stop_all(item[1])

    def _readable(self, fd: int) -> None:
        run = self._readers.get(fd)
        if run is not None and id(run) in self._running:
            self._step(run, None, None)

    def _complete(self, run_id: int, seq: int, value: Any, error: Any) -> None:
        run = self._running.get(run_id)
        if run is None or run.waiting != seq:  # a late answer to a timed-out request
            return
        if error is _PROGRESS:
            if run.request is not None and run.request.progress is not None:
                run.request.progress(value)
            return
        run.request = None
        self._step(run, value, error)

    def _arm(self, run: _Running, seq: int) -> None:
        """One deadline timer per attempt, not one per wait: a task that waits on its worker
        for every log line would otherwise fill the heap."""
        deadline = run.ctx.deadline
        if deadline is not None and run.armed != deadline:
            run.armed = deadline
            heapq.heappush(self._timers, (deadline, seq, "deadline", run))

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            when, seq, kind, run = heapq.heappop(self._timers)
            if id(run) not in self._running:
                continue
            if kind == "deadline":
                # still this attempt's deadline, and the task is waiting on work (not on a
                # retry timer, whose attempt has ended)
                if run.ctx.deadline != when or (run.request is None and run.fd < 0):
                    continue
                run.ctx.cancel.cancel()
                self._step(run, None, TaskTimeout())
            elif run.waiting == seq:
                self._step(run, None, None)

    def _finish(self, run: _Running, result: TaskResult) -> None:
        self._running.pop(id(run), None)
        self._release(run.ctx)
        self._conclude_all([result])

    @staticmethod
    def _release(ctx: TaskContext) -> None:
        held, ctx.held = ctx.held, {}
        for thing in held.values():
            thing.release()

    def _stop_all(self, reason: str) -> None:
        """Interrupted: every running task ends as `interrupted`, nothing new starts."""
        if self.interrupted is not None:
            return
        self.interrupted = reason
        self.aborted = f"run {reason}"
        for run in list(self._running.values()):
            run.ctx.cancel.cancel()
        for run in list(self._running.values()):
            self._step(run, None, TaskInterrupted(reason))

    def _conclude_all(self, results: list[TaskResult]) -> None:
        """Record final results, then release or conclude their dependents, as a worklist."""
        work = deque(results)
        while work:
            result = work.popleft()
            if result.attempts == 0:  # never ran an attempt: still leave a trace in history
                now = time.time()
                self.listener.attempt_finished(AttemptRecord(
                    self.workflow.name, result.name, 0, result.status, now, now,
                    message=result.message, error=result.error))
            self.results[result.name] = result
            self.listener.task_finished(self.workflow.name, result)
            if self.workflow.fail_fast and result.status in FAILURES and self.aborted is None:
                self.aborted = f"task '{result.name}' {result.status} (the workflow does not " \
                               "continue on error)"
            for name in self._dependents[result.name]:
                if name in self.results:
                    continue
                self._waiting_on[name] -= 1
                if self._waiting_on[name] > 0:
                    continue
                task = self._tasks[name]
                why = self._blocked_by(task)
                if why is None:
                    self._ready.append(task)
                else:
                    work.append(TaskResult(name=name, status=SKIPPED, message=why))

    def _blocked_by(self, task: Task) -> str | None:
        """Why the task must not run now that all its dependencies concluded, or None."""
        if self.aborted is not None:
            return f"not run: {self.aborted}"
        deps = [(d, self.results[d].status) for d in dict.fromkeys(task.depends_on)]
        rule = task.trigger_rule
        if rule == "all_success":
            for name, status in deps:
                if status not in DONE_OK:
                    verb = {TIMEOUT: "timed out", SKIPPED: "was skipped",
                            INTERRUPTED: "was interrupted"}.get(status, "failed"
                                                                if status != "error"
                                                                else "could not run")
                    return f"dependency '{name}' {verb}"
            return None
        if rule == "all_done":
            return None
        if rule == "one_failed":
            if any(status in FAILURES for _, status in deps):
                return None
            return "trigger rule one_failed: no dependency failed"
        if rule == "none_failed":
            failed = [name for name, status in deps if status in FAILURES]
            return f"trigger rule none_failed: dependency '{failed[0]}' failed" if failed else None
        return f"unknown trigger rule {rule!r}"
