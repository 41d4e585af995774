import random

from sloth_runner.engine.backoff import retry_delay


def test_strategies_grow_as_named_and_jitter_stays_within_half():
    rng = random.Random(1)
    for attempt, nominal in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        d = retry_delay("exponential", 2.0, attempt, rng)
        assert nominal / 2 <= d <= nominal
    for attempt in (1, 2, 3):
        d = retry_delay("linear", 1.0, attempt, rng)
        assert attempt / 2 <= d <= attempt
        d = retry_delay("fixed", 1.0, attempt, rng)
        assert 0.5 <= d <= 1.0


def test_delay_is_capped_and_zero_base_means_no_wait():
    assert retry_delay("exponential", 10.0, 30) <= 300.0
    assert retry_delay("fixed", 0.0, 3) == 0.0
