"""`goroutine`: concurrency inside one task, with the API of the Go project's module (spawn,
channels, select, wait groups, mutexes, semaphores, pools, map, async/await, sleep, timeout,
condition variables, contexts, pipelines, fan-out and fan-in).

The model. Lua runs on one thread, so goroutines are Lua coroutines that a small scheduler,
written in Lua (goroutine_sched.lua, with goroutine_sync.lua and goroutine_flow.lua on top),
runs cooperatively *inside* the task. A goroutine runs until it waits: on a channel, a wait
group, a mutex, a condition, a timer, or a blocking module call (exec.run, http.get, io.popen
reads, ai.*, git ...). Module calls are where DevOps code spends its time, and those really
run in parallel:

- Every blocking module function checks who calls it. Called from a goroutine (or from the task
  itself while it has live goroutines), it does not yield the task to the engine; it starts its
  job on a thread of this process (`JobBoard`, a small pool of daemon threads) and parks the
  caller. The other goroutines go on.
- When nothing is runnable, the task itself waits for "any job of mine finished, or my next
  timer is due" (`goroutine.wait`, one blocking op): inside a task in the main process it
  yields to the engine like any blocking call, so other tasks keep running; in a worker process
  or at top level it simply blocks. So the engine still serves one blocking request per task,
  and ten goroutines each running `sleep 1` through exec.run finish in about one second.
- A goroutine runs when the task reaches a waiting point of its own (spawn, a channel
  operation, wg:wait(), sleep, a blocking call...): a task that computes in a loop without
  waiting holds its goroutines back, as with any cooperative scheduler. Pure-Lua CPU work is
  never parallel.
- Jobs started on behalf of a task use its context: its workdir and env, its cancel token (so
  processes die with the task when it is interrupted) and its deadline. A task with a timeout
  runs in a worker process, which is killed whole when the time is up.
- An error in a goroutine is raised in the task at its next waiting point, as a panic ends a Go
  program; async, pools, map and timeout catch errors and hand them back instead. A wait that
  nothing can ever end (every goroutine waits on a channel no one writes) is reported as a
  deadlock rather than hanging. Channels and the rest belong to the task that made them.
- A goroutine still waiting when its task returns is abandoned, like a goroutine when `main`
  returns; a job it started runs to its end.
- `goroutine.context()` is Go's context among the goroutines of a task: cancelling it (or its
  timeout) is seen by is_cancelled/err and closes its done() channel, but does not stop a
  blocking call under way, as in the Go module. What stops everything is the task's own
  cancel token and deadline above; a context's timer never keeps a timed-out task alive.

Blocking functions learn about goroutines because this module wraps the prelude's
`S.blocking` before any module is installed (install_goroutine must run first); the check
belongs in S.blocking itself once the prelude grows a hook for it. The scheduler's Lua is
compiled the first time a workflow touches `goroutine`, so other runs do not pay for it.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from sloth_runner.durations import parse_duration
from sloth_runner.engine.model import Blocking, TaskTimeout
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime, error_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import CancelToken, TaskContext
    from sloth_runner.lua.services import Services

WAIT_OP = "goroutine.wait"
MAX_THREADS = 64  # jobs of goroutines running at once in one process; more wait their turn


class _Group:
    """What one in-task scheduler is told: jobs that finished, streamed items, wake-ups."""

    __slots__ = ("cond", "finished", "events", "poked")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.finished: list[int] = []
        self.events: list[tuple[Callable[[Any], None], Any]] = []
        self.poked = False


class _Job:
    __slots__ = ("group", "progress", "tag", "result")

    def __init__(self, group: int, progress: Callable[[Any], None] | None, tag: Any) -> None:
        self.group = group
        self.progress = progress
        self.tag = tag
        self.result: tuple[bool, Any] | None = None


class JobBoard:
    """Runs jobs on daemon threads and lets a group wait for any of its jobs to finish.

    Plain Python: knows nothing of Lua. One board per runtime; a process forked from one that
    used it (a worker) starts afresh, since the parent's threads do not exist in the child.
    """

    def __init__(self, max_threads: int = MAX_THREADS) -> None:
        self.max_threads = max_threads
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._groups: dict[int, _Group] = {}
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count(1)
        self._pool: Any = None

    def _here(self) -> None:
        if os.getpid() != self._pid:
            self._reset()

    def _group(self, gid: int) -> _Group:  # with the lock held
        group = self._groups.get(gid)
        if group is None:
            group = self._groups[gid] = _Group(self._lock)
        return group

    def submit(self, gid: int, fn: Callable[..., Any],
               progress: Callable[[Any], None] | None = None, tag: Any = None) -> int:
        """Start `fn()` (or `fn(emit)` with `progress`) on a thread; returns the job's id."""
        self._here()
        job = _Job(gid, progress, tag)
        with self._lock:
            job_id = next(self._ids)
            self._jobs[job_id] = job
            self._group(gid)
            if self._pool is None:
                from sloth_runner.engine.workers import WorkerPool

                self._pool = WorkerPool(self.max_threads, "sloth-goroutine")
            pool = self._pool
        pool.submit(self._run, job_id, job, fn)
        return job_id

    def _run(self, job_id: int, job: _Job, fn: Callable[..., Any]) -> None:
        try:
            if job.progress is not None:
                value = fn(lambda item: self._emit(job, item))
            else:
                value = fn()
            result: tuple[bool, Any] = (True, value)
        except BaseException as exc:  # handed to the goroutine that waits for it
            result = (False, exc)
        with self._lock:
            job.result = result
            group = self._group(job.group)
            group.finished.append(job_id)
            group.cond.notify_all()

    def _emit(self, job: _Job, item: Any) -> None:
        with self._lock:
            group = self._group(job.group)
            if job.progress is not None:
                group.events.append((job.progress, item))
            group.cond.notify_all()

    def wait(self, gid: int, timeout: float | None = None, cancel: CancelToken | None = None,
             deadline: float | None = None) -> list[int]:
        """Ids of the group's jobs that finished since the last wait or poll; returns early when
        some finished, an item was streamed, the group is poked, `cancel` fires, or at
        `timeout` seconds / the absolute `deadline` (time.monotonic)."""
        self._here()
        end = time.monotonic() + timeout if timeout is not None else None
        if deadline is not None:
            end = deadline if end is None else min(end, deadline)
        unregister = cancel.on_cancel(lambda: self.poke(gid)) if cancel is not None else None
        try:
            with self._lock:
                group = self._group(gid)
                while not (group.finished or group.events or group.poked):
                    if end is None:
                        group.cond.wait()
                        continue
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    group.cond.wait(remaining)
                group.poked = False
                done, group.finished = group.finished, []
            return done
        finally:
            if unregister is not None:
                unregister()

    def poll(self, gid: int) -> list[int]:
        """Like wait, without waiting."""
        return self.wait(gid, 0.0)

    def poke(self, gid: int) -> None:
        """Wake the group's wait (something else made one of its goroutines runnable)."""
        self._here()
        with self._lock:
            group = self._group(gid)
            group.poked = True
            group.cond.notify_all()

    def events(self, gid: int) -> list[tuple[Callable[[Any], None], Any]]:
        """Streamed items not yet delivered, as (progress, item), oldest first."""
        with self._lock:
            group = self._groups.get(gid)
            if group is None or not group.events:
                return []
            items, group.events = group.events, []
            return items

    def take(self, job_id: int) -> tuple[bool, Any, Any]:
        """(ok, value or exception, tag) of a finished job, which is then forgotten."""
        with self._lock:
            job = self._jobs.pop(job_id)
        if job.result is None:
            raise RuntimeError(f"goroutine job {job_id} has not finished")
        return job.result[0], job.result[1], job.tag


