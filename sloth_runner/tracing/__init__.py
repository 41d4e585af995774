"""OpenTelemetry traces of runs (the `otel` extra): a run is a trace, each task attempt a span,
each AI call a child span with the GenAI semantic-convention attributes.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
set, and not switched off by `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. That
check is all a run pays otherwise: this module imports nothing but `os`, and OpenTelemetry is
imported only by `tracer.py` and `export.py`, when tracing is on
(tests/cli/test_run.py::test_heavy_modules_are_not_imported).

Spans go over OTLP/HTTP, configured by the standard `OTEL_*` variables (export.py). Tracing
never fails a run: without the extra, or with a collector that does not answer, the run goes
on and says so in one warning line.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from sloth_runner.running import Run
    from sloth_runner.tracing.tracer import RunTracer

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
INSTALL_HINT = ("tracing: OTEL_EXPORTER_OTLP_ENDPOINT is set, but OpenTelemetry is not "
                "installed: pip install 'sloth-runner[otel]' (this run is not traced)")


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether runs are traced: an OTLP endpoint is set and the SDK is not switched off."""
    if not any(environ.get(name, "").strip() for name in ENDPOINT_VARS):
        return False
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() != "none"


def run_tracer(run: Run, notice: Callable[[str], None], ai: Any = None) -> RunTracer | None:
    """The listener that makes `run` a trace, or None when tracing is off (or cannot start:
    then `notice` gets one line saying why). `ai`, the run's AI service if it is already built
    (AI calls while loading), is observed from now on; a service built later registers
    `RunTracer.ai_call` itself."""
    if not enabled():
        return None
    try:
        from sloth_runner.tracing.tracer import RunTracer
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        notice(INSTALL_HINT)
        return None
    try:
        tracer = RunTracer.for_run(run, notice)
    except Exception as exc:  # noqa: BLE001 (a bad OTEL_* setting must not stop the run)
        notice(f"tracing: could not start, this run is not traced: {exc}")
        return None
    if ai is not None:
        ai.observers.append(tracer.ai_call)
    return tracer
