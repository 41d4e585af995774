"""Hook files: load one, and run its `execute(event)` in a Lua runtime of its own.

A hook file returns a table:

    return {
        name = "notify-failure",
        event_types = {"task.failed", "workflow.failed"},   -- or event_type = "task.failed"
        stack = "production",                               -- optional: only that stack's runs
        timeout = "30s",                                    -- optional (default 30 s)
        description = "...",                                -- optional
        enabled = false,                                    -- optional: registered disabled
        execute = function(event) ... end,
    }

or, as the Go sloth-runner's hook files do, defines a global `function on_event() ... end`
that reads the global `event`. Such a file says neither its name nor its event type (Go's
`hook add NAME --file FILE --event TYPE` gives them), so its spec has no name; it runs with
the global `event` set to the event (which also carries the `event` module's functions, so
`event.dispatch` still works). Go's event names (task.completed, ...) are registered under
this project's (`subscriptions`).

`hook add` loads it once to read the declaration; the store keeps the file's path and what it
declared. Every execution loads the file again, in a fresh runtime with every core module
(exec, log, state, fs, ai, ...), so an edit to the body takes effect at the next event, and
no execution sees what another left in Lua globals. The event types, stack and timeout are
those stored: change them in the file, then `hook add FILE --replace`.

`execute` returning false (and a message) is a failed execution; raising an error is an
error (with the file:line); running past the timeout is a timeout: its Lua code is stopped
and the processes it started are killed.
"""

from __future__ import annotations

import os
import re
import time

from sloth_runner.engine.events import Listener, Redacting, map_strings
from sloth_runner.engine.model import Outcome, TaskContext, TaskInterrupted, TaskTimeout
from sloth_runner.errors import DefinitionError, LoadError, LuaScriptError, user_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from sloth_runner.lua.runtime import LuaRuntime
    from sloth_runner.lua.services import Services
    from sloth_runner.store.db import Store

DEFAULT_TIMEOUT_S = 30.0
FIELDS = ("name", "event_type", "event_types", "stack", "timeout", "description", "enabled",
          "execute")
HOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

# Runs the file's top-level code and hands back what it returned (the loader's run_file keeps
# only whether it ran). The chunk name is the path, so errors carry file:line.
_READ = """
local source, chunkname = ...
local fn, err = load(source, chunkname, "t")
if not fn then return false, err end
local ok, value = pcall(fn)
if not ok then return false, tostring(value) end
return true, value, rawget(_G, "on_event")
"""

# `hook test`'s sample event is stored nowhere and belongs to no run, yet a hook must be able to
# read it as it reads a run's (`"x" .. event.id`): 0 is no stored event's id (they start at 1),
# "test" no run's (they are 12 hex digits).
SAMPLE_ID, SAMPLE_RUN_ID, SAMPLE_SOURCE = 0, "test", "test"

# The Go sloth-runner's names for events this one sends under another name. The cancelled
# ones: an interrupted task (or workflow) ends as failed here, with status "interrupted".
GO_NAMES = {"task.completed": "task.succeeded", "task.timeout": "task.timed_out",
            "task.retrying": "task.retried", "task.cancelled": "task.failed",
            "workflow.cancelled": "workflow.failed"}


class HookSpec:
    """What a hook file declares. A Go-style file (on_event) declares nothing: its name is
    None, its types empty, and `hook add` must be given them."""

    __slots__ = ("name", "event_types", "stack", "timeout_s", "description", "enabled",
                 "execute", "path", "on_event")

    def __init__(self, name: str | None, event_types: list[str], stack: str | None,
                 timeout_s: float, description: str, execute: Any, path: str,
                 enabled: bool | None = None, on_event: bool = False) -> None:
        self.name = name
        self.event_types = event_types
        self.stack = stack
        self.timeout_s = timeout_s
        self.description = description
        self.enabled = enabled  # None: not said (a new hook is enabled)
        self.execute = execute
        self.path = path
        self.on_event = on_event


