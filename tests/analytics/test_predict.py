"""The failure model: it finds planted causes and names them, says when the history is too
short, never learns from the future, and is retrained only when the history has grown."""

from __future__ import annotations

import json

import pytest

from sloth_runner.analytics import predict, predict_model
from sloth_runner.analytics.features import FEATURES, Outcome, outcomes_from_records
from sloth_runner.errors import ConfigError
from sloth_runner.store import Store
from tests.analytics.histories import history, store_history


def trained(records):
    return predict.train(outcomes_from_records(records))


def next_run(records, task, **circumstances):
    """An outcome-to-be of `task` one hour after the history ends."""
    at = max(r["started_at"] for r in records) + 3600
    return Outcome("ci", task, at, **circumstances)


def test_the_model_finds_a_bad_host_and_says_so():
    records = history(3, runs=400, plant=("host",), base=0.02)
    model = trained(records)
    bad = model.predict(next_run(records, "deploy", host="build-07", load=1.0))
    good = model.predict(next_run(records, "deploy", host="build-02", load=1.0))
    assert bad["method"] == "logistic_regression"
    assert bad["probability"] > 0.6 > 0.15 > good["probability"]
    top = bad["top_factors"][0]
    assert top["feature"] == "host" and top["weight"] > 0
    assert top["factor"].startswith("host build-07 failed ")
    assert top["factor"].endswith("runs of deploy")
    assert bad["n_history"] >= 30


def test_the_model_finds_a_bad_parameter_value():
    records = history(5, runs=400, plant=("param",), base=0.02)
    model = trained(records)
    arm = model.predict(next_run(records, "build", host="build-01", params={"target": "arm64"}))
    amd = model.predict(next_run(records, "build", host="build-01", params={"target": "amd64"}))
    assert arm["probability"] > 0.6 > 0.15 > amd["probability"]
    assert arm["top_factors"][0]["feature"] == "param"
    assert "with target=arm64" in arm["top_factors"][0]["factor"]


def test_the_model_finds_high_load():
    records = history(8, runs=400, plant=("load",), base=0.02)
    model = trained(records)
    busy = model.predict(next_run(records, "build", host="build-01", load=9.0))
    idle = model.predict(next_run(records, "build", host="build-01", load=0.5))
    assert busy["probability"] > 0.5 > 0.15 > idle["probability"]
    assert busy["top_factors"][0]["feature"] == "load"
    assert "started at load 8-16" in busy["top_factors"][0]["factor"]


def test_a_failing_dependency_shows_in_the_runs_before():
    """An outage of what fetch and deploy share: fetch needs retries, then deploy fails."""
    records = history(2, runs=600, plant=("outage",), base=0.02)
    outcomes = outcomes_from_records(records)
    _, examples = predict.replay(outcomes)
    result = predict.evaluate(examples, 0.6)
    assert result["model"]["auroc"] > result["last_outcome"]["auroc"]
    assert result["model"]["auroc"] > result["failure_rate"]["auroc"]
    assert result["model"]["brier"] < result["failure_rate"]["brier"]


def test_too_few_runs_of_a_task_say_so_instead_of_guessing():
    records = history(3, runs=400, plant=("host",), base=0.02)
    model = trained(records)
    few = model.predict(Outcome("ci", "brand-new", records[-1]["started_at"] + 60))
    assert few["probability"] is None
    assert few["method"] == "insufficient_history"
    assert few["n_history"] == 0
    assert "needs 30" in few["reason"]
    short = trained(history(3, runs=20, plant=("host",)))
    answer = short.predict(Outcome("ci", "deploy", 0.0, host="build-07"))
    assert answer["probability"] is None and answer["method"] == "insufficient_history"


def test_a_history_without_failures_cannot_be_learned_from():
    model = trained(history(4, runs=200, base=0.0))
    assert model.fitted is None
    answer = model.predict(Outcome("ci", "build", 0.0))
    assert answer == {"probability": None, "top_factors": [], "method": "insufficient_history",
                      "n_history": 200, "reason": answer["reason"]}
    assert answer["reason"].startswith("too few failures to learn from: 0 failures")


def test_the_split_puts_every_past_run_before_every_future_run():
    starts = [1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0]
    cut, at = predict_model.chronological_split(starts, 0.5, lambda s: s)
    assert (cut, at) == (5, 4.0)  # the runs that started together stay together
    assert max(starts[:cut]) < min(starts[cut:])
    assert predict_model.chronological_split([1.0, 2.0], 0.99, lambda s: s) == (2, float("inf"))
    with pytest.raises(ValueError):
        predict_model.chronological_split(starts, 1.0, lambda s: s)


