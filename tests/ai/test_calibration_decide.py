"""`method`, `raw_confidence` and `calibration` on real decisions: option scoring on the bundled
model, answer probabilities over an OpenAI-compatible server, and recorded outcomes refitting the
calibration, from Python and from Lua workflows."""

from __future__ import annotations

import math

import pytest

from sloth_runner.ai import calibration
from sloth_runner.ai.calibration import Platt
from sloth_runner.ai.calibration_params import SHIPPED
from sloth_runner.store import Store
from tests.ai.conftest import API_KEY, make_service
from tests.conftest import cli_json, tasks_by_name

BUNDLED = "SmolLM2-135M-Instruct"
DB_CPU = {"situation": "Database CPU usage is 85%, no downtime allowed",
          "options": ["scale_up", "optimize_queries", "add_replica"]}


@pytest.fixture
def local():
    return make_service({"provider": "local", "retry_attempts": 0})


def test_answer_probability_is_reported_where_options_cannot_be_scored(service, server):
    server.play("text:add_replica\nReads scale out.", "text:no idea")
    d = service.decide(dict(DB_CPU))
    assert d["method"] == "answer_probability" and d["calibration"] == "none"
    assert math.isclose(d["raw_confidence"], math.exp(-0.1))
    assert d["confidence"] == d["raw_confidence"]  # no map for this model: reported as it is
    d = service.decide(dict(DB_CPU))
    assert d["fallback"] is True and d["method"] == "none"
    assert d["confidence"] == 0.0 and d["raw_confidence"] is None


def test_the_local_model_scores_every_option_and_chooses_the_most_probable(local):
    from sloth_runner.ai import option_scores

    d = local.decide(dict(DB_CPU))
    assert d["method"] == "option_logprobs" and d["calibration"] == "shipped"
    from sloth_runner.ai.decide import _request

    messages = _request({}, "one", DB_CPU["situation"], "", DB_CPU["options"])["messages"]
    scores = option_scores.score(local, None, messages, DB_CPU["options"])
    assert scores is not None and all(s < 0 for s in scores)
    best = max(range(3), key=scores.__getitem__)
    assert d["choice"] == DB_CPU["options"][best]
    share = 1 / sum(math.exp(s - scores[best]) for s in scores)
    assert d["raw_confidence"] == pytest.approx(share, rel=1e-6)
    assert d["confidence"] == pytest.approx(Platt(*SHIPPED[(BUNDLED, "option_logprobs")])
                                            .apply(share, 1 / 3))
    assert d["text"].splitlines()[0] == d["choice"] and d["reasoning"].endswith(".")
    triage = local.decide({"analysis": "FATAL api: out of memory, pod restarted 6 times"})
    assert triage["method"] == "option_logprobs" and 0.25 <= triage["raw_confidence"] <= 1
    many = local.decide({"available_tests": ["unit", "e2e"], "changed_files": ["api.py"]})
    assert many["method"] == "answer_probability"  # a set has no one option to score
    # scoring is local computation: one call-log row per decision, as before
    assert [c["operation"] for c in local.usage().logs(10)] == ["decide"] * 3


def test_option_scoring_formats_the_prompt_as_the_chat_completion_does(local):
    """The scores must be read after the same prompt the answer is generated from (and share
    its KV cache): compare with the tokens llama-cpp-python's chat completion evaluated."""
    from sloth_runner.ai import option_scores
    from sloth_runner.ai.decide import _request
    from sloth_runner.ai.providers.local import load_model

    request = _request({}, "one", "Disk 95% full on the log server", "",
                       ["rotate_logs", "add_volume"])
    answer = local.chat(request)
    settings = local.settings()
    llama, lock = load_model(local.provider(settings).path, logits_all=True,
                             device=settings.device, threads=settings.threads,
                             context=settings.context_size)
    with lock:
        evaluated = list(llama.input_ids[:answer["usage"]["prompt_tokens"]])
        assert option_scores._prompt_tokens(llama, request["messages"]) == evaluated


def test_recorded_outcomes_refit_the_bundled_models_calibration(local):
    d = local.decide(dict(DB_CPU))
    assert d["calibration"] == "shipped"
    for _ in range(calibration.MIN_OUTCOMES):
        said = calibration.record_outcome(local.store, d, False)
    assert said["refit"] is True
    again = local.decide(dict(DB_CPU))
    assert again["calibration"] == "recorded"
    assert again["raw_confidence"] == pytest.approx(d["raw_confidence"])
    assert again["confidence"] < d["confidence"] / 2  # always wrong: far less sure now


def test_recorded_outcomes_refit_a_served_models_calibration(llama_service):
    spec = {"situation": "The error rate went to 9% right after a deploy",
            "options": ["rollback", "wait"], "threshold": 0.5}
    d = llama_service.decide(dict(spec))
    assert d["method"] == "answer_probability" and d["calibration"] == "none"
    assert d["confidence"] == d["raw_confidence"] and d["model"]
    recorded = [i % 10 == 0 for i in range(calibration.MIN_OUTCOMES)]  # right 1 time in 10
    for correct in recorded:
        calibration.record_outcome(llama_service.store, d, correct)
    again = llama_service.decide(dict(spec))
    assert again["calibration"] == "recorded"
    # the server's log-probs move a little from one identical request to the next, so the map
    # fitted on the recorded outcomes is applied to this decision's own raw confidence
    refit = calibration.fit([(d["raw_confidence"], ok) for ok in recorded])
    assert again["confidence"] == pytest.approx(refit.apply(again["raw_confidence"]))
    # right 1 time in 10: far less sure than the model says, and below the threshold
    assert again["confidence"] < min(0.25, again["raw_confidence"]) and again["confident"] is False


def test_lua_records_outcomes_in_tasks_and_in_workers(server, workflow_file):
    server.play("text:rollback\nThe deploy caused it.", "text:rollback\nSame.")
    path = workflow_file('''
        local function decide_and_record()
            local d = ai.decide({situation = "errors after a deploy",
                                 options = {"rollback", "wait"}})
            local said = ai.record_outcome(d, true)
            return d, said
        end
        task("here"):command(function()
            local d, said = decide_and_record()
            local ok, err = pcall(ai.record_outcome, d, "yes")
            local bad_ok, bad = pcall(ai.record_outcome, "rollback", true)
            return true, "ok", {method = d.method, calibration = d.calibration,
                                raw = d.raw_confidence, outcomes = said.outcomes,
                                refit = said.refit, err = err, bad = bad}
        end):build()
        task("in_a_worker"):depends_on({"here"}):timeout("60s"):command(function()
            local d, said = decide_and_record()
            return true, "ok", {outcomes = said.outcomes}
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path, env={"OPENAI_API_KEY": API_KEY,
                                                 "OPENAI_BASE_URL": server.base_url})
    tasks = tasks_by_name(doc)
    assert code == 0, doc
    out = tasks["here"]["outputs"]
    assert out["method"] == "answer_probability" and out["calibration"] == "none"
    assert out["outcomes"] == 1 and out["refit"] is False
    assert "record_outcome.correct: must be true or false" in out["err"]
    assert "expects the table ai.decide returned, got string" in out["bad"]
    assert tasks["in_a_worker"]["outputs"] == {"outcomes": 2}
    rows = Store().query("SELECT model, method, correct, choice, form FROM decision_outcomes")
    assert [tuple(r) for r in rows] == [("gpt-4o-mini", "answer_probability", 1, "rollback",
                                         "one")] * 2