class HookOutput(Listener):
    """What a hook logs (log.*, print), kept for its hook_runs row; `echo` also shows it.
    It is given lines already scrubbed (HookHost.services puts a Redacting in front), so what
    is shown is what is kept."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self.echo = echo

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        line = message if level in ("info", "print") else f"{level}: {message}"
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def text(self) -> str:
        return "\n".join(self.lines)


class Stopper:
    """Lets another thread stop an execution that ran out of time: its Lua code raises at
    its next instruction hook, and the processes it started are killed."""

    def __init__(self) -> None:
        self.runtime: LuaRuntime | None = None
        self.ctx: TaskContext | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.runtime is not None:
            self.runtime.interrupt()
        if self.ctx is not None:
            self.ctx.cancel.cancel()


def load_hook(path: str, services: Services, stopper: Stopper | None = None
              ) -> tuple[HookSpec, LuaRuntime]:
    """Run a hook file and read its declaration; LoadError (with file:line) if it does not
    load or declares something wrong."""
    from sloth_runner.lua.modules import install_core_modules
    from sloth_runner.lua.runtime import LuaRuntime

    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except FileNotFoundError:
        raise LoadError(f"{path}: no such hook file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory, not a hook file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc
    rt = LuaRuntime()
    if stopper is not None:
        stopper.runtime = rt
    install_core_modules(rt, services)
    rt.S.watch_main()  # a loop at top level stops when the execution is stopped
    try:
        ok, value, *on_event = rt.lua.execute(_READ, source, "@" + path)
    finally:
        rt.S.unwatch_main()
    if rt.stopping:
        raise TaskInterrupted("stopped while loading")
    if not ok:
        raise LuaScriptError(rt.user_error(full_paths(str(value), path)))
    return _declaration(value, on_event[0] if on_event else None, path, source), rt


def _declaration(value: Any, on_event: Any, path: str, source: str) -> HookSpec:
    from sloth_runner.lua.convert import lua_type

    where = f"{path}:{_return_line(source)}"
    example = ("return {name = \"my-hook\", event_type = \"task.failed\", "
               "execute = function(event) ... end}")
    if lua_type(value) != "table" and lua_type(on_event) == "function":
        return HookSpec(None, [], None, DEFAULT_TIMEOUT_S, "", on_event, path, on_event=True)
    if lua_type(value) != "table":
        got = lua_type(value) or ("nil" if value is None else type(value).__name__)
        raise DefinitionError(f"{where}: a hook file must return a table like {example}, or "
                              f"define function on_event() ... end; it returned {got}")
    fields = {str(k): v for k, v in value.items()}
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise DefinitionError(f"{where}: unknown hook field '{unknown[0]}' (fields: "
                              f"{', '.join(FIELDS)})")
    name = fields.get("name")
    if not isinstance(name, str) or not HOOK_NAME.fullmatch(name):
        raise DefinitionError(f"{where}: the hook needs a name: letters, digits, _ . -, at "
                              f"most 100, starting with a letter or digit (got "
                              f"{_shown(name)})")
    if lua_type(fields.get("execute")) != "function":
        raise DefinitionError(f"{where}: hook '{name}' needs execute = function(event) ... end"
                              f" (got {_shown(fields.get('execute'))})")
    types = _event_types(fields, where, name)
    stack = fields.get("stack")
    if stack is not None and (not isinstance(stack, str) or not stack.strip()):
        raise DefinitionError(f"{where}: hook '{name}': stack must be a stack name (got "
                              f"{_shown(stack)})")
    description = fields.get("description")
    if description is not None and not isinstance(description, str):
        raise DefinitionError(f"{where}: hook '{name}': description must be a string")
    enabled = fields.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise DefinitionError(f"{where}: hook '{name}': enabled must be true or false (got "
                              f"{_shown(enabled)})")
    timeout_s = DEFAULT_TIMEOUT_S
    if fields.get("timeout") is not None:
        from sloth_runner.durations import parse_duration

        try:
            timeout_s = parse_duration(fields["timeout"])
        except ValueError as exc:
            raise DefinitionError(f"{where}: hook '{name}': timeout: {exc}") from None
        if timeout_s <= 0:
            raise DefinitionError(f"{where}: hook '{name}': timeout must be longer than 0")
    return HookSpec(name, types, stack, timeout_s, description or "", fields["execute"], path,
                    enabled)


def _event_types(fields: dict[str, Any], where: str, name: str) -> list[str]:
    from sloth_runner.lua.convert import lua_type, to_python

    one, many = fields.get("event_type"), fields.get("event_types")
    if one is not None and many is not None:
        raise DefinitionError(f"{where}: hook '{name}': give event_type or event_types, not "
                              "both")
    if one is None and many is None:
        raise DefinitionError(f"{where}: hook '{name}' needs event_type = \"task.failed\" or "
                              "event_types = {...}")
    if many is not None and lua_type(many) != "table":
        raise DefinitionError(f"{where}: hook '{name}': event_types must be a list of event "
                              f"types (got {_shown(many)})")
    types = [one] if one is not None else to_python(many)
    if not isinstance(types, list) or not types:
        raise DefinitionError(f"{where}: hook '{name}': event_types must be a non-empty list")
    for t in types:
        if not is_subscription(t):
            raise DefinitionError(f"{where}: hook '{name}': {_shown(t)} is not an event type "
                                  "(like \"task.failed\", \"task.*\" or \"*\")")
    return list(dict.fromkeys(types))


def is_subscription(value: Any) -> bool:
    """What a hook may subscribe to: an event type, `prefix.*` or `*`."""
    from sloth_runner.lua.events_module import is_event_type

    if isinstance(value, str) and value.endswith("*"):
        return value == "*" or (value.endswith(".*") and is_event_type(value[:-2]))
    return is_event_type(value)


def subscriptions(types: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The types to register for what a hook asks for, with what to tell the user: notes
    (a Go sloth-runner name registered under this project's) and warnings (a type no run
    sends, which only event.dispatch could). The alternative, refusing Go's names, would
    refuse the Go project's hook files for a difference of spelling."""
    registered, notes, warnings = [], [], []
    for t in types:
        ours = GO_NAMES.get(t, t)
        if ours != t:
            more = (" (also sent for every other failure; a cancelled one has status "
                    "'interrupted')") if t.endswith(".cancelled") else ""
            notes.append(f"'{t}' (the Go sloth-runner's name) is '{ours}' here: registered "
                         f"as '{ours}'{more}")
        why = never_sent(ours)
        if why:
            warnings.append(f"'{ours}' never fires in this version ({why}); only an "
                            "event.dispatch in a workflow would trigger the hook")
        registered.append(ours)
    return list(dict.fromkeys(registered)), notes, warnings


