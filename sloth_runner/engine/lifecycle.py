"""One task's life as a generator: run_if, abort_if, attempts with timeout and retries, hooks.

The scheduler drives it like any action: it yields `Blocking`/`Sleep` requests and returns the
`TaskResult`. Keeping the whole life in one generator means retries wait on a timer instead of
holding a worker thread, and a timeout is just `TaskTimeout` thrown in at the current yield.
"""

from __future__ import annotations

import time
from collections.abc import Generator

from sloth_runner.engine.backoff import retry_delay
from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import (
    FAILED,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    Action,
    AttemptRecord,
    CancelToken,
    Outcome,
    Request,
    Sleep,
    Task,
    TaskContext,
    TaskResult,
    TaskTimeout,
    Usage,
)

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

    Program = Generator[Request, Any, TaskResult]
else:
    Program = object


class AbortWorkflow(Exception):
    """Raised out of a task program when its abort_if condition holds."""

    def __init__(self, result: TaskResult) -> None:
        super().__init__(result.error)
        self.result = result


def drive(action: Action, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
    """Run an action to its Outcome, whatever its shape; Python exceptions become failures."""
    try:
        result = action(ctx)
        if isinstance(result, Outcome):
            return result
        return (yield from result)
    except TaskTimeout:
        raise
    except Exception as exc:  # an action's own bug must fail the task, not the run
        return Outcome(False, error=f"{type(exc).__name__}: {exc}")


def task_program(
    task: Task,
    ctx: TaskContext,
    listener: Listener,
    workflow_deadline: float | None = None,
) -> Program:
    first_start = time.time()

    if task.run_if is not None:
        cond = yield from drive(task.run_if, ctx)
        if cond.error:
            return _result(task, FAILED, 0, first_start, error=f"run_if: {cond.error}")
        if not cond.success:
            return _result(task, SKIPPED, 0, first_start, message="run_if condition was false")
    if task.abort_if is not None:
        cond = yield from drive(task.abort_if, ctx)
        if cond.error:
            return _result(task, FAILED, 0, first_start, error=f"abort_if: {cond.error}")
        if cond.success:
            raise AbortWorkflow(
                _result(task, FAILED, 0, first_start, error="abort_if condition held: workflow aborted")
            )

    attempts = task.retries + 1
    outcome = Outcome(False)
    status = FAILED
    for attempt in range(1, attempts + 1):
        ctx.attempt = attempt
        ctx.cancel = CancelToken()
        ctx.usage = Usage()
        deadline = time.monotonic() + task.timeout if task.timeout else None
        if workflow_deadline is not None:
            deadline = workflow_deadline if deadline is None else min(deadline, workflow_deadline)
        ctx.deadline = deadline
        listener.task_started(ctx.workflow, task.name, attempt)
        started = time.time()
        try:
            outcome = yield from drive(task.action, ctx)
            status = SUCCESS if outcome.success else FAILED
        except TaskTimeout:
            limit = task.timeout if task.timeout else None
            why = f"timed out after {limit:g}s" if limit else "workflow timed out"
            outcome = Outcome(False, error=why)
            status = TIMEOUT
        ctx.deadline = None
        last = attempt == attempts or status == SUCCESS
        listener.attempt_finished(
            AttemptRecord(
                workflow=ctx.workflow, task=task.name, attempt=attempt, status=status,
                started_at=started, ended_at=time.time(), message=outcome.message,
                error=outcome.error, exit_code=outcome.exit_code, outputs=outcome.outputs,
                cpu_s=ctx.usage.cpu_s, max_rss_kb=ctx.usage.max_rss_kb, final=last,
            )
        )
        if last:
            break
        if workflow_deadline is not None and time.monotonic() >= workflow_deadline:
            break
        yield Sleep(retry_delay(task.backoff, task.retry_delay, attempt))

    result = _result(
        task, status, ctx.attempt, first_start, message=outcome.message,
        outputs=outcome.outputs, error=outcome.error if status != SUCCESS else None,
    )
    if status != SUCCESS and not result.error:
        result.error = outcome.message or (f"exit code {outcome.exit_code}" if outcome.exit_code else "task returned false")
    hook = task.on_success if status == SUCCESS else task.on_failure
    if hook is not None:
        ctx.result = result
        hooked = yield from drive(hook, ctx)
        if hooked.error:
            name = "on_success" if status == SUCCESS else "on_failure"
            result.status = FAILED
            result.error = f"{name} hook: {hooked.error}"
    result.duration_s = time.time() - first_start
    return result


def _result(task: Task, status: str, attempts: int, started: float, **fields: Any) -> TaskResult:
    return TaskResult(name=task.name, status=status, attempts=attempts,
                      duration_s=time.time() - started, **fields)
