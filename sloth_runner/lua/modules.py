"""Thin adapters publishing Python services as Lua modules: exec, log, state, json, yaml, fs
(and, from lua/integrations.py, git, monitoring, notifications and aws).

Each function converts Lua values, calls a service, and converts the answer back; the services
know nothing of Lua. `exec.run` is a blocking op: inside a task it yields to the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable

from sloth_runner.durations import parse_duration
from sloth_runner.grants import Grants
from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import TaskContext
from sloth_runner.lua.convert import lua_type, to_python
from sloth_runner.lua.integrations import install_integrations
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime
from sloth_runner.services import codec, files, process
from sloth_runner.store.state import StateStore

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

EXEC_OPTIONS = {"timeout", "env", "cwd"}


class Services:
    """What the Lua modules talk to. Module functions look these up when called, not when
    installed: a worker forked from the loaded file swaps them for its own (become_worker), so
    its logs and AI calls go to the parent, and it opens its own database connection."""

    def __init__(self, listener: Listener, state: Callable[[], StateStore], spool: str,
                 ai: Callable[[], Any], *, params: dict[str, Any] | None = None,
                 grants: Grants | None = None) -> None:
        self.listener = listener
        self.grants = grants or Grants()  # what the workflow may do (--sandbox, --allow)
        self.state = state  # opened on first use: most workflows never touch state
        self.spool = spool
        self._ai_factory = ai  # the AI stack loads only if a workflow calls it
        self._ai: Any = None
        self.params = params or {}
        self.memory_limit: int | None = None  # of the task running now, for its commands
        self._scrubber: Any = None

    def ai(self) -> Any:
        if self._ai is None:
            self._ai = self._ai_factory()
        return self._ai

    def become_worker(self, listener: Listener, ai: Callable[[], Any],
                      state: Callable[[], StateStore]) -> None:
        """In a process forked from the loaded file: talk to the parent, not to its objects."""
        self.listener = listener
        self._ai_factory, self._ai = ai, None
        self.state = state
        self._scrubber = None

    @property
    def scrubber(self) -> Any:
        """Built on first use (its ~30 compiled patterns are not worth paying for in a run that
        never needs them)."""
        if self._scrubber is None:
            from sloth_runner.scrub import Scrubber

            self._scrubber = Scrubber()
        return self._scrubber


def install_core_modules(rt: LuaRuntime, services: Services) -> None:
    _install_exec(rt, services)
    _install_log(rt, services)
    _install_state(rt, services)
    _install_ai(rt, services)
    install_integrations(rt, services)
    rt.install("json", {
        "encode": rt.wrap(lambda v, pretty=False: codec.json_encode(to_python(v), bool(pretty))),
        "decode": rt.wrap(lambda text: rt.table(codec.json_decode(text))),
    })
    rt.install("yaml", {
        "encode": rt.wrap(lambda v: codec.yaml_encode(to_python(v))),
        "decode": rt.wrap(lambda text: rt.table(codec.yaml_decode(text))),
    })
    rt.install("fs", {
        "read": rt.wrap(files.read),
        "write": rt.wrap(lambda p, c, append=False: files.write(p, _text(c), bool(append))),
        "exists": rt.wrap(files.exists),
        "mkdir": rt.wrap(files.mkdir),
        "rm": rt.wrap(lambda p, opts=None: files.rm(p, bool(_opts(opts).get("recursive")))),
        "ls": rt.wrap(lambda p=".": rt.table(files.ls(p))),
    })


def _install_ai(rt: LuaRuntime, services: Services) -> None:
    from sloth_runner.lua.ai_module import build_ai_module

    build_ai_module(rt, services.ai, services)


def _install_exec(rt: LuaRuntime, services: Services) -> None:
    def prepare(ctx: TaskContext | None, command: Any = None, opts: Any = None) -> Callable:
        cmd = to_python(command)
        if isinstance(cmd, list):
            cmd = [str(part) for part in cmd]
        elif not isinstance(cmd, str) or not cmd.strip():
            raise TypeError("exec.run expects a command string or a list of arguments")
        options = _opts(opts)
        unknown = set(options) - EXEC_OPTIONS
        if unknown:
            raise ValueError(f"exec.run: unknown option '{sorted(unknown)[0]}' "
                             f"(options: {', '.join(sorted(EXEC_OPTIONS))})")
        timeout = parse_duration(options["timeout"]) if "timeout" in options else None
        env = dict(ctx.env or {}) if ctx else {}
        env.update(options.get("env") or {})
        cwd = options.get("cwd") or (ctx.workdir if ctx else None)
        deadline = ctx.deadline if ctx else None
        cancel = ctx.cancel if ctx else None
        limit = services.memory_limit
        return lambda: process.run(cmd, timeout=timeout, deadline=deadline, env=env or None,
                                   cwd=cwd, cancel=cancel, spool=services.spool,
                                   memory_limit=limit)

    def finish(ctx: TaskContext | None, result: process.ExecResult) -> Any:
        if ctx is not None:
            ctx.usage.add(result.cpu_s, result.max_rss_kb)
        return rt.table(result.as_dict())

    rt.install("exec", {"run": rt.blocking("exec.run", BlockingOp(prepare, finish))})


def _install_log(rt: LuaRuntime, services: Services) -> None:
    def emitter(level: str) -> Callable[..., None]:
        def emit(*parts: Any) -> None:
            ctx = rt.current
            message = " ".join(_text(p) for p in parts)
            services.listener.log(level, message, ctx.workflow if ctx else None,
                                  ctx.task if ctx else None)

        return emit

    rt.install("log", {level: rt.wrap(emitter(level)) for level in ("debug", "info", "warn", "error")})
    rt.lua.globals().print = rt.wrap(emitter("print"))


def _install_state(rt: LuaRuntime, services: Services) -> None:
    def state() -> StateStore:
        return services.state()

    def key(k: Any) -> str:
        if not isinstance(k, str) or not k:
            raise TypeError(f"state keys are non-empty strings, got {lua_type(k) or type(k).__name__}")
        return k

    def get(k: Any, default: Any = None) -> Any:
        value = state().get(key(k))
        return rt.table(value) if value is not None else default

    def set_value(k: Any, v: Any) -> bool:
        state().set(key(k), to_python(v))
        return True

    rt.install("state", {
        "get": rt.wrap(get),
        "set": rt.wrap(set_value),
        "delete": rt.wrap(lambda k: state().delete(key(k))),
        "increment": rt.wrap(lambda k, by=1: state().increment(key(k), by)),
        "keys": rt.wrap(lambda prefix="": rt.table(state().keys(prefix or ""))),
    })


def _opts(opts: Any) -> dict:
    if opts is None:
        return {}
    value = to_python(opts)
    if value == []:
        return {}
    if not isinstance(value, dict):
        raise TypeError("options must be a table like {timeout = \"30s\"}")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if lua_type(value) == "table":
        return codec.json_encode(to_python(value))
    return str(to_python(value))
