"""The worker side of task isolation: the zygote and the workers forked from it.

A task with a deadline or a memory limit runs in a worker process (see isolation/pool.py), so
that its timeout holds whatever its code does: a long C call cannot be interrupted, but a
process can be killed. The zygote is forked from the main process right after the file has
loaded, before any thread exists, and does nothing but fork workers: each starts with the
loaded file in memory for the price of a fork. A worker runs one task at a time: `run`
messages name an action by (workflow, task, kind); it runs it to its outcome and answers `done`.
Logs, streamed text and calls to run-wide services (the AI service, which owns the scrubber,
budget, rate limits and the loaded model) go to the main process over the same socket.

Inside a worker a blocking module call simply blocks: the worker has nothing else to do. Its
deadline is enforced twice: by the main process, which kills it, and by a timer thread in the
worker itself (Lua releases the GIL inside C calls), which holds even if the main process is
busy.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from sloth_runner.engine.events import Listener
from sloth_runner.engine.lifecycle import run_now
from sloth_runner.engine.model import Outcome, TaskContext, TaskResult, TaskTimeout
from sloth_runner.errors import SlothError, user_message
from sloth_runner.isolation.channel import Channel, ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from sloth_runner.lua.loader import LoadedFile
    from sloth_runner.lua.services import Services


class RemoteError(SlothError):
    """A run-wide service answered a worker's call with an error (its message says what)."""


class Link:
    """The current connection to the parent: the zygote's during loading, then a worker's own.

    Module adapters hold the Link, not a channel, so that a worker forked from the zygote talks
    on its own socket without rebuilding a single module.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._ids = 0

    def call(self, service: str, method: str, args: dict[str, Any],
             progress: Callable[[Any], None] | None = None) -> Any:
        self._ids += 1
        call_id = self._ids
        self.channel.send("call", id=call_id, service=service, method=method, args=args,
                          stream=progress is not None)
        while True:
            message = self.channel.recv()
            if message is None:
                os._exit(0)  # the parent is gone: nothing left to answer to
            op = message["op"]
            if op == "progress" and message.get("id") == call_id:
                if progress is not None:
                    progress(message.get("item"))
            elif op == "reply" and message.get("id") == call_id:
                if message.get("ok"):
                    return message.get("value")
                raise RemoteError(str(message.get("error")))
            else:
                raise ProtocolError(f"unexpected '{op}' while waiting for a {service} call")


class RemoteScrubber:
    """The run's scrubber, from a worker: the same placeholders as everywhere in the run, and
    the secrets it knows (the configured API key) are known here too."""

    def __init__(self, link: Link, detectors: list[str] | None = None) -> None:
        self.link = link
        self.detectors = detectors

    def scrub(self, text: str) -> tuple[str, list[Any]]:
        args: dict[str, Any] = {"text": text}
        if self.detectors is not None:
            args["detectors"] = self.detectors
        return str(self.link.call("run", "scrub", args)), []

    def derive(self, detectors: list[str]) -> RemoteScrubber:
        """As Scrubber.derive: the run's scrubber with fewer detectors, done by the run."""
        return RemoteScrubber(self.link, list(detectors))


class ChannelListener(Listener):
    """Log lines and streamed text of Lua code, sent to the parent (which scrubs and reports)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        self.link.channel.send("log", level=level, message=message, workflow=workflow, task=task)

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        self.link.channel.send("stream", workflow=workflow, task=task, text=text)


# -- the zygote -------------------------------------------------------------------------------
def zygote_main(sock: socket.socket, loaded: LoadedFile, services: Services) -> NoReturn:
    """Entry point of the forked zygote: fork a worker for every `spawn` until the end."""
    code = 1
    try:
        _become_helper()
        link = Link(Channel(sock))
        services.become_worker(ChannelListener(link), _remote_ai(link), _own_state(),
                               lambda: RemoteScrubber(link))
        _serve_spawns(link, loaded, services)
        code = 0
    except BaseException:
        if loaded.runtime.debug:
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)


def _remote_ai(link: Link) -> Callable[[], Any]:
    from sloth_runner.lua.ai_module import AIGateway

    return lambda: AIGateway(lambda method, args, on_token: link.call("ai", method, args,
                                                                      on_token))


def _own_state() -> Callable[[], Any]:
    """A database connection per process: one is never shared across a fork."""
    opened: dict[int, Any] = {}

    def state() -> Any:
        from sloth_runner.store import Store
        from sloth_runner.store.state import StateStore

        pid = os.getpid()
        if pid not in opened:
            opened.clear()
            opened[pid] = StateStore(Store())
        return opened[pid]

    return state


def _become_helper() -> None:
    """Die with the parent; leave Ctrl-C, hang-ups and SIGTERM to the parent, which stops the
    run properly (a terminal sends SIGINT to the whole process group). Python-level no-op
    handlers, not SIG_IGN: a handler resets to the default in the commands a worker execs,
    an ignored signal would stay ignored in them."""
    from sloth_runner.services import proctree

    proctree.die_with_parent()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, _ignore)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass


def _ignore(signum: int, frame: object) -> None:
    return None


def _serve_spawns(link: Link, loaded: LoadedFile, services: Services) -> None:
    """Hand out workers. One spare is always forked ahead, so a task waits for a round trip,
    not for a fork (which then happens while the task runs)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps workers: no zombies
    import gc

    gc.freeze()  # workers' collections then never touch (and copy) the pages they share
    channel = link.channel
    spares = [_fork_worker(link, loaded, services) for _ in range(_SPARES)]
    while True:
        message = channel.recv()
        if message is None:
            return
        if message["op"] != "spawn":
            raise ProtocolError(f"the zygote cannot '{message['op']}'")
        pid, theirs = spares.pop(0)
        socket.send_fds(channel.sock, [b'{"v":1,"op":"spawned","pid":%d}\n' % pid],
                        [theirs.fileno()])
        theirs.close()
        spares.append(_fork_worker(link, loaded, services))


