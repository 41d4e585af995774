"""The fallback chain: a provider that cannot answer hands the call to the next one, and the
call log says so. Real servers on 127.0.0.1 (two fault servers), the bundled model as the local
hop, and the CLI for `ai logs` and a workflow."""

from __future__ import annotations

import time

import pytest

from sloth_runner.ai.types import CallContext
from sloth_runner.errors import AIError, ConfigError
from tests.ai.conftest import API_KEY, make_service
from tests.ai.fault_server import FaultServer
from tests.ai.llama_server import free_port
from tests.conftest import cli, cli_json, tasks_by_name


@pytest.fixture
def second():
    spare = FaultServer(reply="from the second")
    yield spare
    spare.stop()


def chained(server, *hops, **extra):
    return make_service({"provider": "openai", "api_key": API_KEY, "base_url": server.base_url,
                         "model": "gpt-4o-mini", "timeout": 5, "retry_attempts": 1,
                         "fallback": list(hops), **extra}, lambda s: None)


def test_a_provider_failing_after_its_retries_hands_the_call_on(server, second):
    service = chained(server, {"base_url": second.base_url, "model": "m2"})
    server.play("status:503", "status:503")
    out = service.complete("hello")
    assert out["text"] == "from the second" and out["fallback_from"].startswith(
        "openai/gpt-4o-mini@127.0.0.1:")
    assert len(server.requests) == 2 and len(second.requests) == 1  # its retry first
    assert second.requests[0]["body"]["model"] == "m2"
    rows = list(reversed(service.usage().logs(5)))
    assert [(r["status"], r["fallback_reason"]) for r in rows] == [
        ("error", None), ("error", None), ("ok", "HTTP 503")]
    assert rows[2]["model"] == "m2" and rows[2]["fallback_from"] == out["fallback_from"]
    assert any("falling back to the next provider (openai/m2@127.0.0.1" in n for n in service.notices)


def test_a_provider_that_just_failed_is_skipped_for_a_while(server, second):
    service = chained(server, {"base_url": second.base_url, "model": "m2"}, retry_attempts=0)
    server.play("status:503")
    service.complete("one")
    service.complete("two")  # the primary is not waited on again
    assert len(server.requests) == 1 and len(second.requests) == 2
    assert service.usage().logs(1)[0]["fallback_reason"] == "HTTP 503 in the last 30s: skipped"
    service.cooldowns.clock = lambda: time.monotonic() + 31  # and tried again after
    server.play()
    assert service.complete("three")["fallback_from"] is None and len(server.requests) == 1


def test_the_last_providers_error_says_what_came_before(server, second):
    service = chained(server, {"base_url": second.base_url, "model": "m2"}, retry_attempts=0)
    server.play("status:503")
    second.play("error:401:bad key")
    with pytest.raises(AIError, match=r"HTTP 401.*after falling back from openai/gpt-4o-mini"
                                      r"@127.0.0.1:\d+: HTTP 503"):
        service.complete("hello")


