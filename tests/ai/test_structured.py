"""Shaped answers on OpenAI-compatible servers: response_format, detected once per endpoint
(the fault server for the request's shape; llama-cpp-python's server with the bundled model for
decisions that are valid through a real server)."""

from __future__ import annotations

import json
import math

import pytest

from sloth_runner.ai import decide_json, structured
from sloth_runner.errors import AIError
from tests.ai.conftest import API_KEY, make_service

REFUSE_SCHEMA = "error:400:'response_format' of type 'json_schema' is not supported"


@pytest.fixture(autouse=True)
def detect_afresh():
    structured.forget()
    yield
    structured.forget()


def served(server, **extra):
    return make_service({"provider": "openai", "api_key": API_KEY, "base_url": server.base_url,
                         "model": "gpt-4o-mini", "timeout": 5, "retry_attempts": 0, **extra})


def test_a_decision_sends_its_options_as_an_enum_and_reads_the_json(server):
    service = served(server)
    server.play("text:" + json.dumps({"choice": "canary", "reasoning": "Low traffic now."}))
    d = service.decide({"situation": "deploy", "options": ["blue_green", "canary", "rolling"]})
    assert d["choice"] == "canary" and d["reasoning"] == "Low traffic now."
    assert d["fallback"] is False and d["structured"] == "json_schema"
    sent = server.requests[0]["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema["properties"]["choice"]["enum"] == ["blue_green", "canary", "rolling"]
    assert schema["required"] == ["choice", "reasoning"]
    assert schema["additionalProperties"] is False
    assert '"choice"' in server.requests[0]["body"]["messages"][-1]["content"]


def test_a_refusal_is_detected_once_per_endpoint(server):
    service = served(server)
    answer = json.dumps({"severity": "high", "issue": "db down", "actions": ["restart"]})
    server.play(REFUSE_SCHEMA, "text:" + answer, "text:" + answer)
    d = service.decide({"analysis": "ERROR db: connection refused"})
    assert (d["severity"], d["issue"], d["actions"]) == ("high", "db down", ["restart"])
    assert d["structured"] == "json_object"
    second = server.requests[1]["body"]["response_format"]
    assert second["type"] == "json_object"
    assert second["schema"]["properties"]["actions"]["maxItems"] == 3  # the bounded schema
    service.decide({"analysis": "again"})
    assert len(server.requests) == 3  # not asked with json_schema again
    assert server.requests[2]["body"]["response_format"]["type"] == "json_object"
    rows = service.usage().logs(5)
    assert [r["status"] for r in rows] == ["ok", "ok"]  # the refusal is not an attempt


def test_a_server_refusing_every_format_is_matched_afterwards(server):
    service = served(server)
    server.play(REFUSE_SCHEMA, "error:422:response_format: extra field 'schema' not permitted",
                "text:rolling\nfewest moving parts.")
    d = service.decide({"options": ["canary", "rolling"], "situation": "x"})
    assert d["choice"] == "rolling" and d["fallback"] is False and d["structured"] == "none"
    assert "response_format" not in server.requests[2]["body"]


def test_structured_off_sends_no_response_format_and_asks_for_text(server):
    service = served(server, structured="off")
    server.play("text:rolling\nfewest moving parts.")
    d = service.decide({"options": ["canary", "rolling"], "situation": "x"})
    assert d["choice"] == "rolling" and d["structured"] is None
    body = server.requests[0]["body"]
    assert "response_format" not in body and "JSON" not in body["messages"][-1]["content"]


def test_structured_json_schema_makes_a_refusal_an_error_that_says_what_to_do(server):
    service = served(server, structured="json_schema")
    server.play(REFUSE_SCHEMA)
    with pytest.raises(AIError, match=r"HTTP 400.*structured = \"auto\""):
        service.decide({"options": ["canary", "rolling"], "situation": "x"})
    assert len(server.requests) == 1


def test_json_schema_mode_asks_for_it_even_after_an_auto_call_was_refused(server):
    server.play(REFUSE_SCHEMA, 'text:{"choice": "rolling", "reasoning": "x"}')
    served(server).decide({"options": ["canary", "rolling"], "situation": "x"})
    strict = served(server, structured="json_schema")
    server.play('text:{"choice": "rolling", "reasoning": "x"}')
    assert strict.decide({"options": ["canary", "rolling"], "situation": "x"})["structured"] \
        == "json_schema"
    assert server.requests[0]["body"]["response_format"]["type"] == "json_schema"


def test_a_refusal_of_one_shape_does_not_stop_the_others(server):
    service = served(server)
    server.play(REFUSE_SCHEMA, 'text:{"choice": "rolling", "reasoning": "x"}',
                'text:{"severity": "low", "issue": "x", "actions": []}')
    service.decide({"options": ["canary", "rolling"], "situation": "x"})
    service.generate_code({"description": "a config", "language": "json"})
    assert server.requests[2]["body"]["response_format"] == {"type": "json_object"}


def test_an_option_the_json_turned_down_is_not_read_from_its_reasoning(server):
    service = served(server)
    server.play('text:{"choice": "no_action", "reasoning": "restart_service would not fix a '
                'full disk"}')
    d = service.decide({"options": ["restart_service", "rotate_logs"], "situation": "disk"})
    assert d["fallback"] is True and "no_action" in d["reasoning"]


def test_an_answer_cut_off_at_max_tokens_still_gives_its_choice(server):
    service = served(server)
    server.play('text:{"choice": "rolling", "reasoning": "because the canary pool is')
    d = service.decide({"options": ["canary", "rolling"], "situation": "x"})
    assert d["choice"] == "rolling" and d["fallback"] is False


def test_json_that_names_no_option_is_an_honest_fallback(server):
    service = served(server)
    server.play('text:{"choice": "yolo", "reasoning": "why not"}')
    d = service.decide({"options": ["canary", "rolling"], "situation": "x", "threshold": 0.5})
    assert d["fallback"] is True and d["confidence"] == 0.0 and d["confident"] is False


def test_json_code_asks_servers_for_a_json_object(server):
    service = served(server)
    server.play('text:{"replicas": 3}')
    out = service.generate_code({"description": "a config with 3 replicas", "language": "json"})
    assert out["valid"] is True
    assert server.requests[0]["body"]["response_format"] == {"type": "json_object"}


def test_the_choice_confidence_is_read_from_its_own_tokens():
    text = '{"choice": "canary", "reasoning": "ok"}'
    tokens = ['{"', 'choice', '":', ' "', 'can', 'ary', '",', ' "reasoning', '":', ' "ok', '"}']
    logprobs = [0.0, 0.0, 0.0, 0.0, math.log(0.5), math.log(0.5), 0.0, 0.0, 0.0, -1.0, 0.0]
    p = decide_json.value_probability(text, tokens, logprobs, "choice", "canary")
    assert math.isclose(p, 0.5)
    assert decide_json.value_probability(text, None, logprobs, "choice", "canary") is None
    assert decide_json.value_probability(text, tokens[:-1], logprobs[:-1], "choice",
                                         "canary") is None  # tokens that do not spell it


DECISIONS = [
    {"situation": "Database CPU usage is 85%",
     "options": ["scale_up", "optimize_queries", "add_replica"]},
    {"context": {"load": 0.2, "tests": "passed"}, "options": ["staging", "production", "canary"]},
    {"strategies": ["blue_green", "canary", "rolling", "immediate"], "risk_tolerance": "medium"},
    {"changed_files": ["api/server.py"],
     "available_tests": ["unit", "integration", "e2e", "performance"]},
    {"analysis": "ERROR db: connection refused (40 times in 1 min)"},
    {"analysis": "FATAL api: out of memory, pod restarted 6 times"},
]


def test_every_decision_is_valid_through_llama_cpps_server(llama_service):
    """The issue's triage came back `severity unknown, fallback = true` through the server:
    with the schema as response_format, the server's grammar holds the bundled model to it."""
    for spec in DECISIONS:
        d = llama_service.decide(dict(spec))
        assert d["fallback"] is False, (spec, d["text"])
        assert d["structured"] == "json_object"  # llama-cpp-python's server: the 2nd rung
        if "severity" in d:
            assert d["severity"] in ("low", "medium", "high", "critical")
        elif "selected" in d:
            assert d["selected"] and set(d["selected"]) <= set(spec["available_tests"])
        else:
            assert d["choice"] in d["options"]
        assert d["raw_confidence"] is None or 0 < d["raw_confidence"] <= 1
