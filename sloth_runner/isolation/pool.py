"""The parent's side of worker processes: the zygote, the pool, and the action that uses them.

- `Zygote` forks the process that loads the workflow file (see lua/host.py) and asks it for
  workers; it is forked before the parent starts any thread, so the fork is safe.
- `WorkerPool` hands a worker to a task for its whole life (conditions, attempts, hooks) and
  takes it back when the task concludes; a killed or crashed worker is replaced by a fresh fork.
- `WorkerAction` is an engine action like any other: it yields one `Blocking` request whose job
  sends `run` to the task's worker and waits for `done`, forwarding logs and answering the
  worker's calls on the way. On a deadline or an interruption the scheduler cancels the
  attempt, which kills the worker and everything it started.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

from sloth_runner.engine.model import (
    Blocking,
    Outcome,
    Readable,
    TaskContext,
    TaskInterrupted,
    TaskTimeout,
)
from sloth_runner.errors import LoadError, ScriptExit, WorkerLost, user_message
from sloth_runner.isolation.channel import Channel, ProtocolError, decode
from sloth_runner.services import proctree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from sloth_runner.engine.events import Listener
    from sloth_runner.engine.model import Request

    # service name -> handler(method, args, ctx, progress) -> JSON-able value
    Handlers = dict[str, Callable[..., Any]]


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
        self._lock = threading.Lock()
        self.closed = False

    def loaded(self, listener: Listener, handlers: Handlers) -> dict[str, Any]:
        """Wait for the file to load; serve its logs and calls meanwhile. Raises LoadError."""
        while True:
            message = self.channel.recv()
            if message is None:
                raise LoadError("the process loading the workflow file died "
                                f"({_exit_status(self.pid)})")
            op = message["op"]
            if op == "loaded":
                return message
            if op == "load_error":
                raise _load_error(message.get("kind"), str(message.get("message")))
            if op == "exit":
                raise ScriptExit(int(message.get("code") or 0))
            _serve_now(self.channel, message, listener, handlers)

    def spawn(self) -> Worker:
        with self._lock:
            if self.closed:
                raise WorkerLost("the run is over: no new workers")
            self.channel.send("spawn")
            data, fds, _, _ = socket.recv_fds(self.channel.sock, 1024, 1)
            if not data or not fds:
                raise WorkerLost(f"the zygote died ({_exit_status(self.pid)})")
            message = decode(data.rstrip(b"\n"))
            return Worker(int(message["pid"]), socket.socket(fileno=fds[0]))

    def close(self) -> None:
        """Stop the zygote (its workers die with it: they have a parent-death signal)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.channel.close()
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


