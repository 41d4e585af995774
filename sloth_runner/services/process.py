"""Run a command as its own process group, with a deadline, capped output and resource usage.

Why a process group: a timeout must kill what the command started too (`bash -c "sleep 100 &
wait"`), so the child gets its own session and the whole group is signalled. Why files, not
pipes: a grandchild that keeps the pipe open would hang the reader; a file never blocks, and
output past the cap simply stays on disk. Why `wait4`: it gives the child's CPU time and peak RSS,
which history keeps for analytics.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from sloth_runner.errors import ExecError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Cancellable(Protocol):
        """What stops a command early (the engine's CancelToken): register a callback, get
        back a function that unregisters it."""

        def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]: ...

# Process groups of the commands running now, for an emergency stop from another thread.
LIVE: set[int] = set()
OUTPUT_CAP_BYTES = 1 << 20  # per stream, its end kept in memory; all of it in the spool file
KILL_GRACE_S = 1.0
_SHELL = next((s for s in ("/bin/bash", "/usr/bin/bash") if os.path.exists(s)), "/bin/sh")


class ExecResult:
    __slots__ = ("stdout", "stderr", "exit_code", "duration", "timed_out", "cpu_s", "max_rss_kb",
                 "stdout_path", "stderr_path")

    def __init__(self, stdout: str, stderr: str, exit_code: int, duration: float,
                 timed_out: bool = False, cpu_s: float = 0.0, max_rss_kb: int = 0,
                 stdout_path: str | None = None, stderr_path: str | None = None) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code
        self.duration = duration
        self.timed_out = timed_out
        self.cpu_s = cpu_s
        self.max_rss_kb = max_rss_kb
        self.stdout_path = stdout_path  # set when stdout exceeded the cap; the rest is there
        self.stderr_path = stderr_path

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def as_dict(self) -> dict:
        out = {"stdout": self.stdout, "stderr": self.stderr, "exit_code": self.exit_code,
               "success": self.success, "duration": round(self.duration, 6)}
        if self.timed_out:
            out["timed_out"] = True
        if self.stdout_path:
            out["stdout_path"] = self.stdout_path
        if self.stderr_path:
            out["stderr_path"] = self.stderr_path
        return out


def run(
    command: str | Sequence[str],
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    cancel: Cancellable | None = None,
    spool: str | None = None,
    cap: int = OUTPUT_CAP_BYTES,
    memory_limit: int | None = None,
    base_env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> ExecResult:
    """Run `command` (a shell string, or an argv list run without a shell) and wait for it.

    `timeout` is relative, `deadline` absolute (time.monotonic); the sooner wins. On expiry the
    group gets SIGTERM, then what is left of the command's tree (a daemon that left the group
    included, while the command lives) gets SIGKILL after a short grace; `timed_out` is set.
    `memory_limit` caps each process's address space (RLIMIT_AS), in bytes. `env` is added
    to `base_env` (default: this process's environment); a sandbox passes a small base. `user`
    runs the command as that account, which needs root.
    """
    limit = timeout
    if deadline is not None:
        remaining = max(0.0, deadline - time.monotonic())
        limit = remaining if limit is None else min(limit, remaining)
    argv = [_SHELL, "-c", command] if isinstance(command, str) else list(command)
    if user is not None:
        _check_user(user)
    full_env = None
    if env or base_env is not None:
        full_env = dict(os.environ if base_env is None else base_env)
        full_env.update({str(k): str(v) for k, v in (env or {}).items()})
    directory = spool if spool is not None else os.environ.get("TMPDIR", "/tmp")
    os.makedirs(directory, exist_ok=True)
    out_file, out_path = _spool_file(directory, "stdout")
    err_file, err_path = _spool_file(directory, "stderr")
    import subprocess  # here: a run that starts no process does not pay for it (~1 ms)

    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file,
                                cwd=cwd, env=full_env, start_new_session=True, user=user,
                                preexec_fn=_limit_memory(memory_limit) if memory_limit else None)
    except (OSError, ValueError) as exc:
        for f, path in ((out_file, out_path), (err_file, err_path)):
            f.close()
            os.unlink(path)
        where = f" in {cwd}" if cwd else ""
        raise ExecError(f"cannot start {argv[0]!r}{where}: {exc}") from exc
    timed_out = threading.Event()

    def kill_group(reason_timeout: bool) -> None:
        if reason_timeout:
            timed_out.set()
        _terminate_group(proc.pid)

    timer = None
    if limit is not None:
        timer = threading.Timer(limit, kill_group, (True,))
        timer.daemon = True
        timer.start()
    unregister = cancel.on_cancel(lambda: kill_group(False)) if cancel is not None else None
    LIVE.add(proc.pid)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        LIVE.discard(proc.pid)
        if timer is not None:
            timer.cancel()
        if unregister is not None:
            unregister()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out.is_set():
        _terminate_group(proc.pid)  # members that outlived the leader
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    duration = time.monotonic() - started
    out_file.close()
    err_file.close()
    stdout, stdout_path = _collect(out_path, cap)
    stderr, stderr_path = _collect(err_path, cap)
    return ExecResult(stdout=stdout, stderr=stderr, exit_code=code, duration=duration,
                      timed_out=timed_out.is_set(), cpu_s=usage.ru_utime + usage.ru_stime,
                      max_rss_kb=child_peak_kb(usage.ru_maxrss), stdout_path=stdout_path,
                      stderr_path=stderr_path)


def child_peak_kb(reported_kb: int) -> int:
    """A child's own peak memory, or 0 when it cannot be told apart from ours.

    Linux counts in a child's ru_maxrss the memory of the process it was forked from (the
    high-water mark of the old address space is carried over at exec), so `true` started by a
    runner holding a 250 MiB model "peaks" at 250 MiB. A figure above our own peak is the
    child's; one at or below it says nothing about the child, and is not reported.
    """
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return reported_kb if reported_kb > own else 0


_counter = itertools.count()


def _check_user(user: str) -> None:
    import pwd

    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ExecError(f"no user '{user}' on this machine") from None
    if os.geteuid() != 0 and account.pw_uid != os.geteuid():
        raise ExecError(f"running commands as user '{user}' needs sloth-runner to run as root "
                        f"(it runs as uid {os.geteuid()})")


def _limit_memory(limit: int) -> Callable[[], None]:
    """For Popen's preexec_fn (a fork, not vfork: only tasks with a memory limit pay for it)."""
    import resource

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _spool_file(directory: str, stream: str) -> tuple[Any, str]:
    """A fresh file for one stream (not `tempfile`: it costs ~9 ms to import)."""
    while True:
        path = os.path.join(directory, f"{stream}-{os.getpid()}-{next(_counter)}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        return open(fd, "wb", closefd=True), path


def _terminate_group(pgid: int) -> None:
    """SIGTERM the group, give it a moment, then SIGKILL whatever is left of the tree.

    The tree is read before anything is signalled: a daemon that left the group (`setsid`)
    is re-parented to init as soon as its parent dies, and could not be found afterwards."""
    from sloth_runner.services import proctree

    escaped = proctree.descendants(pgid)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for pid in escaped:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    end = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.02)
    proctree.kill_tree(pgid)  # the leader (pid == pgid) and descendants that left the group
    for pid in escaped:
        proctree.kill_tree(pid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _collect(path: str, cap: int) -> tuple[str, str | None]:
    """The output, whole if it fits in `cap` bytes (the file is then removed); otherwise its
    *last* `cap` bytes, where a failing command says what went wrong, and the file's path,
    which holds all of it."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if size <= cap:
            data = fh.read()
        else:
            fh.seek(size - cap)
            data = fh.read(cap).lstrip(bytes(range(0x80, 0xC0)))  # no half character
    if size <= cap:
        os.unlink(path)
        return data.decode("utf-8", "replace"), None
    return data.decode("utf-8", "replace"), path
