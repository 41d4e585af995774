"""Platt scaling: the fit on synthetic outcomes with known parameters, where maps come from
(shipped, recorded, none), and recording outcomes."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.ai import calibration
from sloth_runner.ai.calibration import (
    IDENTITY,
    Outcome,
    Platt,
    calibrate,
    calibrator,
    chance_of,
    fit,
    logit,
)
from sloth_runner.ai.calibration_metrics import auroc, expected_calibration_error
from sloth_runner.ai.calibration_params import SHIPPED
from sloth_runner.errors import ConfigError
from sloth_runner.store import Store
from sloth_runner.store.decisions import DecisionOutcomes

BUNDLED = "SmolLM2-135M-Instruct"


def synthetic(n: int, a: float, b: float, seed: int) -> list[tuple[float, bool]]:
    """Raw confidences whose real chance of being right is sigmoid(a * logit(raw) + b)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        raw = rng.uniform(0.2, 0.99)
        out.append((raw, rng.random() < Platt(a, b).apply(raw)))
    return out


def test_fit_recovers_known_parameters():
    p = fit(synthetic(6000, 0.5, -0.7, seed=1))
    assert p.a == pytest.approx(0.5, abs=0.08) and p.b == pytest.approx(-0.7, abs=0.12)


def test_calibration_fitted_on_one_part_fixes_an_overconfident_score_on_another():
    train, test = synthetic(1500, 0.4, -0.6, seed=2), synthetic(1500, 0.4, -0.6, seed=3)
    raw = [c for c, _ in test]
    ok = [o for _, o in test]
    mapped = [fit(train).apply(c) for c in raw]
    assert expected_calibration_error(raw, ok) > 0.15
    assert expected_calibration_error(mapped, ok) < 0.04
    assert auroc(mapped, ok) == auroc(raw, ok)  # monotone: the ranking is untouched


def test_a_score_that_predicts_wrong_answers_gets_no_slope():
    # high raw confidence is wrong, low is right: the slope is held at 0, so every decision
    # gets (about) the observed accuracy, 1/3
    samples = [(0.9, False), (0.9, False), (0.3, True)] * 40
    p = fit(samples)
    assert p.a == 0.0
    assert p.apply(0.9) == p.apply(0.3) == pytest.approx(1 / 3, abs=0.02)


def test_outcomes_unrelated_to_the_score_give_the_base_rate():
    rng = random.Random(4)
    p = fit([(rng.uniform(0.01, 0.999), rng.random() < 0.4) for _ in range(2000)])
    assert abs(p.a) < 0.05 and p.apply(0.95) == pytest.approx(0.4, abs=0.04)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), max_size=60),
       st.floats(0.0, 2.0), st.floats(-3.0, 3.0))
def test_the_fit_minimises_the_penalised_log_loss(samples, a0, b0):
    prior = Platt(a0, b0)
    xy = [(logit(p), 0.0, float(ok)) for p, ok in samples]  # (x, anchor, y): plain Platt
    found = fit(samples, prior)
    best = calibration._objective(xy, found.a, found.b, prior, calibration.PRIOR_STRENGTH)
    assert found.a >= 0
    for da, db in ((0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05), (0.03, -0.03)):
        if found.a + da < 0:
            continue
        nearby = calibration._objective(xy, found.a + da, found.b + db, prior,
                                        calibration.PRIOR_STRENGTH)
        assert best <= nearby + 1e-9


def test_separable_outcomes_and_no_outcomes_stay_finite():
    p = fit([(0.9, True)] * 50 + [(0.2, False)] * 50)
    assert math.isfinite(p.a) and math.isfinite(p.b) and p.apply(0.9) > 0.9
    assert fit([]) == IDENTITY
    assert fit([], prior=Platt(0.3, -1.0)) == Platt(0.3, -1.0)
    with pytest.raises(ValueError, match="strength"):
        fit([(0.5, True)], strength=0)


def test_identity_and_extremes():
    assert IDENTITY.apply(0.37) == pytest.approx(0.37)
    assert 0 < Platt(1, 0).apply(0.0) < 1e-5 and 1 - 1e-5 < Platt(1, 0).apply(1.0) < 1
    assert logit(0.5) == 0


def test_the_anchor_is_chance_among_the_options():
    assert chance_of("option_logprobs", 4) == 0.25 and chance_of("answer_probability", 4) is None
    flat = Platt(0.0, 0.0)  # no information: chance itself, whatever the raw share
    assert flat.apply(0.9, 0.5) == pytest.approx(0.5)
    assert flat.apply(0.9, 1 / 3) == pytest.approx(1 / 3)
    assert Platt(1.0, 0.0).apply(0.9, 0.25) == pytest.approx(0.9)  # identity, anchored or not
    # within one number of options the map keeps the order of raw shares
    assert Platt(0.4, 0.2).apply(0.8, 1 / 3) > Platt(0.4, 0.2).apply(0.6, 1 / 3)


