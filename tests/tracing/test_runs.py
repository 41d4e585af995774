"""Real workflow runs traced into the SDK's in-memory exporter: the shape of the trace."""

from __future__ import annotations

import json

from opentelemetry.trace import SpanKind, StatusCode

from sloth_runner import run_details
from tests.ai.conftest import API_KEY
from tests.tracing.conftest import run_file

RETRIED = '''
    local tries = 0
    task("build"):command(function() return true, "built" end):build()
    task("flaky"):depends_on({"build"}):retries(1, "fixed"):retry_delay(0)
        :command(function()
            tries = tries + 1
            if tries == 1 then return false, "first try fails, password=hunter2hunter2" end
            return true, "second try works"
        end):build()
'''


def by_name(spans):
    found: dict[str, list] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


def test_a_run_is_one_trace_with_a_span_per_attempt(spans, workflow_file):
    run, result = run_file(workflow_file(RETRIED))
    assert result.status == "success"
    finished = spans.get_finished_spans()
    named = by_name(finished)
    assert sorted(named) == ["sloth-runner run", "task default.build", "task default.flaky"]
    [root] = named["sloth-runner run"]
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert dict(root.attributes) == {"sloth.run_id": run.run_id, "sloth.file": run.path,
                                     "sloth.workflows": ("default",), "sloth.status": "success"}
    assert root.status.status_code is StatusCode.UNSET
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    assert len(finished) == 4  # root, build, flaky twice

    attempts = sorted(named["task default.build"] + named["task default.flaky"],
                      key=lambda s: s.start_time)
    for span in attempts:
        assert span.parent.span_id == root.context.span_id
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time
    build, first, second = attempts
    assert build.attributes["sloth.status"] == "success"
    assert build.status.status_code is StatusCode.UNSET
    assert (first.attributes["sloth.attempt"], second.attributes["sloth.attempt"]) == (1, 2)
    assert first.attributes["sloth.status"] == "failed"
    assert first.attributes["sloth.final"] is False and second.attributes["sloth.final"] is True
    assert first.attributes["error.type"] == "failed"
    assert first.status.status_code is StatusCode.ERROR
    # the error is scrubbed as the history keeps it
    assert "hunter2hunter2" not in first.status.description
    assert first.status.description.startswith("first try fails, password=[REDACTED:")
    assert first.attributes["sloth.error"] == first.status.description
    assert second.attributes["sloth.status"] == "success"
    assert second.status.status_code is StatusCode.UNSET
    assert first.end_time <= second.start_time

    # the spans' times are the history's, to the nanosecond
    history = run_details(run.run_id)["attempts"]
    assert [(a["task"], a["attempt"], ns(a["started_at"]), ns(a["ended_at"])) for a in history] \
        == [(s.attributes["sloth.task"], s.attributes["sloth.attempt"], s.start_time, s.end_time)
            for s in attempts]


def test_a_failed_run_and_a_task_that_never_ran(spans, workflow_file):
    path = workflow_file('''
        task("boom"):command("exit 3"):build()
        task("after"):depends_on({"boom"}):command(function() return true end):build()
    ''')
    run, result = run_file(path)
    assert result.status == "failed"
    named = by_name(spans.get_finished_spans())
    [root], [boom], [after] = (named["sloth-runner run"], named["task default.boom"],
                               named["task default.after"])
    assert root.attributes["sloth.status"] == "failed"
    assert root.status.status_code is StatusCode.ERROR
    assert boom.attributes["sloth.exit_code"] == 3
    assert boom.status.status_code is StatusCode.ERROR
    # the dependent never ran: its record (attempt 0) is a span of no duration
    assert after.attributes["sloth.attempt"] == 0
    assert after.start_time == after.end_time


def env_for(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)


AI_RETRIED = '''
    task("ask"):retries(1, "fixed"):retry_delay(0):command(function()
        local r = ai.complete({prompt = "deploy with password=hunter2hunter2", model = "gpt-4o-mini"})
        local c = ai.chat({messages = {{role = "user", content = "and then?"}}, model = "gpt-4o"})
        return true, r.text .. " / " .. c.text
    end):build()
'''