def test_an_unreachable_server_falls_back_to_the_bundled_model(server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    service = make_service({"provider": "openai", "base_url": dead, "model": "m",
                            "retry_attempts": 0, "timeout": 5,
                            "fallback": [{"provider": "local"}]})
    out = service.complete({"prompt": "Say hi", "max_tokens": 4})
    assert out["provider"] == "local" and out["fallback_from"] == "openai/m@" + dead[7:-3]
    assert [r["provider"] for r in service.usage().logs(5)] == ["local", "openai"]


def test_a_budget_that_would_be_passed_hands_the_call_to_a_free_provider(server):
    service = make_service({"provider": "openai", "api_key": API_KEY,
                            "base_url": server.base_url, "model": "gpt-4o",
                            "budget": {"run_usd": 0.000001, "action": "stop"},
                            "fallback": [{"provider": "local"}]})
    service.run_id = "r1"
    out = service.complete({"prompt": "Say hi", "max_tokens": 4})
    assert out["provider"] == "local" and len(server.requests) == 0
    assert service.usage().logs(1)[0]["fallback_reason"] == "budget"


def test_a_task_deadline_that_has_passed_is_not_handed_on(server, second):
    service = chained(server, {"base_url": second.base_url, "model": "m2"})
    ctx = CallContext(task="t", deadline=time.monotonic() - 1)
    with pytest.raises(AIError, match="deadline"):
        service.call(service._request({}, [{"role": "user", "content": "x"}]), ctx, "chat")
    assert len(second.requests) == 0


def test_local_only_keeps_the_prompt_on_this_machine(server):
    service = make_service({"provider": "openai", "api_key": API_KEY,
                            "base_url": "http://192.0.2.1/v1", "model": "m",
                            "fallback": [{"provider": "local"}]})
    out = service.complete({"prompt": "Say hi", "max_tokens": 4, "local_only": True})
    assert out["provider"] == "local" and out["fallback_from"] is None
    loopback = make_service({"provider": "openai", "api_key": API_KEY,
                             "base_url": server.base_url, "model": "m"})
    server.play()
    assert loopback.complete({"prompt": "hi", "local_only": True})["text"] == "reply text"
    remote = make_service({"provider": "openai", "api_key": API_KEY,
                           "base_url": "http://192.0.2.1/v1", "model": "m"})
    with pytest.raises(ConfigError, match="local_only: no AI provider on this machine"):
        remote.complete({"prompt": "hi", "local_only": True})
    with pytest.raises(ConfigError, match="local_only"):
        remote.complete({"prompt": "hi", "local_only": "yes"})


@pytest.mark.parametrize("hop, field", [
    ({"temperature": 0}, "fallback[1].temperature"),
    ({"base_url": 5}, "fallback[1].base_url"),
    ({"provider": "openai"}, "ai.fallback[1]"),  # no key, no base_url
    ({"model": "gpt-4o-mini"}, "ai.fallback[1]"),  # a server, never the bundled model
])
def test_a_bad_hop_is_an_error_naming_it(server, hop, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        service = chained(server, hop)
        service.complete("hello")


def test_the_chain_comes_from_the_config_file_and_shows_in_ai_logs(server, second, tmp_path,
                                                                   workflow_file):
    config = tmp_path / "ai.yaml"
    config.write_text(f"base_url: {server.base_url}\napi_key: {API_KEY}\nmodel: gpt-4o-mini\n"
                      f"retry_attempts: 0\nfallback:\n  - base_url: {second.base_url}\n"
                      "    model: m2\n")
    server.play("status:500")
    second.play()
    path = workflow_file(f'''
local ai = require("ai")
ai.configure({{config_file = "{config}"}})
task("ask"):command(function()
    local out = ai.complete({{prompt = "hello"}})
    return true, out.text .. " via " .. out.fallback_from
end):build()
''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0, doc
    assert tasks_by_name(doc)["ask"]["message"].startswith("from the second via openai/gpt-4o-mini@")
    logs = cli("ai", "logs", "-n", "2")
    assert "(fallback from openai/gpt-4o-mini@127.0.0.1:" in logs.stdout
    assert ": HTTP 500)" in logs.stdout and API_KEY not in logs.stdout + logs.stderr
    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    with TestClient(make_app(Settings()), base_url="http://127.0.0.1") as dashboard:
        page = dashboard.get("/ai").text  # the dashboard's AI calls say so too
    assert "fallback from openai/gpt-4o-mini@127.0.0.1:" in page and "HTTP 500" in page
    assert API_KEY not in page


def test_a_dead_server_with_no_model_named_falls_back_and_the_call_succeeds(second):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    service = make_service({"provider": "openai", "base_url": dead, "retry_attempts": 0,
                            "cache": True, "timeout": 5,
                            "fallback": [{"base_url": second.base_url, "model": "m2"}]})
    out = service.complete({"prompt": "hello", "temperature": 0})
    assert out["text"] == "from the second" and len(second.requests) == 1
    rows = service.usage().logs(5)
    service.complete({"prompt": "again", "temperature": 0})  # the dead one is not asked again
    assert service.usage().logs(1)[0]["fallback_reason"] == "unreachable in the last 30s: skipped"
    assert len(service.usage().logs(5)) == len(rows) + 1


def test_a_fallbacks_answer_is_not_cached_as_the_first_providers(server, second):
    settings = {"provider": "openai", "api_key": API_KEY, "base_url": server.base_url,
                "model": "m1", "retry_attempts": 0, "cache": True,
                "fallback": [{"base_url": second.base_url, "model": "m2"}]}
    server.play("status:503")
    first = make_service(settings)
    assert first.complete({"prompt": "hi", "temperature": 0})["text"] == "from the second"
    later = make_service(settings)  # another run, the first provider back
    later.store, later._usage_factory = first.store, first._usage_factory
    server.play()
    out = later.complete({"prompt": "hi", "temperature": 0})
    assert out["text"] == "reply text" and out["cached"] is False


def test_a_fallback_on_the_same_server_sends_its_own_model_and_the_servers_key(server):
    service = make_service({"provider": "openai", "api_key": API_KEY,
                            "base_url": server.base_url, "model": "big", "retry_attempts": 0,
                            "fallback": [{"base_url": server.base_url, "model": "small"}]})
    server.play("status:503")
    assert service.complete("hi")["model"] == "small"
    assert [r["body"]["model"] for r in server.requests] == ["big", "small"]
    assert server.requests[1]["headers"]["authorization"] == f"Bearer {API_KEY}"


def test_the_local_model_asked_by_name_never_falls_back_to_a_server(server):
    service = make_service({"provider": "openai", "api_key": API_KEY,
                            "base_url": server.base_url, "model": "m",
                            "fallback": [{"provider": "local"}]})
    assert [s.provider for s in service.chain("local")] == ["local"]
    server.play()
    service.complete({"prompt": "Say hi", "max_tokens": 2}, provider="local")
    assert server.requests == []


def test_a_password_in_a_base_url_stays_out_of_labels_logs_and_errors(second):
    dead = f"http://admin:hunter2pass@127.0.0.1:{free_port()}/v1"
    service = make_service({"provider": "openai", "base_url": dead, "model": "m",
                            "retry_attempts": 0,
                            "fallback": [{"base_url": second.base_url, "model": "m2"}]})
    second.play("error:401:no")
    with pytest.raises(AIError) as caught:
        service.complete("hi")
    shown = str(caught.value) + " ".join(service.notices) + str(service.usage().logs(5))
    assert "hunter2pass" not in shown
    assert "openai/m@127.0.0.1:" in str(caught.value)


def test_llama_cpps_own_options_are_not_sent_to_a_server_hop(second):
    from sloth_runner.ai.types import AIRequest

    service = make_service({"provider": "local", "context_size": 64, "retry_attempts": 0,
                            "fallback": [{"base_url": second.base_url, "api_key": API_KEY,
                                          "model": "m2"}]})
    request = AIRequest([{"role": "user", "content": "word " * 200}],
                        options={"max_tokens": 4, "repeat_penalty": 1.2})
    assert service.call(request, None, "chat").text == "from the second"
    assert "repeat_penalty" not in second.requests[0]["body"]


def test_a_fallback_that_cannot_start_is_named_with_what_came_before(server, tmp_path):
    service = chained(server, {"provider": "local", "model_path": str(tmp_path / "gone.gguf")},
                      retry_attempts=0)
    server.play("status:503")
    with pytest.raises(ConfigError, match=r"ai\.fallback\[1\].*after falling back from "
                                          r"openai/gpt-4o-mini@127.0.0.1:\d+: HTTP 503"):
        service.complete("hi")


def test_only_loopback_addresses_count_as_this_machine():
    from sloth_runner.ai.fallback import on_this_machine
    from sloth_runner.ai.settings import AISettings

    def at(url):
        return on_this_machine(AISettings({"provider": "openai", "base_url": url}, "test"))

    assert at("http://127.0.0.1:8080/v1") and at("http://localhost/v1") and at("http://[::1]/v1")
    assert at("http://127.0.0.2/v1")
    assert not at("http://127.attacker.example/v1") and not at("http://10.0.0.5/v1")
    assert not at("http://gpu-box:8000/v1")


def test_chat_refuses_the_legacy_completions_endpoint(server):
    service = chained(server)
    with pytest.raises(ConfigError, match="chat.api"):
        service.chat({"messages": [{"role": "user", "content": "x"}], "api": "completions"})


def test_a_local_only_decision_is_made_as_on_the_local_model():
    service = make_service({"provider": "openai", "api_key": API_KEY,
                            "base_url": "http://192.0.2.1/v1", "model": "m",
                            "fallback": [{"provider": "local"}]})
    d = service.decide({"situation": "disk 95% full", "options": ["rotate_logs", "ignore"],
                        "local_only": True})
    assert d["provider"] == "local" and d["method"] == "option_logprobs"
    assert d["choice"] in ("rotate_logs", "ignore") and d["structured"] is None
