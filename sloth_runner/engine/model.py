"""Plain data the engine works on: tasks, workflows, outcomes, results, and scheduler requests.

These are hand-written slotted classes rather than dataclasses on purpose: importing
`dataclasses` (and the `inspect` it pulls in) costs more than a no-op run is allowed to take,
and a 10,000-task workflow creates tens of thousands of these objects.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

SUCCESS, FAILED, SKIPPED, TIMEOUT = "success", "failed", "skipped", "timeout"
ERROR = "error"              # it could not run: an internal or infrastructure failure, not a "no"
INTERRUPTED = "interrupted"  # stopped by Ctrl-C, SIGTERM, SIGHUP or a closed output
UP_TO_DATE = "up_to_date"    # not run: its inputs and outputs are unchanged since its last success
# Statuses after which a dependent may run under the default trigger rule.
DONE_OK = frozenset((SUCCESS, UP_TO_DATE))
FAILURES = frozenset((FAILED, TIMEOUT, ERROR, INTERRUPTED))
TRIGGER_RULES = ("all_success", "all_done", "one_failed", "none_failed")


class Outcome:
    """What one run of an action reports.

    `errored` keeps "it could not run" (a crashed worker, a bug of ours, a store that cannot be
    written) apart from "it ran and said no": the first becomes status `error`, the second
    `failed`. `trace` is the traceback of an error, shown only with --debug.
    """

    __slots__ = ("success", "message", "outputs", "error", "exit_code", "errored", "trace")

    def __init__(self, success: bool, message: str = "", outputs: dict[str, Any] | None = None,
                 error: str | None = None, exit_code: int | None = None, *,
                 errored: bool = False, trace: str | None = None) -> None:
        self.success = success
        self.message = message
        self.outputs = outputs
        self.error = error
        self.exit_code = exit_code
        self.errored = errored
        self.trace = trace

    def __repr__(self) -> str:
        return (f"Outcome(success={self.success!r}, message={self.message!r}, "
                f"error={self.error!r}, exit_code={self.exit_code!r})")


class Blocking:
    """A request to run `fn()` off the scheduler thread; its result (or exception) is sent back.

    With `progress`, the job is called as `fn(emit)` and every `emit(item)` reaches
    `progress(item)` on the scheduler thread while the job runs (streamed AI tokens).
    """

    __slots__ = ("fn", "progress")

    def __init__(self, fn: Callable[..., Any],
                 progress: Callable[[Any], None] | None = None) -> None:
        self.fn = fn
        self.progress = progress


class Readable:
    """A request to be resumed once `source` (anything with a `fileno()`) has data to read.

    The scheduler's thread itself waits on it (poll), so talking to another process costs no
    thread hand-over: that is how task actions reach their worker processes.
    """

    __slots__ = ("source",)

    def __init__(self, source: Any) -> None:
        self.source = source


class Sleep:
    """A request to be resumed after `seconds` without holding a worker."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


if TYPE_CHECKING:
    Request = Blocking | Sleep | Readable
    ActionResult = Outcome | Generator[Request, Any, Outcome]
    Action = Callable[["TaskContext"], ActionResult]
else:  # only annotations use these, and annotations are never evaluated at run time
    Request = ActionResult = Action = object


class TaskTimeout(Exception):
    """Thrown into an action whose attempt ran past its deadline."""


class TaskInterrupted(Exception):
    """Thrown into a task program when the run is interrupted (signal, closed output)."""


class CancelToken:
    """Lets the scheduler stop work running on its behalf (kill a process group, say)."""

    __slots__ = ("_callbacks", "cancelled")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []
        self.cancelled = False

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Register `callback`; returns a function that unregisters it."""
        if self.cancelled:
            callback()
            return lambda: None
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def cancel(self) -> None:
        self.cancelled = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a dead process is not an error here
                pass


class Usage:
    """Resources used by an attempt's child processes."""

    __slots__ = ("cpu_s", "max_rss_kb")

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.max_rss_kb = 0

    def add(self, cpu_s: float, max_rss_kb: int) -> None:
        self.cpu_s += cpu_s
        self.max_rss_kb = max(self.max_rss_kb, max_rss_kb)


class TaskContext:
    """Everything an action may want to know about the attempt it is running."""

    __slots__ = ("workflow", "task", "params", "deps", "attempt", "deadline", "cancel", "usage",
                 "workdir", "env", "result", "held", "fault", "user", "host")

    def __init__(self, workflow: str, task: str, params: dict[str, Any],
                 deps: dict[str, dict[str, Any] | None], workdir: str | None = None,
                 env: dict[str, str] | None = None, user: str | None = None) -> None:
        self.workflow = workflow
        self.task = task
        self.params = params
        self.deps = deps
        self.workdir = workdir
        self.env = env
        self.user = user
        self.attempt = 1
        self.deadline: float | None = None
        self.cancel = CancelToken()
        self.usage = Usage()
        self.result: TaskResult | None = None  # set for on_success / on_failure hooks
        self.host: str | None = None  # the agent an attempt ran on (None: this host)
        # What the task's actions hold for its whole life (a worker process, say), by name;
        # each value's release() is called once the task has concluded.
        self.held: dict[str, Any] = {}
        # (message, traceback) of an internal failure met by the running action (the store
        # failed, a bug): if the action then fails with it, that is an error, not a failure.
        self.fault: tuple[str, str] | None = None


