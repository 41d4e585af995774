"""The parts on their own: the switch, the GenAI mapping, the tracer without an engine."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sloth_runner.engine.model import AttemptRecord
from sloth_runner.tracing import enabled, export, genai
from sloth_runner.tracing.tracer import RunTracer


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp"}, True),
])
def test_the_switch(environ, on):
    assert enabled(environ) is on


def test_the_endpoint_shown_hides_a_password():
    assert export.endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:pw@c:4318/"}) \
        == "https://***@c:4318/v1/traces"
    assert export.endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/t",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://d"}) == "http://c/t"


ROW = {"run_id": "r", "workflow": "w", "task": "t", "provider": "openai", "model": "gpt-4o-mini",
       "operation": "decide", "attempt": 2, "status": "ok", "prompt_tokens": 40,
       "completion_tokens": 7, "latency_ms": 120.0, "cost_usd": 0.0001, "priced": True,
       "replayed": False, "cached": True, "http_status": None, "error": None,
       "prompt": "user: pick one", "response": "b", "task_attempt": 1, "finish_reason": "stop",
       "started_at": 100.0, "ended_at": 100.12}


def test_our_operations_map_to_the_conventions_names():
    for ours, theirs in (("complete", "text_completion"), ("chat", "chat"), ("decide", "chat"),
                         ("generate_code", "chat"), ("ai_new", "chat")):
        name, attrs = genai.ai_span({**ROW, "operation": ours})
        assert (name, attrs["gen_ai.operation.name"], attrs["sloth.ai.operation"]) \
            == (f"{theirs} gpt-4o-mini", theirs, ours)


def test_the_local_model_and_a_failure():
    name, attrs = genai.ai_span({**ROW, "provider": "local", "model": "smollm2",
                                 "status": "timeout", "prompt_tokens": 0})
    assert name == "chat smollm2"
    assert attrs["gen_ai.system"] == attrs["gen_ai.provider.name"] == "llama_cpp"
    assert attrs["error.type"] == "timeout"
    assert "gen_ai.usage.input_tokens" not in attrs and "gen_ai.response.model" not in attrs
    _, attrs = genai.ai_span({**ROW, "status": "error", "http_status": None, "model": None})
    assert attrs["error.type"] == "_OTHER" and "gen_ai.request.model" not in attrs


def test_content_only_when_asked():
    _, attrs = genai.ai_span(ROW)
    assert not any("messages" in key for key in attrs)
    assert attrs["sloth.ai.cached"] is True and attrs["gen_ai.usage.input_tokens"] == 40
    _, attrs = genai.ai_span(ROW, capture=True)
    assert json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["content"] \
        == "user: pick one"
    _, attrs = genai.ai_span({**ROW, "prompt": None, "response": None}, capture=True)
    assert not any("messages" in key for key in attrs)  # log_prompts off: nothing to give
    assert genai.capture_content({genai.CAPTURE_VAR: "True"})
    assert not genai.capture_content({genai.CAPTURE_VAR: "1"})


def tracer(exporter, notices):
    return RunTracer(exporter, notices.append, run_id="r1", file="/x/wf.lua", flush_s=2)


def test_calls_outside_an_attempt_hang_from_the_root():
    memory, notices = InMemorySpanExporter(), []
    t = tracer(memory, notices)
    t.ai_call({**ROW, "task": None, "workflow": None})
    t.ai_call({**ROW, "task": "never-started"})
    t.task_started("w", "t", 1)
    t.ai_call(ROW)  # task t, attempt 1: made while the attempt runs
    t.attempt_finished(AttemptRecord("w", "t", 1, "success", 99.0, 101.0))
    t.finish("success")
    spans = memory.get_finished_spans()
    root = next(s for s in spans if s.name == "sloth-runner run")
    attempt = next(s for s in spans if s.name == "task w.t")
    calls = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert [c.parent.span_id for c in calls] == [root.context.span_id] * 2 + \
        [attempt.context.span_id]
    assert (attempt.start_time, attempt.end_time) == (99_000_000_000, 101_000_000_000)
    assert (calls[2].start_time, calls[2].end_time) == (100_000_000_000, 100_120_000_000)
    assert notices == []


def test_a_broken_event_is_swallowed_and_said_once():
    memory, notices = InMemorySpanExporter(), []
    t = tracer(memory, notices)
    t.attempt_finished(None)  # what a bug would look like
    t.ai_call({})
    t.finish("success")
    t.finish("success")  # twice is harmless
    assert len(notices) == 1 and notices[0].startswith("tracing: spans may be missing (")
    assert [s.name for s in memory.get_finished_spans()] == ["sloth-runner run"]


class Raising(SpanExporter):
    def export(self, spans):
        raise RuntimeError("collector exploded")

    def shutdown(self):
        pass


class Refusing(SpanExporter):
    def export(self, spans):
        return SpanExportResult.FAILURE

    def shutdown(self):
        pass


def test_an_exporter_that_raises_or_refuses_costs_one_line(capfd):
    for exporter, why in ((Raising(), "RuntimeError: collector exploded"),
                          (Refusing(), "not accepted")):
        notices: list[str] = []
        t = tracer(exporter, notices)
        t.task_started("w", "t", 1)
        t.attempt_finished(AttemptRecord("w", "t", 1, "failed", 1.0, 2.0, error="no"))
        t.finish("failed", "run failed")
        assert notices == [f"tracing: 2 of 2 spans could not be sent to the collector ({why}); "
                           "the run itself is not affected"]
    out, err = capfd.readouterr()
    assert out == err == ""  # no traceback, no log lines


def test_a_protocol_we_do_not_speak_is_said():
    assert export.protocol_problem({}) is None
    assert export.protocol_problem({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) is None
    said = export.protocol_problem({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})
    assert said is not None and "'grpc' is not supported" in said


def test_the_model_asked_and_the_one_that_answered_and_a_fallback_hop():
    name, attrs = genai.ai_span({**ROW, "request_model": "gpt-4o", "model": "gpt-4o-2024-08-06",
                                 "fallback_from": "openai/m@gpu:8000",
                                 "fallback_reason": "timeout"})
    assert name == "chat gpt-4o" and attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert (attrs["sloth.ai.fallback_from"], attrs["sloth.ai.fallback_reason"]) == (
        "openai/m@gpu:8000", "timeout")
    assert "sloth.ai.fallback_from" not in genai.ai_span(ROW)[1]
