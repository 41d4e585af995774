"""Thin adapters publishing Python services as Lua modules: exec, log, state, json, yaml, fs
(and, from lua/integrations.py, git, monitoring, notifications and aws; lua/goroutine.py,
lua/popen.py and lua/net.py: goroutine, io.popen, http/net).

Each function converts Lua values, calls a service, and converts the answer back; the services
know nothing of Lua. `exec.run` is a blocking op: inside a task it yields to the scheduler.
The goroutine module is installed first: it teaches every blocking op made after it to run
inside goroutines.

Under `--sandbox` each adapter asks `services.grants` before it acts (grants.py): exec.run needs
`exec` (and without `env` its process sees only SAFE_ENV plus the task's and the call's env),
fs writes outside the workdir need `fs`. The runtime's set-up takes io, os.execute and friends
and the environment away; `_install_sandbox` gives back what the grants cover.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sloth_runner.durations import parse_duration
from sloth_runner.engine.events import map_strings
from sloth_runner.engine.model import TaskContext
from sloth_runner.grants import SAFE_ENV, Grants
from sloth_runner.lua.convert import lua_type, to_python, type_name
from sloth_runner.lua.events_module import install_event_module
from sloth_runner.lua.goroutine import install_goroutine
from sloth_runner.lua.integrations import install_integrations
from sloth_runner.lua.net import install_net
from sloth_runner.lua.popen import install_popen
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime
from sloth_runner.lua.services import Services
from sloth_runner.lua.stdio import install_execute, install_stdio
from sloth_runner.services import codec, files, process
from sloth_runner.store.state import NamedLock as StateLock
from sloth_runner.store.state import StateStore

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

EXEC_OPTIONS = {"timeout", "env", "cwd"}
STATE_UNSCRUBBED = frozenset({"email", "ipv4", "ipv6"})  # see _install_state's stored()


def install_core_modules(rt: LuaRuntime, services: Services) -> None:
    # First: every blocking function made after it knows how to run inside a goroutine.
    install_goroutine(rt, services)
    popen = install_popen(rt, services)
    execute = install_execute(rt, services)
    if rt.sandbox:
        _install_sandbox(rt, services, popen, execute)
    else:
        g = rt.lua.globals()
        g.io.popen = popen
        g.os.execute = execute
        install_stdio(rt, services, g.io)
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
    _install_fs(rt, services)
    install_net(rt, services)
    install_event_module(rt, services)


def _install_fs(rt: LuaRuntime, services: Services) -> None:
    grants = services.grants

    def located(what: str, path: Any) -> str:
        """A relative path is relative to the task's workdir, as for its commands."""
        if not isinstance(path, str) or not path:
            raise TypeError(f"fs.{what} expects a path string, got "
                            f"{type_name(path)}")
        ctx = rt.current
        if ctx is not None and ctx.workdir and not os.path.isabs(path):
            return os.path.join(ctx.workdir, path)
        return path

    def writable(what: str, path: Any, follow: bool = True, itself: bool = True) -> str:
        """`path`, if the sandbox lets the workflow write there: inside the workdir (the
        task's, else the current directory), compared as real paths, or anywhere with fs."""
        path = located(what, path)
        if grants.allows("fs"):
            return path
        ctx = rt.current
        root = ctx.workdir if ctx is not None and ctx.workdir else os.getcwd()
        real = files.target(path, follow)
        if not files.within(real, root, itself=itself):
            grants.require("fs", f"fs.{what} of {real} (outside the workdir "
                                 f"{os.path.realpath(root)})")
        return path

    def write(p: Any, c: Any, append: Any = False) -> bool:
        return files.write(writable("write", p), _text(c), bool(append))

    def rm(p: Any, opts: Any = None) -> bool:
        recursive = bool(_opts(opts).get("recursive"))
        return files.rm(writable("rm", p, follow=False, itself=False), recursive)

    rt.install("fs", {
        "read": rt.wrap(lambda p: files.read(located("read", p))),
        "write": rt.wrap(write),
        "exists": rt.wrap(lambda p: files.exists(located("exists", p))),
        "mkdir": rt.wrap(lambda p: files.mkdir(writable("mkdir", p))),
        "rm": rt.wrap(rm),
        "ls": rt.wrap(lambda p=".": rt.table(files.ls(located("ls", p)))),
    })


_GETENV = """
local rawgetenv, safe, notice = ...
local told = {}
return function(name)
    local value = rawgetenv(name)
    if value == nil or safe[name] then return value end
    if not told[name] then told[name] = true; notice(name) end
    return nil
end
"""


