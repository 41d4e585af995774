"""The limiter never admits more than the limits in any 60 s window: under contention, when
calls take time, for retries, and across processes sharing one SLOTH_RUNNER_HOME."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.ai.client import CallContext
from sloth_runner.ai.ratelimit import RateLimiter, RateLimitTooSmall
from sloth_runner.errors import AIError
from sloth_runner.store import Store
from sloth_runner.store.ai_usage import SQLiteRateLog
from tests.ai.conftest import API_KEY
from tests.conftest import tasks_by_name


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


def overlapping_ok(calls, rpm, tpm):
    """calls: (granted, settled, tokens). The provider may count a call at any moment between
    the two, so every 60 s window may meet every call whose interval reaches into it."""
    for start in sorted({c[0] for c in calls} | {c[1] for c in calls}):
        inside = [c for c in calls if c[1] >= start and c[0] < start + 60.0]
        if rpm is not None and len(inside) > rpm:
            return False
        if tpm is not None and sum(c[2] for c in inside) > tpm:
            return False
    return True


@settings(max_examples=40, deadline=None)
@given(rpm=st.integers(1, 8), tpm=st.one_of(st.none(), st.integers(100, 1000)),
       calls=st.lists(st.tuples(st.integers(1, 100), st.floats(0, 45)), min_size=16,
                      max_size=16),
       shared=st.booleans())
def test_calls_that_take_time_never_exceed_the_limits_in_any_window(rpm, tpm, calls, shared):
    """A call counts from when it is admitted until it has ended (the provider may see it at
    any moment in between): a log stamped only at admission let 4 calls of rpm=3 reach a
    provider within 60 s when the first one took a while to arrive."""
    clock = FakeClock()
    log = SQLiteRateLog(Store(":memory:")) if shared else None
    limiter = RateLimiter(rpm, tpm, clock=clock, sleep=clock.sleep, log=log)
    done: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def caller(tokens, duration):
        grant = limiter.acquire(tokens)  # the default lease (1 h) outlasts every call here
        clock.sleep(duration)  # the call is on its way for this long
        settled = clock()
        limiter.settle(grant, tokens)
        with lock:
            done.append((grant.at, settled, tokens))

    threads = [threading.Thread(target=caller, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(done) == 16
    assert overlapping_ok(done, rpm, tpm)


@settings(max_examples=20, deadline=None)
@given(rpm=st.integers(1, 10), tpm=st.one_of(st.none(), st.integers(100, 2000)),
       sizes=st.lists(st.integers(1, 100), min_size=24, max_size=24))
def test_the_shared_sqlite_log_never_exceeds_the_limits_with_24_callers(rpm, tpm, sizes):
    clock = FakeClock()
    limiter = RateLimiter(rpm, tpm, clock=clock, sleep=clock.sleep,
                          log=SQLiteRateLog(Store(":memory:")))
    grants: list[tuple[float, int]] = []
    lock = threading.Lock()

    def caller(tokens):
        grant = limiter.acquire(tokens)
        limiter.settle(grant, tokens)
        with lock:
            grants.append((grant.at, tokens))

    threads = [threading.Thread(target=caller, args=(n,)) for n in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(grants) == 24
    assert windows_ok(grants, rpm, tpm)


def test_a_call_that_can_never_fit_before_the_deadline_fails_at_once():
    clock = FakeClock()
    limiter = RateLimiter(1, None, clock=clock, sleep=clock.sleep)
    limiter.settle(limiter.acquire(1), 1)
    with pytest.raises(TimeoutError):
        limiter.acquire(1, timeout=5)
    assert clock() == 0.0  # it did not wait for nothing


def test_retries_count_against_the_limit(service, server):
    service.configure({"rate_limit": {"requests_per_minute": 2}, "retry_attempts": 2})
    server.play("status:500", "ok", "ok")
    assert service.complete("one")["text"] == "reply text"  # two attempts, two requests
    with pytest.raises(AIError, match="rate limit"):
        service.complete("two", CallContext(deadline=time.monotonic() + 2))
    assert len(server.requests) == 2


WORKFLOW = """
ai.configure({rate_limit = {requests_per_minute = 3}, retry_attempts = 0})
task("ask"):timeout("20s"):command(function()
    local sent = 0
    for i = 1, 2 do
        if pcall(ai.complete, "question " .. i) then sent = sent + 1 end
    end
    return true, tostring(sent), {sent = sent}
end):build()
"""


def test_runs_sharing_a_home_share_the_limit(server, workflow_file, sloth_home):
    """Three `sloth-runner run`s at once against one key, rpm = 3: three requests in all (a
    limiter in each process's memory let each run send its own three)."""
    import os

    path = workflow_file(WORKFLOW)
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": server.base_url}
    procs = [subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path,
                               "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    sent = 0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        doc = json.loads(out)
        sent += tasks_by_name(doc)["ask"]["outputs"]["sent"]
    assert len(server.requests) == 3 and sent == 3
