"""`event`: Lua's way to dispatch events, `event.dispatch(type, data)`.

The module hands events to an EventPort kept on the process's Services. Top-level code runs
before the run starts, so the port keeps what it is given until the run's event recorder is
attached (sloth_runner.events.run_listener); if no hook applies to the run, it is told so and
drops everything from then on: a run without hooks pays nothing for events. Scrubbing and
storing are the recorder's (the events package); this adapter only checks and converts.
"""

from __future__ import annotations

import time

from sloth_runner.lua.convert import lua_type, to_python, type_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from sloth_runner.lua.runtime import LuaRuntime
    from sloth_runner.lua.services import Services

    class EventSink(Protocol):
        """Where a port's events go: the run's recorder, or a hook's (events package)."""

        def dispatch(self, type: str, data: Any, workflow: str | None, task: str | None,
                     scrubber: Callable[[], Any], at: float | None = None) -> None: ...

# Names of events: dotted words (`deploy.completed`), as the engine's own (`task.failed`).
_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


class EventPort:
    """Events from Lua code on their way to a sink; kept until one is attached."""

    __slots__ = ("sink", "pending", "closed")

    def __init__(self) -> None:
        self.sink: EventSink | None = None
        self.pending: list[tuple] = []
        self.closed = False

    def send(self, type: str, data: Any, workflow: str | None, task: str | None,
             scrubber: Callable[[], Any], at: float | None = None) -> None:
        """(`at`: when it happened, for events made elsewhere: an agent's.)"""
        sink = self.sink
        if sink is not None:
            sink.dispatch(type, data, workflow, task, scrubber, at)
        elif not self.closed:
            self.pending.append((type, data, workflow, task, scrubber, at or time.time()))

    def attach(self, sink: EventSink | None) -> None:
        """From now on events go to `sink`, and those kept so far too; None: nothing
        listens, drop them all."""
        pending, self.pending = self.pending, []
        self.sink, self.closed = sink, sink is None
        if sink is not None:
            for type, data, workflow, task, scrubber, at in pending:
                sink.dispatch(type, data, workflow, task, scrubber, at)


def is_event_type(name: Any) -> bool:
    """A usable event name: 1-100 of letters, digits and `_ . : -`, not starting with
    punctuation other than `_`."""
    return (isinstance(name, str) and 0 < len(name) <= 100 and _TYPE_CHARS.issuperset(name)
            and (name[0].isalnum() or name[0] == "_"))


def port_of(services: Any) -> EventPort | None:
    """The port of a Services object (set when the `event` module is installed)."""
    port = getattr(services, "event_port", None)
    return port if isinstance(port, EventPort) else None


def install_event_module(rt: LuaRuntime, services: Services) -> None:
    port = port_of(services)
    if port is None:
        port = EventPort()
        services.event_port = port  # looked up by run_listener and hooks

    def scrubber() -> Any:  # looked up when needed: a worker's is the run's, over its link
        return services.scrubber

    def dispatch(kind: Any = None, data: Any = None) -> bool:
        if not is_event_type(kind):
            shown = repr(kind) if isinstance(kind, str) else _lua_name(kind)
            raise ValueError("event.dispatch expects an event type like \"deploy.completed\" "
                             "(letters, digits, _ . : -, at most 100), got " + shown)
        if data is not None and lua_type(data) != "table":
            raise TypeError(f"event.dispatch: data must be a table, got {_lua_name(data)}")
        if port.closed:  # no hook applies to this run
            return True
        value = to_python(data) if data is not None else {}
        ctx = rt.current
        port.send(kind, value, ctx.workflow if ctx else None, ctx.task if ctx else None,
                  scrubber)
        return True

    def dispatch_custom(name: Any = None, message: Any = None) -> bool:
        """Go's shorthand: an event of type `custom` carrying {name, message}."""
        if not isinstance(name, str) or not isinstance(message, str):
            raise TypeError("event.dispatch_custom expects (name, message), two strings, got "
                            f"({_lua_name(name)}, {_lua_name(message)})")
        if port.closed:
            return True
        ctx = rt.current
        port.send("custom", {"name": name, "message": message},
                  ctx.workflow if ctx else None, ctx.task if ctx else None, scrubber)
        return True

    rt.install("event", {"dispatch": rt.wrap(dispatch),
                         "dispatch_custom": rt.wrap(dispatch_custom)})


def _lua_name(value: Any) -> str:
    """The Lua type of a value that came from Lua (plain ones arrive as Python's)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str | bytes):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return type_name(value)
