"""The events a run emits. Reporters (text, rich, JSON) and the history recorder are peers that
listen to the same stream, so output formats never leak into the scheduler."""

from __future__ import annotations

from collections.abc import Callable

from sloth_runner.engine.model import AttemptRecord, TaskResult, Workflow, WorkflowResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """`value` (plain data: dicts, lists, scalars) with `fn` applied to every non-empty string:
    how a whole result is scrubbed before it is shown or stored."""
    if isinstance(value, str):
        return fn(value) if value else value
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_strings(v, fn) for v in value]
    return value


class Listener:
    """No-op base: subclasses override what they care about."""

    def workflow_started(self, workflow: Workflow) -> None: ...

    def task_started(self, workflow: str, task: str, attempt: int) -> None: ...

    def attempt_finished(self, record: AttemptRecord) -> None: ...

    def task_finished(self, workflow: str, result: TaskResult) -> None: ...

    def workflow_finished(self, result: WorkflowResult) -> None: ...

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None: ...

    def heal_finished(self, record: Any) -> None:
        """A healing round (engine/healing.py HealRecord) ended."""

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        """Streamed output (AI tokens) as it arrives; `None` ends the stream."""

    def idle(self) -> None:
        """The scheduler is about to wait for I/O: a good moment to flush buffers."""

    def close(self) -> None:
        """The run is over, however it ended (a live display must give the terminal back)."""


class Broadcast(Listener):
    """Fan one event stream out to several listeners, in order. A listener may be anything
    with the Listener methods: the store's run recorder has them without importing this."""

    def __init__(self, *listeners: Any) -> None:
        self.listeners = [listener for listener in listeners if listener is not None]

    def workflow_started(self, workflow: Workflow) -> None:
        for listener in self.listeners:
            listener.workflow_started(workflow)

    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        for listener in self.listeners:
            listener.task_started(workflow, task, attempt)

    def attempt_finished(self, record: AttemptRecord) -> None:
        for listener in self.listeners:
            listener.attempt_finished(record)

    def task_finished(self, workflow: str, result: TaskResult) -> None:
        for listener in self.listeners:
            listener.task_finished(workflow, result)

    def workflow_finished(self, result: WorkflowResult) -> None:
        for listener in self.listeners:
            listener.workflow_finished(result)

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        for listener in self.listeners:
            listener.log(level, message, workflow, task)

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        for listener in self.listeners:
            listener.stream(workflow, task, text)

    def heal_finished(self, record: Any) -> None:
        for listener in self.listeners:
            heard = getattr(listener, "heal_finished", None)  # a newer event: optional
            if heard is not None:
                heard(record)

    def idle(self) -> None:
        for listener in self.listeners:
            listener.idle()


class Redacting(Listener):
    """Pass events on with every text a user could see scrubbed: log lines, messages, errors,
    outputs. Copies are made, so a dependency's outputs reach its dependents untouched (they
    are handed over in memory, never shown); what is printed, returned or stored is not.
    """

    def __init__(self, inner: Listener, scrub: Callable[[str], str],
                 stream_scrubber: Callable[[], Any] | None = None) -> None:
        self.inner = inner
        self.scrub = scrub
        # Streamed text is scrubbed as it comes, holding back only what could still turn into
        # a secret: `stream_scrubber()` gives an object with feed(text) -> str and flush().
        self.stream_scrubber = stream_scrubber
        self._streams: dict[tuple[str | None, str | None], Any] = {}

    def _deep(self, value: Any) -> Any:
        return map_strings(value, self.scrub)

    def workflow_started(self, workflow: Workflow) -> None:
        self.inner.workflow_started(workflow)

    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        self.inner.task_started(workflow, task, attempt)

    def attempt_finished(self, record: AttemptRecord) -> None:
        if record.message or record.error or record.outputs:
            r = record
            record = AttemptRecord(r.workflow, r.task, r.attempt, r.status, r.started_at,
                                   r.ended_at, self._deep(r.message), self._deep(r.error),
                                   r.exit_code, self._deep(r.outputs), r.cpu_s, r.max_rss_kb,
                                   r.final, r.host)
        self.inner.attempt_finished(record)

    def task_finished(self, workflow: str, result: TaskResult) -> None:
        self.inner.task_finished(workflow, self.result(result))

    def result(self, result: TaskResult) -> TaskResult:
        if not (result.message or result.error or result.outputs or result.trace):
            return result
        r = result
        return TaskResult(r.name, r.status, r.attempts, r.duration_s, self._deep(r.message),
                          self._deep(r.outputs), self._deep(r.error), self._deep(r.trace))

    def workflow_finished(self, result: WorkflowResult) -> None:
        r = result
        self.inner.workflow_finished(WorkflowResult(
            r.name, r.status, [self.result(t) for t in r.tasks], r.duration_s,
            self._deep(r.error)))

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        self.inner.log(level, self._deep(message), workflow, task)

    def heal_finished(self, record: Any) -> None:
        import copy

        clean = copy.copy(record)  # the model's reasoning and the errors may quote secrets
        for name in ("reasoning", "error", "action_error"):
            setattr(clean, name, self._deep(getattr(record, name)))
        heard = getattr(self.inner, "heal_finished", None)
        if heard is not None:
            heard(clean)

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        if self.stream_scrubber is None:
            self.inner.stream(workflow, task, None if text is None else self.scrub(text))
            return
        key = (workflow, task)
        if text is None:
            scrubber = self._streams.pop(key, None)
            rest = scrubber.flush() if scrubber is not None else ""
            if rest:
                self.inner.stream(workflow, task, rest)
            self.inner.stream(workflow, task, None)
            return
        scrubber = self._streams.get(key)
        if scrubber is None:
            scrubber = self._streams[key] = self.stream_scrubber()
        safe = scrubber.feed(text)
        if safe:
            self.inner.stream(workflow, task, safe)

    def idle(self) -> None:
        self.inner.idle()
