import math

import pytest

from sloth_runner.ai.decide import match_option
from sloth_runner.errors import ConfigError


def test_decide_constrains_the_choice_and_reports_log_prob_confidence(service, server):
    server.play("text:add_replica\nReads scale out without downtime.")
    d = service.decide({"situation": "Database CPU usage is 85%",
                        "options": ["scale_up", "optimize_queries", "add_replica"],
                        "constraints": {"budget": "limited", "downtime": "not_allowed"},
                        "threshold": 0.8})
    assert d["choice"] == "add_replica" and d["fallback"] is False
    assert d["reasoning"] == "Reads scale out without downtime."
    assert math.isclose(d["confidence"], math.exp(-0.1)) and d["confident"] is True
    body = server.requests[0]["body"]
    assert body["logprobs"] is True and body["temperature"] == 0
    prompt = body["messages"][-1]["content"]
    assert "Database CPU usage is 85%" in prompt and "- optimize_queries" in prompt
    assert '"downtime": "not_allowed"' in prompt


def test_decide_falls_back_honestly_when_no_option_is_named(service, server):
    server.play("text:I would buy more servers")
    d = service.decide({"situation": "x", "strategies": ["blue_green", "canary"],
                        "threshold": 0.5})
    assert d["choice"] == "blue_green" and d["fallback"] is True
    assert d["confidence"] == 0.0 and d["confident"] is False
    assert "named none of the options" in d["reasoning"]


def test_decide_needs_options_or_a_situation(service):
    with pytest.raises(ConfigError, match="decide.options"):
        service.decide({"constraints": {"budget": "limited"}})
    with pytest.raises(ConfigError, match="decide.available_tests"):
        service.decide({"available_tests": "unit"})


def test_decide_names_the_choice_for_the_call_site(service, server):
    server.play("text:canary\nLow traffic now.", "text:rolling")
    d = service.decide({"context": {"load": 0.2}, "options": ["staging", "production", "canary"],
                        "criteria": ["minimize_risk"]})
    assert d["choice"] == d["environment"] == "canary" and d["reasoning"] == "Low traffic now."
    assert '"criteria": ["minimize_risk"]' in server.requests[0]["body"]["messages"][-1]["content"]
    d = service.decide({"strategies": ["blue_green", "canary", "rolling"], "risk_tolerance": "medium"})
    assert d["choice"] == d["strategy"] == "rolling" and "environment" not in d
    assert [c["operation"] for c in service.usage().logs(5)] == ["decide"] * 2  # in the call log


def test_decide_selects_several(service, server):
    server.play("text:unit, integration\nOnly the API changed.", "text:no idea")
    d = service.decide({"changed_files": ["api/server.py"], "time_budget": "10m",
                        "available_tests": ["unit", "integration", "e2e", "performance"]})
    assert d["selected_tests"] == d["selected"] == ["unit", "integration"]
    assert d["fallback"] is False and d["reasoning"] == "Only the API changed."
    prompt = server.requests[0]["body"]["messages"][-1]["content"]
    assert "- performance" in prompt and '"time_budget": "10m"' in prompt
    d = service.decide({"available_tests": ["unit", "e2e"], "threshold": 0.5})
    assert d["selected_tests"] == ["unit", "e2e"] and d["fallback"] is True
    assert d["confidence"] == 0.0 and d["confident"] is False


def test_decide_triages_an_analysis(service, server):
    server.play("text:High\nIssue: the database refuses connections.\nActions:\n"
                "- restart the connection pool\n2. check max_connections",
                "text:It is fine I think")
    d = service.decide({"analysis": "ERROR db: connection refused (x40)", "threshold": 0.8})
    assert d["severity"] == d["choice"] == "high" and d["fallback"] is False
    assert d["issue"] == "the database refuses connections."
    assert d["actions"] == ["restart the connection pool", "check max_connections"]
    assert d["confident"] is True
    assert "ERROR db: connection refused" in server.requests[0]["body"]["messages"][-1]["content"]
    d = service.decide({"analysis": "all quiet"})
    assert d["severity"] == "unknown" and d["fallback"] is True and d["actions"] == []
    assert d["issue"] == "all quiet"


@pytest.mark.parametrize("text, expected", [
    ("canary\nbecause", ("canary", "first line")),
    ("**Canary.**", ("canary", "first line")),
    ("I suggest a rolling deploy, not canary", ("rolling", "mention")),
    ("nothing useful", (None, "")),
])
def test_match_option(text, expected):
    assert match_option(text, ["blue_green", "canary", "rolling"]) == expected


def test_decide_on_the_local_model_can_only_answer_with_allowed_names():
    # The bundled model is tiny and rambles; decoding under the decision's grammar still
    # keeps every answer inside what the workflow allows (no fallbacks).
    from tests.ai.conftest import make_service

    local = make_service({"provider": "local", "retry_attempts": 0})
    one = local.decide({"situation": "Database CPU usage is 85%, no downtime allowed",
                        "options": ["scale_up", "optimize_queries", "add_replica"]})
    assert one["choice"] in one["options"] and one["fallback"] is False
    assert 0 < one["confidence"] <= 1 and one["reasoning"].endswith(".")
    many = local.decide({"changed_files": ["api/server.py"],
                         "available_tests": ["unit", "integration", "e2e"]})
    assert many["selected_tests"] and set(many["selected_tests"]) <= {"unit", "integration", "e2e"}
    assert many["fallback"] is False
    triage = local.decide({"analysis": "ERROR db: connection refused (40 times in 1 min)"})
    assert triage["severity"] in ("low", "medium", "high", "critical")
    assert triage["fallback"] is False and triage["issue"]
    assert [c["provider"] for c in local.usage().logs(10)] == ["local"] * 3


def test_openai_compatible_servers_are_not_sent_the_grammar(service, server):
    server.play("text:canary\nok.")
    service.decide({"options": ["canary", "rolling"], "situation": "x"})
    assert "grammar" not in server.requests[0]["body"]
