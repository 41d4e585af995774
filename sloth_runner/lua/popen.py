"""`io.popen(cmd [, "r"|"w"])`, which lupa's bundled Lua lacks ("'popen' not supported").

The handle behaves as stock Lua 5.4's: `:read(...)` with the formats "a", "l", "L", "n" or a
byte count (the "*a" spellings too), `:lines(...)`, `:write(...)`, `:close()` returning
`true|nil, "exit"|"signal", code`. Unlike stock Lua, the command runs like exec.run's: in the
task's workdir with its env, in a process group of its own that dies with the task (its cancel
token; a worker process on timeout is killed whole), with the task's memory limit. What the
command writes to stderr (and to stdout, in "w" mode) is shown in the run's output, scrubbed,
when the handle is closed, instead of going straight to the terminal.

Reads, writes and close wait on a process, so they are blocking ops: inside a task they yield
and run on a thread, so other tasks (and goroutines) keep going. The handle is a Lua table
whose methods call those ops with the handle's id; Python holds the process. Values are bytes
both ways as far as Lua strings allow; what a task writes passes the prelude's UTF-8 cleaning.

Under --sandbox, io (and so io.popen) exists only with `fs`, and io.popen needs `exec` and
`env` too (lua/modules.py: _install_sandbox).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading

from sloth_runner.engine.model import TaskTimeout
from sloth_runner.errors import ExecError
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime
from sloth_runner.services.process import child_peak_kb

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import TaskContext
    from sloth_runner.lua.services import Services

SHOWN_BYTES = 64 * 1024  # of a command's stderr shown at close: its end, where errors are
_SHELL = next((s for s in ("/bin/bash", "/usr/bin/bash") if os.path.exists(s)), "/bin/sh")
_NUMERAL = frozenset(b"0123456789+-.xXaAbBcCdDeEfFpP")
_counter = itertools.count()
# Commands not yet closed or released. Held here, not only by their handles, so that the
# garbage collector never finalises one (its Popen, its pipes) behind our back: a handle ends by
# close(), or by Lua's collector calling release(), at the latest when its runtime closes.
_LIVE: set[PipedProcess] = set()


class PipedProcess:
    """A shell command with a pipe to its stdout ("r") or its stdin ("w"). Plain Python."""

    def __init__(self, command: str, mode: str, *, cwd: str | None = None,
                 env: dict[str, str] | None = None, base_env: dict[str, str] | None = None,
                 spool: str | None = None, memory_limit: int | None = None,
                 deadline: float | None = None, user: str | None = None) -> None:
        import subprocess
        import time

        self.mode = mode
        self._lock = threading.Lock()
        full_env = None
        if env or base_env is not None:
            full_env = dict(os.environ if base_env is None else base_env)
            full_env.update(env or {})
        directory = spool if spool is not None else os.environ.get("TMPDIR", "/tmp")
        os.makedirs(directory, exist_ok=True)
        self._captured: list[str] = []
        out_file = self._capture(directory, "stdout") if mode == "w" else None
        err = self._capture(directory, "stderr")
        out = out_file if out_file is not None else subprocess.PIPE
        try:
            self.proc = subprocess.Popen(
                [_SHELL, "-c", command], cwd=cwd, env=full_env, start_new_session=True,
                stdin=subprocess.PIPE if mode == "w" else subprocess.DEVNULL,
                stdout=out, stderr=err, preexec_fn=_limit_memory(memory_limit), user=user)
        except (OSError, ValueError, KeyError) as exc:
            self._discard()
            where = f" in {cwd}" if cwd else ""
            raise ExecError(f"io.popen cannot start a shell{where}: {exc}") from exc
        finally:
            err.close()
            if out_file is not None:
                out_file.close()
        self.pid = self.proc.pid
        _LIVE.add(self)
        self.result: tuple[bool, str, int] | None = None
        self.cpu_s = 0.0
        self.max_rss_kb = 0
        self._timer: threading.Timer | None = None
        self.timed_out = False
        if deadline is not None:  # as exec.run: the command never outlives its task's deadline
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _capture(self, directory: str, stream: str) -> Any:
        while True:
            path = os.path.join(directory, f"popen-{stream}-{os.getpid()}-{next(_counter)}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            self._captured.append(path)
            return open(fd, "wb", closefd=True)

    def _discard(self) -> None:
        for path in self._captured:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._captured = []

    # -- reading and writing -------------------------------------------------------------------
    def read(self, formats: list[Any]) -> list[Any]:
        """Values for each format, as file:read returns them; stops after the first nil."""
        with self._lock:
            stream = self.proc.stdout
            if stream is None or stream.closed:
                raise ValueError("io.popen: this handle is not readable (opened with \"w\", "
                                 "or closed)")
            out: list[Any] = []
            for fmt in formats or ["l"]:
                value = self._read_one(stream, fmt)
                out.append(value)
                if value is None:
                    break
        self._check()
        return out

    def _read_one(self, stream: Any, fmt: Any) -> Any:
        if isinstance(fmt, int | float) and not isinstance(fmt, bool):
            count = int(fmt)
            if count <= 0:
                return b"" if stream.peek(1) else None
            data = stream.read(count)
            return data or None
        kind = str(fmt).lstrip("*")[:1]
        if kind == "a":
            return stream.read()
        if kind in ("l", "L"):
            line = stream.readline()
            if not line:
                return None
            return line if kind == "L" or not line.endswith(b"\n") else line[:-1]
        if kind == "n":
            return _read_number(stream)
        raise ValueError(f"bad argument to 'read' (invalid format {fmt!r})")

    def write(self, parts: list[Any]) -> None:
        with self._lock:
            stream = self.proc.stdin
            if stream is None or stream.closed:
                raise ValueError("io.popen: this handle is not writable (opened with \"r\", "
                                 "or closed)")
            for part in parts:
                if isinstance(part, str):
                    stream.write(part.encode("utf-8", "surrogateescape"))
                elif isinstance(part, bytes):
                    stream.write(part)
                else:
                    stream.write(str(part).encode())
            try:
                stream.flush()
            except BrokenPipeError:
                self._check()
                raise

    # -- the end -------------------------------------------------------------------------------
    def close(self) -> tuple[bool, str, int]:
        """Close the pipe and wait for the command: (success, "exit"|"signal", code)."""
        with self._lock:
            if self.result is not None:
                return self.result
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:  # a reader that stopped early: stock Lua ignores it too
                        pass
            _, status, usage = os.wait4(self.pid, 0)
            if self._timer is not None:
                self._timer.cancel()
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu_s = usage.ru_utime + usage.ru_stime
            self.max_rss_kb = child_peak_kb(usage.ru_maxrss)
            code = self.proc.returncode
            self.result = (code == 0, "exit", code) if code >= 0 else (False, "signal", -code)
            _LIVE.discard(self)
        self._check()
        return self.result

    def output(self) -> str:
        """What the command wrote besides the pipe (its end), once closed; the files go."""
        texts = []
        for path in self._captured:
            try:
                size = os.path.getsize(path)
                with open(path, "rb") as fh:
                    fh.seek(max(0, size - SHOWN_BYTES))
                    data = fh.read()
            except OSError:
                continue
            text = data.decode("utf-8", "replace").rstrip("\n")
            if text:
                texts.append(text)
        self._discard()
        return "\n".join(texts)

    def release(self) -> None:
        """For a handle Lua collected unclosed: let go of the pipes and reap the command when
        it ends, without waiting for it here (stock Lua's collector would wait)."""
        with self._lock:
            if self.result is not None:
                return
            self.result = (False, "exit", -1)
            if self._timer is not None:
                self._timer.cancel()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        self._discard()
        _LIVE.discard(self)
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid:
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            return

        def reap() -> None:
            try:
                _, late = os.waitpid(self.pid, 0)
                self.proc.returncode = os.waitstatus_to_exitcode(late)
            except ChildProcessError:
                self.proc.returncode = -1

        threading.Thread(target=reap, name="sloth-popen-reaper", daemon=True).start()

    def _expire(self) -> None:
        self.timed_out = True
        self.kill()

    def _check(self) -> None:
        """A read or wait that ended because the task's time was up is the task's timeout,
        not an end of file."""
        if self.timed_out:
            raise TaskTimeout("io.popen: the task's time is up")

    def kill(self) -> None:
        """Stop the command and everything it started (the task was cancelled)."""
        from sloth_runner.services import proctree

        try:
            os.killpg(self.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        proctree.kill_tree(self.pid)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _read_number(stream: Any) -> int | float | None:
    """A numeral as file:read("n") reads it: blanks skipped, then the longest run of characters
    that can make a number; nil when that is not a number."""
    while True:
        ahead = stream.peek(1)[:1]
        if not ahead or not ahead.isspace():
            break
        stream.read(1)
    text = bytearray()
    while len(text) < 200:
        ahead = stream.peek(1)[:1]
        if not ahead or ahead[0] not in _NUMERAL:
            break
        text += stream.read(1)
    word = text.decode("ascii", "replace")
    try:
        return int(word, 16) if word.lower().startswith(("0x", "-0x", "+0x")) else int(word)
    except ValueError:
        pass
    try:
        return float(word)
    except ValueError:
        return None


def _limit_memory(limit: int | None) -> Callable[[], None] | None:
    if not limit:
        return None
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


_HANDLE = r"""
local start, read, write, close, raise, release = ...
local type, select, setmetatable, getmetatable, unpack, fmt = type, select, setmetatable,
      getmetatable, table.unpack, string.format

local Handle = {}
Handle.__index = Handle
Handle.__name = "FILE*"

local function open(self, what)
    if getmetatable(self) ~= Handle then
        raise(fmt("bad argument #1 to '%s' (popen handle expected)", what))
    end
    if self.closed then raise("attempt to use a closed file") end
end

function Handle:read(...)
    open(self, "read")
    local r = read(self.id, ...)
    return unpack(r, 1, r.n)
end

function Handle:lines(...)
    open(self, "lines")
    local formats = table.pack(...)
    return function()
        if self.closed then raise("file is already closed") end
        local r = read(self.id, unpack(formats, 1, formats.n))
        return unpack(r, 1, r.n)
    end
end

function Handle:write(...)
    open(self, "write")
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) ~= "string" and type(v) ~= "number" then
            raise(fmt("bad argument #%d to 'write' (string expected, got %s)", i, type(v)))
        end
    end
    write(self.id, ...)
    return self
end

function Handle:close()
    open(self, "close")
    self.closed = true
    local r = close(self.id)
    if r.ok then return true, r.what, r.code end
    return nil, r.what, r.code
end

function Handle:flush() open(self, "flush"); return self end
function Handle:setvbuf() open(self, "setvbuf"); return true end
function Handle:seek() open(self, "seek"); return nil, "Illegal seek", 29 end
Handle.__close = function(self) if not self.closed then self:close() end end
Handle.__gc = function(self) if not self.closed then release(self.id) end end
Handle.__tostring = function(self)
    return self.closed and "file (closed)" or fmt("file (popen %d)", self.id)
end

return function(command, mode)
    if type(command) ~= "string" then
        raise(fmt("bad argument #1 to 'popen' (string expected, got %s)", type(command)))
    end
    if mode == nil then mode = "r" end
    if mode ~= "r" and mode ~= "w" then raise("bad argument #2 to 'popen' (invalid mode)") end
    local id = start(command, mode)
    return setmetatable({id = id, mode = mode}, Handle)
end
"""


def install_popen(rt: LuaRuntime, services: Services) -> Any:
    """The io.popen function (the caller puts it into io, or into the sandbox's io)."""
    handles: dict[int, PipedProcess] = {}
    unregister: dict[int, Callable[[], None]] = {}
    grants = services.grants
    ids = itertools.count(1)

    def start(command: Any, mode: Any) -> int:
        grants.require("exec", "io.popen")
        if not isinstance(command, str) or not command.strip():
            raise TypeError("io.popen expects a command string")
        ctx = rt.current
        env = {str(k): str(v) for k, v in (ctx.env or {}).items()} if ctx else {}
        pipe = PipedProcess(command, str(mode), cwd=ctx.workdir if ctx else None,
                            env=env or None, base_env=grants.process_env(),
                            spool=services.spool, memory_limit=services.memory_limit,
                            deadline=ctx.deadline if ctx else None,
                            user=ctx.user if ctx else None)
        handle = next(ids)
        handles[handle] = pipe
        if ctx is not None:
            unregister[handle] = ctx.cancel.on_cancel(pipe.kill)
        return handle

    def pipe_of(handle: Any) -> PipedProcess:
        pipe = handles.get(handle) if isinstance(handle, int) else None
        if pipe is None:
            raise ValueError("attempt to use a closed file")
        return pipe

    def prepare_read(ctx: TaskContext | None, handle: Any = None,
                     *formats: Any) -> Callable[[], Any]:
        pipe = pipe_of(handle)
        wanted = list(formats) or ["l"]
        for fmt in wanted:
            if not isinstance(fmt, int | float | str) or isinstance(fmt, bool) or \
                    (isinstance(fmt, str) and fmt.lstrip("*")[:1] not in ("a", "l", "L", "n")):
                raise ValueError(f"bad argument to 'read' (invalid format {fmt!r})")
        return lambda: pipe.read(wanted)

    def finish_read(ctx: TaskContext | None, values: list[Any]) -> Any:
        table: dict[Any, Any] = {i + 1: v for i, v in enumerate(values) if v is not None}
        table["n"] = len(values)
        return rt.table(table)

    def prepare_write(ctx: TaskContext | None, handle: Any = None,
                      *parts: Any) -> Callable[[], Any]:
        pipe = pipe_of(handle)
        return lambda: pipe.write(list(parts))

    def prepare_close(ctx: TaskContext | None, handle: Any = None) -> Callable[[], Any]:
        pipe = pipe_of(handle)
        return lambda: (handle, pipe.close())

    def finish_close(ctx: TaskContext | None, answer: tuple[int, tuple[bool, str, int]]) -> Any:
        handle, (ok, what, code) = answer
        pipe = handles.pop(handle)
        stop = unregister.pop(handle, None)
        if stop is not None:
            stop()
        if ctx is not None:
            ctx.usage.add(pipe.cpu_s, pipe.max_rss_kb)
        shown = pipe.output()
        if shown:
            services.listener.log("print", shown, ctx.workflow if ctx else None,
                                  ctx.task if ctx else None)
        return rt.table({"ok": ok, "what": what, "code": code})

    def release(handle: Any) -> None:
        """Called by Lua's collector for a handle never closed; must never raise."""
        try:
            pipe = handles.pop(handle, None)
            stop = unregister.pop(handle, None)
            if stop is not None:
                stop()
            if pipe is not None:
                pipe.release()
        except Exception:  # a finaliser has no one to report to
            pass

    nothing = BlockingOp(prepare_write, lambda ctx, result: None)
    return rt.lua.execute(
        _HANDLE, rt.wrap(start),
        rt.blocking("io.popen.read", BlockingOp(prepare_read, finish_read)),
        rt.blocking("io.popen.write", nothing),
        rt.blocking("io.popen.close", BlockingOp(prepare_close, finish_close)),
        rt.S.raise_error, release, name="=popen")
