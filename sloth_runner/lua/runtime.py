"""One Lua 5.4 state per run, the sandbox, and the bridge that runs Lua functions as engine actions.

Concurrency model (see docs/ARCHITECTURE.md): every task attempt is a Lua coroutine on the
scheduler's thread. A module call that blocks (exec.run, later AI calls) yields the coroutine with
a request; the scheduler runs the blocking part on a worker thread and resumes the coroutine with
the answer. Lua itself never runs on two threads, so one state serves every task, values flow
between tasks without copying, and lupa's per-runtime lock is never contended.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator

from lupa import lua54

from sloth_runner.engine.model import (
    Blocking,
    Outcome,
    Request,
    TaskContext,
    TaskInterrupted,
    TaskTimeout,
)
from sloth_runner.errors import LuaScriptError, ScriptExit, is_internal, user_message
from sloth_runner.lua.convert import to_lua, to_python

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

_SETUP = """
local sandbox, exit_mt = ...
python = nil
package.loaded.python = nil
-- os.exit would end the process running the file, not what the user means inside a task; it
-- becomes an error object that the loader turns into the script's exit code at top level.
local getinfo = debug.getinfo
os.exit = function(code)
    if code == nil or code == true then code = 0 elseif code == false then code = 1 end
    local caller = getinfo(2, "Sl")
    local where = caller and caller.source:sub(1, 1) == "@" and
                  (caller.source:sub(2) .. ":" .. caller.currentline .. ": ") or ""
    error(setmetatable({code = math.tointeger(code) or 1, where = where}, exit_mt), 2)
end
if sandbox then
    -- Processes, files and the environment are taken away here and handed, once, to the module
    -- installer (lua/modules.py: _install_sandbox), which gives back what --allow grants. The
    -- hand-over removes itself when called; the loader installs the modules, so it is gone
    -- before any user code runs.
    local kept = {io = io, execute = os.execute, remove = os.remove, rename = os.rename,
                  tmpname = os.tmpname, getenv = os.getenv}
    __sloth_kept = function() __sloth_kept = nil; return kept end
    io = nil; package.loaded.io = nil
    for _, name in ipairs({"execute", "remove", "rename", "tmpname", "setlocale"}) do
        os[name] = nil
    end
    os.getenv = function(name)
        if type(name) ~= "string" then error("bad argument #1 to 'getenv' (string expected)", 2) end
        return nil
    end
    string.dump = nil
    local rawload = load
    load = function(chunk, name, mode, ...)  -- text only: bytecode can break the VM
        if select("#", ...) == 0 then return rawload(chunk, name, "t") end
        return rawload(chunk, name, "t", ...)
    end
    dofile = nil; loadfile = nil
    package.loadlib = nil; package.cpath = ""; package.path = ""
    package.searchers = {package.searchers[1], package.searchers[2]}  -- preload, ours (text)
    debug = nil; package.loaded.debug = nil
end
"""

_LOAD_FILE = """
local traceback = debug.traceback
local exit_mt = {__tostring = function(e)
    return ("%sos.exit(%d) called inside a task: a task cannot end sloth-runner; return false "
            .. "(or call error()) to fail it"):format(e.where or "", e.code)
end}
return function(source, chunkname)
    local fn, err = load(source, chunkname, "t")
    if not fn then return false, err, nil end
    local ok, e = xpcall(fn, function(m)
        if getmetatable(m) == exit_mt then return m end
        return {m, traceback(m, 2)}
    end)
    if ok then  -- a hook file returns {name, event_type(s), execute}, or defines on_event
        local hookish = type(e) == "table" and type(e.execute) == "function"
                        or type(rawget(_G, "on_event")) == "function"
        return true, hookish, nil
    end
    if getmetatable(e) == exit_mt then return "exit", e.code, nil end
    if type(e) == "table" then return false, tostring(e[1]), e[2] end
    return false, tostring(e), nil