class Task:
    """One node of a workflow. Immutable once built; every field but the first three is named."""

    __slots__ = ("name", "action", "depends_on", "description", "timeout", "retries", "backoff",
                 "retry_delay", "run_if", "abort_if", "on_success", "on_failure", "workdir",
                 "env", "location", "trigger_rule", "inputs", "outputs", "fingerprint",
                 "pre_hook", "post_hook", "on_timeout", "user", "artifacts", "consumes",
                 "heal")

    def __init__(self, name: str, action: Action, depends_on: tuple[str, ...] = (), *,
                 description: str = "", timeout: float | None = None, retries: int = 0,
                 backoff: str = "exponential", retry_delay: float = 1.0,
                 run_if: Action | None = None, abort_if: Action | None = None,
                 on_success: Action | None = None, on_failure: Action | None = None,
                 workdir: str | None = None, env: dict[str, str] | None = None,
                 location: str = "", trigger_rule: str = "all_success",
                 inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (),
                 fingerprint: str = "", pre_hook: Action | None = None,
                 post_hook: Action | None = None, on_timeout: Action | None = None,
                 user: str | None = None, artifacts: tuple[str, ...] = (),
                 consumes: tuple[str, ...] = (), heal: Any = None) -> None:
        self.name = name
        self.action = action
        self.depends_on = depends_on
        self.description = description
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_delay = retry_delay
        self.run_if = run_if
        self.abort_if = abort_if
        self.on_success = on_success
        self.on_failure = on_failure
        self.workdir = workdir
        self.env = env
        self.location = location
        self.trigger_rule = trigger_rule
        self.inputs = inputs    # file globs: with outputs, what makes the task up to date
        self.outputs = outputs
        self.fingerprint = fingerprint  # what else invalidates "up to date" (a shell command)
        self.pre_hook = pre_hook    # before each attempt: false fails the attempt
        self.post_hook = post_hook  # after a successful command: false fails the attempt
        self.on_timeout = on_timeout  # after an attempt timed out
        self.user = user  # the account its processes run as (needs root)
        self.artifacts = artifacts  # files it leaves for others (globs), after a success
        self.consumes = consumes    # artifacts it needs in its workdir, before it runs
        self.heal = heal  # engine.healing.Heal: repairs tried when it has failed for good

    def __repr__(self) -> str:
        return f"Task({self.name!r}, depends_on={self.depends_on!r})"


class Workflow:
    __slots__ = ("name", "tasks", "description", "max_parallel", "timeout", "on_start",
                 "on_complete", "location", "fail_fast")

    def __init__(self, name: str, tasks: tuple[Task, ...], *, description: str = "",
                 max_parallel: int | None = None, timeout: float | None = None,
                 on_start: Callable[[dict[str, Any]], Any] | None = None,
                 on_complete: Callable[[bool, WorkflowResult], Any] | None = None,
                 location: str = "", fail_fast: bool = False) -> None:
        self.name = name
        self.tasks = tasks
        self.description = description
        self.max_parallel = max_parallel
        self.timeout = timeout
        self.on_start = on_start
        self.on_complete = on_complete
        self.location = location
        self.fail_fast = fail_fast  # a failure stops the workflow (Go's continue_on_error=false)

    def with_tasks(self, tasks: tuple[Task, ...]) -> Workflow:
        return Workflow(self.name, tasks, description=self.description,
                        max_parallel=self.max_parallel, timeout=self.timeout,
                        on_start=self.on_start, on_complete=self.on_complete,
                        location=self.location, fail_fast=self.fail_fast)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, {len(self.tasks)} tasks)"


class AttemptRecord:
    """One attempt, as the store keeps it (also emitted for tasks that never ran, attempt 0)."""

    __slots__ = ("workflow", "task", "attempt", "status", "started_at", "ended_at", "message",
                 "error", "exit_code", "outputs", "cpu_s", "max_rss_kb", "final", "host")

    def __init__(self, workflow: str, task: str, attempt: int, status: str, started_at: float,
                 ended_at: float, message: str = "", error: str | None = None,
                 exit_code: int | None = None, outputs: dict[str, Any] | None = None,
                 cpu_s: float = 0.0, max_rss_kb: int = 0, final: bool = True,
                 host: str | None = None) -> None:
        self.workflow = workflow
        self.task = task
        self.attempt = attempt
        self.status = status
        self.started_at = started_at
        self.ended_at = ended_at
        self.message = message
        self.error = error
        self.exit_code = exit_code
        self.outputs = outputs
        self.cpu_s = cpu_s
        self.max_rss_kb = max_rss_kb
        self.final = final
        self.host = host  # an agent's name when the attempt was delegated

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


class TaskResult:
    __slots__ = ("name", "status", "attempts", "duration_s", "message", "outputs", "error",
                 "trace")

    def __init__(self, name: str, status: str, attempts: int = 0, duration_s: float = 0.0,
                 message: str = "", outputs: dict[str, Any] | None = None,
                 error: str | None = None, trace: str | None = None) -> None:
        self.name = name
        self.status = status
        self.attempts = attempts
        self.duration_s = duration_s
        self.message = message
        self.outputs = outputs
        self.error = error
        self.trace = trace  # traceback of an `error` result, for --debug

    def __repr__(self) -> str:
        return (f"TaskResult({self.name!r}, {self.status!r}, attempts={self.attempts}, "
                f"message={self.message!r}, error={self.error!r})")


class WorkflowResult:
    __slots__ = ("name", "status", "tasks", "duration_s", "error")

    def __init__(self, name: str, status: str, tasks: list[TaskResult], duration_s: float = 0.0,
                 error: str | None = None) -> None:
        self.name = name
        self.status = status
        self.tasks = tasks
        self.duration_s = duration_s
        self.error = error
