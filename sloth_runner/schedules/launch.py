"""Starting a schedule's run as a detached process, and telling whether it still runs.

A scheduled run is an ordinary `python -m sloth_runner run -f FILE ...` process: it records
itself in the history like any run, and the scheduler (a dashboard server, a CLI) can end or
restart without touching it. It gets a session of its own (a Ctrl-C or hang-up of the
scheduler's terminal does not reach it), its output goes to a log file in the home's
`logs/schedules/NAME/` folder (nobody reads a pipe of a process started at 2 a.m.), and it runs
in the folder of its file (so the file's relative paths mean what they mean there, whatever
the scheduler's working directory).

Whether it still runs is asked of the kernel by pid *and* process start time
(/proc/PID/stat), so a recycled pid is not mistaken for it; an ended process that its parent
has not reaped yet (a zombie) has ended.
"""

from __future__ import annotations

import os
import sys

from sloth_runner import paths

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    import subprocess
    from typing import Any

LOGS_KEPT = 100  # per schedule: the newest log files; older ones are removed at each start


def command(schedule: dict[str, Any]) -> list[str]:
    """The run's command line. Options take `--opt=value` so a value starting with `-` is
    never read as an option; workflow names (checked not to start with `-`) follow the file."""
    argv = [sys.executable, "-m", "sloth_runner", "run", f"--file={schedule['file']}"]
    argv += list(schedule["workflows"])
    argv += [f"--param={k}={v}" for k, v in schedule["params"].items()]
    argv += [f"--values={v}" for v in schedule["values_files"]]
    return argv


def logs_dir(name: str) -> str:
    return os.path.join(paths.home(), "logs", "schedules", name)


def log_file(name: str, when: float, row_id: int) -> str:
    """`<home>/logs/schedules/NAME/YYYYmmddTHHMMSS-ID.log` (UTC, sorts by time)."""
    import time

    folder = logs_dir(name)
    os.makedirs(folder, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    return os.path.join(folder, f"{stamp}-{row_id}.log")


def prune_logs(name: str, keep: int = LOGS_KEPT) -> None:
    """Remove all but the newest `keep` log files of a schedule (a job every minute must not
    fill the disk)."""
    folder = logs_dir(name)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".log"))
    except OSError:
        return
    for old in names[:-keep] if keep > 0 else names:
        try:
            os.unlink(os.path.join(folder, old))
        except OSError:
            pass


def spawn(schedule: dict[str, Any], log_path: str) -> subprocess.Popen:
    """Start the run; OSError if it cannot be started. The child imports this very
    sloth_runner (our package's folder first on PYTHONPATH) and records into this home."""
    import subprocess

    import sloth_runner

    root = os.path.dirname(os.path.dirname(os.path.abspath(sloth_runner.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env[paths.HOME_ENV] = os.path.abspath(paths.home())
    cwd = os.path.dirname(schedule["file"]) or "/"
    with open(log_path, "ab") as out:
        # not the command line: parameters may be secrets, and the run's output is scrubbed
        header = f"# sloth-runner schedule {schedule['name']}: run of {schedule['file']}\n"
        out.write(header.encode("utf-8", "replace"))
        out.flush()
        return subprocess.Popen(command(schedule), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True, close_fds=True)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        return []  # unreadable: no answer here (see alive)


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None where /proc cannot say."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def alive(pid: int, started: int | None) -> bool:
    """Whether process `pid`, started at `started` (None: unknown), is still running."""
    fields = _stat(pid)
    if fields is None:
        return False
    if fields:
        if fields[0] in ("Z", "X", "x"):
            return False
        if started is not None:
            try:
                return int(fields[19]) == started
            except (ValueError, IndexError):
                pass
        return True
    try:  # no /proc here: ask the kernel whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_tail(path: str | None, lines: int = 3, limit: int = 400) -> str:
    """The last lines of a run's log (why it ended before recording a run), or ""."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("# ")]
    tail = " | ".join(kept[-lines:])
    return tail[-limit:]
