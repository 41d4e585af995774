"""Events of runs and the hooks that react to them (filled in by the events/hooks work).

`run_listener(run)` gives the engine Listener that turns a run's events into stored events and
hook executions, or None when nothing needs them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sloth_runner.engine.events import Listener
    from sloth_runner.running import Run


def run_listener(run: Run) -> Listener | None:
    return None
