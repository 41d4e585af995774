"""`sloth-runner server`: the dashboard and the schedules in one long-running process
(cli/ui.py does the work)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    from sloth_runner.cli.ui import register as register_ui

    register_ui(sub, "server")