def install_goroutine(rt: LuaRuntime, services: Services) -> Any:
    """Make every blocking function created from now on goroutine-aware, and publish the
    `goroutine` module. Must run before any other module is installed."""
    board = JobBoard()

    def start(group: Any, name: Any, *args: Any) -> int:
        op = rt.ops[str(name)]
        ctx = rt.current
        job = op.prepare(ctx, *args)
        if isinstance(job, Blocking):
            return board.submit(int(group), job.fn, job.progress, (op, ctx))
        return board.submit(int(group), job, None, (op, ctx))

    def collect(job_id: Any) -> tuple:
        ok, value, (op, ctx) = board.take(int(job_id))
        if not ok:
            if isinstance(value, TaskTimeout):
                return (False, None)  # the task's time is up: its hook ends it (see Lua)
            return (False, error_message(value, ctx))
        try:
            return (True, op.finish(ctx, value))
        except Exception as exc:
            return (False, error_message(exc, ctx))

    def deliver(gid: int) -> None:
        """Streamed items reach their callbacks on the Lua thread, as the engine does."""
        for progress, item in board.events(gid):
            progress(item)

    def poll(group: Any) -> Any:
        gid = int(group)
        done = board.poll(gid)
        deliver(gid)
        return rt.table(done)

    def prepare_wait(ctx: TaskContext | None, group: Any = None,
                     timeout: Any = None) -> Callable[[], Any]:
        gid = int(group)
        seconds = None if timeout is None or timeout < 0 else float(timeout)
        cancel = ctx.cancel if ctx is not None else None
        deadline = ctx.deadline if ctx is not None else None

        def wait() -> tuple[int, list[int]]:
            done = board.wait(gid, seconds, cancel, deadline)
            if deadline is not None and cancel is not None and time.monotonic() >= deadline:
                # The attempt is over: what its goroutines started dies now, as the engine's
                # timeout does it (a worker that ends its task cleanly is not killed whole).
                cancel.cancel()
            return gid, done

        return wait

    def finish_wait(ctx: TaskContext | None, answer: tuple[int, list[int]]) -> Any:
        gid, done = answer
        deliver(gid)
        return rt.table(done)

    def seconds(value: Any) -> float:
        return parse_duration(value)

    rt.ops[WAIT_OP] = BlockingOp(prepare_wait, finish_wait)
    module = rt.lua.execute(_BOOT, rt.S, rt.wrap(_scheduler_sources), WAIT_OP, rt.wrap(start),
                            rt.wrap(collect), rt.wrap(poll), rt.wrap(board.poke),
                            rt.wrap(time.monotonic), rt.wrap(seconds), rt.wrap(time.time),
                            name="=goroutine")
    g = rt.lua.globals()
    g.package.loaded["goroutine"] = module
    g["goroutine"] = module
    return module


