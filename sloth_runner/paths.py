"""Every on-disk location derives from `home()`, which `SLOTH_RUNNER_HOME` overrides.

Tests give each case its own home, so nothing a test does can touch a user's history. Paths are
plain strings: importing pathlib would cost a no-op run 7% of its time budget. A home that
cannot be a writable directory is a UsageError naming the variable, the path and the problem.
"""

from __future__ import annotations

import os

from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import NoReturn

HOME_ENV = "SLOTH_RUNNER_HOME"


def home() -> str:
    """The home directory, created if missing; UsageError if it cannot be a writable directory."""
    configured = os.environ.get(HOME_ENV)
    path = os.path.expanduser(configured or os.path.join("~", ".sloth-runner"))
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        what = "is a file" if os.path.isfile(path) else "exists"
        _unusable(configured, path, f"{what}, not a directory")
    except NotADirectoryError:
        _unusable(configured, path, "cannot be created: a parent of it is a file")
    except OSError as exc:
        _unusable(configured, path, f"cannot be created: {exc.strerror or exc}")
    if not os.path.isdir(path):  # makedirs accepts a symlink to a directory; nothing else
        _unusable(configured, path, "is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        _unusable(configured, path, "is not writable")
    return path


def _unusable(configured: str | None, path: str, problem: str) -> NoReturn:
    if configured:
        where = f"{HOME_ENV}={configured}" + (f" ({path})" if path != configured else "")
        fix = f"point {HOME_ENV} at a directory sloth-runner can create or write"
    else:
        where = f"the default home {path}"
        fix = f"set {HOME_ENV} to a directory sloth-runner can create or write"
    raise UsageError(f"{where} {problem}; {fix}")


def db_path() -> str:
    return os.path.join(home(), "sloth.db")


def locks_dir() -> str:
    path = os.path.join(home(), "locks")
    os.makedirs(path, exist_ok=True)
    return path


def lock_file(run_id: str) -> str:
    return os.path.join(locks_dir(), f"{run_id}.lock")


def spool_dir(run_id: str) -> str:
    """Where process output beyond the in-memory cap is kept, per run."""
    return os.path.join(home(), "spool", run_id)


def remove_spool_if_empty(spool: str) -> None:
    """At a run's end: its artifacts (handed over: they live on in the consumers' workdirs),
    then the spool folder unless it holds output past the cap (kept on purpose)."""
    artifacts = os.path.join(spool, "artifacts")
    if os.path.isdir(artifacts):
        import shutil

        shutil.rmtree(artifacts, ignore_errors=True)
    try:
        os.rmdir(spool)
    except OSError:  # absent, or it holds output past the cap
        pass
