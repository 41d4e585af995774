"""Run the selected workflows of a file one after another and gather a RunResult.

Workflows run in sequence (each one's tasks in parallel): that is what users of multi-workflow
files expect, and it keeps `on_start`/`on_complete` hooks simple. An interruption ends the
workflow that is running as `interrupted` and starts no other.
"""

from __future__ import annotations

import time

from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import INTERRUPTED, SKIPPED, TaskResult, Workflow, WorkflowResult
from sloth_runner.engine.scheduler import Scheduler
from sloth_runner.errors import SlothError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.lifecycle import Artifacts, Freshness


class RunResult:
    __slots__ = ("run_id", "status", "workflows", "duration_s")

    def __init__(self, run_id: str, status: str, workflows: list[WorkflowResult],
                 duration_s: float) -> None:
        self.run_id = run_id
        self.status = status  # success | failed | interrupted
        self.workflows = workflows
        self.duration_s = duration_s

    @property
    def failed(self) -> bool:
        return self.status != "success"


def run_workflows(
    workflows: list[Workflow],
    *,
    run_id: str = "",
    params: dict[str, Any] | None = None,
    max_parallel: int | None = None,
    listener: Listener | None = None,
    freshness: Freshness | None = None,
    artifacts: Artifacts | None = None,
    on_scheduler: Callable[[Scheduler | None], None] | None = None,
    gate: Callable[[str], str] | None = None,
) -> RunResult:
    """Run `workflows` in order. `on_scheduler` is told which scheduler is running (None when
    none is), so that an interruption can reach it."""
    listener = listener or Listener()
    params = params or {}
    started = time.time()
    results: list[WorkflowResult] = []
    for wf in workflows:
        if results and results[-1].status == INTERRUPTED:
            results.append(_not_run(wf, "run interrupted", listener, INTERRUPTED))
            continue
        listener.workflow_started(wf)
        result = _run_one(wf, params, max_parallel, listener, freshness, artifacts, on_scheduler,
                          gate)
        listener.workflow_finished(result)
        results.append(result)
    if any(r.status == INTERRUPTED for r in results):
        status = INTERRUPTED
    else:
        status = "success" if all(r.status in ("success", SKIPPED) for r in results) \
            else "failed"
    return RunResult(run_id, status, results, time.time() - started)


def _run_one(wf: Workflow, params: dict[str, Any], max_parallel: int | None,
             listener: Listener, freshness: Freshness | None, artifacts: Artifacts | None,
             on_scheduler: Callable[[Scheduler | None], None] | None,
             gate: Callable[[str], str] | None) -> WorkflowResult:
    if wf.on_start is not None:
        try:
            go_on = wf.on_start(params)
        except SlothError as exc:
            return _not_run(wf, f"on_start failed: {exc}", listener)
        if go_on is False:  # the workflow said "not now": skipped, which is no failure
            return _not_run(wf, "on_start returned false", listener, SKIPPED)
    scheduler = Scheduler(wf, params=params, max_parallel=max_parallel, listener=listener,
                          freshness=freshness, artifacts=artifacts, gate=gate)
    if on_scheduler is not None:
        on_scheduler(scheduler)
    try:
        result = scheduler.run()
    finally:
        if on_scheduler is not None:
            on_scheduler(None)
    if wf.on_complete is not None and result.status != INTERRUPTED:
        try:
            wf.on_complete(result.status == "success", result)
        except SlothError as exc:
            result.status = "failed"
            result.error = f"on_complete failed: {exc}"
    return result


def _not_run(wf: Workflow, reason: str, listener: Listener, status: str = "failed"
             ) -> WorkflowResult:
    tasks = []
    for task in wf.tasks:
        r = TaskResult(task.name, SKIPPED, message=f"not run: {reason}")
        listener.task_finished(wf.name, r)
        tasks.append(r)
    return WorkflowResult(wf.name, status, tasks, error=reason)
