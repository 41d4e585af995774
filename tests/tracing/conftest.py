import os

import pytest

from sloth_runner.running import Run
from tests.conftest import serving


@pytest.fixture(autouse=True)
def no_otel_settings(monkeypatch):
    """Tracing is off unless a test turns it on, whatever the developer's shell exports."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def spans(monkeypatch):
    """Runs made in this test are traced into the SDK's in-memory exporter (returned)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sloth_runner.tracing import export

    memory = InMemorySpanExporter()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # never dialled
    monkeypatch.setattr(export, "new_exporter", lambda: memory)
    return memory


@pytest.fixture
def receiver():
    """A real OTLP/HTTP receiver on 127.0.0.1."""
    from tests.tracing.otlp_receiver import OTLPReceiver

    yield from serving(OTLPReceiver)


def run_file(path: str):
    """Load and run a workflow file in this process, as the CLI does; the Run and its result."""
    with Run(path) as run:
        run.load()
        result = run.execute()
    return run, result
