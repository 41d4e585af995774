"""Load a workflow file: run it in a fresh runtime, then turn its registry into engine objects.

Shape checks that need the whole file (duplicate names, unknown dependencies, cycles, duration
syntax) happen here, and every message starts with the file:line of the definition at fault.
"""

from __future__ import annotations

import os

from sloth_runner.durations import parse_duration
from sloth_runner.engine import dag
from sloth_runner.engine.model import Task, Workflow, WorkflowResult
from sloth_runner.engine.shell import ShellAction
from sloth_runner.errors import DefinitionError, LoadError
from sloth_runner.lua.convert import to_python
from sloth_runner.lua.modules import Services, install_core_modules
from sloth_runner.lua.runtime import LuaAction, LuaRuntime

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

DEFAULT_WORKFLOW = "default"


class LoadedFile:
    def __init__(self, path: str, runtime: LuaRuntime, workflows: list[Workflow]) -> None:
        self.path = path
        self.runtime = runtime
        self.workflows = workflows

    def workflow(self, name: str) -> Workflow:
        for wf in self.workflows:
            if wf.name == name:
                return wf
        names = ", ".join(w.name for w in self.workflows) or "none"
        raise LoadError(f"{self.path}: no workflow named '{name}' (workflows: {names})")


def load_file(path: str, services: Services, *, sandbox: bool = False, debug: bool = False) -> LoadedFile:
    try:
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory, not a workflow file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc
    rt = LuaRuntime(sandbox=sandbox, debug=debug)
    install_core_modules(rt, services)
    rt.run_file(source, path, debug=debug)
    return LoadedFile(path, rt, _workflows(rt, services, path))


def _workflows(rt: LuaRuntime, services: Services, path: str) -> list[Workflow]:
    workflows = []
    for wf in rt.S.registry.workflows.values():
        fields = dict(wf.items())
        tasks = tuple(_task(rt, services, spec) for spec in fields["tasks"].values())
        config = to_python(fields["config"]) if fields.get("config") is not None else {}
        where = fields["where"]
        workflows.append(Workflow(
            name=fields["name"], tasks=tasks, description=fields.get("description") or "",
            max_parallel=_positive_int(config.get("max_parallel_tasks"), where,
                                       "config.max_parallel_tasks"),
            timeout=_duration(config.get("timeout"), where, "config.timeout"),
            on_start=_on_start(rt, fields.get("on_start")),
            on_complete=_on_complete(rt, fields.get("on_complete")),
            location=where,
        ))
    names = [w.name for w in workflows]
    for name in names:
        if names.count(name) > 1:
            raise DefinitionError(f"{path}: workflow '{name}' is defined more than once")
    loose = list(rt.S.unclaimed().values())
    if loose:
        tasks = tuple(_task(rt, services, spec) for spec in loose)
        name = DEFAULT_WORKFLOW if DEFAULT_WORKFLOW not in names else os.path.splitext(os.path.basename(path))[0]
        workflows.append(Workflow(name=name, tasks=tasks, location=f"{path}:1"))
    for wf in workflows:
        dag.validate(wf)
    return workflows


def _task(rt: LuaRuntime, services: Services, spec: Any) -> Task:
    (name, command, where, description, timeout, retries, backoff, retry_delay, run_if,
     abort_if, on_success, on_failure, workdir, env, *deps) = rt.export(spec)

    def action(value: Any, kind: str) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return ShellAction(value, services.spool)
        return LuaAction(rt, value, kind)

    return Task(
        name,
        action(command, "command"),
        tuple(deps),
        description or "",
        _duration(timeout, where, f"task '{name}': :timeout()") if timeout is not None else None,
        retries or 0,
        backoff or "exponential",
        _duration(retry_delay, where, f"task '{name}': :retry_delay()") or 1.0
        if retry_delay is not None else 1.0,
        action(run_if, "run_if") if run_if is not None else None,
        action(abort_if, "abort_if") if abort_if is not None else None,
        action(on_success, "on_success") if on_success is not None else None,
        action(on_failure, "on_failure") if on_failure is not None else None,
        workdir,
        {str(k): str(v) for k, v in to_python(env).items()} if env is not None else None,
        where,
    )


def _duration(value: Any, where: str, what: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise DefinitionError(f"{where}: {what}: {exc}") from None
    return seconds or None


def _positive_int(value: Any, where: str, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DefinitionError(f"{where}: {what} must be a whole number >= 1, got {value!r}")
    return value


def _on_start(rt: LuaRuntime, fn: Any) -> Any:
    if fn is None:
        return None

    def call(params: dict) -> Any:
        return rt.call_plain(fn, rt.table(params))

    return call


def _on_complete(rt: LuaRuntime, fn: Any) -> Any:
    if fn is None:
        return None

    def call(success: bool, result: WorkflowResult) -> Any:
        results = {t.name: {"status": t.status, "message": t.message, "error": t.error,
                            "outputs": t.outputs} for t in result.tasks}
        return rt.call_plain(fn, success, rt.table(results))

    return call
