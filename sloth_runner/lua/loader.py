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
import re

from sloth_runner.durations import parse_duration
from sloth_runner.errors import DefinitionError, DependencyError, LoadError
from sloth_runner.lua.convert import to_python
from sloth_runner.lua.modules import install_core_modules
from sloth_runner.lua.runtime import LuaAction, LuaRuntime
from sloth_runner.lua.services import Services

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

DEFAULT_WORKFLOW = "default"
ACTION_KINDS = ("command", "run_if", "abort_if", "on_success", "on_failure", "pre_hook",
                "post_hook", "on_timeout")


class LoadedFile:
    """What a file defined: `workflows` (plain descriptions) and `actions` (Lua functions)."""

    def __init__(self, path: str, runtime: LuaRuntime, workflows: list[dict[str, Any]],
                 actions: dict[tuple[str, str, str], Any], warnings: list[str],
                 unbuilt: dict[str, str]) -> None:
        self.path = path
        self.runtime = runtime
        self.workflows = workflows
        self.actions = actions
        self.warnings = warnings
        self.unbuilt = unbuilt  # task name -> file:line of a builder never built
        self.hook_file = False  # the file returned a hook definition


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
    if source.startswith("#!"):  # a shebang line (`#!/usr/bin/env sloth-runner`): a comment
        source = "--" + source
    rt = LuaRuntime(sandbox=sandbox, debug=debug)
    install_core_modules(rt, services)
    rt.S.base_dir = os.path.dirname(os.path.abspath(path))  # import() and require() look here
    # Always a table, so that `values.host or "localhost"` works without -v (Go leaves the
    # global undefined then, and such files stop at their first line that reads it).
    lua_values = rt.table(services.values or {})
    rt.lua.globals().values = rt.lua.globals().Values = lua_values
    hook_file = rt.run_file(source, path, debug=debug)
    loaded = _describe(rt, path, services.values)
    loaded.hook_file = hook_file
    if loaded.unbuilt and not loaded.workflows and not hook_file and rt.calls == 0:
        # The file's only definitions are builders never built: nothing would run, and the
        # reason is one missing `:build()`, which the message must say, not "nothing to run".
        task_name, where = next(iter(loaded.unbuilt.items()))
        others = len(loaded.unbuilt) - 1
        raise DefinitionError(f"{where}: task '{task_name}' is never built: end its chain with "
                              ":build()" + (f" (and {others} more task builder"
                                            f"{'s' if others > 1 else ''})" if others else "")
                              + "; as it is, the file has nothing to run")
    return loaded


def _describe(rt: LuaRuntime, path: str, values: dict[str, Any] | None) -> LoadedFile:
    actions: dict[tuple[str, str, str], Any] = {}
    workflows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for wf in rt.S.registry.workflows.values():
        fields = dict(wf.items())
        name = fields["name"]
        where = fields["where"]
        config = to_python(fields["config"]) if fields.get("config") is not None else {}
        config = {k: interpolate(v, values, where, f"workflow '{name}': config.{k}")
                  for k, v in config.items()}
        for kind in ("on_start", "on_complete"):
            if fields.get(kind) is not None:
                actions[(name, "", kind)] = LuaAction(rt, fields[kind], kind)
        if fields.get("unused"):
            warnings.extend(_unused_config(name, where, list(fields["unused"].values())))
        delegate = fields.get("delegate_to")
        tasks = [_task(rt, name, spec, actions, values) for spec in fields["tasks"].values()]
        if not tasks:  # it would report success with nothing done: a mistake, not a no-op
            raise DefinitionError(f"{where}: workflow '{name}' has no tasks: list them with "
                                  ":tasks({...}) or tasks = {...}")
        workflows.append({
            "name": name, "where": where, "description": fields.get("description") or "",
            "version": fields.get("version"),
            "max_parallel": _positive_int(config.get("max_parallel_tasks"), where,
                                          "config.max_parallel_tasks"),
            "timeout": _positive_duration(config.get("timeout"), where,
                                          f"workflow '{name}': config.timeout"),
            "workdir": config.get("workdir"),
            "create_workdirs": bool(config.get("create_workdir_before_run")),
            "fail_fast": config.get("continue_on_error") is False,
            "delegate_to": interpolate(delegate, values, where,
                                       f"workflow '{name}': delegate_to") if delegate else None,
            "on_start": fields.get("on_start") is not None,
            "on_complete": fields.get("on_complete") is not None,
            "tasks": tasks,
        })
    names = [w["name"] for w in workflows]
    for name in names:
        if names.count(name) > 1:
            raise DefinitionError(f"{path}: workflow '{name}' is defined more than once")
    loose = list(rt.S.unclaimed().values())
    if loose and workflows:
        # As in the Go sloth-runner: a file with workflows runs what they list, not the rest.
        listed = ", ".join(f"'{spec['name']}' ({spec['where']})" for spec in loose)
        warnings.append(f"{path}: built but in no workflow, so not run: {listed}")
    elif loose:  # a file of tasks only (the seed's form): they make the `default` workflow
        workflows.append({"name": DEFAULT_WORKFLOW, "where": f"{path}:1", "description": "",
                          "max_parallel": None, "timeout": None, "on_start": False,
                          "on_complete": False,
                          "tasks": [_task(rt, DEFAULT_WORKFLOW, spec, actions, values)
                                    for spec in loose]})
    unbuilt = {}
    for entry in rt.S.unbuilt().values():
        task_name, _, where = str(entry).partition("\t")
        unbuilt[task_name] = where
        warnings.append(f"{where}: task '{task_name}' is never built: end its chain with "
                        ":build(), or it does not run")
    return LoadedFile(path, rt, workflows, actions, warnings, unbuilt)