class Worker:
    __slots__ = ("pid", "channel", "dead")

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.channel = Channel(sock)
        self.dead = False

    def kill(self, tree: bool = True) -> None:
        """Kill the worker: with `tree`, everything it started too (a timeout, an
        interruption); without, only the worker (the run is over: a daemon a finished task
        started on purpose lives on, as it does when the task ran in the main process)."""
        if not self.dead:
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
    """Idle workers, reused across tasks; at most one task uses a worker at a time."""

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self._idle: list[Worker] = []
        self._all: list[Worker] = []
        self._lock = threading.Lock()

    def acquire(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if not worker.dead:
                    return worker
        worker = self.zygote.spawn()
        with self._lock:
            self._all.append(worker)
        return worker

    def release(self, worker: Worker) -> None:
        with self._lock:
            if not worker.dead:
                self._idle.append(worker)

    def pids(self) -> list[int]:
        """Every process of the pool, the zygote last (for an emergency stop)."""
        return [w.pid for w in list(self._all)] + [self.zygote.pid]

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = self._all, [], []
        for worker in workers:
            worker.kill(tree=False)
        self.zygote.close()


class Lease:
    """One task's claim on a worker, from its first action to its conclusion."""

    __slots__ = ("pool", "worker", "_lock", "cancelled")

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.worker: Worker | None = None
        self._lock = threading.Lock()
        self.cancelled = False

    def current(self) -> Worker:
        """The task's worker, a fresh one if the last was killed (on the job's thread)."""
        with self._lock:
            self.cancelled = False
            if self.worker is not None and not self.worker.dead:
                return self.worker
        worker = self.pool.acquire()
        with self._lock:
            self.worker = worker
            if self.cancelled:  # cancelled while we were spawning
                worker.kill()
        return worker

    def kill(self) -> None:
        """Cancel what runs now: the worker and every process it started die."""
        with self._lock:
            self.cancelled = True
            worker = self.worker
        if worker is not None:
            worker.kill()

    def release(self) -> None:
        with self._lock:
            worker, self.worker = self.worker, None
        if worker is not None:
            self.pool.release(worker)


class WorkerAction:
    """An engine action that runs one of the file's actions in the task's worker."""

    __slots__ = ("pool", "forward", "handlers", "kind", "task", "shell", "memory_limit")

    def __init__(self, pool: WorkerPool, forward: Callable[[tuple], None], handlers: Handlers,
                 kind: str, task: str, shell: str | None = None,
                 memory_limit: int | None = None) -> None:
        self.pool = pool
        self.forward = forward  # gets ("log", level, message, workflow, task) and ("stream", ...)
        self.handlers = handlers
        self.kind = kind
        self.task = task  # "" for workflow hooks
        self.shell = shell
        self.memory_limit = memory_limit

    def __call__(self, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
        lease = ctx.held.get("worker")
        if lease is None:
            lease = ctx.held["worker"] = Lease(self.pool)
        result = ctx.result
        message: dict[str, Any] = {
            "workflow": ctx.workflow, "task": self.task, "kind": self.kind,
            "attempt": ctx.attempt, "deps": ctx.deps, "deadline": ctx.deadline,
            "workdir": ctx.workdir, "env": ctx.env, "memory_limit": self.memory_limit,
        }
        if self.shell is not None:
            message["shell"] = self.shell
        if result is not None:
            message["result"] = {"status": result.status, "outputs": result.outputs,
                                 "error": result.error}
        unregister = ctx.cancel.on_cancel(lease.kill)
        try:
            reply = yield from _exchange(lease, message, self.forward, self.handlers, ctx)
        finally:
            unregister()
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
                return reply["outcome"]  # type: ignore[no-any-return]
            if op == "call":
                yield from _answer(channel, reply, handlers, ctx)
            else:
                forward(_event(reply))
    except (OSError, ProtocolError) as exc:
        if not worker.dead:
            worker.kill()
            raise WorkerLost(f"lost the worker process: {exc}") from exc
    worker.dead = True
    return {"success": False, "errored": True,
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


def _answer(channel: Channel, message: dict[str, Any], handlers: Handlers,
            ctx: TaskContext | None) -> Generator[Request, Any, None]:
    """Answer a worker's call; the handler runs on a pool thread (it may wait for minutes)."""
    call_id = message.get("id")
    handler = handlers.get(str(message.get("service")))
    streaming = bool(message.get("stream"))

    def job(emit: Callable[[Any], None]) -> Any:
        if handler is None:
            raise ProtocolError(f"no service '{message.get('service')}'")
        return handler(str(message.get("method")), message.get("args") or {}, ctx,
                       emit if streaming else None)

    def progress(item: Any) -> None:  # on the scheduler's thread
        channel.send("progress", id=call_id, item=item)

    try:
        value = yield Blocking(job, progress)
    except (TaskTimeout, TaskInterrupted):
        raise  # the task ends here; its worker is being killed
    except Exception as exc:
        channel.send("reply", id=call_id, ok=False, error=user_message(exc))
        return
    channel.send("reply", id=call_id, ok=True, value=value)


def _serve_now(channel: Channel, message: dict[str, Any], listener: Listener,
               handlers: Handlers) -> None:
    """While the file loads (no scheduler yet): a log line, a stream, or a call, answered here."""
    if message["op"] != "call":
        item = _event(message)
        if item[0] == "log":
            listener.log(*item[1:])
        else:
            listener.stream(*item[1:])
        return
    program = _answer(channel, message, handlers, None)
    request = next(program)
    assert isinstance(request, Blocking)
    try:
        value = request.fn(lambda item: channel.send("progress", id=message.get("id"),
                                                     item=item))
    except Exception as exc:
        try:
            program.throw(exc)
        except StopIteration:
            return
    else:
        try:
            program.send(value)
        except StopIteration:
            return


def _load_error(kind: Any, message: str) -> LoadError:
    from sloth_runner import errors

    cls = getattr(errors, str(kind), LoadError)
    if not (isinstance(cls, type) and issubclass(cls, LoadError)):
        cls = LoadError
    return cls(message)


def _exit_status(pid: int) -> str:
    """How a child ended, for messages; 'exited' when it was not ours to wait for."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "it exited"
    if got == 0:
        return "it stopped answering"
    if os.WIFSIGNALED(status):
        import signal

        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