def _install_sandbox(rt: LuaRuntime, services: Services, popen: Any, execute: Any) -> None:
    """Give back what the runtime's sandbox set-up took away, as far as the grants go: io and
    os.remove/rename/tmpname with fs; os.execute with exec; io.popen with fs (it is in io) and
    exec (ours, like os.execute: its processes get exec.run's environment); every environment
    variable with env, else only SAFE_ENV. What stays refused raises a clear error
    instead. Writing to standard output (io.write, io.stdout) is always allowed: it goes to
    the task's log."""
    g = rt.lua.globals()
    take = g["__sloth_kept"]
    if take is None:  # not a runtime this module knows how to set up
        return
    kept = take()  # the set-up's one-shot hand-over: gone from the globals after this call
    grants = services.grants if services.grants.sandbox else Grants(sandbox=True)

    def refuse(kind: str, what: str) -> Any:
        def refused(*args: Any) -> None:
            grants.require(kind, what)

        return rt.wrap(refused)

    os_lib = g.os
    # Ours, not Lua's (lua/stdio.py): its processes get exec.run's environment.
    os_lib.execute = execute if grants.allows("exec") else refuse("exec", "os.execute")
    if grants.allows("fs"):
        io_lib = kept.io
        io_lib.popen = popen if grants.allows("exec") else refuse("exec", "io.popen")
        install_stdio(rt, services, io_lib)
        g.io = io_lib
        g.package.loaded.io = io_lib
        for name in ("remove", "rename", "tmpname"):
            os_lib[name] = kept[name]
    else:
        for name in ("remove", "rename", "tmpname"):
            os_lib[name] = refuse("fs", f"os.{name}")
        # io stays a table, so `io.open(...)` says what is missing instead of "attempt to
        # index a nil value (global 'io')"; every field of it is the refusal.
        def refused_io(name: Any) -> None:
            grants.require("fs", f"io.{name}")

        io_lib = rt.lua.execute(_REFUSED_IO, rt.wrap(refused_io))
        install_stdio(rt, services, kept.io)  # writing to the log needs no grant
        for name in ("write", "stdout", "stderr"):
            rt.lua.globals().rawset(io_lib, name, kept.io[name])
        g.io = io_lib
        g.package.loaded.io = io_lib
    if grants.allows("env"):
        os_lib.getenv = kept.getenv
    else:
        def notice(name: str) -> None:
            ctx = rt.current
            services.listener.log(
                "warn", f"os.getenv(\"{name}\") is nil: {grants.refusal('env', 'reading it')}",
                ctx.workflow if ctx else None, ctx.task if ctx else None)

        safe = rt.lua.table_from({name: True for name in SAFE_ENV})
        os_lib.getenv = rt.lua.execute(_GETENV, kept.getenv, safe, rt.wrap(notice))


_REFUSED_IO = """
local refused = ...
return setmetatable({}, {__index = function(_, name) return function() refused(name) end end})
"""


def _install_ai(rt: LuaRuntime, services: Services) -> None:
    from sloth_runner.lua.ai_module import build_ai_module

    build_ai_module(rt, services.ai, services)


def _install_exec(rt: LuaRuntime, services: Services) -> None:
    grants = services.grants

    def prepare(ctx: TaskContext | None, command: Any = None, opts: Any = None) -> Callable:
        grants.require("exec", "exec.run")
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
        env.update({str(k): str(v) for k, v in (options.get("env") or {}).items()})
        base = grants.process_env()  # the sandbox without env: only SAFE_ENV underneath
        cwd = options.get("cwd") or (ctx.workdir if ctx else None)
        deadline = ctx.deadline if ctx else None
        cancel = ctx.cancel if ctx else None
        limit = services.memory_limit
        user = ctx.user if ctx is not None else None  # the task's :user(), as for its shell
        return lambda: process.run(cmd, timeout=timeout, deadline=deadline, env=env or None,
                                   cwd=cwd, cancel=cancel, spool=services.spool,
                                   memory_limit=limit, base_env=base, user=user)

    shaped = rt.lua.execute(_EXEC_RESULT)

    def finish(ctx: TaskContext | None, result: process.ExecResult) -> Any:
        if ctx is not None:
            ctx.usage.add(result.cpu_s, result.max_rss_kb)
        return shaped(rt.table(result.as_dict()))

    rt.install("exec", {"run": rt.blocking("exec.run", BlockingOp(prepare, finish))})


