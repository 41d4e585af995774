"""The events a run emits. Reporters (text, rich, JSON) and the history recorder are peers that
listen to the same stream, so output formats never leak into the scheduler."""

from __future__ import annotations

from sloth_runner.engine.model import AttemptRecord, TaskResult, Workflow, WorkflowResult


class Listener:
    """No-op base: subclasses override what they care about."""

    def workflow_started(self, workflow: Workflow) -> None: ...

    def task_started(self, workflow: str, task: str, attempt: int) -> None: ...

    def attempt_finished(self, record: AttemptRecord) -> None: ...

    def task_finished(self, workflow: str, result: TaskResult) -> None: ...

    def workflow_finished(self, result: WorkflowResult) -> None: ...

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None: ...

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        """Streamed output (AI tokens) as it arrives; `None` ends the stream."""

    def idle(self) -> None:
        """The scheduler is about to wait for I/O: a good moment to flush buffers."""


class Broadcast(Listener):
    """Fan one event stream out to several listeners, in order."""

    def __init__(self, *listeners: Listener) -> None:
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

    def idle(self) -> None:
        for listener in self.listeners:
            listener.idle()