end, exit_mt
"""

_WRAP = """
local raise, clean_args = ...
local function finish(ok, ...)
    if not ok then raise((...)) end
    return ...
end
return function(pyfn) return function(...) return finish(pyfn(clean_args(...))) end end
"""


class BlockingOp:
    """A module call whose work runs off the Lua thread.

    `prepare(ctx, *lua_args)` runs on the Lua thread, converts arguments and returns the job;
    `finish(ctx, result)` converts the job's result back into a Lua value.
    """

    __slots__ = ("prepare", "finish")

    def __init__(self, prepare: Callable[..., Callable[[], Any]],
                 finish: Callable[[TaskContext | None, Any], Any]) -> None:
        self.prepare = prepare
        self.finish = finish


# Modules of the Go sloth-runner that this version does not have (README: "Coming from the Go
# sloth-runner"); an error about one of these globals says so.
GO_ONLY_MODULES = frozenset({
    "pkg", "systemd", "user", "nixos", "frp", "watcher", "firewall", "file_ops", "sloth",
    "incus", "docker", "kubernetes", "helm", "terraform", "pulumi", "salt", "infra_test",
    "facts", "ssh", "stow", "lvm", "raid", "sysctl", "nfs", "smb", "cron", "gitops", "agent",
    "digitalocean", "azure", "gcp", "reliability", "metrics", "template", "crypto", "data",
    "db", "database", "observability", "network", "circuit", "saga", "security", "system",
    "utils", "validate", "monitor", "notify", "chain", "parallel", "perf", "resource",
    "assert_equal", "assert_not_nil",
})


def error_message(exc: BaseException, ctx: TaskContext | None = None) -> str:
    """The message a Lua caller sees; an internal failure is also noted on the task's context,
    so that the task ends as an *error* (it could not run), not as a failure."""
    message = user_message(exc)
    if ctx is not None and is_internal(exc):
        import traceback

        ctx.fault = (message, "".join(traceback.format_exception(exc)))
    return message


class LuaRuntime:
    def __init__(self, *, sandbox: bool = False, debug: bool = False) -> None:
        self.sandbox = sandbox
        self.debug = debug
        self.lua = lua54.LuaRuntime(
            unpack_returned_tuples=True,
            max_memory=0,  # tracked, unlimited; :memory_limit() sets a limit per task
            register_eval=False,
            register_builtins=False,
            attribute_filter=self._deny_all if sandbox else self._deny_private,
        )
        self.ops: dict[str, BlockingOp] = {}
        self.current: TaskContext | None = None  # the task whose Lua code is running now
        # before the sandbox removes debug
        self._load_file, exit_mt = self.lua.execute(_LOAD_FILE)
        self.stopping = False  # set by interrupt(): every task's Lua code raises at its next hook
        self.calls = 0  # module calls so far: did the top-level code of a file do anything?
        host = self.lua.table_from({"check": self._check, "call_sync": self._call_sync,
                                    "cwd": os.getcwd, "read_source": self._read_source})
        self.S = self.lua.execute(_source("prelude.lua"), host)
        self.lua.execute(_source("dsl.lua"), self.S, host)
        self.lua.execute(_source("imports.lua"), self.S, host)
        self._wrap = self.lua.execute(_WRAP, self.S.raise_error, self.S.clean_args)
        self.lua.execute(_SETUP, sandbox, exit_mt)
        self._start = self.S.start
        self._outcome = self.S.outcome
        self._start_task = self.S.start_task
        self._params_cache: dict[int, tuple[dict, Any]] = {}
        self._pcall = self.lua.eval(
            "function(f, ...) local r = table.pack(pcall(f, ...)) "
            "if not r[1] then r[2] = tostring(r[2]) end return table.unpack(r, 1, r.n) end")
        self._chunks: list[str] = []

    def _read_source(self, path: Any) -> tuple:
        """For import() and require(): a Lua file's text, or (None, why). Its path is kept so
        that an error from it can be shown with the whole path (see full_paths)."""
        found = _read_source(path)
        if found[0] is not None and str(path) not in self._chunks:
            self._chunks.append(str(path))
        return found

    def _check(self, deadline: float | None) -> int:
        """Asked by the Lua hook of a running task: 2 interrupted, 1 past deadline, 0 go on."""
        if self.stopping:
            return 2
        if deadline is not None and time.monotonic() >= deadline:
            return 1
        return 0

    def interrupt(self) -> None:
        """Stop Lua code wherever it runs in this state, at its next hook (a pcall cannot
        swallow it). Safe in a signal handler."""
        self.stopping = True

    # -- attribute filters: no route from Lua into Python internals --------------------------
    @staticmethod
    def _deny_private(obj: Any, name: Any, is_setting: bool) -> Any:
        if not isinstance(name, str) or name.startswith("_"):
            raise AttributeError("access to Python internals is not allowed from Lua")
        return name

    @staticmethod
    def _deny_all(obj: Any, name: Any, is_setting: bool) -> Any:
        raise AttributeError("access to Python objects is not allowed in the sandbox")

    # -- modules -------------------------------------------------------------------------------
    def wrap(self, fn: Callable[..., Any]) -> Any:
        """A Lua function calling `fn`; Python errors become Lua errors at the caller's line."""

        def call(*args: Any) -> tuple:
            self.calls += 1
            try:
                result = fn(*args)
            except Exception as exc:
                return (False, error_message(exc, self.current))
            if isinstance(result, tuple):
                return (True, *result)
            return (True, result)

        return self._wrap(call)

    def blocking(self, name: str, op: BlockingOp) -> Any:
        """A Lua function that yields `op` to the scheduler when called from a task."""
        self.ops[name] = op
        return self.S.blocking(name)

    def install(self, name: str, members: dict[str, Any], *, as_global: bool = True) -> Any:
        """Publish a module table as `require(name)` and, by default, as a global."""
        table = self.lua.table_from(members)
        self.lua.globals().package.loaded[name] = table
        if as_global:
            self.lua.globals()[name] = table
        return table

    def _call_sync(self, name: str, *args: Any) -> tuple:
        """A blocking op called where a yield is impossible: run it here and now."""
        self.calls += 1
        op = self.ops[name]
        try:
            job = op.prepare(self.current, *args)
            if isinstance(job, Blocking):
                result = job.fn(job.progress) if job.progress is not None else job.fn()
            else:
                result = job()
            return (True, op.finish(self.current, result))
        except Exception as exc:
            return (False, error_message(exc, self.current))

    # -- loading -------------------------------------------------------------------------------
    def run_file(self, source: str, chunkname: str, debug: bool = False) -> bool:
        """Run a file's top-level code; True when it returned a hook definition (a table with
        `execute`), which belongs to `sloth-runner hook add`, not to `run`."""
        self._chunks.append(chunkname)
        self.S.watch_main()
        try:
            ok, message, trace = self._load_file(source, "@" + chunkname)
        finally:
            self.S.unwatch_main()
        if self.stopping:
            raise KeyboardInterrupt("interrupted while loading")
        if ok == "exit":
            raise ScriptExit(int(message))
        if not ok:
            text = self.user_error(str(message))
            if debug and trace:
                text += "\n" + str(trace)
            raise LuaScriptError(text)
        return bool(message)

    def user_error(self, message: str) -> str:
        """A Lua error as the user sees it: full paths, and a word on the Go project's modules
        this version does not have (`attempt to index a nil value (global 'pkg')` says
        nothing to someone who has always had `pkg`)."""
        message = self.full_paths(message)
        for before, after in (("a nil value (global '", "')"), ("module '", "' not found")):
            if before in message and after in message.split(before, 1)[1]:
                name = message.split(before, 1)[1].split(after, 1)[0]
                if name in GO_ONLY_MODULES:
                    note = f" ('{name}' is a module of the Go sloth-runner that this version " \
                           "does not have)"
                    end = message.index(before) + len(before) + len(name) + len(after)
                    return message[:end] + note + message[end:]
        return message

    def full_paths(self, message: str) -> str:
        """Lua shortens long chunk names to "...tail"; put the full file path back."""
        if "..." not in message:
            return message
        for path in self._chunks:
            for cut in range(len(path)):
                tail = path[cut:]
                if len(tail) < len(path) and "..." + tail + ":" in message:
                    return message.replace("..." + tail + ":", path + ":")
        return message

    def call_plain(self, fn: Any, *args: Any) -> Any:
        """Call a Lua function outside any task (workflow hooks); its error becomes LuaScriptError."""
        reply = self._pcall(fn, *args)
        if not isinstance(reply, tuple):
            reply = (reply,)
        if not reply[0]:
            raise LuaScriptError(self.user_error(str(reply[1])))
        return to_python(reply[1]) if len(reply) > 1 else None

    def table(self, value: Any) -> Any:
        return to_lua(self.lua, value)

    # -- running Lua functions as engine actions -------------------------------------------
    def drive(self, step: Any, close: Any, ctx: TaskContext,
              first: tuple = ()) -> Generator[Request, Any, tuple]:
        """Resume a task coroutine until it finishes, serving its blocking calls.

        Returns ("done", values...) or ("error", message, traceback); raises TaskTimeout.
        """
        send: tuple = first
        while True:
            previous, self.current = self.current, ctx
            try:
                reply = step(*send)
            finally:
                self.current = previous
            if not isinstance(reply, tuple):
                reply = (reply,)
            tag = reply[0]
            if tag == "done" or tag == "error":
                return reply
            if tag == "timeout":
                raise TaskTimeout()
            if tag == "interrupted":
                raise TaskInterrupted("interrupted")
            name, lua_args = reply[1], reply[2:]
            op = self.ops[name]
            try:
                job = op.prepare(ctx, *lua_args)
            except Exception as exc:
                send = (False, error_message(exc, ctx))
                continue
            try:
                value = yield job if isinstance(job, Blocking) else Blocking(job)
            except (TaskTimeout, TaskInterrupted):
                close()
                raise
            except Exception as exc:
                send = (False, error_message(exc, ctx))
                continue
            try:
                send = (True, op.finish(ctx, value))
            except Exception as exc:
                send = (False, error_message(exc, ctx))

    def base_params(self, params: dict) -> Any:
        """The run's params as a Lua table, converted once per run, not once per task."""
        cached = self._params_cache.get(id(params))
        if cached is None or cached[0] is not params:
            cached = (params, to_lua(self.lua, params))
            self._params_cache[id(params)] = cached
        return cached[1]


