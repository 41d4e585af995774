"""Every on-disk location derives from `home()`, which `SLOTH_RUNNER_HOME` overrides.

Tests give each case its own home, so nothing a test does can touch a user's history. Paths are
plain strings: importing pathlib would cost a no-op run 7% of its time budget.
"""

from __future__ import annotations

import os


def home() -> str:
    configured = os.environ.get("SLOTH_RUNNER_HOME")
    path = os.path.expanduser(configured or os.path.join("~", ".sloth-runner"))
    os.makedirs(path, exist_ok=True)
    return path


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
