"""A reporter whose output may close under it (`sloth-runner run … | head`): a closed pipe
(EPIPE) must end the run as interrupted, not crash it in the middle of a listener call."""

from __future__ import annotations

from sloth_runner.engine.events import Listener

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import Workflow


class OutputGuard(Listener):
    """The reporter, with a closed output (EPIPE) turned into an interruption of the run."""

    def __init__(self, inner: Listener, closed: Callable[[], None]) -> None:
        self.inner = inner
        self.closed = closed

    def _broken(self) -> None:
        self.inner = Listener()  # nothing more to write to
        self.closed()

    def workflow_started(self, workflow: Workflow) -> None:
        try:
            self.inner.workflow_started(workflow)
        except BrokenPipeError:
            self._broken()

    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        try:
            self.inner.task_started(workflow, task, attempt)
        except BrokenPipeError:
            self._broken()

    def attempt_finished(self, record: Any) -> None:
        try:
            self.inner.attempt_finished(record)
        except BrokenPipeError:
            self._broken()

    def task_finished(self, workflow: str, result: Any) -> None:
        try:
            self.inner.task_finished(workflow, result)
        except BrokenPipeError:
            self._broken()

    def workflow_finished(self, result: Any) -> None:
        try:
            self.inner.workflow_finished(result)
        except BrokenPipeError:
            self._broken()

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        try:
            self.inner.log(level, message, workflow, task)
        except BrokenPipeError:
            self._broken()

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        try:
            self.inner.stream(workflow, task, text)
        except BrokenPipeError:
            self._broken()

    def idle(self) -> None:
        try:
            self.inner.idle()
        except BrokenPipeError:
            self._broken()

    def close(self) -> None:
        try:
            self.inner.close()
        except BrokenPipeError:
            self.inner = Listener()
