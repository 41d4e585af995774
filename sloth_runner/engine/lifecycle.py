"""One task's life as a generator: up-to-date check, run_if, abort_if, attempts with timeout and
retries, hooks.

The scheduler drives it like any action: it yields `Blocking`/`Sleep` requests and returns the
`TaskResult`. Keeping the whole life in one generator means retries wait on a timer instead of
holding a worker thread, and a timeout or an interruption is just an exception thrown in at the
current yield.
"""

from __future__ import annotations

import time
from collections.abc import Generator

from sloth_runner.engine.backoff import retry_delay
from sloth_runner.engine.events import Listener
from sloth_runner.engine.healing import heal_task
from sloth_runner.engine.model import (
    ERROR,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    UP_TO_DATE,
    Action,
    AttemptRecord,
    Blocking,
    CancelToken,
    Outcome,
    Request,
    Sleep,
    Task,
    TaskContext,
    TaskInterrupted,
    TaskResult,
    TaskTimeout,
    Usage,
)
from sloth_runner.errors import SlothError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any, Protocol

    Program = Generator[Request, Any, TaskResult]

    class Freshness(Protocol):
        """Decides whether a task with inputs/outputs may be skipped (see running.py)."""

        def up_to_date(self, task: Task, ctx: TaskContext) -> bool: ...

        def remember(self, task: Task, ctx: TaskContext) -> None: ...

    class Artifacts(Protocol):
        """Files handed from a task to the tasks that consume them (see running.py)."""

        def provide(self, task: Task, ctx: TaskContext) -> None: ...

        def collect(self, task: Task, ctx: TaskContext) -> None: ...
else:
    Program = Freshness = Artifacts = object


class AbortWorkflow(Exception):
    """Raised out of a task program when its abort_if condition holds."""

    def __init__(self, result: TaskResult) -> None:
        super().__init__(result.error)
        self.result = result


