"""A run as one OpenTelemetry trace: a root span, a span per task attempt, a child span per AI
call (its attributes: genai.py; where the spans go: export.py).

Times are the engine's own, in ns: an attempt's span starts and ends at its record's
`started_at` and `ended_at` (the times the history keeps), an AI call's at its log row's. So an
attempt's span is made when the attempt ends, when its status is known too; its span id is
reserved when the attempt starts (`_Ids`), so the AI calls it makes, which end before it, can
already name it as their parent. AI calls are observed on worker threads: their parent is
found by (workflow, task, task attempt) under a lock, not through contextvars.

The SDK's global tracer provider is never touched: each run has its own provider, batch
processor and exporter, shut down (with a bounded wait) when the run ends, so runs in one
process (tests, the Python API) do not share spans. They are made on the run's first event,
after the zygote is forked: the processor's thread would otherwise be re-created in the zygote
and in every worker (the SDK restarts it after a fork). Nothing here may fail a run: a listener
method that raises is swallowed and reported once, with export problems, in one warning line.
"""

from __future__ import annotations

import functools
import os
import threading
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from sloth_runner import __version__
from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import FAILURES
from sloth_runner.tracing import export, genai

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.export import SpanExporter

    from sloth_runner.engine.model import AttemptRecord, Workflow
    from sloth_runner.running import Run

ROOT_NAME = "sloth-runner run"
TEXT_LIMIT = 4096  # characters of an error kept in a span (its end, where it explains itself)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else "..." + text[-(TEXT_LIMIT - 3):]