# exec.run's result as older Go examples use it: `r.output` is its stdout, and the result
# behaves as its stdout for string methods (`r:match("yes")`), concatenation and printing
# ("host: " .. exec.run("hostname")). A metatable, not more fields: the fields are what a
# command returning the result stores as its outputs.
_EXEC_RESULT = """
local rawget, setmetatable, type, string = rawget, setmetatable, type, string
local function text(v) if type(v) == "table" then return rawget(v, "stdout") or "" end return v end
local mt = {
    __index = function(t, k)
        if k == "output" then return rawget(t, "stdout") end
        local f = string[k]
        if f then return function(self, ...) return f(text(self), ...) end end
    end,
    __concat = function(a, b) return text(a) .. text(b) end,
    __tostring = function(t) return rawget(t, "stdout") or "" end,
}
return function(t) return setmetatable(t, mt) end
"""


def _install_log(rt: LuaRuntime, services: Services) -> None:
    """log.debug/info/warn/error, log.success, log.warning (= warn), log.print (= print) and
    log.table(t [, title]), the Go module's levels. Everything goes to the run's listener,
    which scrubs it; print goes through the same place."""
    def emitter(level: str) -> Callable[..., None]:
        def emit(*parts: Any) -> None:
            ctx = rt.current
            message = " ".join(_text(p) for p in parts)
            services.listener.log(level, message, ctx.workflow if ctx else None,
                                  ctx.task if ctx else None)

        return emit

    def table(value: Any, title: Any = None) -> None:
        ctx = rt.current
        shown = codec.json_encode(to_python(value), True) if lua_type(value) == "table" \
            else _text(value)
        message = f"{_text(title)}:\n{shown}" if title is not None else shown
        services.listener.log("info", message, ctx.workflow if ctx else None,
                              ctx.task if ctx else None)

    members = {level: rt.wrap(emitter(level))
               for level in ("debug", "info", "warn", "error", "success", "print")}
    members["warning"] = members["warn"]
    members["table"] = rt.wrap(table)
    rt.install("log", members)
    rt.lua.globals().print = members["print"]


_WITH_LOCK = """
local acquire, release, raise = ...
local type, pcall, error, select = type, pcall, error, select
local pack, unpack = table.pack, table.unpack
local running = coroutine.running
-- The locks each coroutine (a task, a goroutine) holds: taking one it already holds would wait
-- for itself until its timeout, so that is an error at once. Another goroutine waits, as it
-- should.
local held = setmetatable({}, {__mode = "k"})
-- state.with_lock(name, fn [, timeout_s]), or the Go module's (name, holder, timeout, fn)
return function(name, ...)
    local fn, timeout
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "function" and fn == nil then fn = v
        elseif type(v) == "number" and timeout == nil then timeout = v end
    end
    if fn == nil then raise("state.with_lock(name, fn [, timeout_s]) expects a function") end
    local co = running()
    local mine = held[co]
    if mine and mine[name] then
        raise("state.with_lock: lock '" .. tostring(name) .. "' is already held here (an "
              .. "inner with_lock of the same name would wait for itself forever)")
    end
    local token = acquire(name, timeout)
    if not mine then mine = {}; held[co] = mine end
    mine[name] = true
    local r = pack(pcall(fn))
    mine[name] = nil
    release(token)
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
end
"""


