"""ECE, Brier score, AUROC and selective accuracy on data whose answers are known by hand."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloth_runner.ai.calibration_metrics import (
    accuracy,
    auroc,
    brier_score,
    expected_calibration_error,
    selective,
    summary,
)


def test_ece_is_zero_when_each_bin_is_right_as_often_as_it_says():
    assert expected_calibration_error([0.25] * 4, [True, False, False, False]) == 0
    assert expected_calibration_error([0.75] * 4 + [0.05] * 20,
                                      [True, True, True, False] + [True] + [False] * 19) == \
        pytest.approx(0.0)


def test_ece_weights_each_bins_gap_by_its_share():
    # bin [0.9, 1.0): says 0.9, right half the time -> gap 0.4 over all decisions
    assert expected_calibration_error([0.9] * 10, [True] * 5 + [False] * 5) == \
        pytest.approx(0.4)
    # two bins of two: |0 - 0.15| * 1/2 + |1 - 0.85| * 1/2
    assert expected_calibration_error([0.15, 0.15, 0.85, 0.85], [False, False, True, True]) == \
        pytest.approx(0.15)
    # 1.0 falls in the last bin, with 0.95: says 0.975 on average, right once in two
    assert expected_calibration_error([1.0, 0.95], [True, False]) == pytest.approx(0.475)


def test_ece_depends_on_the_bin_count():
    conf, ok = [0.55, 0.65], [True, False]
    assert expected_calibration_error(conf, ok, bins=1) == pytest.approx(0.1)
    assert expected_calibration_error(conf, ok, bins=10) == pytest.approx(0.55)


def test_brier_score():
    assert brier_score([1.0, 0.0], [True, False]) == 0
    assert brier_score([0.5] * 7, [True, False, True, True, False, False, True]) == 0.25
    assert brier_score([0.8, 0.3], [False, False]) == pytest.approx((0.64 + 0.09) / 2)


def test_auroc_known_answers():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5] * 4, [True, False, True, False]) == 0.5
    # right: 0.35, 0.8; wrong: 0.1, 0.4 -> pairs won 3 of 4
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # a tie between a right and a wrong decision counts half
    assert auroc([0.3, 0.3, 0.9], [True, False, True]) == 0.75
    assert auroc([0.3, 0.9], [True, True]) is None


@given(st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 1.0]), st.booleans()),
                min_size=2, max_size=30))
def test_auroc_is_the_share_of_pairs_ranked_right(pairs):
    conf = [c for c, _ in pairs]
    ok = [o for _, o in pairs]
    right = [c for c, o in pairs if o]
    wrong = [c for c, o in pairs if not o]
    if not right or not wrong:
        assert auroc(conf, ok) is None
        return
    won = sum(1.0 if r > w else 0.5 if r == w else 0.0
              for r, w in itertools.product(right, wrong))
    assert auroc(conf, ok) == pytest.approx(won / (len(right) * len(wrong)))


def test_selective_says_what_a_threshold_keeps():
    conf = [0.9, 0.8, 0.6, 0.4, 0.2]
    ok = [True, True, False, True, False]
    assert selective(conf, ok, 0.7) == (0.4, 1.0)
    assert selective(conf, ok, 0.5) == (0.6, pytest.approx(2 / 3))
    assert selective(conf, ok, 0.95) == (0.0, None)


def test_summary_and_bad_input():
    s = summary([0.9, 0.1], [True, False])
    assert s == {"n": 2, "accuracy": 0.5, "ece": pytest.approx(0.1),
                 "brier": pytest.approx(0.01), "auroc": 1.0}
    assert accuracy([]) is None and expected_calibration_error([], []) is None
    with pytest.raises(ValueError, match="2 confidences but 1 outcomes"):
        brier_score([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="between 0 and 1"):
        expected_calibration_error([1.5], [True])
