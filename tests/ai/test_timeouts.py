"""`timeout` bounds a whole attempt, not each read, and the caller's deadline bounds it too,
against the fault server dripping its answer one byte at a time; cut attempts are logged."""

from __future__ import annotations

import time

import pytest

from sloth_runner.ai.client import CallContext
from sloth_runner.errors import AIConnectionError, AIError
from sloth_runner.store.ai_usage import AIUsageStore


def rows(service):
    return list(reversed(AIUsageStore(service.store).logs(100)))


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    try:
        fn(*args, **kwargs)
    except AIError as exc:
        return time.monotonic() - started, exc
    raise AssertionError("the call should have been cut")


@pytest.mark.parametrize("action, stream", [
    ("drip:0.1", False),          # every read returns within 0.1 s; the body takes ~30 s
    ("drip:0.1", True),           # the same, streamed
    ("drip_headers:0.1", False),  # even the headers take ~25 s
])
def test_timeout_bounds_the_whole_attempt(service, server, action, stream):
    service.configure({"timeout": 1, "retry_attempts": 0})
    server.play(action)
    tokens: list[str] = []
    elapsed, exc = timed(service.complete, "hello",
                         on_token=tokens.append if stream else None)
    assert 0.9 < elapsed < 1.5, elapsed
    assert isinstance(exc, AIConnectionError) and "no answer within 1s" in str(exc)
    (row,) = rows(service)
    assert row["status"] == "timeout" and 900 < row["latency_ms"] < 1500


def test_each_retry_gets_its_own_timeout(service, server, sleeps):
    service.configure({"timeout": 0.5, "retry_attempts": 1})
    server.play("drip:0.1", "ok")
    assert service.complete("hello")["text"] == "reply text"
    assert [r["status"] for r in rows(service)] == ["timeout", "ok"]


def test_the_callers_deadline_bounds_the_attempt_and_is_logged(service, server):
    service.configure({"timeout": 60, "retry_attempts": 3})
    server.play("drip:0.1", "ok")
    ctx = CallContext(workflow="wf", task="ask", deadline=time.monotonic() + 1.0)
    elapsed, exc = timed(service.complete, "hello", ctx)
    assert 0.9 < elapsed < 1.5, elapsed
    assert "deadline" in str(exc) and exc.retryable is False
    assert len(server.requests) == 1  # no retry: there is no time left
    (row,) = rows(service)
    assert (row["status"], row["provider"], row["model"], row["task"], row["workflow"]) == \
        ("timeout", "openai", "gpt-4o-mini", "ask", "wf")
    assert 900 < row["latency_ms"] < 1500 and "deadline" in row["error"]


def test_a_deadline_already_passed_sends_nothing_and_is_logged(service, server):
    ctx = CallContext(task="late", deadline=time.monotonic() - 0.1)
    with pytest.raises(AIError, match="deadline"):
        service.complete("hello", ctx)
    assert server.requests == []
    assert [r["status"] for r in rows(service)] == ["timeout"]


def test_a_stream_cut_by_its_timeout_after_some_tokens_is_not_retried(service, server):
    service.configure({"timeout": 1, "retry_attempts": 2})
    server.reply = "one two three four five six seven eight nine ten"
    server.play("drip:0.003")  # a ~200-byte chunk every ~0.6 s
    tokens: list[str] = []
    elapsed, exc = timed(service.complete, "count", on_token=tokens.append)
    assert elapsed < 1.5 and tokens  # some tokens were shown before the cut
    assert isinstance(exc, AIConnectionError) and exc.retryable is False
    assert len(server.requests) == 1  # a retry would show them again
    assert [r["status"] for r in rows(service)] == ["timeout"]