_SCHEDULER_FILES = ("goroutine_sched.lua", "goroutine_sync.lua", "goroutine_flow.lua")


def _scheduler_sources() -> tuple[str, ...]:
    """The scheduler's Lua: goroutine_sched.lua, then the files built on top of it."""
    here = os.path.dirname(__file__)
    texts = []
    for name in _SCHEDULER_FILES:
        with open(os.path.join(here, name), encoding="utf-8") as fh:
            texts.append(fh.read())
    return tuple(texts)


# What every runtime loads: the blocking functions' check, and a module table that compiles
# the scheduler (the .lua files) the first time a workflow touches it (~0.9 ms with reading
# them, saved by every run that does not).
_BOOT = r"""
local args = table.pack(...)
local S, sources = args[1], args[2]
local load, setmetatable, rawget, rawset, pairs, unpack = load, setmetatable, rawget, rawset,
      pairs, table.unpack
local co_running, co_isyieldable = coroutine.running, coroutine.isyieldable
local GOS = setmetatable({}, {__mode = "k"})      -- coroutine -> goroutine
local SCHEDS = setmetatable({}, {__mode = "k"})   -- owning coroutine -> scheduler
local orig_blocking = S.blocking
local impl

-- Every blocking function made from now on: from a goroutine (or from a task that has live
-- goroutines) its job runs on a thread of ours while the others go on.
S.blocking = function(name)
    local f = orig_blocking(name)
    return function(...)
        local co = co_running()
        local t = GOS[co]
        if t == nil then
            local sched = SCHEDS[co]
            if sched == nil or sched.live <= 0 then return f(...) end
            t = sched.owner
        elseif not co_isyieldable() then
            return f(...)
        end
        local r = impl.go_block_call(t, name, ...)
        return r
    end
end

return setmetatable({}, {__index = function(module, key)
    if impl == nil then
        local sched_source, sync_source, flow_source = sources()
        impl = load(sched_source, "=goroutine", "t")(S, orig_blocking, GOS, SCHEDS,
                                                     unpack(args, 3, args.n))
        load(sync_source, "=goroutine", "t")(impl.M, impl.K)
        load(flow_source, "=goroutine", "t")(impl.M, impl.K)
        for k, v in pairs(impl.M) do rawset(module, k, v) end
        setmetatable(module, nil)
    end
    return rawget(module, key)
end})
"""
