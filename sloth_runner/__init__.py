"""sloth-runner: Lua-scripted workflows on a parallel DAG engine, with run history.

The public Python API is small on purpose: load a workflow file, run it, read history.

    import sloth_runner
    plan = sloth_runner.load("deploy.lua")            # [{"name", "tasks": [...]}, ...]
    result = sloth_runner.run("deploy.lua", params={"env": "staging"})
    result.status, [t.status for t in result.workflows[0].tasks]
    sloth_runner.history(limit=5)

Every run is built by `sloth_runner.running.Run`, exactly as the CLI builds it. Heavy modules
(Lua, rich, the AI stack) are imported on first use, so importing this package costs nothing.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.engine.events import Listener
    from sloth_runner.engine.runner import RunResult

__all__ = ["__version__", "history", "load", "run", "run_details"]


def load(path: str, *, params: dict[str, Any] | None = None, sandbox: bool = False,
         allow: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The workflows a file defines, as plain data (its top-level code runs, as in `list`)."""
    from sloth_runner.running import Run

    with Run(path, params=params, sandbox=sandbox, grants=allow) as r:
        return [{"name": wf.name, "description": wf.description, "location": wf.location,
                 "tasks": [{"name": t.name, "depends_on": list(t.depends_on),
                            "description": t.description, "location": t.location}
                           for t in wf.tasks]}
                for wf in r.load()]


def run(path: str, *, workflows: list[str] | None = None, tasks: list[str] | None = None,
        params: dict[str, Any] | None = None, values: dict[str, Any] | str | None = None,
        max_parallel: int | None = None, sandbox: bool = False, allow: tuple[str, ...] = (),
        force: bool = False, listener: Listener | None = None) -> RunResult:
    """Run a file's workflows (all, or those named; with `tasks`, only those tasks and what
    they depend on) and return the RunResult. `values` is a mapping or a YAML file's path;
    `params` win over it. Recorded in history like any run. A file that cannot be loaded, or
    that has no workflow of a given name, raises sloth_runner.errors.LoadError; a failing task
    is a result, not an exception."""
    from sloth_runner.running import Run

    merged: dict[str, Any] = {}
    if isinstance(values, str):
        from sloth_runner.values import read_values_file  # the same checks as --values

        merged.update(read_values_file(values))
    elif values:
        merged.update(values)
    merged.update(params or {})
    with Run(path, params=merged, listener=listener, sandbox=sandbox, grants=allow,
             force=force) as r:
        r.load()
        return r.execute(r.select(workflows, tasks), max_parallel=max_parallel)


def history(limit: int = 20) -> list[dict[str, Any]]:
    """The most recent runs, newest first, with their task counts by status."""
    from sloth_runner.store import Store, queries

    store = Store()
    try:
        return queries.recent_runs(store, limit)
    finally:
        store.close()


def run_details(run_id: str) -> dict[str, Any]:
    """One run (a unique prefix of its id will do) and all its attempts."""
    from sloth_runner.errors import UsageError
    from sloth_runner.store import Store, queries

    store = Store()
    try:
        found = queries.find_run(store, run_id)
        if found is None:
            raise UsageError(f"no single run matches '{run_id}'")
        return {"run": queries.run_row(store, found),
                "attempts": queries.run_attempts(store, found)}
    finally:
        store.close()
