"""Plain data the engine works on: tasks, workflows, outcomes, results, and scheduler requests."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Union

SUCCESS, FAILED, SKIPPED, TIMEOUT = "success", "failed", "skipped", "timeout"


@dataclass(slots=True)
class Outcome:
    """What one run of an action reports."""

    success: bool
    message: str = ""
    outputs: dict[str, Any] | None = None
    error: str | None = None
    exit_code: int | None = None


class Blocking:
    """A request to run `fn()` off the scheduler thread; its result (or exception) is sent back."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


class Sleep:
    """A request to be resumed after `seconds` without holding a worker."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Request = Union[Blocking, Sleep]
ActionResult = Union[Outcome, Generator[Request, Any, Outcome]]
Action = Callable[["TaskContext"], ActionResult]


class TaskTimeout(Exception):
    """Thrown into an action whose attempt ran past its deadline."""


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


@dataclass(slots=True)
class Usage:
    """Resources used by an attempt's child processes."""

    cpu_s: float = 0.0
    max_rss_kb: int = 0

    def add(self, cpu_s: float, max_rss_kb: int) -> None:
        self.cpu_s += cpu_s
        self.max_rss_kb = max(self.max_rss_kb, max_rss_kb)


@dataclass(slots=True)
class TaskContext:
    """Everything an action may want to know about the attempt it is running."""

    workflow: str
    task: str
    params: dict[str, Any]
    deps: dict[str, dict[str, Any] | None]
    attempt: int = 1
    deadline: float | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    usage: Usage = field(default_factory=Usage)
    workdir: str | None = None
    env: dict[str, str] | None = None
    result: TaskResult | None = None  # set for on_success / on_failure hooks


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    action: Action
    depends_on: tuple[str, ...] = ()
    description: str = ""
    timeout: float | None = None
    retries: int = 0
    backoff: str = "exponential"
    retry_delay: float = 1.0
    run_if: Action | None = None
    abort_if: Action | None = None
    on_success: Action | None = None
    on_failure: Action | None = None
    workdir: str | None = None
    env: dict[str, str] | None = None
    location: str = ""


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    tasks: tuple[Task, ...]
    description: str = ""
    max_parallel: int | None = None
    timeout: float | None = None
    on_start: Callable[[dict[str, Any]], Any] | None = None
    on_complete: Callable[[bool, WorkflowResult], Any] | None = None
    location: str = ""


@dataclass(slots=True)
class AttemptRecord:
    """One attempt, as the store keeps it (also emitted for skipped tasks, attempt 0)."""

    workflow: str
    task: str
    attempt: int
    status: str
    started_at: float
    ended_at: float
    message: str = ""
    error: str | None = None
    exit_code: int | None = None
    outputs: dict[str, Any] | None = None
    cpu_s: float = 0.0
    max_rss_kb: int = 0
    final: bool = True

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


@dataclass(slots=True)
class TaskResult:
    name: str
    status: str
    attempts: int = 0
    duration_s: float = 0.0
    message: str = ""
    outputs: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (SUCCESS, SKIPPED) and not self.error


@dataclass(slots=True)
class WorkflowResult:
    name: str
    status: str
    tasks: list[TaskResult]
    duration_s: float = 0.0
    error: str | None = None