def _safe(method: Callable[..., Any]) -> Callable[..., Any]:
    """A listener method whose failure is remembered, never raised into the engine."""

    @functools.wraps(method)
    def guarded(self: RunTracer, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception as exc:  # noqa: BLE001 (a trace is never worth a failed run)
            self.bug = self.bug or f"{type(exc).__name__}: {exc}"
            return None

    return guarded


class _Ids(IdGenerator):
    """Random ids; a span started on a thread that was `give`n an id gets that one."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self._given = threading.local()

    def reserve(self) -> int:
        return self._random.generate_span_id()

    def give(self, span_id: int | None) -> None:
        self._given.span_id = span_id

    def generate_span_id(self) -> int:
        given = getattr(self._given, "span_id", None)
        if given is not None:
            self._given.span_id = None
            return int(given)
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self._random.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return True


class RunTracer(Listener):
    """The engine Listener that turns one run into one trace; `ai_call` observes AI calls."""

    def __init__(self, exporter: SpanExporter, notice: Callable[[str], None], *, run_id: str,
                 file: str, capture: bool = False, flush_s: float = export.FLUSH_TIMEOUT_S,
                 where: str = "the collector") -> None:
        self.notice = notice
        self.capture = capture  # prompts and responses, if the call log has them
        self.flush_s = flush_s
        self.where = where
        self.bug: str | None = None
        self.spans = 0  # ended (recorded) spans, to tell how many never reached the collector
        self.exporter = export.Guarded(exporter)
        self._over = threading.Event()  # the last flush is done, or cannot succeed
        self.problems = export.Problems(self._over).attach()
        self._ids = _Ids()
        self._began = time.time_ns()
        self._about = {"sloth.run_id": run_id, "sloth.file": file}
        self._reserved: dict[tuple[Any, Any, Any], int] = {}  # (workflow, task, attempt) -> id
        self._workflows: list[str] = []
        self._lock = threading.Lock()
        self._started = False
        self._finished = False

    def _start(self) -> None:
        """The provider, its batch processor (a thread) and the root span, on the first event:
        after the zygote is forked (running.py), which must not inherit the thread."""
        if self._started:  # (set last, under the lock: once seen, everything is there)
            return
        with self._lock:
            if self._started:
                return
            self.provider = TracerProvider(resource=export.resource(), id_generator=self._ids,
                                           shutdown_on_exit=False)
            self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
            self.tracer = self.provider.get_tracer("sloth_runner", __version__)
            self.root = self.tracer.start_span(ROOT_NAME, kind=SpanKind.INTERNAL,
                                               attributes=self._about, start_time=self._began)
            self._root = self.root.get_span_context()
            self._root_context = trace.set_span_in_context(self.root)
            self._started = True

    @classmethod
    def for_run(cls, run: Run, notice: Callable[[str], None],
                environ: Mapping[str, str] = os.environ) -> RunTracer:
        problem = export.protocol_problem(environ)
        if problem is not None:
            notice(problem)
        return cls(export.new_exporter(), notice, run_id=run.run_id,
                   file=os.path.realpath(run.path), capture=genai.capture_content(environ),
                   flush_s=export.flush_timeout(environ), where=export.endpoint(environ))

    # -- engine events ---------------------------------------------------------------------------
    @_safe
    def workflow_started(self, workflow: Workflow) -> None:
        self._start()
        self._workflows.append(workflow.name)

    @_safe
    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        self._start()
        with self._lock:  # kept to the end: an AI call cut at a deadline logs after its attempt
            self._reserved[(workflow, task, attempt)] = self._ids.reserve()

    @_safe
    def attempt_finished(self, record: AttemptRecord) -> None:
        self._start()
        with self._lock:
            span_id = self._reserved.get((record.workflow, record.task, record.attempt))
        attrs: dict[str, Any] = {"sloth.workflow": record.workflow, "sloth.task": record.task,
                                 "sloth.attempt": record.attempt, "sloth.status": record.status,
                                 "sloth.final": record.final}
        if record.host:
            attrs["sloth.host"] = record.host
        if record.exit_code is not None:
            attrs["sloth.exit_code"] = record.exit_code
        failed = record.status in FAILURES
        why = record.error or (record.message if failed else None)  # `return false, "why"`
        if failed:
            attrs["error.type"] = record.status
        if why:
            attrs["sloth.error"] = _clip(why)
        self._ids.give(span_id)
        try:
            span = self.tracer.start_span(f"task {record.workflow}.{record.task}",
                                          self._root_context, SpanKind.INTERNAL, attrs,
                                          start_time=_ns(record.started_at))
        finally:
            self._ids.give(None)
        if failed:
            span.set_status(Status(StatusCode.ERROR, _clip(why or record.status)))
        self._end(span, record.ended_at)

    # -- AI calls (on worker threads) ------------------------------------------------------------
    @_safe
    def ai_call(self, row: dict[str, Any]) -> None:
        """One AI call attempt, as AIService.observers report it: a child span of the task
        attempt that made it, or of the root for calls outside a task."""
        self._start()
        span_id = None
        if row.get("task"):
            with self._lock:
                span_id = self._reserved.get((row.get("workflow"), row["task"],
                                              row.get("task_attempt")))
        name, attrs = genai.ai_span(row, self.capture)
        span = self.tracer.start_span(name, self._parent(span_id), SpanKind.CLIENT, attrs,
                                      start_time=_ns(row["started_at"]))
        if row.get("status") != "ok":
            span.set_status(Status(StatusCode.ERROR, _clip(row.get("error") or row["status"])))
        self._end(span, row["ended_at"])

    def _parent(self, span_id: int | None) -> Context:
        if span_id is None:
            return self._root_context
        root = self._root
        return trace.set_span_in_context(NonRecordingSpan(SpanContext(
            root.trace_id, span_id, is_remote=False, trace_flags=root.trace_flags,
            trace_state=root.trace_state)))

    def _end(self, span: Any, at: float) -> None:
        recording = span.is_recording()  # (a sampler may drop a trace: nothing is sent then)
        span.end(end_time=_ns(at))
        if recording:
            with self._lock:
                self.spans += 1

    # -- the end ---------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        try:
            if self._started:
                self.provider.shutdown()  # the batch processor sends what is queued
        except Exception as exc:  # noqa: BLE001 (on its own thread: no traceback)
            self.bug = self.bug or f"{type(exc).__name__}: {exc}"
        finally:
            self._over.set()

    def finish(self, status: str, error: str | None = None) -> None:
        """End the root span with the run's status, send what is left (waiting `flush_s` at
        most), and say in one line if spans were lost or tracing misbehaved."""
        if self._finished:
            return
        self._finished = True
        try:
            self._start()
            self.root.set_attributes({"sloth.workflows": self._workflows, "sloth.status": status})
            if error:
                self.root.set_attribute("sloth.error", _clip(error))
            if status not in ("success", "up_to_date"):
                self.root.set_status(Status(StatusCode.ERROR, _clip(error or status)))
            self._end(self.root, time.time())
        except Exception as exc:  # noqa: BLE001
            self.bug = self.bug or f"{type(exc).__name__}: {exc}"
        self._over.clear()  # (a collector that was down during the run may be up again)
        closer = threading.Thread(target=self._shutdown, daemon=True,
                                  name="sloth-runner-trace-flush")
        closer.start()
        try:
            in_time = self._over.wait(self.flush_s)
        finally:  # (a second Ctrl-C while waiting: give up at once)
            if not self._over.is_set() or closer.is_alive():
                self.exporter.cut()  # the collector is slow or gone: stop retrying
            self.problems.detach()
        lost = self.spans - self.exporter.sent
        said = []
        if lost > 0:
            why = self.exporter.problem or self.problems.first or (
                "not accepted" if in_time else f"no answer within {self.flush_s:g} s")
            said.append(f"{lost} of {self.spans} spans could not be sent to {self.where} "
                        f"({why})")
        if self.bug:
            said.append(f"spans may be missing ({self.bug})")
        if said:
            self.notice("tracing: " + "; ".join(said) + "; the run itself is not affected")