def never_sent(subscription: str) -> str | None:
    """Why no run sends events of `subscription` (None: runs send them, or it is a name of
    the user's own, sent by event.dispatch)."""
    from sloth_runner.events import ENGINE_TYPES

    family = subscription.split(".", 1)[0]
    if family == "agent" and "." in subscription:
        return "there are no agents yet"
    if family == "system" and "." in subscription:
        return "sloth-runner sends no system events"
    if family in ("task", "workflow") and not subscription.endswith("*") and \
            subscription not in ENGINE_TYPES:
        return "runs send " + ", ".join(t for t in ENGINE_TYPES if t.startswith(family + "."))
    return None


def _shown(value: Any) -> str:
    from sloth_runner.lua.convert import lua_type

    if isinstance(value, str):
        return repr(value)
    return lua_type(value) or ("nil" if value is None else type(value).__name__)


def _return_line(source: str) -> int:
    """The line of the file's last `return` at the start of a line: where the declaration is
    (a declaration problem has no Lua error to say where)."""
    line = 1
    for number, text in enumerate(source.splitlines(), 1):
        if text.startswith("return"):
            line = number
    return line


def full_paths(message: str, path: str) -> str:
    """Lua shortens a long chunk name to "...tail"; put the path back."""
    if "..." not in message:
        return message
    for cut in range(1, len(path)):
        marker = "..." + path[cut:] + ":"
        if marker in message:
            return message.replace(marker, path + ":")
    return message