def test_fit_recovers_a_known_lift_over_chance():
    rng = random.Random(5)
    truth = Platt(0.0, 0.5)
    samples = []
    for _ in range(4000):
        k = rng.choice([2, 3, 4])
        raw = rng.uniform(1 / k, 0.99)
        samples.append(Outcome(raw, rng.random() < truth.apply(raw, 1 / k), 1 / k))
    p = fit(samples)
    assert p.a == pytest.approx(0.0, abs=0.08) and p.b == pytest.approx(0.5, abs=0.1)


def test_the_bundled_model_ships_a_calibration_for_option_logprobs():
    assert (BUNDLED, "option_logprobs") in SHIPPED
    a, b = SHIPPED[(BUNDLED, "option_logprobs")]
    assert 0 <= a < 1, "the bundled model is overconfident: its map should soften"
    assert calibrator(None, BUNDLED, "option_logprobs") == (Platt(a, b), "shipped")
    # more options, less chance of being right
    two = calibrate(None, BUNDLED, "option_logprobs", 0.8, 2)[0]
    four = calibrate(None, BUNDLED, "option_logprobs", 0.8, 4)[0]
    assert two is not None and four is not None and 0.5 < two < 0.8 and 0.25 < four < two
    assert calibrate(None, "some-other-model", "option_logprobs", 0.8, 2) == (0.8, "none")
    assert calibrate(None, BUNDLED, "none", None) == (None, "none")


def decision(raw: float, model: str = BUNDLED, method: str = "option_logprobs") -> dict:
    return {"choice": "rollback", "options": ["rollback", "wait"], "model": model,
            "provider": "local", "method": method, "raw_confidence": raw,
            "confidence": raw, "fallback": False}


def test_recorded_outcomes_replace_the_shipped_map_once_there_are_enough():
    store = Store()
    shipped = calibrate(store, BUNDLED, "option_logprobs", 0.9, 2)[0]
    for i in range(calibration.MIN_OUTCOMES - 1):
        said = calibration.record_outcome(store, decision(0.9), False)
        assert said == {"model": BUNDLED, "method": "option_logprobs", "outcomes": i + 1,
                        "refit": False}
    assert calibrate(store, BUNDLED, "option_logprobs", 0.9, 2) == (shipped, "shipped")
    said = calibration.record_outcome(store, decision(0.9), False)
    assert said["refit"] is True and said["outcomes"] == calibration.MIN_OUTCOMES
    confidence, source = calibrate(store, BUNDLED, "option_logprobs", 0.9, 2)
    assert source == "recorded"
    assert confidence is not None and shipped is not None and confidence < shipped / 3
    # other models and methods keep their own maps
    assert calibrate(store, BUNDLED, "answer_probability", 0.9) == (0.9, "none")
    assert calibrate(store, "gpt-4o-mini", "option_logprobs", 0.9, 2) == (0.9, "none")


def test_a_model_without_a_shipped_map_is_fitted_from_its_outcomes_alone():
    store = Store()
    # this model's 0.8s are right about half the time, its 0.4s about a fifth
    for _ in range(20):
        calibration.record_outcome(store, decision(0.8, "my-model", "answer_probability"), True)
        calibration.record_outcome(store, decision(0.8, "my-model", "answer_probability"), False)
    for i in range(20):
        calibration.record_outcome(store, decision(0.4, "my-model", "answer_probability"),
                                   i % 5 == 0)
    high, source = calibrate(store, "my-model", "answer_probability", 0.8)
    low, _ = calibrate(store, "my-model", "answer_probability", 0.4)
    assert source == "recorded"
    assert high == pytest.approx(0.5, abs=0.08) and low == pytest.approx(0.2, abs=0.08)


def test_the_store_hands_out_the_newest_outcomes_first():
    store = Store()
    outcomes = DecisionOutcomes(store)
    for _ in range(5):
        outcomes.record(model="m", method="option_logprobs", raw_confidence=0.7, correct=False)
    for _ in range(3):
        outcomes.record(model="m", method="option_logprobs", raw_confidence=0.7, correct=True)
    assert outcomes.recent("m", "option_logprobs", 3) == [(0.7, True, None)] * 3
    assert outcomes.count("m", "option_logprobs") == 8


@pytest.mark.parametrize("bad, correct, message", [
    ({**decision(0.5), "method": "none", "raw_confidence": None}, True,
     "no confidence to calibrate \\(method = none"),
    ("rollback", True, "pass the table ai.decide returned"),
    (decision(0.5), "yes", "must be true or false"),
    ({**decision(0.5), "raw_confidence": "high"}, True, "pass its table unchanged"),
    ({**decision(0.5), "model": None}, True, "pass its table unchanged"),
    ({**decision(0.5), "options": None}, True, "pass its table unchanged"),
])
def test_record_outcome_says_what_is_wrong(bad, correct, message):
    with pytest.raises(ConfigError, match=message):
        calibration.record_outcome(Store(), bad, correct)
