"""With a base_url and no model, the server's own model; unknown prices stay unknown; timeouts
and retries from the environment; a timed-out request is retried once, not three times."""

from __future__ import annotations

import pytest

from sloth_runner.errors import AIConnectionError, ConfigError
from sloth_runner.store.ai_usage import AIUsageStore
from tests.ai.conftest import make_service


def rows(service):
    return list(reversed(AIUsageStore(service.store).logs(100)))


@pytest.fixture
def bare(server):
    """A service on the fault server with no model set (a fresh server: nothing cached)."""
    from sloth_runner.ai.providers import openai_compat

    openai_compat._served.pop(server.base_url, None)
    models_before = server.models
    yield make_service({"provider": "openai", "base_url": server.base_url,
                        "retry_attempts": 0})
    server.models = models_before  # the server is shared by the session's tests
    openai_compat._served.pop(server.base_url, None)


def test_no_model_set_uses_the_servers_own_and_says_so_once(bare, server):
    server.models = ["smollm2-135m", "other"]
    listed = server.model_lists
    bare.complete("hello")
    bare.complete("again")
    assert len(server.requests) == 2
    assert all(r["body"]["model"] == "smollm2-135m" for r in server.requests)
    assert server.model_lists - listed == 1  # asked once
    said = [n for n in bare.notices if "no model set" in n]
    assert said == [f"AI: no model set; using 'smollm2-135m', the first of 2 models served at "
                    f"{server.base_url} (choose with SLOTH_AI_MODEL or "
                    "ai.configure{model = ...})"]
    assert "gpt-4o-mini" not in str([r["model"] for r in rows(bare)])


def test_an_unknown_price_is_unknown_not_another_models(bare, server):
    server.models = ["smollm2-135m"]
    answer = bare.complete("hello")
    assert answer["cost"] is None
    (row,) = rows(bare)
    assert row["priced"] == 0 and row["cost_usd"] == 0
    notice = next(n for n in bare.notices if "no price is known for model 'smollm2-135m'" in n)
    advice = notice[notice.index("ai.configure"):notice.index(" (USD")]
    import lupa.lua54 as lupa  # the advice is Lua a user can paste

    lupa.LuaRuntime().execute("local ai = {configure = function(t) end}; " + advice)
    priced = make_service({"provider": "openai", "base_url": server.base_url,
                           "model": "smollm2-135m", "retry_attempts": 0,
                           "prices": {"smollm2-135m": {"input": 1.0, "output": 2.0}}})
    assert priced.complete("hello")["cost"] > 0


def test_a_server_that_lists_no_models_needs_one_named(bare, server):
    server.models = []
    with pytest.raises(Exception) as err:
        bare.complete("hello")
    assert "lists none: set SLOTH_AI_MODEL" in str(err.value)
    assert server.requests == []  # nothing was sent


def test_timeout_and_retries_come_from_the_environment():
    from sloth_runner.ai.settings import resolve

    s = resolve({}, {"OPENAI_API_KEY": "k", "SLOTH_AI_TIMEOUT": "90s",
                     "SLOTH_AI_RETRIES": "5"})
    assert (s.timeout, s.retry_attempts) == (90.0, 5)
    with pytest.raises(ConfigError) as err:
        resolve({}, {"OPENAI_API_KEY": "k", "SLOTH_AI_RETRIES": "many"})
    assert str(err.value).startswith("SLOTH_AI_RETRIES: expects a whole number")
    with pytest.raises(ConfigError) as err:
        resolve({}, {"OPENAI_API_KEY": "k", "SLOTH_AI_TIMEOUT": "soon"})
    assert str(err.value).startswith("SLOTH_AI_TIMEOUT:")
    assert resolve({"timeout": 5}, {"OPENAI_API_KEY": "k", "SLOTH_AI_TIMEOUT": "90"}).timeout == 5


def test_a_timed_out_request_is_retried_once_and_the_message_says_why(server, sleeps):
    service = make_service({"provider": "openai", "base_url": server.base_url,
                            "model": "m", "timeout": 0.5, "retry_attempts": 3}, sleeps)
    server.play("drip:0.1", "drip:0.1", "drip:0.1", "ok")
    with pytest.raises(AIConnectionError) as err:
        service.complete("hello")
    assert len(server.requests) == 2  # the first try and one retry, not four
    assert "the server may still be busy with the abandoned request" in str(err.value)
    assert [r["status"] for r in rows(service)] == ["timeout", "timeout"]
    server.play("500", "ok")  # other failures still get every retry
    assert service.complete("hello")["text"] == "reply text"


def test_against_llama_cpps_server_the_call_is_logged_under_its_model(llama_server):
    from sloth_runner.ai.providers import openai_compat

    openai_compat._served.pop(llama_server.base_url, None)
    service = make_service({"provider": "openai", "base_url": llama_server.base_url,
                            "timeout": 60, "retry_attempts": 0})
    answer = service.complete({"prompt": "Say hi.", "max_tokens": 4})
    (row,) = rows(service)
    assert row["model"] != "gpt-4o-mini" and row["model"] == answer["model"]
    assert answer["cost"] is None and row["priced"] == 0
    assert any(f"served at {llama_server.base_url}" in n for n in service.notices)