def _install_state(rt: LuaRuntime, services: Services) -> None:
    """The state module: get/set/delete/exists/increment/decrement/keys (get_keys)/list,
    compare_swap, TTLs (a number as set's third argument, or {ttl = n}; set_with_ttl,
    get_ttl, set_ttl) and with_lock, a lock across every process on this home (a blocking op:
    a task waiting for it holds no one else up)."""
    def state() -> StateStore:
        return services.state()

    def key(k: Any) -> str:
        if not isinstance(k, str) or not k:
            raise TypeError(f"state keys are non-empty strings, got {type_name(k)}")
        return k

    def get(k: Any, default: Any = None) -> Any:
        value = state().get(key(k))
        return rt.table(value) if value is not None else default

    def options(what: str, opts: Any) -> tuple[bool, float | None]:
        """(scrub, ttl) from set's third argument: a TTL in seconds, or {scrub, ttl}."""
        if opts is None:
            return True, None
        if isinstance(opts, int | float) and not isinstance(opts, bool):
            return True, _ttl(what, opts)
        value = to_python(opts)
        if value == []:
            value = {}
        if not isinstance(value, dict):
            raise TypeError(f"{what}: the third argument is a TTL in seconds or a table like "
                            "{scrub = false, ttl = 60}")
        unknown = set(value) - {"scrub", "ttl"}
        if unknown:
            raise ValueError(f"{what}: unknown option '{sorted(unknown)[0]}' (options: scrub, "
                             "ttl)")
        if not isinstance(value.get("scrub", True), bool):
            raise TypeError(f"{what}: scrub must be true or false")
        ttl = _ttl(what, value["ttl"]) if value.get("ttl") is not None else None
        return value.get("scrub", True), ttl

    def stored(v: Any, scrub: bool) -> Any:
        """Values are shown by `sloth-runner state` and read by other runs, so secrets in them
        are scrubbed like log lines; a value that must come back exactly (a token a later run
        needs) opts out with {scrub = false}. Only credentials are scrubbed: addresses (IPs,
        e-mail) are what automation keeps in state, and a version like 1.2.3.4 looks like an
        IP."""
        if lua_type(v) in ("function", "userdata", "thread"):
            raise TypeError(f"state values are strings, numbers, booleans or tables, got "
                            f"{lua_type(v)}")
        value = to_python(v)
        if scrub:
            scrubber = credentials()
            value = map_strings(value, lambda text: scrubber.scrub(text)[0])
        return value

    derived: list[Any] = []

    def credentials() -> Any:
        """The run's scrubber without the PII detectors (same placeholders)."""
        if not derived:
            from sloth_runner.scrub.detectors import NAMES

            derived.append(services.scrubber.derive(
                [n for n in NAMES if n not in STATE_UNSCRUBBED]))
        return derived[0]

    def set_value(k: Any, v: Any, opts: Any = None) -> bool:
        scrub, ttl = options("state.set", opts)
        state().set(key(k), stored(v, scrub), ttl)
        return True

    def set_with_ttl(k: Any, v: Any, ttl: Any = None) -> bool:
        state().set(key(k), stored(v, True), _ttl("state.set_with_ttl", ttl))
        return True

    def compare_swap(k: Any, old: Any, new: Any, opts: Any = None) -> bool:
        scrub, ttl = options("state.compare_swap", opts)
        return state().compare_swap(key(k), to_python(old), stored(new, scrub), ttl)

    def number(what: str, by: Any) -> int | float:
        if not isinstance(by, int | float) or isinstance(by, bool):
            raise TypeError(f"{what}: the amount must be a number")
        return by

    def listing(prefix: Any = "") -> Any:
        return rt.table(dict(state().items(_prefix(prefix))))

    locks: dict[int, StateLock] = {}
    tokens = iter(range(1, 1 << 62))

    def prepare_lock(ctx: TaskContext | None, name: Any = None,
                     timeout: Any = None) -> Callable[[], Any]:
        if not isinstance(name, str) or not name:
            raise TypeError("state.with_lock expects a lock name (a non-empty string)")
        wait = None if timeout is None else _ttl("state.with_lock timeout", timeout)
        lock = StateLock(name)
        deadline = ctx.deadline if ctx else None
        cancel = ctx.cancel if ctx else None

        def acquire() -> int:
            lock.acquire(wait, deadline, (lambda: cancel.cancelled) if cancel else None)
            token = next(tokens)
            locks[token] = lock
            return token

        return acquire

    def release(token: Any) -> bool:
        lock = locks.pop(token, None) if isinstance(token, int) else None
        if lock is not None:
            lock.release()
        return lock is not None

    acquire = rt.blocking("state.with_lock", BlockingOp(prepare_lock, lambda ctx, t: t))
    with_lock = rt.lua.execute(_WITH_LOCK, acquire, rt.wrap(release), rt.S.raise_error,
                               name="=state")
    keys = rt.wrap(lambda prefix="": rt.table(state().keys(_prefix(prefix))))
    rt.install("state", {
        "get": rt.wrap(get),
        "set": rt.wrap(set_value),
        "set_with_ttl": rt.wrap(set_with_ttl),
        "delete": rt.wrap(lambda k: state().delete(key(k))),
        "exists": rt.wrap(lambda k: state().exists(key(k))),
        "increment": rt.wrap(lambda k, by=1: state().increment(key(k),
                                                                number("state.increment", by))),
        "decrement": rt.wrap(lambda k, by=1: state().increment(key(k),
                                                                -number("state.decrement", by))),
        "keys": keys,
        "get_keys": keys,
        "list": rt.wrap(listing),
        "compare_swap": rt.wrap(compare_swap),
        "get_ttl": rt.wrap(lambda k: state().ttl(key(k))),
        "set_ttl": rt.wrap(lambda k, ttl=None: state().expire(
            key(k), None if ttl is None else _ttl("state.set_ttl", ttl))),
        "with_lock": with_lock,
    })


def _ttl(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{what}: a TTL is a number of seconds > 0")
    return float(value)


def _prefix(prefix: Any) -> str:
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise TypeError("state: a key prefix is a string")
    return prefix


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