def test_nothing_learned_or_measured_in_the_past_depends_on_the_future():
    records = history(6, runs=300, plant=("host", "param"), base=0.03)
    outcomes = outcomes_from_records(records)
    _, examples = predict.replay(outcomes)
    future_from = len(examples) * 6 // 10
    cut_at = examples[future_from].run_start
    flipped = outcomes_from_records(records)
    for o in flipped:
        if o.started_at >= cut_at:
            o.failed = not o.failed
    _, other = predict.replay(flipped)
    past = [e for e in examples if e.run_start < cut_at]
    # features before the cut are the same whatever happened after it
    assert [e.x for e in past] == [e.x for e in other[:len(past)]]
    fit_a, _ = predict.fit_examples(past)
    fit_b, _ = predict.fit_examples(other[:len(past)])
    assert fit_a is not None and fit_b is not None and fit_a.weights == fit_b.weights
    # and a run's own outcome never reaches its features
    one = outcomes_from_records(records)
    last_run = one[-1].run_id
    for o in one:
        if o.run_id == last_run:
            o.failed = not o.failed
    _, changed = predict.replay(one)
    assert [e.x for e in changed] == [e.x for e in examples]


def test_measures():
    assert predict_model.auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert predict_model.auroc([0.5, 0.5], [False, True]) == 0.5
    assert predict_model.auroc([0.2, 0.3], [False, False]) is None
    assert predict_model.brier([1.0, 0.0, 0.5], [True, False, True]) == pytest.approx(0.25 / 3)
    assert predict_model.f1([0.9, 0.2, 0.7], [True, True, False], 0.5) == 0.5
    assert predict_model.best_threshold([0.9, 0.2, 0.7], [True, False, False]) == 0.9


def test_the_fit_recovers_known_weights():
    import random

    rng = random.Random(1)
    rows, labels = [], []
    for _ in range(3000):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        rows.append([a, b, None])
        labels.append(rng.random() < 1 / (1 + 2.718281828 ** -(2 * a - b - 1)))
    model = predict_model.fit(["a", "b", "unknown"], rows, labels, l2=0.0)
    assert model.weights[0] == pytest.approx(2, abs=0.25)
    assert model.weights[1] == pytest.approx(-1, abs=0.2)
    assert model.weights[2] == 0.0 and model.intercept == pytest.approx(-1, abs=0.2)


def test_retrained_when_the_history_grew_and_not_otherwise(sloth_home):
    store = Store()
    records = history(9, runs=300, plant=("host",), base=0.03)
    run_ids = list(dict.fromkeys(r["run_id"] for r in records))

    def runs(ids):
        chosen = set(ids)
        return [r for r in records if r["run_id"] in chosen]

    store_history(store, runs(run_ids[:200]))
    p = predict.FailurePredictor(store)
    model = p.model()
    assert p.retrained and model.fitted is not None
    saved = json.loads((sloth_home / "models" / "failure.json").read_text())
    assert saved["trained_n"] == model.trained_n and saved["features"] == list(FEATURES)

    again = predict.FailurePredictor(store)
    assert again.model().trained_at == model.trained_at and not again.retrained

    # ten more runs: folded into the state, the weights stay
    store_history(store, runs(run_ids[200:210]))
    grown = predict.FailurePredictor(store)
    m = grown.model()
    assert not grown.retrained and m.trained_at == model.trained_at
    assert m.fitted is not None and model.fitted is not None
    assert m.fitted.weights == model.fitted.weights
    assert m.state_n > model.trained_n
    assert m.state.runs_of("ci\tcheckout") == 210

    # 20 % more than it was trained on: retrained, on everything
    store_history(store, runs(run_ids[210:]))
    last = predict.FailurePredictor(store)
    assert last.model().trained_n == len(predict.outcomes_from_records(records))
    assert last.retrained


def test_the_retraining_rule():
    assert not predict.needs_training(1000, 1199)
    assert predict.needs_training(1000, 1200)
    assert not predict.needs_training(100, 149)  # 20 % of 100 is less than 50
    assert predict.needs_training(100, 150)


def test_an_unreadable_model_file_is_retrained(sloth_home):
    store = Store()
    store_history(store, history(9, runs=120, plant=("host",), base=0.05))
    path = sloth_home / "models" / "failure.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "featu')  # cut short by a crash
    p = predict.FailurePredictor(store)
    assert p.model().fitted is not None and p.retrained
    assert json.loads(path.read_text())["version"] == predict.VERSION


def test_predict_failure_checks_its_options(sloth_home):
    store = Store()
    records = history(9, runs=300, plant=("host",), base=0.03)
    store_history(store, records)
    store_history(store, [dict(r, run_id=r["run_id"] + "b") for r in records[:300]
                          if r["task"] == "checkout"], workflow="nightly")
    p = predict.FailurePredictor(store)
    with pytest.raises(ConfigError, match=r"predict_failure\.hots: unknown option"):
        predict.predict_failure(p, "deploy", {"hots": "x"})
    with pytest.raises(ConfigError, match=r"predict_failure\.params: must be a table"):
        predict.predict_failure(p, "deploy", {"params": "target=arm64"})
    with pytest.raises(ConfigError, match=r"in several workflows \(ci, nightly\)"):
        predict.predict_failure(p, "checkout", {})
    answer = predict.predict_failure(p, "deplyo", {"workflow": "ci"})
    assert answer["probability"] is None
    assert "no finished runs of task 'deplyo' of workflow 'ci'" in answer["reason"]
    assert "ci/deploy" in answer["reason"]
    found = predict.predict_failure(p, "deploy", {"host": "build-07", "load": 1})
    assert found["workflow"] == "ci" and found["probability"] > 0.5