def test_ai_calls_are_child_spans_of_their_attempt(spans, server, workflow_file, monkeypatch):
    env_for(server, monkeypatch)
    server.reply = "three word answer"
    server.play("error:401:no such key")  # attempt 1 fails on its first call; attempt 2 works
    run, result = run_file(workflow_file(AI_RETRIED))
    assert result.status == "success"
    finished = spans.get_finished_spans()
    named = by_name(finished)
    first, second = sorted(named["task default.ask"], key=lambda s: s.start_time)
    [failed] = [s for s in finished if s.kind is SpanKind.CLIENT and
                s.parent.span_id == first.context.span_id]
    completion, chat = sorted((s for s in finished if s.kind is SpanKind.CLIENT and
                               s.parent.span_id == second.context.span_id),
                              key=lambda s: s.start_time)
    assert len(finished) == 6  # root, two attempts, three AI calls

    assert failed.name == "text_completion gpt-4o-mini"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "401"
    assert failed.attributes["http.response.status_code"] == 401
    assert "gen_ai.usage.input_tokens" not in failed.attributes

    assert completion.name == "text_completion gpt-4o-mini"
    assert dict(completion.attributes) == {
        "gen_ai.system": "openai", "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "text_completion", "sloth.ai.operation": "complete",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 3,  # as the server said
        "gen_ai.response.finish_reasons": ("stop",), "sloth.ai.attempt": 1,
        "sloth.ai.status": "ok", "sloth.ai.cost_usd": completion.attributes["sloth.ai.cost_usd"],
        "sloth.ai.cached": False, "sloth.ai.replayed": False, "sloth.ai.priced": True}
    assert completion.attributes["sloth.ai.cost_usd"] > 0
    assert chat.name == "chat gpt-4o"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["sloth.ai.operation"] == "chat"
    for span in (failed, completion, chat):
        assert span.context.trace_id == first.context.trace_id
        assert span.kind is SpanKind.CLIENT
        assert span.start_time <= span.end_time
    assert second.start_time <= completion.start_time <= chat.end_time <= second.end_time
    # no prompt or response text unless asked for
    text = json.dumps([dict(s.attributes) for s in finished], default=str)
    assert "deploy with" not in text and "three word answer" not in text
    assert not any(k.startswith("gen_ai.input") or k.startswith("gen_ai.output")
                   for s in finished for k in s.attributes)


def test_prompts_are_recorded_scrubbed_when_asked(spans, server, workflow_file, monkeypatch):
    env_for(server, monkeypatch)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    server.reply = "three word answer"
    run_file(workflow_file(AI_RETRIED))
    completion = next(s for s in spans.get_finished_spans()
                      if s.name == "text_completion gpt-4o-mini")
    [asked] = json.loads(completion.attributes["gen_ai.input.messages"])
    [answered] = json.loads(completion.attributes["gen_ai.output.messages"])
    assert asked["role"] == "user"
    assert "deploy with password=[REDACTED:" in asked["parts"][0]["content"]
    assert answered == {"role": "assistant", "finish_reason": "stop",
                        "parts": [{"type": "text", "content": "three word answer"}]}
    everything = json.dumps([dict(s.attributes) for s in spans.get_finished_spans()],
                            default=str)
    assert "hunter2hunter2" not in everything and API_KEY not in everything


def test_ai_calls_in_a_worker_process_have_their_attempt_as_parent(spans, server,
                                                                     workflow_file,
                                                                     monkeypatch):
    env_for(server, monkeypatch)
    path = workflow_file('''
        task("bounded"):timeout("20s"):command(function()
            return true, ai.complete({prompt = "hi", model = "gpt-4o-mini"}).text
        end):build()
    ''')
    run, result = run_file(path)
    assert result.status == "success"
    finished = spans.get_finished_spans()
    [attempt] = [s for s in finished if s.name == "task default.bounded"]
    [call] = [s for s in finished if s.kind is SpanKind.CLIENT]
    assert call.parent.span_id == attempt.context.span_id


THREADS = '''
    task("count"):timeout("20s"):command(function()
        for line in io.lines("/proc/self/status") do
            local n = line:match("^Threads:%s+(%d+)")
            if n then return true, n end
        end
    end):build()
'''


def test_worker_processes_get_no_thread_of_tracing(spans, workflow_file, monkeypatch):
    # the zygote is forked with the run's span processor not yet started: the workers it
    # forks are as single-minded with tracing on as off
    path = workflow_file(THREADS)
    _, traced = run_file(path)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    _, plain = run_file(path)
    assert traced.workflows[0].tasks[0].message == plain.workflows[0].tasks[0].message
    assert any(s.name == "task default.count" for s in spans.get_finished_spans())