CONFIG_KEYS = ("max_parallel_tasks", "timeout", "workdir", "create_workdir_before_run",
               "continue_on_error")


def _unused_config(workflow: str, where: str, keys: list[str]) -> list[str]:
    """Config keys with no meaning here: a warning (Go files carry keys of their own), or an
    error when the key looks like a misspelt one that has a meaning."""
    import difflib

    for key in keys:
        close = difflib.get_close_matches(key, CONFIG_KEYS, n=1, cutoff=0.75)
        if close:
            raise DefinitionError(f"{where}: workflow '{workflow}': config.{key}: unknown, did "
                                  f"you mean {close[0]}?")
    return [f"{where}: workflow '{workflow}': " + ", ".join(f"config.{k}" for k in keys)
            + " has no effect here"]


def interpolate(value: Any, values: dict[str, Any] | None, where: str, what: str) -> Any:
    """`${values.a.b}` in a string, from the --values files (Go's syntax for agent names and
    config strings). A name no file sets is a load error: left as written, it became an agent
    called `${values.host}` or a workdir that fails at run time, far from its cause."""
    if not isinstance(value, str) or "${values." not in value:
        return value

    def lookup(match: re.Match[str]) -> str:
        found: Any = values or {}
        for part in match.group(1).split("."):
            if not isinstance(found, dict) or part not in found:
                given = "no values file was given" if values is None else \
                    "the values files given do not set it"
                raise DefinitionError(f"{where}: {what}: {match.group(0)} is not set ({given}): "
                                      "pass a values file that sets it, -v values.yaml")
            found = found[part]
        return str(found)

    # compiled here, on first use: most files never interpolate, and start-up is measured
    return re.sub(r"\$\{values\.([A-Za-z0-9_.-]+)\}", lookup, value)


def _task(rt: LuaRuntime, workflow: str, spec: Any, actions: dict[tuple[str, str, str], Any],
          values: dict[str, Any] | None) -> dict[str, Any]:
    """A task's description: only the fields it set (a definition is a few fields, and a
    10,000-task file must load fast); `running.Run` supplies the defaults."""
    fields = dict(spec.items())
    name, where = fields.pop("name"), fields.pop("where")
    this = fields.pop("this", None)
    this_kinds = set(this.keys()) if this is not None else ()
    d: dict[str, Any] = {"name": name, "where": where}
    what = f"task '{name}'"
    for key, value in fields.items():
        if key in ACTION_KINDS:
            if isinstance(value, str):
                d[key] = {"shell": value}
            else:
                actions[(workflow, name, key)] = LuaAction(rt, value, key, key in this_kinds)
                d[key] = {"lua": True}
        elif key in ("depends_on", "inputs", "outputs", "artifacts", "consumes"):
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
        elif key == "delegate_to":
            d[key] = interpolate(value, values, where, f"{what}: :delegate_to()") \
                if isinstance(value, str) else f"(a {value} chosen when the task runs)"
        elif key == "heal":
            d[key] = _heal(rt, workflow, name, value, actions)
        elif key != "claimed":
            d[key] = value  # description, retries, backoff, workdir, trigger_rule, user
    return d


def _heal(rt: LuaRuntime, workflow: str, task: str, spec: Any,
          actions: dict[tuple[str, str, str], Any]) -> dict[str, Any]:
    """:heal{...} as a description: each action a shell command or a Lua function, registered
    under the kind "heal:NAME" (a worker finds it there too), in the order of their names."""
    out: dict[str, Any] = {"max_attempts": int(spec["max_attempts"]), "actions": {}}
    for name in sorted(spec["actions"].keys()):
        a = spec["actions"][name]
        run = a["run"]
        entry: dict[str, Any] = {"when": a["when"], "description": a["description"]}
        if isinstance(run, str):
            entry["shell"] = run
        else:
            actions[(workflow, task, f"heal:{name}")] = LuaAction(rt, run, f"heal:{name}")
            entry["lua"] = True
        out["actions"][str(name)] = entry
    return out


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


def with_build_hint(exc: DependencyError, unbuilt: dict[str, str]) -> DependencyError:
    """`depends on unknown task 'a'`, when a builder named 'a' was never built: say so."""
    text = str(exc)
    for name, where in unbuilt.items():
        if f"unknown task '{name}'" in text:
            return DependencyError(f"{text}; a task builder '{name}' at {where} is never built:"
                                   " end its chain with :build()")
    return exc
