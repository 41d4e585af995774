"""The main process's side of worker processes: the zygote, the pool, and the action using them.

- `Zygote` forks the process that holds the loaded file (see lua/host.py) and asks it for
  workers. It is forked when a run that needs workers starts, before the scheduler starts any
  thread (the signal watchdog's thread holds no lock while it waits), so the fork is safe.
- `WorkerPool` hands a fresh worker to each task, for its whole life (conditions, attempts,
  hooks); when the task concludes, the worker is stopped. So every task starts from the file as
  it was loaded, whatever other tasks did. The zygote keeps one spare worker forked ahead, so
  getting one costs a round trip, not a fork.
- `WorkerAction` is an engine action like any other: it sends `run` to the task's worker and
  yields `Readable(socket)` until `done`, forwarding log lines and answering the worker's
  calls on the way. On a deadline or an interruption the scheduler cancels the attempt, which
  kills the worker and everything it started; a worker that did not end its exchange
  normally is never used again.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket

from sloth_runner.engine.model import (
    Blocking,
    Outcome,
    Readable,
    TaskContext,
    TaskInterrupted,
    TaskTimeout,
)
from sloth_runner.errors import WorkerLost, user_message
from sloth_runner.isolation.channel import Channel, ProtocolError, decode
from sloth_runner.services import proctree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from sloth_runner.engine.model import Request

    # service name -> handler(method, args, progress) -> JSON-able value
    Handlers = dict[str, Callable[..., Any]]

_request_ids = itertools.count(1)


class Zygote:
    """The loaded file in a process of its own, and the source of every worker."""

    def __init__(self, child_main: Callable[[socket.socket], None]) -> None:
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the zygote: never returns
            mine.close()
            child_main(theirs)
            os._exit(1)
        theirs.close()
        self.pid = pid
        self.channel = Channel(mine)
        self.closed = False

    def spawn(self) -> Worker:
        if self.closed:
            raise WorkerLost("the run is over: no new workers")
        self.channel.send("spawn")
        data, fds, _, _ = socket.recv_fds(self.channel.sock, 1024, 1)
        if not data or not fds:
            raise WorkerLost("the process that starts workers died")
        message = decode(data.rstrip(b"\n"))
        return Worker(int(message["pid"]), socket.socket(fileno=fds[0]))

    def close(self) -> None:
        """Stop the zygote (its workers die with it: they have a parent-death signal)."""
        if self.closed:
            return
        self.closed = True
        self.channel.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


class Worker:
    __slots__ = ("pid", "channel", "dead")

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.channel = Channel(sock)
        self.dead = False

    def kill(self, tree: bool = True) -> None:
        """Kill the worker: with `tree`, everything it started too (a timeout, an
        interruption); without, only the worker (its task is over: a daemon that task started
        on purpose lives on, as it does when a task runs in the main process)."""
        if not self.dead:  # a worker known to be gone may have a new process's pid now
            self.dead = True
            if tree:
                proctree.kill_tree(self.pid)
            else:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.channel.close()


class WorkerPool:
    """Every worker of the run (for an emergency stop), each used by one task."""

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self._live: dict[int, Worker] = {}

    def acquire(self) -> Worker:
        worker = self.zygote.spawn()
        self._live[worker.pid] = worker
        return worker

    def release(self, worker: Worker, tree: bool = False) -> None:
        self._live.pop(worker.pid, None)
        worker.kill(tree)

    def pids(self) -> list[int]:
        """Every process of the pool, the zygote last (for an emergency stop)."""
        return list(self._live) + [self.zygote.pid]

    def close(self) -> None:
        for worker in list(self._live.values()):
            self.release(worker)
        self.zygote.close()


class Lease:
    """One task's worker, from its first action to its conclusion. Used on the scheduler's
    thread only (the scheduler drives the actions and fires the cancellations)."""

    __slots__ = ("pool", "worker")

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.worker: Worker | None = None

    def current(self) -> Worker:
        """The task's worker; a fresh one if the last was killed (after a timeout, say)."""
        if self.worker is None or self.worker.dead:
            self.worker = self.pool.acquire()
        return self.worker

    def kill(self) -> None:
        """Cancel what runs now: the worker and every process it started die."""
        if self.worker is not None:
            self.pool.release(self.worker, tree=True)

    def release(self) -> None:
        """The task is over."""
        worker, self.worker = self.worker, None
        if worker is not None:
            self.pool.release(worker)


