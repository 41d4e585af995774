"""Line-oriented output for logs and pipes: one line per event, no colours, no redraws."""

from __future__ import annotations

import time

from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import (
    ERROR,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    UP_TO_DATE,
    AttemptRecord,
    TaskResult,
    Workflow,
    WorkflowResult,
)

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import TextIO

MARKS = {SUCCESS: "ok", FAILED: "FAILED", SKIPPED: "skipped", TIMEOUT: "TIMEOUT",
         ERROR: "ERROR", INTERRUPTED: "STOPPED", UP_TO_DATE: "fresh"}
STATUS_ORDER = (SUCCESS, UP_TO_DATE, FAILED, TIMEOUT, ERROR, INTERRUPTED, SKIPPED)
TAIL_LINES = 8        # of a failed command's stdout and stderr, in the output
TAIL_CHARS = 2000


class LogOnlyReporter(Listener):
    """Only what Lua code logs or prints (used with -o json, on stderr)."""

    def __init__(self, stream: TextIO, debug: bool = False) -> None:
        self.out = stream
        self._streaming = False
        self.debug = debug
        self._flushed = 0.0

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        if level == "debug" and not self.debug:
            return
        self.out.write(format_log(level, message, task) + "\n")
        self.out.flush()

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        if text is None:
            self.out.write("\n")
        else:
            if not self._streaming:
                self.out.write(f"[{task}] " if task else "")
            self.out.write(text)
        self._streaming = text is not None
        self.out.flush()


class PlainReporter(LogOnlyReporter):
    def workflow_started(self, workflow: Workflow) -> None:
        n = len(workflow.tasks)
        self._line(f"== workflow {workflow.name} ({n} task{'s' if n != 1 else ''})")

    def attempt_finished(self, record: AttemptRecord) -> None:
        if not record.final and record.status != SUCCESS:
            why = record.error or record.message
            self._line(f"   retry {record.task}: attempt {record.attempt} {record.status}: {why}")

    def task_finished(self, workflow: str, result: TaskResult) -> None:
        self._line(task_line(result))
        for line in failure_details(result, self.debug):
            self._line("          " + line)

    def workflow_finished(self, result: WorkflowResult) -> None:
        counts = summary_counts(result)
        self._line(f"== {result.name}: {result.status} ({counts}) in {result.duration_s:.2f}s"
                   + (f": {result.error}" if result.error else ""))
        self.idle()

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        now = time.monotonic()
        if now - self._flushed > 0.1:  # live enough for CI logs, cheap for 10,000 tasks
            self.out.flush()
            self._flushed = now

    def idle(self) -> None:
        self.out.flush()
        self._flushed = time.monotonic()


def format_log(level: str, message: str, task: str | None) -> str:
    prefix = f"[{task}] " if task else ""
    if level == "print":
        return prefix + message
    return f"{prefix}{level.upper()}: {message}"


def task_line(result: TaskResult) -> str:
    mark = MARKS.get(result.status, result.status)
    text = f"   {mark:<7} {result.name}"
    if result.status != SKIPPED:
        text += f" ({result.duration_s:.2f}s"
        text += f", {result.attempts} attempts)" if result.attempts > 1 else ")"
    detail = result.error if result.status != SUCCESS and result.error else result.message
    if detail:
        first = detail.strip().splitlines()[0] if detail.strip() else ""
        text += f": {first}"
    return text


def summary_counts(result: WorkflowResult) -> str:
    counts: dict[str, int] = {}
    for t in result.tasks:
        counts[t.status] = counts.get(t.status, 0) + 1
    order = list(STATUS_ORDER) + sorted(set(counts) - set(STATUS_ORDER))
    return ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in order if counts.get(s))


def failure_details(result: TaskResult, debug: bool = False) -> list[str]:
    """What a user needs to see of a task that did not succeed: the last lines of its
    command's stdout and stderr (grep, make and pytest explain themselves on stdout), and the
    traceback of an error under --debug. Text was scrubbed before it reached the reporter."""
    if result.status in (SUCCESS, SKIPPED, UP_TO_DATE):
        return []
    lines: list[str] = []
    outputs = result.outputs if isinstance(result.outputs, dict) else {}
    for stream in ("stdout", "stderr"):
        text = outputs.get(stream)
        if not isinstance(text, str) or not text.strip():
            continue
        tail = text[-TAIL_CHARS:].rstrip("\n").splitlines()[-TAIL_LINES:]
        lines.append(f"{stream} (last {len(tail)} lines):" if len(tail) > 1 else f"{stream}:")
        lines.extend("  " + line for line in tail)
    if debug and result.trace:
        lines.extend(result.trace.rstrip("\n").splitlines())
    return lines
