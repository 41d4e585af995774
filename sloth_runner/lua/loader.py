"""Load a workflow file: run it in a fresh runtime, then describe what it defined.

The result has two halves: a description of each task made of plain values (only the fields
it set, with the file:line of its definition), which `running.Run` turns into engine objects,
and the Lua functions themselves, indexed by (workflow, task, kind), which run in this process
or, forked with it, in a worker.

Checks that need the whole file (duration syntax, a zero timeout, builders never built) happen
here, and every message starts with the file:line of the definition at fault. Graph checks
(duplicates, unknown dependencies, cycles) are the engine's.
"""

from __future__ import annotations

import os

from sloth_runner.durations import parse_duration
from sloth_runner.errors import DefinitionError, LoadError
from sloth_runner.lua.convert import to_python
from sloth_runner.lua.modules import install_core_modules
from sloth_runner.lua.runtime import LuaAction, LuaRuntime
from sloth_runner.lua.services import Services

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

DEFAULT_WORKFLOW = "default"
ACTION_KINDS = ("command", "run_if", "abort_if", "on_success", "on_failure")


class LoadedFile:
    """What a file defined: `workflows` (plain descriptions) and `actions` (Lua functions)."""

    def __init__(self, path: str, runtime: LuaRuntime, workflows: list[dict[str, Any]],
                 actions: dict[tuple[str, str, str], Any], warnings: list[str]) -> None:
        self.path = path
        self.runtime = runtime
        self.workflows = workflows
        self.actions = actions
        self.warnings = warnings


def load_file(path: str, services: Services, *, sandbox: bool = False,
              debug: bool = False) -> LoadedFile:
    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None  # the message says it all
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory, not a workflow file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc
    rt = LuaRuntime(sandbox=sandbox, debug=debug)
    install_core_modules(rt, services)
    rt.run_file(source, path, debug=debug)
    return _describe(rt, path)


def _describe(rt: LuaRuntime, path: str) -> LoadedFile:
    actions: dict[tuple[str, str, str], Any] = {}
    workflows: list[dict[str, Any]] = []
    for wf in rt.S.registry.workflows.values():
        fields = dict(wf.items())
        name = fields["name"]
        where = fields["where"]
        config = to_python(fields["config"]) if fields.get("config") is not None else {}
        for kind in ("on_start", "on_complete"):
            if fields.get(kind) is not None:
                actions[(name, "", kind)] = LuaAction(rt, fields[kind], kind)
        workflows.append({
            "name": name, "where": where, "description": fields.get("description") or "",
            "max_parallel": _positive_int(config.get("max_parallel_tasks"), where,
                                          "config.max_parallel_tasks"),
            "timeout": _positive_duration(config.get("timeout"), where,
                                          f"workflow '{name}': config.timeout"),
            "on_start": fields.get("on_start") is not None,
            "on_complete": fields.get("on_complete") is not None,
            "tasks": [_task(rt, name, spec, actions) for spec in fields["tasks"].values()],
        })
    names = [w["name"] for w in workflows]
    for name in names:
        if names.count(name) > 1:
            raise DefinitionError(f"{path}: workflow '{name}' is defined more than once")
    loose = list(rt.S.unclaimed().values())
    if loose:
        name = DEFAULT_WORKFLOW if DEFAULT_WORKFLOW not in names else \
            os.path.splitext(os.path.basename(path))[0]
        workflows.append({"name": name, "where": f"{path}:1", "description": "",
                          "max_parallel": None, "timeout": None, "on_start": False,
                          "on_complete": False,
                          "tasks": [_task(rt, name, spec, actions) for spec in loose]})
    warnings = []
    for entry in rt.S.unbuilt().values():
        task_name, _, where = str(entry).partition("\t")
        warnings.append(f"{where}: task '{task_name}' is never built: end its chain with "
                        ":build(), or it does not run")
    return LoadedFile(path, rt, workflows, actions, warnings)


def _task(rt: LuaRuntime, workflow: str, spec: Any, actions: dict[tuple[str, str, str], Any]
          ) -> dict[str, Any]:
    """A task's description: only the fields it sets (a definition is a few fields, and a
    10,000-task file must load fast); `running.Run` supplies the defaults."""
    fields = dict(spec.items())
    name, where = fields.pop("name"), fields.pop("where")
    d: dict[str, Any] = {"name": name, "where": where}
    what = f"task '{name}'"
    for key, value in fields.items():
        if key in ACTION_KINDS:
            if isinstance(value, str):
                d[key] = {"shell": value}
            else:
                actions[(workflow, name, key)] = LuaAction(rt, value, key)
                d[key] = {"lua": True}
        elif key in ("depends_on", "inputs", "outputs"):
            d[key] = list(value.values())
        elif key == "timeout":
            d[key] = _positive_duration(value, where, f"{what}: :timeout()")
        elif key == "retry_delay":
            d[key] = _duration(value, where, f"{what}: :retry_delay()")
        elif key == "env":
            d[key] = {str(k): str(v) for k, v in to_python(value).items()}
        elif key == "memory_limit":
            from sloth_runner.sizes import parse_size

            try:
                d[key] = parse_size(value)
            except ValueError as exc:
                raise DefinitionError(f"{where}: {what}: :memory_limit(): {exc}") from exc
        elif key != "claimed":
            d[key] = value  # description, retries, backoff, workdir, trigger_rule
    return d


def _duration(value: Any, where: str, what: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise DefinitionError(f"{where}: {what}: {exc}") from exc


def _positive_duration(value: Any, where: str, what: str) -> float | None:
    seconds = _duration(value, where, what)
    if seconds is not None and seconds <= 0:
        raise DefinitionError(f"{where}: {what} must be longer than 0 (leave it out for no "
                              "timeout)")
    return seconds


def _positive_int(value: Any, where: str, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DefinitionError(f"{where}: {what} must be a whole number >= 1, got {value!r}")
    return value
