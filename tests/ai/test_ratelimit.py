"""The limiter never admits more than the limits in any 60 s window, even under contention."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.ai.ratelimit import RateLimiter, RateLimitTooSmall


class FakeClock:
    """Time that only moves when a caller sleeps: the test runs in milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def windows_ok(grants, rpm, tpm):
    times = sorted(grants)
    for i, (start, _) in enumerate(times):
        inside = [g for g in times[i:] if g[0] < start + 60.0]
        if rpm is not None and len(inside) > rpm:
            return False
        if tpm is not None and sum(t for _, t in inside) > tpm:
            return False
    return True


@settings(max_examples=40, deadline=None)
@given(rpm=st.integers(1, 20), tpm=st.one_of(st.none(), st.integers(100, 2000)),
       sizes=st.lists(st.integers(1, 100), min_size=32, max_size=32))
def test_never_more_than_the_limits_in_any_window_with_32_callers(rpm, tpm, sizes):
    clock = FakeClock()
    limiter = RateLimiter(rpm, tpm, clock=clock, sleep=clock.sleep)
    grants: list[tuple[float, int]] = []
    lock = threading.Lock()

    def caller(tokens):
        grant = limiter.acquire(tokens)
        with lock:
            grants.append((grant.at, tokens))

    threads = [threading.Thread(target=caller, args=(n,)) for n in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(grants) == 32
    assert windows_ok(grants, rpm, tpm)


def test_settle_reconciles_with_reported_usage():
    clock = FakeClock()
    limiter = RateLimiter(None, 1000, clock=clock, sleep=clock.sleep)
    grant = limiter.acquire(100)
    limiter.settle(grant, 900)  # the call used far more than estimated
    second = limiter.acquire(200)
    assert second.at >= 60.0  # had to wait for the first to leave the window


def test_a_call_larger_than_the_token_limit_fails_fast():
    with pytest.raises(RateLimitTooSmall):
        RateLimiter(None, 50).acquire(51)


def test_deadline_bounds_the_wait():
    clock = FakeClock()
    limiter = RateLimiter(1, None, clock=clock, sleep=clock.sleep)
    limiter.acquire(1)
    with pytest.raises(TimeoutError):
        limiter.acquire(1, timeout=5)