def drive(action: Action, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
    """Run an action to its Outcome, whatever its shape.

    A Python exception escaping an action is an *error* (the action could not do its job), not a
    failure; its traceback is kept for --debug.
    """
    try:
        result = action(ctx)
        if isinstance(result, Outcome):
            return result
        return (yield from result)
    except (TaskTimeout, TaskInterrupted):
        raise
    except Exception as exc:
        import traceback

        from sloth_runner.errors import user_message

        return Outcome(False, error=user_message(exc), errored=True,
                       trace=traceback.format_exc())


def run_now(action: Action, ctx: TaskContext) -> Outcome:
    """Run an action to its Outcome on this thread, outside any scheduler: blocking requests
    simply block (a worker process, a workflow hook). TaskTimeout and TaskInterrupted raised by
    the action propagate."""
    program = drive(action, ctx)
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = program.throw(error) if error is not None else program.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(request, Blocking):
                value = request.fn(request.progress) if request.progress is not None \
                    else request.fn()
            elif isinstance(request, Sleep):
                time.sleep(max(0.0, request.seconds))
            else:
                raise TypeError(f"an action outside a scheduler cannot wait on {request!r}")
        except (TaskTimeout, TaskInterrupted):
            raise
        except Exception as exc:
            error = exc


def task_program(
    task: Task,
    ctx: TaskContext,
    listener: Listener,
    workflow_deadline: float | None = None,
    freshness: Freshness | None = None,
    artifacts: Artifacts | None = None,
) -> Program:
    first_start = time.time()
    attempt_started: float | None = None
    try:
        if freshness is not None and (task.inputs or task.outputs):
            fresh = yield Blocking(lambda: freshness.up_to_date(task, ctx))
            if fresh:
                return _result(task, UP_TO_DATE, 0, first_start,
                               message="up to date: inputs and outputs unchanged since its "
                                       "last success")
        if task.run_if is not None:
            cond = yield from drive(task.run_if, ctx)
            if cond.error:
                return _result(task, ERROR if cond.errored else FAILED, 0, first_start,
                               error=f"run_if: {cond.error}", trace=cond.trace)
            if not cond.success:
                return _result(task, SKIPPED, 0, first_start, message="run_if condition was false")
        if task.abort_if is not None:
            cond = yield from drive(task.abort_if, ctx)
            if cond.error:
                return _result(task, ERROR if cond.errored else FAILED, 0, first_start,
                               error=f"abort_if: {cond.error}", trace=cond.trace)
            if cond.success:
                raise AbortWorkflow(_result(task, FAILED, 0, first_start,
                                            error="abort_if condition held: workflow aborted"))

        if artifacts is not None and task.consumes:
            try:
                yield Blocking(lambda: artifacts.provide(task, ctx))
            except (OSError, SlothError) as exc:  # missing or uncopiable: the task cannot run
                return _result(task, ERROR, 0, first_start, error=f"artifacts: {exc}")

        def one(attempt: int) -> Generator[Request, Any, tuple[str, Outcome]]:
            """One attempt with its deadline; a timeout is its outcome, not an exception."""
            nonlocal attempt_started
            ctx.attempt = attempt
            ctx.cancel = CancelToken()
            ctx.usage = Usage()
            ctx.host = None
            deadline = time.monotonic() + task.timeout if task.timeout is not None else None
            if workflow_deadline is not None:
                deadline = workflow_deadline if deadline is None else min(deadline,
                                                                          workflow_deadline)
            ctx.deadline = deadline
            listener.task_started(ctx.workflow, task.name, attempt)
            attempt_started = time.time()
            try:
                outcome = yield from _attempt(task, ctx)
                status = SUCCESS if outcome.success else ERROR if outcome.errored else FAILED
            except TaskTimeout:
                ctx.cancel.cancel()
                workflow_bound = workflow_deadline is not None and deadline == workflow_deadline
                why = "workflow timed out" if workflow_bound or task.timeout is None else \
                    f"timed out after {task.timeout:g}s"
                outcome = Outcome(False, error=why)
                status = TIMEOUT
                if task.on_timeout is not None:
                    ctx.deadline = None
                    hooked = yield from drive(task.on_timeout, ctx)
                    if hooked.error:
                        outcome.error = f"{why}; on_timeout hook: {hooked.error}"
            ctx.deadline = None
            return status, outcome

        def out_of_time() -> bool:
            return workflow_deadline is not None and time.monotonic() >= workflow_deadline

        def record(status: str, outcome: Outcome, final: bool) -> None:
            nonlocal attempt_started
            _record(listener, ctx, task, ctx.attempt, status, attempt_started or time.time(),
                    outcome, final)
            attempt_started = None

        attempts = task.retries + 1
        for attempt in range(1, attempts + 1):
            status, outcome = yield from one(attempt)
            final = status == SUCCESS or attempt == attempts or out_of_time()
            wait = 0.0
            if not final:
                wait = retry_delay(task.backoff, task.retry_delay, attempt)
                # an attempt that could not start before the workflow's deadline is not waited for
                final = workflow_deadline is not None and \
                    time.monotonic() + wait >= workflow_deadline
            if final:
                break
            record(status, outcome, False)
            yield Sleep(wait)
        if task.heal is not None and status in (FAILED, TIMEOUT) and not out_of_time():
            status, outcome = yield from heal_task(task, ctx, listener, status, outcome, one,
                                                   record, out_of_time)
        else:
            record(status, outcome, True)

        result = _result(
            task, status, ctx.attempt, first_start, message=outcome.message,
            outputs=outcome.outputs, error=outcome.error if status != SUCCESS else None,
            trace=outcome.trace,
        )
        if status != SUCCESS and not result.error:
            result.error = outcome.message or (
                f"exit code {outcome.exit_code}" if outcome.exit_code else "task returned false")
        if status == SUCCESS and freshness is not None and (task.inputs or task.outputs):
            yield Blocking(lambda: freshness.remember(task, ctx))
        if status == SUCCESS and artifacts is not None and task.artifacts:
            try:
                yield Blocking(lambda: artifacts.collect(task, ctx))
            except (OSError, SlothError) as exc:  # what it promised is not there: its failure
                result.status = FAILED
                result.error = f"artifacts: {exc}"
        hook = task.on_success if result.status == SUCCESS else task.on_failure
        if hook is not None:
            ctx.result = result
            hooked = yield from drive(hook, ctx)
            if hooked.error:
                name = "on_success" if result.status == SUCCESS else "on_failure"
                result.status = ERROR if hooked.errored else FAILED
                result.error = f"{name} hook: {hooked.error}"
                result.trace = hooked.trace
        result.duration_s = time.time() - first_start
        return result
    except TaskInterrupted:
        ctx.cancel.cancel()
        if attempt_started is not None:  # an attempt was running: it ends here, for good
            _record(listener, ctx, task, ctx.attempt, INTERRUPTED, attempt_started,
                    Outcome(False, error="interrupted"), True)
        return _result(task, INTERRUPTED, ctx.attempt if attempt_started else 0, first_start,
                       error="interrupted")


def _attempt(task: Task, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
    """One attempt: pre_hook, the command, post_hook. A hook that says no fails the attempt
    (and so it is retried like a failing command)."""
    if task.pre_hook is not None:
        pre = yield from drive(task.pre_hook, ctx)
        if not pre.success:
            return Outcome(False, error=f"pre_hook: {pre.error or 'returned false'}",
                           errored=pre.errored, trace=pre.trace)
    outcome = yield from drive(task.action, ctx)
    if outcome.success and task.post_hook is not None:
        ctx.result = TaskResult(task.name, SUCCESS, outputs=outcome.outputs)
        post = yield from drive(task.post_hook, ctx)
        ctx.result = None
        if not post.success:
            return Outcome(False, outcome.message, outcome.outputs,
                           f"post_hook: {post.error or 'returned false'}", outcome.exit_code,
                           errored=post.errored, trace=post.trace)
    return outcome


def _record(listener: Listener, ctx: TaskContext, task: Task, attempt: int, status: str,
            started: float, outcome: Outcome, final: bool) -> None:
    listener.attempt_finished(AttemptRecord(
        workflow=ctx.workflow, task=task.name, attempt=attempt, status=status,
        started_at=started, ended_at=time.time(), message=outcome.message,
        error=outcome.error, exit_code=outcome.exit_code, outputs=outcome.outputs,
        cpu_s=ctx.usage.cpu_s, max_rss_kb=ctx.usage.max_rss_kb, final=final, host=ctx.host,
    ))


def _result(task: Task, status: str, attempts: int, started: float, **fields: Any) -> TaskResult:
    return TaskResult(name=task.name, status=status, attempts=attempts,
                      duration_s=time.time() - started, **fields)