# -- running -----------------------------------------------------------------------------------
class HookHost:
    """What hook executions of one process share: the store, a scrubber, an AI service (built
    on first use), the spool folder. Each execution gets Services of its own around them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._scrubber: Any = None
        self._ai: Any = None
        self.run_id = None  # for calls.handlers_for: hooks have no run of their own
        from sloth_runner.grants import Grants

        self.grants = Grants()  # hooks are the user's own, registered by hand: not sandboxed

    @property
    def scrubber(self) -> Any:
        if self._scrubber is None:
            from sloth_runner.scrub import Scrubber
            from sloth_runner.scrub.environment import secret_values

            self._scrubber = Scrubber(known=secret_values(os.environ))
        return self._scrubber

    def scrub(self, text: str) -> str:
        return str(self.scrubber.scrub(text)[0]) if text else text

    @property
    def ai(self) -> Any:
        if self._ai is None:
            from sloth_runner.ai.client import AIService
            from sloth_runner.store.ai_usage import AIUsageStore

            self._ai = AIService(usage=lambda: AIUsageStore(self.store), scrubber=self.scrubber,
                                 notice=lambda text: None)
        return self._ai

    def services(self, output: HookOutput, hook: str | None, event: dict[str, Any] | None
                 ) -> Services:
        """Services for one execution of `hook` (None: a file loaded to read its declaration,
        whose top-level event.dispatch goes nowhere)."""
        from sloth_runner import paths
        from sloth_runner.lua.events_module import EventPort
        from sloth_runner.lua.services import Services
        from sloth_runner.store.state import StateStore

        def ai() -> Any:
            from sloth_runner.calls import handlers_for
            from sloth_runner.lua.ai_module import AIGateway

            handler = handlers_for(self)["ai"]  # type: ignore[arg-type]  # has what it asks
            return AIGateway(lambda method, args, on_token: handler(method, args, on_token))

        # The hook's log lines are scrubbed on their way to `output`, as a run's are on their
        # way to its listener: `hook test` and `hook add` echo them, and the terminal must not
        # show what the history does not keep.
        services = Services(Redacting(output, self.scrub), lambda: StateStore(self.store),
                            paths.spool_dir("hooks"), ai, scrubber=lambda: self.scrubber)
        port = EventPort()
        port.attach(_HookEvents(self, hook, event) if hook is not None else None)
        services.event_port = port
        return services


class _HookEvents:
    """event.dispatch inside a hook: recorded (source `hook:NAME`, in the run of the event
    that triggered it; in none for `hook test`'s sample) but delivered to no hook, so hooks
    cannot trigger each other in a loop."""

    def __init__(self, host: HookHost, hook: str, event: dict[str, Any] | None) -> None:
        self.host, self.hook, self.event = host, hook, event or {}
        self.run_id = None if is_sample(self.event) else self.event.get("run_id")

    def dispatch(self, kind: str, data: Any, workflow: str | None, task: str | None,
                 scrubber: Callable[[], Any], at: float | None = None) -> None:
        from sloth_runner.events.recorder import _JSON
        from sloth_runner.store.events import insert_events

        clean = map_strings(data, self.host.scrub)
        insert_events(self.host.store, [(kind, at or time.time(), self.run_id,
                                         self.event.get("workflow"), self.event.get("task"),
                                         self.event.get("stack"), f"hook:{self.hook}",
                                         _JSON(clean))])


def sample_event(host: HookHost, kind: str, data: dict[str, Any], stack: str | None
                 ) -> dict[str, Any]:
    """The event `hook test` runs a hook on, with every field a run's event has, so a hook
    that works in the test works on a run's events: id SAMPLE_ID and run_id SAMPLE_RUN_ID,
    source "test", now; workflow and task from `data` (else "test"; a workflow.* event has
    no task, as in a run); the hook's stack (none if it has none, as a run without a stack).
    `data` is scrubbed, as a run's events are before any hook sees them, so `hook test -o
    json` prints nothing a hook would not be given."""
    data = map_strings(data, host.scrub)
    workflow, task = data.get("workflow"), data.get("task")
    if not isinstance(task, str):
        task = None if kind.startswith("workflow.") else "test"
    return {"id": SAMPLE_ID, "type": kind, "at": time.time(), "run_id": SAMPLE_RUN_ID,
            "workflow": workflow if isinstance(workflow, str) else "test", "task": task,
            "stack": stack, "source": SAMPLE_SOURCE, "data": data}


def is_sample(event: dict[str, Any]) -> bool:
    """A `hook test` event: its execution and what it dispatches belong to no event or run."""
    return event.get("id") == SAMPLE_ID and event.get("source") == SAMPLE_SOURCE


class Result:
    __slots__ = ("status", "error", "output", "duration_s")

    def __init__(self, status: str, error: str | None, output: str, duration_s: float) -> None:
        self.status = status  # success | failed | error | timeout
        self.error = error
        self.output = output
        self.duration_s = duration_s


def run_hook(host: HookHost, hook: dict[str, Any], event: dict[str, Any], deadline: float,
             stopper: Stopper | None = None, echo: Callable[[str], None] | None = None,
             started: float | None = None) -> Result:
    """One execution of a registered hook for `event`, to its end (by `deadline`; it and
    `started` are time.monotonic() values). Never raises: whatever happens is the result."""
    from sloth_runner.engine.lifecycle import run_now

    stopper = stopper or Stopper()
    output = HookOutput(echo)
    started = time.monotonic() if started is None else started
    timeout = f"timed out after {hook['timeout_s']:g}s"
    try:
        spec, rt = load_hook(hook["file"], host.services(output, hook["name"], event), stopper)
        if spec.name is not None and spec.name != hook["name"]:
            raise DefinitionError(f"{hook['file']} now declares hook '{spec.name}', not "
                                  f"'{hook['name']}': run `sloth-runner hook add "
                                  f"{hook['file']} --replace`")
        ctx = TaskContext("", hook["name"], {}, {})
        ctx.deadline = deadline
        stopper.ctx = ctx
        if stopper.stopped:
            raise TaskInterrupted("stopped")
        outcome = run_now(_Execute(rt, spec, event_for_lua(event, spec.on_event)), ctx)
    except (TaskTimeout, TaskInterrupted):
        return Result("timeout", timeout, host.scrub(output.text()), time.monotonic() - started)
    except LoadError as exc:
        return _result(host, "error", str(exc), output, started)
    except Exception as exc:  # a bug of ours, or the store: still an execution to record
        return _result(host, "error", f"{type(exc).__name__}: {user_message(exc)}", output,
                       started)
    if stopper.stopped:  # it ended on being stopped (a blocking call was killed)
        return Result("timeout", timeout, host.scrub(output.text()), time.monotonic() - started)
    if outcome.success:
        return _result(host, "success", None, output, started)
    if outcome.error is not None:
        return _result(host, "error", outcome.error, output, started)
    return _result(host, "failed", outcome.message or f"{_entry(spec)} returned false",
                   output, started)


