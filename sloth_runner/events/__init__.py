"""Events of runs and the hooks that react to them.

A run emits events (workflow.started, task.failed, ...; ENGINE_TYPES) and its Lua code may
dispatch its own (`event.dispatch`). While a registered hook applies to the run (it names no
stack, or the run's), the run records those some hook subscribes to in the store
(events/recorder.py), in batches, and a detached dispatcher process (events/dispatcher.py) reads them back from the
store and runs the hooks that subscribe to them (events/hooks.py), each in a Lua runtime of
its own, bounded by its timeout, recording every execution in `hook_runs`. So an event is
always stored before any hook sees it, a slow hook never delays a task, and hooks finish
after the run has ended.

`run_listener(run)` is all a run pays when no hook applies to it: one query of the
(small) hooks table.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from sloth_runner.engine.events import Listener
    from sloth_runner.running import Run

WORKFLOW_TYPES = ("workflow.started", "workflow.completed", "workflow.failed")
TASK_TYPES = ("task.started", "task.succeeded", "task.failed", "task.retried", "task.timed_out",
              "task.skipped")
ENGINE_TYPES = WORKFLOW_TYPES + TASK_TYPES


def run_listener(run: Run) -> Listener | None:
    """The listener recording `run`'s events and starting its hooks, or None when no hook
    applies to the run (then `event.dispatch` drops what it is given, too)."""
    from sloth_runner.lua.events_module import port_of

    stack = getattr(run, "stack", None) or None
    # The query is here, not in store/events.py: importing that module would cost a run
    # without hooks ~1 ms, several times the query itself.
    hooks = run.store.query("SELECT name, event_types FROM hooks WHERE enabled = 1 AND "
                            "(stack IS NULL OR stack = ?)", (stack,))
    port = port_of(run.services)
    if not hooks:
        if port is not None:
            port.attach(None)
        return None
    from sloth_runner.events.recorder import RunEvents

    listener = RunEvents(run.store, run.run_id, stack, [types for _, types in hooks], run.scrub)
    if port is not None:
        port.attach(listener)
    return listener


class TypeMatcher:
    """Which event types a set of subscriptions takes: exact names, `prefix.*` or `*`."""

    __slots__ = ("exact", "prefixes", "everything")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact: set[str] = set()
        prefixes: list[str] = []
        self.everything = False
        for p in patterns:
            if p == "*":
                self.everything = True
            elif p.endswith("*"):
                prefixes.append(p[:-1])
            else:
                self.exact.add(p)
        self.prefixes = tuple(prefixes)

    def __call__(self, event_type: str) -> bool:
        return self.everything or event_type in self.exact or (
            bool(self.prefixes) and event_type.startswith(self.prefixes))

