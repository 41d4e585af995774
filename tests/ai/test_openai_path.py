"""The OpenAI-compatible path against a real HTTP server on 127.0.0.1 that injects faults."""

from __future__ import annotations

import math

import pytest

from sloth_runner.errors import AIConnectionError, AIProviderError, ConfigError
from sloth_runner.store.ai_usage import AIUsageStore
from tests.ai.conftest import API_KEY


def rows(service):
    return list(reversed(AIUsageStore(service.store).logs(100)))


def test_complete_shape_and_request(service, server):
    result = service.complete({"prompt": "Explain CI/CD", "max_tokens": 50, "temperature": 0.5,
                               "top_p": 0.9, "frequency_penalty": 0.1, "presence_penalty": 0.1})
    assert result["text"] == "reply text"
    assert result["usage"] == {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
    assert (result["provider"], result["model"], result["finish_reason"]) == \
        ("openai", "gpt-4o-mini", "stop")
    assert result["confidence"] is None and result["cached"] is False
    assert result["latency_ms"] > 0
    assert math.isclose(result["cost"], (11 * 0.15 + 2 * 0.60) / 1e6)
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = req["body"]
    assert body["messages"] == [{"role": "user", "content": "Explain CI/CD"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (50, 0.5, 0.9)


def test_chat_adds_message_and_passes_fine_tuned_model(service, server):
    service.configure({"model": "ft:gpt-3.5-turbo:company:devops-model:abc123"})
    result = service.chat({"messages": [{"role": "system", "content": "You are a DevOps expert"},
                                        {"role": "user", "content": "Docker tips?"}],
                           "max_tokens": 30})
    assert result["message"] == {"role": "assistant", "content": "reply text"}
    assert server.requests[0]["body"]["model"] == "ft:gpt-3.5-turbo:company:devops-model:abc123"
    assert math.isclose(result["cost"], (11 * 3.0 + 2 * 6.0) / 1e6)  # fine-tuning prices


def test_legacy_completions_endpoint_and_logprobs(service, server):
    service.complete({"prompt": "x", "api": "completions"})
    assert server.requests[-1]["path"] == "/v1/completions"
    result = service.chat({"messages": [{"role": "user", "content": "x"}], "logprobs": True})
    assert math.isclose(result["confidence"], math.exp(-0.1))


def test_retries_429_honouring_retry_after_and_counts_every_attempt(service, server, sleeps):
    server.play("status:429:2", "status:500", "ok")
    result = service.complete("hello")
    assert result["text"] == "reply text"
    assert len(server.requests) == 3
    assert sleeps[0] >= 2.0            # Retry-After honoured
    assert 0 < sleeps[1] <= 1.0        # backoff with jitter for the 500
    attempts = [(r["attempt"], r["status"], r["http_status"]) for r in rows(service)]
    assert attempts == [(1, "error", 429), (2, "error", 500), (3, "ok", None)]


def test_gives_up_after_retry_attempts(service, server, sleeps):
    service.configure({"retry_attempts": 2})
    server.play("status:503", "status:503", "status:503", "ok")
    with pytest.raises(AIProviderError) as err:
        service.complete("hello")
    assert err.value.status == 503
    assert "gave up after 3 attempts" in str(err.value)
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_401_is_not_retried_and_never_shows_the_key(service, server):
    server.play("status:401")
    with pytest.raises(AIProviderError) as err:
        service.complete("hello")
    text = str(err.value)
    assert "openai" in text and "gpt-4o-mini" in text and "HTTP 401" in text
    assert "check the API key" in text
    assert API_KEY not in text
    assert len(server.requests) == 1
    assert all(API_KEY not in (r["error"] or "") + (r["prompt"] or "") for r in rows(service))


def test_timeout_is_retried_then_reported(service, server, sleeps):
    service.configure({"timeout": 0.3, "retry_attempts": 1})
    server.play("slow:1", "slow:1")
    with pytest.raises(AIConnectionError, match="no answer within 0.3s"):
        service.complete("hello")
    assert len(sleeps) == 1


def test_dropped_connection_and_malformed_json_are_retried(service, server):
    server.play("drop", "malformed", "ok")
    assert service.complete("hello")["text"] == "reply text"
    statuses = [r["status"] for r in rows(service)]
    assert statuses == ["error", "error", "ok"]


def test_streaming_delivers_tokens_in_order(service, server):
    server.reply = "one two three four"
    tokens: list[str] = []
    result = service.complete("count", on_token=tokens.append)
    assert tokens == ["one ", "two ", "three ", "four"]
    assert result["text"] == "one two three four"
    assert server.requests[0]["body"]["stream"] is True
    # no usage in the stream: estimated from the text, never left at zero
    assert result["usage"]["completion_tokens"] > 0


def test_cut_off_stream_is_an_error_not_a_short_answer(service, server):
    server.reply = "one two three four five"
    server.play("cut")
    tokens: list[str] = []
    with pytest.raises(AIConnectionError, match="stream"):
        service.complete("count", on_token=tokens.append)
    assert tokens == ["one ", "two "]
    assert len(server.requests) == 1  # tokens were delivered: a retry would repeat them


def test_connection_refused_names_the_server(service, server, sleeps):
    service.configure({"base_url": "http://127.0.0.1:9/v1", "retry_attempts": 0})
    with pytest.raises(AIConnectionError, match=r"cannot reach http://127.0.0.1:9/v1"):
        service.complete("hello")


def test_prompts_are_scrubbed_before_they_leave(service, server):
    service.complete("deploy with password=hunter2hunter2 and key AKIAABCDEFGHIJKLMNOP")
    sent = server.requests[0]["body"]["messages"][0]["content"]
    assert "hunter2hunter2" not in sent and "AKIAABCDEFGHIJKLMNOP" not in sent
    assert "[REDACTED:aws_access_key:1]" in sent
    stored = rows(service)[0]["prompt"]
    assert "hunter2hunter2" not in stored
    service.complete({"prompt": "password=hunter2hunter2", "sanitize": False})
    assert "hunter2hunter2" in server.requests[-1]["body"]["messages"][0]["content"]


def test_cache_serves_identical_temperature_zero_requests(service, server):
    service.configure({"cache": True})
    first = service.complete({"prompt": "same", "temperature": 0})
    second = service.complete({"prompt": "same", "temperature": 0})
    assert len(server.requests) == 1
    assert first["cached"] is False and second["cached"] is True
    assert second["text"] == first["text"] and second["usage"] == first["usage"]
    service.complete({"prompt": "same", "temperature": 0.7})
    assert len(server.requests) == 2


def test_budget_stop_blocks_before_sending_and_warn_only_warns(service, server):
    service.configure({"budget": {"daily_usd": 0.0000001, "action": "stop"}})
    from sloth_runner.errors import AIBudgetExceeded

    with pytest.raises(AIBudgetExceeded, match="budget.daily_usd"):
        service.complete({"prompt": "hello", "max_tokens": 100})
    assert server.requests == []
    service.configure({"budget": {"daily_usd": 0.0000001, "action": "warn"}})
    service.complete({"prompt": "hello", "max_tokens": 100})
    assert len(server.requests) == 1
    assert any("budget" in n for n in service.notices)


def test_run_budget_counts_this_run_only(service, server):
    service.run_id = "run-a"
    service.configure({"budget": {"run_usd": 0.00002, "action": "stop"}})
    service.complete({"prompt": "hello", "max_tokens": 5})  # ~ $0.000005
    service.complete({"prompt": "hello", "max_tokens": 5})
    from sloth_runner.errors import AIBudgetExceeded

    with pytest.raises(AIBudgetExceeded):
        for _ in range(10):
            service.complete({"prompt": "hello", "max_tokens": 5})
    service.run_id = "run-b"
    service.complete({"prompt": "hello", "max_tokens": 5})


def test_usage_stats(service, server):
    service.complete("a")
    service.chat({"messages": [{"role": "user", "content": "b"}]})
    stats = service.usage().stats()
    assert stats["calls_today"] == 2 and stats["tokens_today"] == 26
    assert stats["by_model"]["gpt-4o-mini"]["calls"] == 2
    assert stats["estimated_cost"] > 0


def test_bad_arguments_name_the_field(service):
    with pytest.raises(ConfigError, match="complete.prompt"):
        service.complete({"max_tokens": 5})
    with pytest.raises(ConfigError, match=r"chat.messages\[1\]"):
        service.chat({"messages": [{"content": "no role"}]})
    with pytest.raises(ConfigError, match="max_tokenz: unknown option"):
        service.complete({"prompt": "x", "max_tokenz": 5})


def test_one_client_and_one_connection_serve_many_calls(service, server):
    for _ in range(5):
        service.complete("hello")
    peers = {r["peer"] for r in server.requests}
    assert len(server.requests) == 5 and len(peers) == 1  # keep-alive: no new connection a call