def _entry(spec: HookSpec) -> str:
    return "on_event" if spec.on_event else "execute"


def _result(host: HookHost, status: str, error: str | None, output: HookOutput,
            started: float) -> Result:
    return Result(status, host.scrub(error) if error else None, host.scrub(output.text()),
                  time.monotonic() - started)


class _Execute:
    """`execute(event)` (or a Go-style file's `on_event()`, with the global `event` set) as an
    engine action: a Lua coroutine under the execution's deadline, its blocking calls
    (exec.run, ai.*) served on this thread. Outcome: success, an error (it raised, with
    file:line), or a failure (it returned false [, message])."""

    def __init__(self, rt: LuaRuntime, spec: HookSpec, event: dict[str, Any]) -> None:
        self.rt, self.fn, self.event, self.path = rt, spec.execute, event, spec.path
        self.on_event = spec.on_event

    def __call__(self, ctx: TaskContext) -> Generator[Any, Any, Outcome]:
        rt = self.rt
        event = rt.table(self.event)
        # The event hides the `event` module (execute's parameter, or on_event's global):
        # it carries the module's functions, so event.dispatch works anyway.
        for key, fn in rt.lua.globals().package.loaded["event"].items():
            event[key] = fn
        if self.on_event:
            rt.lua.globals()["event"] = event
        step, close = rt.S.start(self.fn, ctx.deadline)
        program = rt.drive(step, close, ctx, (event,))
        value: Any = None
        error: BaseException | None = None
        while True:  # `yield from`, but a call that returns past the deadline (a process
            try:     # killed at it) ends the execution there, as the scheduler does for tasks
                request = program.throw(error) if error is not None else program.send(value)
            except StopIteration as stop:
                reply = stop.value
                break
            value, error = None, None
            try:
                value = yield request
            except Exception as exc:
                error = exc
            if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
                error = TaskTimeout()
        if reply[0] == "error":
            return Outcome(False, error=rt.user_error(full_paths(str(reply[1]), self.path)))
        values = reply[1:]
        if values and values[0] is False:
            message = values[1] if len(values) > 1 and isinstance(values[1], str) else ""
            return Outcome(False, message)
        return Outcome(True)


def event_for_lua(event: dict[str, Any], go_style: bool = False) -> dict[str, Any]:
    """What `execute` receives: the stored event, `timestamp` for its time. A Go-style file
    gets it as the Go sloth-runner gave it: `timestamp` in whole seconds (its hooks pass it to
    os.date, which refuses a fraction), and a table given as `data.agent` or `data.task` also
    at `event.agent` / `event.task` (what its `event.task or event.data.task` expects)."""
    data = event.get("data") or {}
    shown = {"id": event.get("id"), "type": event["type"], "timestamp": event.get("at"),
             "run_id": event.get("run_id"), "workflow": event.get("workflow"),
             "task": event.get("task"), "stack": event.get("stack"),
             "source": event.get("source"), "data": data}
    if go_style:
        if isinstance(shown["timestamp"], float):
            shown["timestamp"] = int(shown["timestamp"])
        for key in ("agent", "task"):
            if isinstance(data.get(key), dict):
                shown[key] = data[key]
    return shown