_SPARES = 2  # workers forked ahead: enough to start tasks in parallel without waiting


def _fork_worker(link: Link, loaded: LoadedFile, services: Services
                 ) -> tuple[int, socket.socket]:
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        link.channel.close()
        theirs.close()
        _worker_main(mine, link, loaded, services)
    mine.close()
    return pid, theirs


# -- a worker ---------------------------------------------------------------------------------
def _worker_main(sock: socket.socket, link: Link, loaded: LoadedFile,
                 services: Services) -> NoReturn:
    code = 1
    try:
        from sloth_runner.services import proctree

        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # commands must be able to wait for theirs
        proctree.die_with_parent()
        proctree.become_subreaper()  # what a task's commands leave behind stays in our tree
        link.channel = Channel(sock)
        while True:
            message = link.channel.recv()
            if message is None:
                break
            if message["op"] != "run":
                raise ProtocolError(f"a worker cannot '{message['op']}'")
            with _Deadline(message, link):
                outcome = _run(message, loaded, services)
            link.channel.send("done", id=message.get("id"), outcome=outcome)
        code = 0
    except BaseException:
        if loaded.runtime.debug:
            import traceback

            traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


class _Deadline:
    """A timer thread that ends the worker at its deadline, even inside a long C call: it kills
    what the task started, reports the timeout itself, and exits."""

    def __init__(self, message: dict[str, Any], link: Link) -> None:
        self.deadline = message.get("deadline")
        self.request = message.get("id")
        self.link = link
        self.timer: Any = None

    def __enter__(self) -> _Deadline:
        if self.deadline is not None:
            import threading

            delay = max(0.0, self.deadline - time.monotonic()) + _DEADLINE_SLACK_S
            self.timer = threading.Timer(delay, self._expire)
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _expire(self) -> None:
        from sloth_runner.services import proctree

        proctree.kill_tree(os.getpid(), include_root=False)
        try:
            self.link.channel.send("done", id=self.request, outcome={"timeout": True})
        finally:
            os._exit(0)


# The Lua hook ends an overrunning task cleanly first; the timer is for when it cannot.
_DEADLINE_SLACK_S = 0.2


def _run(message: dict[str, Any], loaded: LoadedFile, services: Services) -> dict[str, Any]:
    """One action, as the main process would run it (its workdir is an absolute path that
    commands and `fs` use; the worker's own directory does not change)."""
    kind = message["kind"]
    ctx = TaskContext(message["workflow"], message.get("task") or "", services.params,
                      message.get("deps") or {}, workdir=message.get("workdir"),
                      env=message.get("env"), user=message.get("user"))
    ctx.attempt = int(message.get("attempt") or 1)
    ctx.deadline = message.get("deadline")
    if message.get("result") is not None:
        r = message["result"]
        ctx.result = TaskResult(ctx.task, r.get("status", ""), outputs=r.get("outputs"),
                                error=r.get("error"))
    limit = message.get("memory_limit")
    runtime = loaded.runtime
    try:
        services.memory_limit = limit
        if limit:
            runtime.lua.set_max_memory(int(limit), total=False)
        shell = message.get("shell")
        if shell is not None:
            from sloth_runner.engine.shell import ShellAction

            action: Any = ShellAction(shell, services.spool, limit,
                                      services.grants.process_env())
        else:
            action = loaded.actions.get((ctx.workflow, message.get("task") or "", kind))
            if action is None:
                return _outcome(Outcome(False, error=f"no {kind} action for '{ctx.task}'",
                                        errored=True), ctx)
        try:
            return _outcome(run_now(action, ctx), ctx)
        except TaskTimeout:
            # Stopped by the Lua hook, not by the timer that kills the worker whole: what the
            # task started (`exec.run("… &")`) must not outlive its attempt.
            from sloth_runner.services import proctree

            ctx.cancel.cancel()
            proctree.kill_tree(os.getpid(), include_root=False)
            return {"timeout": True, "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb}
        except Exception as exc:  # a bug of ours in an action: an error, with its traceback
            import traceback

            return _outcome(Outcome(False, error=user_message(exc), errored=True,
                                    trace=traceback.format_exc()), ctx)
    finally:
        if limit:
            runtime.lua.set_max_memory(0)
        services.memory_limit = None


def _outcome(outcome: Outcome, ctx: TaskContext) -> dict[str, Any]:
    """The outcome as a message: only the fields that say something (it crosses per task)."""
    out: dict[str, Any] = {"success": outcome.success}
    for name in ("message", "outputs", "error", "exit_code", "errored", "trace"):
        value = getattr(outcome, name)
        if value or (value is not None and name == "exit_code"):
            out[name] = value
    usage = ctx.usage
    if usage.cpu_s or usage.max_rss_kb:
        out["cpu_s"], out["max_rss_kb"] = usage.cpu_s, usage.max_rss_kb
    return out
