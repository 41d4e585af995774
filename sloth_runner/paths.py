"""Every on-disk location derives from `home()`, which `SLOTH_RUNNER_HOME` overrides.

Tests give each case its own home, so nothing a test does can touch a user's history.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    configured = os.environ.get("SLOTH_RUNNER_HOME")
    path = Path(configured).expanduser() if configured else Path.home() / ".sloth-runner"
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    return home() / "sloth.db"


def locks_dir() -> Path:
    path = home() / "locks"
    path.mkdir(exist_ok=True)
    return path


def spool_dir(run_id: str) -> Path:
    """Where process output beyond the in-memory cap is kept, per run."""
    return home() / "spool" / run_id
