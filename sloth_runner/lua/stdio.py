"""`os.execute`, `io.write`, `io.stdout` and `io.stderr` through the run, not around it.

Stock Lua's `os.execute` calls system(3): the command inherits the terminal and writes past the
scrubber, the task's log prefix, its history and the `-o json` document; it ignores the task's
workdir, env and user; and system() ignores SIGINT in the caller while it waits, so Ctrl-C could
not stop a run sitting in it. Here it is a blocking operation like `exec.run` (the task's
workdir, env, user, deadline and cancel token; other tasks go on), its output becomes the task's
log lines, and it returns what stock Lua returns: `true|nil, "exit", code`. The processes it
starts see the environment `exec.run` gives them, so in the sandbox it needs only `exec`.

`io.write` to the default output and writes to `io.stdout`/`io.stderr` become log lines of the
task too (info and warn), scrubbed like `print`. `io.output("file")` still redirects `io.write`
to that file.
"""

from __future__ import annotations

from sloth_runner.lua.convert import lua_type
from sloth_runner.lua.runtime import BlockingOp
from sloth_runner.services import process

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import TaskContext
    from sloth_runner.lua.runtime import LuaRuntime
    from sloth_runner.lua.services import Services


def install_execute(rt: LuaRuntime, services: Services) -> Any:
    """The os.execute function (the caller puts it into os, or refuses it in the sandbox)."""
    grants = services.grants

    def prepare(ctx: TaskContext | None, command: Any = None) -> Callable[[], Any]:
        if command is None:  # stock Lua: "is a shell available?"
            return lambda: None
        grants.require("exec", "os.execute")
        if not isinstance(command, str):
            raise TypeError(f"os.execute expects a command string, got {lua_type(command)}")
        env = {str(k): str(v) for k, v in (ctx.env or {}).items()} if ctx else None
        return lambda: process.run(command, deadline=ctx.deadline if ctx else None,
                                   env=env or None, cwd=ctx.workdir if ctx else None,
                                   cancel=ctx.cancel if ctx else None, spool=services.spool,
                                   memory_limit=services.memory_limit,
                                   base_env=grants.process_env(),
                                   user=ctx.user if ctx else None)

    def finish(ctx: TaskContext | None, result: process.ExecResult | None) -> Any:
        if result is None:
            return True
        if ctx is not None:
            ctx.usage.add(result.cpu_s, result.max_rss_kb)
        where = (ctx.workflow, ctx.task) if ctx is not None else (None, None)
        for level, text in (("info", result.stdout), ("warn", result.stderr)):
            if text:
                services.listener.log(level, text.removesuffix("\n"), *where)
        if result.timed_out:
            return rt.table({"ok": False, "what": "signal", "code": 9})
        return rt.table({"ok": result.exit_code == 0, "what": "exit", "code": result.exit_code})

    run = rt.blocking("os.execute", BlockingOp(prepare, finish))
    return rt.lua.execute(_EXECUTE, run)


# A blocking operation hands back one value; os.execute returns three.
_EXECUTE = """
local run = ...
return function(command)
    local r = run(command)
    if r == true then return true end
    if r.ok then return true, r.what, r.code end
    return nil, r.what, r.code
end
"""


_STDIO = """
local emit_out, emit_err = ...
local real_stdout = io.stdout
local io, type, tostring, select, setmetatable, concat = io, type, tostring, select,
      setmetatable, table.concat
local real_write, real_output = io.write, io.output

local function text(what, ...)
    local parts = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        local t = type(v)
        if t ~= "string" and t ~= "number" then
            error(("bad argument #%d to '%s' (string expected, got %s)"):format(i, what, t), 3)
        end
        parts[i] = tostring(v)
    end
    return concat(parts)
end

local function stream(name, emit)
    local f = {}
    local methods = {
        write = function(self, ...) emit(text("write", ...)); return self end,
        flush = function(self) return self end,
        setvbuf = function() return true end,
        close = function() return nil, "cannot close standard file" end,
        seek = function() return nil, "Illegal seek", 29 end,
    }
    return setmetatable(f, {__index = methods, __name = "FILE*",
                            __tostring = function() return "file (" .. name .. ")" end})
end

local proxy_out, proxy_err = stream("stdout", emit_out), stream("stderr", emit_err)
io.stdout, io.stderr = proxy_out, proxy_err
io.output = function(f)  -- io.output(io.stdout) means the real one underneath
    if f == proxy_out then f = real_stdout end
    local current = real_output(f)
    if current == real_stdout then return proxy_out end
    return current
end
io.write = function(...)
    if real_output() == real_stdout then
        emit_out(text("write", ...))
        return io.stdout
    end
    return real_write(...)
end
"""


def install_stdio(rt: LuaRuntime, services: Services, io_lib: Any) -> None:
    """Route `io_lib`'s standard output and error into the run's log (see the module doc)."""
    def emitter(level: str) -> Callable[[str], None]:
        def emit(message: str) -> None:
            message = message.removesuffix("\n")
            if message:
                ctx = rt.current
                services.listener.log(level, message, ctx.workflow if ctx else None,
                                      ctx.task if ctx else None)

        return emit

    g = rt.lua.globals()
    saved = g.io
    g.io = io_lib  # the chunk works on the global `io`: the one being set up
    try:
        rt.lua.execute(_STDIO, rt.wrap(emitter("info")), rt.wrap(emitter("warn")))
    finally:
        g.io = saved
