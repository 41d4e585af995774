"""What the Lua modules of a process talk to: the listener, state, spool, the AI service, the
scrubber and the grants. Its own module, so that module adapters (modules.py, integrations.py,
ai_module.py) depend on it and not on each other."""

from __future__ import annotations

from collections.abc import Callable

from sloth_runner.grants import Grants

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.engine.events import Listener
    from sloth_runner.store.state import StateStore


class Services:
    """What the Lua modules talk to. Module functions look these up when called, not when
    installed: a worker forked from the loaded file swaps them for its own (become_worker), so
    its logs, AI calls and scrubbing go to the run in the parent, and it opens its own
    database connection."""

    def __init__(self, listener: Listener, state: Callable[[], StateStore], spool: str,
                 ai: Callable[[], Any], *, params: dict[str, Any] | None = None,
                 grants: Grants | None = None,
                 scrubber: Callable[[], Any] | None = None,
                 values: dict[str, Any] | None = None) -> None:
        self.listener = listener
        self.values = values  # --values files: the Lua global `values` (absent without them)
        self.grants = grants or Grants()  # what the workflow may do (--sandbox, --allow)
        self.state = state  # opened on first use: most workflows never touch state
        self.spool = spool
        self._ai_factory = ai  # the AI stack loads only if a workflow calls it
        self._ai: Any = None
        self.params = params or {}
        self.memory_limit: int | None = None  # of the task running now, for its commands
        self._scrubber: Any = None
        self._scrubber_factory = scrubber  # the run's, so placeholders agree with the output
        self.event_port: Any = None  # where event.dispatch sends events (lua/events_module.py)

    def ai(self) -> Any:
        if self._ai is None:
            self._ai = self._ai_factory()
        return self._ai

    def become_worker(self, listener: Listener, ai: Callable[[], Any],
                      state: Callable[[], StateStore], scrubber: Callable[[], Any]) -> None:
        """In a process forked from the loaded file: talk to the parent, not to its objects
        (log lines, AI calls and scrubbing are the run's; the database connection is not
        shared across a fork)."""
        self.listener = listener
        self._ai_factory, self._ai = ai, None
        self.state = state
        self._scrubber, self._scrubber_factory = None, scrubber

    @property
    def scrubber(self) -> Any:
        """Built on first use (its ~30 compiled patterns are not worth paying for in a run that
        never needs them)."""
        if self._scrubber is None:
            if self._scrubber_factory is not None:
                self._scrubber = self._scrubber_factory()
            else:
                from sloth_runner.scrub import Scrubber

                self._scrubber = Scrubber()
        return self._scrubber