class WorkerAction:
    """An engine action that runs one of the file's actions in the task's worker."""

    __slots__ = ("pool", "forward", "handlers", "kind", "task", "shell", "memory_limit")

    def __init__(self, pool: Callable[[], WorkerPool], forward: Callable[[tuple], None],
                 handlers: Callable[[], Handlers], kind: str, task: str,
                 shell: str | None = None, memory_limit: int | None = None) -> None:
        self.pool = pool  # made on first use: a run whose chosen tasks need none forks none
        self.forward = forward  # gets ("log", level, message, workflow, task) and ("stream", ...)
        self.handlers = handlers
        self.kind = kind
        self.task = task  # "" for workflow hooks
        self.shell = shell
        self.memory_limit = memory_limit

    def __call__(self, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
        lease = ctx.held.get("worker")
        if lease is None:
            lease = ctx.held["worker"] = Lease(self.pool())
        result = ctx.result
        message: dict[str, Any] = {
            "id": next(_request_ids), "workflow": ctx.workflow, "task": self.task,
            "kind": self.kind, "attempt": ctx.attempt, "deps": ctx.deps,
            "deadline": ctx.deadline, "workdir": ctx.workdir, "env": ctx.env,
            "user": ctx.user, "memory_limit": self.memory_limit,
        }
        if self.shell is not None:
            message["shell"] = self.shell
        if result is not None:
            message["result"] = {"status": result.status, "outputs": result.outputs,
                                 "error": result.error}
        unregister = ctx.cancel.on_cancel(lease.kill)
        reusable = False
        try:
            reply = yield from _exchange(lease, message, self.forward, self.handlers(), ctx)
            if reply.get("timeout") and lease.worker is not None:
                lease.worker.dead = True  # its own timer reported and ended it: nothing to kill
            reusable = not reply.get("timeout") and not reply.get("lost")
        finally:
            unregister()
            if not reusable:  # timed out, interrupted, lost: never trust it again
                lease.kill()
        ctx.usage.add(reply.get("cpu_s") or 0.0, reply.get("max_rss_kb") or 0)
        if reply.get("timeout"):
            raise TaskTimeout()
        return Outcome(bool(reply.get("success")), reply.get("message") or "",
                       reply.get("outputs"), reply.get("error"), reply.get("exit_code"),
                       errored=bool(reply.get("errored")), trace=reply.get("trace"))


def _exchange(lease: Lease, message: dict[str, Any], forward: Callable[[tuple], None],
              handlers: Handlers, ctx: TaskContext) -> Generator[Request, Any, dict[str, Any]]:
    """One `run` round trip with the task's worker, on the scheduler's thread: send, then wait
    for the socket to be readable (the scheduler polls it). Logs are forwarded as they come;
    a call from the worker (AI) runs on a pool thread, and its streamed parts and its answer
    are sent back from here."""
    worker = lease.current()
    channel = worker.channel
    try:
        channel.send("run", **message)
        while True:
            if not channel.buffered():
                yield Readable(channel)
            reply = channel.poll_message()
            if reply is None:
                if channel.at_eof:
                    break
                continue
            op = reply["op"]
            if op == "done":
                if reply.get("id") != message["id"]:
                    raise ProtocolError(f"an answer to request {reply.get('id')}, not to "
                                        f"{message['id']}")
                return reply["outcome"]  # type: ignore[no-any-return]
            if op == "call":
                yield from _answer(channel, reply, handlers)
            else:
                forward(_event(reply))
    except (OSError, ProtocolError) as exc:
        if not worker.dead:
            raise WorkerLost(f"lost the worker process: {exc}") from exc
    worker.dead = True  # it is gone (and reaped by the zygote): never signal its pid again
    return {"success": False, "errored": True, "lost": True,
            "error": "the worker process running this task died (killed, crashed or out of "
                     "memory)"}


def _event(message: dict[str, Any]) -> tuple:
    op = message["op"]
    if op == "log":
        return ("log", str(message.get("level")), str(message.get("message")),
                message.get("workflow"), message.get("task"))
    if op == "stream":
        return ("stream", message.get("workflow"), message.get("task"), message.get("text"))
    raise ProtocolError(f"unexpected '{op}' from a worker")


def _answer(channel: Channel, message: dict[str, Any], handlers: Handlers
            ) -> Generator[Request, Any, None]:
    """Answer a worker's call; the handler runs on a pool thread (it may wait for minutes)."""
    call_id = message.get("id")
    handler = handlers.get(str(message.get("service")))
    streaming = bool(message.get("stream"))

    def job(emit: Callable[[Any], None]) -> Any:
        if handler is None:
            raise ProtocolError(f"no service '{message.get('service')}'")
        return handler(str(message.get("method")), message.get("args") or {},
                       emit if streaming else None)

    def progress(item: Any) -> None:  # on the scheduler's thread
        channel.send("progress", id=call_id, item=item)

    try:
        value = yield Blocking(job, progress)
    except (TaskTimeout, TaskInterrupted):
        raise  # the task ends here; its worker is killed (WorkerAction)
    except Exception as exc:
        channel.send("reply", id=call_id, ok=False, error=user_message(exc))
        return
    channel.send("reply", id=call_id, ok=True, value=value)
