"""The processes that run Lua: the zygote, which loads the file, and the workers forked from it.

The parent (see isolation/pool.py) never runs Lua. It forks the zygote, which loads the file
and sends back a plain description of its workflows. Each worker is a fork of the zygote, so it
starts with the loaded file in memory for the price of a fork, and runs one task at a time:
`run` messages name an action by (workflow, task, kind); the worker runs it to its outcome and
answers `done`. Logs, streamed text and calls to run-wide services (the AI service, which
owns the scrubber, budget, rate limits and the loaded model) go to the parent over the same
socket. Inside a worker a blocking module call simply blocks: the worker has nothing else to do,
and the parent enforces deadlines by killing it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import Blocking, Outcome, Sleep, TaskContext, TaskResult, TaskTimeout
from sloth_runner.errors import LoadError, SlothError
from sloth_runner.isolation.channel import Channel, ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from sloth_runner.lua.loader import LoadedFile
    from sloth_runner.lua.modules import Services


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


class ChannelListener(Listener):
    """Log lines and streamed text of Lua code, sent to the parent (which scrubs and reports)."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        self.link.channel.send("log", level=level, message=message, workflow=workflow, task=task)

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        self.link.channel.send("stream", workflow=workflow, task=task, text=text)


class RemoteAI:
    """The AI service as seen from a worker: every call is answered by the parent's AIService,
    so a run has one scrubber, one budget, one rate limiter and one loaded model."""

    run_id = None

    def __init__(self, link: Link) -> None:
        self.link = link

    def _call(self, method: str, args: dict[str, Any],
              on_token: Callable[[str], None] | None = None) -> Any:
        return self.link.call("ai", method, args, on_token)

    @staticmethod
    def _where(ctx: Any) -> dict[str, Any]:
        return {"workflow": ctx.workflow, "task": ctx.task, "deadline": ctx.deadline} if ctx \
            else {}

    def complete(self, spec: Any, ctx: Any = None, on_token: Any = None,
                 provider: str | None = None) -> Any:
        return self._call("complete", {"spec": spec, "provider": provider, **self._where(ctx)},
                          on_token)

    def chat(self, spec: Any, ctx: Any = None, on_token: Any = None,
             provider: str | None = None) -> Any:
        return self._call("chat", {"spec": spec, "provider": provider, **self._where(ctx)},
                          on_token)

    def decide(self, spec: Any, ctx: Any = None, provider: str | None = None) -> Any:
        return self._call("decide", {"spec": spec, "provider": provider, **self._where(ctx)})

    def generate_code(self, spec: Any, ctx: Any = None, provider: str | None = None) -> Any:
        return self._call("generate_code", {"spec": spec, "provider": provider,
                                            **self._where(ctx)})

    def configure(self, values: dict[str, Any]) -> None:
        self._call("configure", {"values": values})

    def sanitize(self, text: str, options: dict[str, Any]) -> Any:
        return self._call("sanitize", {"text": text, "options": options})

    def restore(self, text: str) -> str:
        return str(self._call("restore", {"text": text}))

    def usage_stats(self) -> Any:
        return self._call("usage_stats", {})

    def analyze_patterns(self, spec: dict[str, Any]) -> Any:
        return self._call("analyze_patterns", {"spec": spec})


# -- the zygote -------------------------------------------------------------------------------
def zygote_main(sock: socket.socket, request: dict[str, Any],
                make_services: Callable[[Link], Services]) -> NoReturn:
    """Entry point of the forked zygote: load the file, describe it, then fork workers."""
    code = 1
    try:
        _become_helper()
        link = Link(Channel(sock))
        services = make_services(link)
        loaded = _load(link, request, services)
        if loaded is not None:
            _serve_spawns(link, loaded, services)
        code = 0
    except BaseException:  # the parent reports our death; say why on stderr when debugging
        if request.get("debug"):
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)


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


def _ignore(signum: int, frame: object) -> None:
    return None