def _read_source(path: Any) -> tuple:
    """For import() and require(): a Lua file's text, or (None, why)."""
    try:
        with open(str(path), encoding="utf-8", errors="replace") as fh:
            return (fh.read(),)
    except OSError as exc:
        return (None, exc.strerror or str(exc))


def _source(name: str) -> str:
    with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as fh:
        return fh.read()


class LuaAction:
    """An engine action backed by a Lua function: a command, a condition (run_if, abort_if),
    a task hook (on_success, on_failure, pre_hook, post_hook, on_timeout) or a workflow hook
    (on_start, on_complete). `this` marks a Go-style function, called with the task's `this`
    object first."""

    __slots__ = ("rt", "fn", "kind", "this")

    def __init__(self, rt: LuaRuntime, fn: Any, kind: str, this: bool = False) -> None:
        self.rt, self.fn, self.kind, self.this = rt, fn, kind, this

    def __call__(self, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
        rt = self.rt
        kind = self.kind
        if kind in _WITH_DEPS:
            # Dependencies without outputs (most of them) are named, not converted: Lua gives
            # each an empty table.
            given = {name: out for name, out in ctx.deps.items() if out} if ctx.deps else None
            empty = [name for name, out in ctx.deps.items() if not out] if ctx.deps else ()
            step, close = rt._start_task(self.fn, ctx.deadline, rt.base_params(ctx.params),
                                         ctx.workflow, ctx.task, self.this, ctx.workdir,
                                         rt.table(given) if given else None, *empty)
            first: tuple = ()
        else:
            step, close = rt._start(self.fn, ctx.deadline)
            first = self._arguments(ctx)
        ctx.fault = None
        reply = yield from rt.drive(step, close, ctx, first)
        if reply[0] == "error":
            error = rt.user_error(str(reply[1]))
            if len(reply) > 2 and reply[2] and rt.debug:
                error += "\n" + str(reply[2])
            fault = ctx.fault
            if fault is not None and fault[0] in error:  # it ended on an internal failure
                return Outcome(False, error=error, errored=True, trace=fault[1])
            return Outcome(False, error=error)
        values = reply[1:]
        if kind in _DECIDES:  # run_if, abort_if: the first value says
            return Outcome(bool(values and values[0]))
        if kind in _VETOES or kind.startswith("heal:"):  # false (and a message) says no
            ok = not values or values[0] is not False
            message = values[1] if len(values) > 1 and isinstance(values[1], str) else ""
            return Outcome(ok, message, error=None if ok else (message or f"{kind} returned "
                                                                          "false"))
        if kind != "command":
            return Outcome(True)
        verdict = rt._outcome(*values)
        if not isinstance(verdict, tuple):
            verdict = (verdict,)
        ok, message, outputs, exit_code = (*verdict, None, None, None, None)[:4]
        if ok is None:  # said where the function is, since the value has no position
            where = rt.S.defined_at(self.fn)
            prefix = f"{rt.full_paths(where + ':')} task '{ctx.task}': " if where else ""
            return Outcome(False, error=prefix + str(message))
        py_outputs = to_python(outputs) if outputs is not None else None
        text = "" if message is None else str(to_python(message))
        if exit_code is not None and not ok and not text:  # (its output's tail is shown)
            text = f"exit code {exit_code}"
        return Outcome(bool(ok), text, py_outputs, exit_code=exit_code)

    def _arguments(self, ctx: TaskContext) -> tuple:
        """What a hook is called with (after `this`, for a Go-style one)."""
        rt, kind, result = self.rt, self.kind, ctx.result
        if kind == "on_start":  # on_start(params)
            return (rt.base_params(ctx.params),)
        if kind == "on_complete":  # on_complete(success, results); results in .outputs
            return (bool(result and result.status == "success"),
                    rt.table(result.outputs if result and result.outputs else {}))
        params = rt.base_params({**ctx.params, "task_name": ctx.task,
                                 "workflow_name": ctx.workflow})
        if kind.startswith("heal:"):  # (params, failure): what the failed attempt said
            outputs = result.outputs if result and isinstance(result.outputs, dict) else {}
            failure = {"error": result.error if result else None,
                       "status": result.status if result else None,
                       "attempts": result.attempts if result else 0, "task_name": ctx.task,
                       "stdout": outputs.get("stdout"), "stderr": outputs.get("stderr")}
            return (params, rt.table({k: v for k, v in failure.items() if v is not None}))
        if kind in ("on_success", "post_hook"):  # (params, outputs)
            args: tuple = (params, rt.table(result.outputs if result and result.outputs
                                             else {}))
        elif kind == "on_failure":  # (params, error); Go-style: (this, params, {error, task_name})
            error = result.error if result else None
            args = (params, rt.table({"error": error, "task_name": ctx.task}) if self.this
                    else error)
        else:  # on_timeout(params)
            args = (params,)
        if self.this:
            return (rt.S.make_this(ctx.task, ctx.workdir), *args)
        return args


_WITH_DEPS = frozenset(("command", "run_if", "abort_if", "pre_hook"))
_DECIDES = frozenset(("run_if", "abort_if"))
_VETOES = frozenset(("on_start", "pre_hook", "post_hook"))