def _load(link: Link, request: dict[str, Any], services: Services) -> LoadedFile | None:
    from sloth_runner.errors import ScriptExit
    from sloth_runner.lua.loader import load_file

    try:
        loaded = load_file(request["path"], services, sandbox=bool(request.get("sandbox")),
                           debug=bool(request.get("debug")))
    except ScriptExit as exc:
        link.channel.send("exit", code=exc.exit_code)
        return None
    except LoadError as exc:
        link.channel.send("load_error", kind=type(exc).__name__, message=str(exc))
        return None
    except SlothError as exc:
        link.channel.send("load_error", kind="LoadError", message=str(exc))
        return None
    link.channel.send("loaded", workflows=loaded.workflows, warnings=loaded.warnings)
    return loaded


def _serve_spawns(link: Link, loaded: LoadedFile, services: Services) -> None:
    # Workers are reaped by the kernel: the zygote never waits for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    channel = link.channel
    while True:
        message = channel.recv()
        if message is None:
            return
        if message["op"] != "spawn":
            raise ProtocolError(f"the zygote cannot '{message['op']}'")
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            channel.close()
            theirs.close()
            _worker_main(mine, link, loaded, services)
        mine.close()
        socket.send_fds(channel.sock, [b'{"v":1,"op":"spawned","pid":%d}\n' % pid],
                        [theirs.fileno()])
        theirs.close()


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
        home = os.getcwd()
        while True:
            message = link.channel.recv()
            if message is None:
                break
            if message["op"] != "run":
                raise ProtocolError(f"a worker cannot '{message['op']}'")
            outcome = _run(message, loaded, services, home)
            link.channel.send("done", id=message.get("id"), outcome=outcome)
        code = 0
    except BaseException:
        if loaded.runtime.debug:
            import traceback

            traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


def _run(message: dict[str, Any], loaded: LoadedFile, services: Services,
         home: str) -> dict[str, Any]:
    kind = message["kind"]
    ctx = TaskContext(message["workflow"], message.get("task") or "", services.params,
                      message.get("deps") or {}, workdir=message.get("workdir"),
                      env=message.get("env"))
    ctx.attempt = int(message.get("attempt") or 1)
    ctx.deadline = message.get("deadline")
    if message.get("result") is not None:
        r = message["result"]
        ctx.result = TaskResult(ctx.task, r.get("status", ""), outputs=r.get("outputs"),
                                error=r.get("error"))
    limit = message.get("memory_limit")
    runtime = loaded.runtime
    try:
        if ctx.workdir:
            try:
                os.chdir(ctx.workdir)
            except OSError as exc:
                return _outcome(Outcome(False, error=f"workdir {ctx.workdir}: "
                                        f"{exc.strerror or exc}"), ctx)
        services.memory_limit = limit
        if limit:
            runtime.lua.set_max_memory(int(limit), total=False)
        shell = message.get("shell")
        if shell is not None:
            from sloth_runner.engine.shell import ShellAction

            action: Any = ShellAction(shell, services.spool, limit)
        else:
            action = loaded.actions.get((ctx.workflow, message.get("task") or "", kind))
            if action is None:
                return _outcome(Outcome(False, error=f"no {kind} action for '{ctx.task}'",
                                        errored=True), ctx)
        try:
            return _outcome(_drive(action, ctx), ctx)
        except TaskTimeout:
            return {"timeout": True, "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb}
    finally:
        if limit:
            runtime.lua.set_max_memory(0)
        services.memory_limit = None
        if ctx.workdir:
            os.chdir(home)


def _drive(action: Any, ctx: TaskContext) -> Outcome:
    """Run an engine action here and now: blocking requests simply block."""
    from sloth_runner.engine.lifecycle import drive

    program = drive(action, ctx)
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = program.throw(error) if error is not None else program.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(request, Blocking):
                value = request.fn(request.progress) if request.progress is not None \
                    else request.fn()
            elif isinstance(request, Sleep):
                time.sleep(max(0.0, request.seconds))
        except TaskTimeout:
            raise
        except Exception as exc:
            error = exc


def _outcome(outcome: Outcome, ctx: TaskContext) -> dict[str, Any]:
    return {"success": outcome.success, "message": outcome.message, "outputs": outcome.outputs,
            "error": outcome.error, "exit_code": outcome.exit_code, "errored": outcome.errored,
            "trace": outcome.trace, "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb}
