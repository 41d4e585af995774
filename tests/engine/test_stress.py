"""The scheduler under load: long chains and large random DAGs, with plain Python actions."""

from __future__ import annotations

import random
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import (
    FAILURES,
    TRIGGER_RULES,
    Blocking,
    Outcome,
    Sleep,
    Task,
    Workflow,
)
from sloth_runner.engine.scheduler import Scheduler


class Log(Listener):
    """Which tasks concluded (and how often), and which attempts were recorded."""

    def __init__(self) -> None:
        self.concluded: dict[str, int] = {}
        self.started: list[str] = []
        self.attempts: list[tuple[str, int, str]] = []

    def task_started(self, workflow, task, attempt):
        self.started.append(task)

    def attempt_finished(self, record):
        self.attempts.append((record.task, record.attempt, record.status))

    def task_finished(self, workflow, result):
        self.concluded[result.name] = self.concluded.get(result.name, 0) + 1


def ok(ctx):
    return Outcome(True)


def fail(ctx):
    return Outcome(False, "head says no")


@pytest.mark.parametrize("length", [500, 5000])
def test_a_failed_head_skips_a_long_chain_without_recursion(length):
    tasks = [Task("t0", fail)] + [Task(f"t{i}", ok, (f"t{i - 1}",)) for i in range(1, length)]
    log = Log()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive conclusion would need ~length frames
    try:
        result = Scheduler(Workflow("chain", tuple(tasks)), listener=log).run()
    finally:
        sys.setrecursionlimit(old)
    assert result.status == "failed"
    assert [r.name for r in result.tasks] == [f"t{i}" for i in range(length)]
    assert result.tasks[0].status == "failed" and result.tasks[0].error == "head says no"
    for i, r in enumerate(result.tasks[1:], 1):
        assert r.status == "skipped", r
        assert r.attempts == 0
        expected = "failed" if i == 1 else "was skipped"
        assert r.message == f"dependency 't{i - 1}' {expected}"
    assert log.started == ["t0"]  # nothing after the head ever started
    assert all(n == 1 for n in log.concluded.values()) and len(log.concluded) == length
    # every skipped task still leaves one attempt-0 row for history
    assert sorted(a for a in log.attempts if a[1] == 0) == \
        sorted((f"t{i}", 0, "skipped") for i in range(1, length))


# -- random DAGs ----------------------------------------------------------------------------------

KINDS = ("ok", "fail", "error", "sleep_ok", "block_ok", "sleep_fail")


@st.composite
def random_dags(draw):
    """(deps, kinds, rules): up to ~2,000 tasks; built from a drawn seed so a large graph costs
    a handful of Hypothesis draws (shrinking still shrinks the size and the probabilities)."""
    n = draw(st.integers(1, 40) | st.integers(200, 2000))
    seed = draw(st.integers(0, 2**32 - 1))
    fan_in = draw(st.integers(0, 5))
    p_fail = draw(st.sampled_from([0.0, 0.01, 0.05, 0.2, 0.5]))
    p_rule = draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]))
    rnd = random.Random(seed)
    deps: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    rules: dict[str, str] = {}
    for i in range(n):
        name = f"t{i}"
        k = rnd.randint(0, min(i, fan_in))
        # mostly recent tasks (deep graphs), sometimes any earlier one (wide joins)
        picks = {rnd.randrange(max(0, i - 20), i) if rnd.random() < 0.8 else rnd.randrange(i)
                 for _ in range(k)} if i else set()
        deps[name] = tuple(f"t{j}" for j in sorted(picks))
        if rnd.random() < p_fail:
            kinds[name] = rnd.choice(("fail", "error", "sleep_fail"))
        else:
            kinds[name] = rnd.choice(("ok", "ok", "ok", "sleep_ok", "block_ok"))
        rules[name] = rnd.choice(TRIGGER_RULES) if deps[name] and rnd.random() < p_rule \
            else "all_success"
    order = list(deps)
    rnd.shuffle(order)  # the scheduler must not rely on the file order being topological
    return deps, kinds, rules, order


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(random_dags(), st.integers(1, 8))
def test_random_dags_keep_every_scheduling_invariant(graph, max_parallel):
    deps, kinds, rules, order = graph
    log = Log()
    ran: list[str] = []
    violations: list[str] = []
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    seen_deps: dict[str, dict] = {}

    def enter(name, ctx):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        ran.append(name)
        missing = [d for d in deps[name] if d not in log.concluded]
        if missing:
            violations.append(f"{name} started before {missing} concluded")
        seen_deps[name] = ctx.deps

    def leave():
        nonlocal in_flight
        with lock:
            in_flight -= 1

    def make(name):
        kind = kinds[name]

        def action(ctx):
            enter(name, ctx)
            try:
                if kind == "sleep_ok" or kind == "sleep_fail":
                    yield Sleep(0)
                elif kind == "block_ok":
                    yield Blocking(lambda: None)
                if kind == "error":
                    raise RuntimeError(f"{name} broke")
                return Outcome(kind not in ("fail", "sleep_fail"), f"{name} done")
            finally:
                leave()

        return action

    tasks = tuple(Task(name, make(name), deps[name], trigger_rule=rules[name]) for name in order)
    result = Scheduler(Workflow("w", tasks), max_parallel=max_parallel, listener=log).run()

    assert not violations, violations[:5]
    assert peak <= max_parallel
    # exactly one result per task, in the workflow's order; each concluded once
    assert [r.name for r in result.tasks] == order
    assert log.concluded == {name: 1 for name in deps}
    assert len(ran) == len(set(ran))
    status = {r.name: r.status for r in result.tasks}
    by_name = {r.name: r for r in result.tasks}
    expected_status = {"ok": "success", "sleep_ok": "success", "block_ok": "success",
                       "fail": "failed", "sleep_fail": "failed", "error": "error"}
    for name in deps:
        r = by_name[name]
        dstat = [status[d] for d in deps[name]]
        rule = rules[name]
        if not deps[name]:
            should_run = True
        elif rule == "all_success":
            should_run = all(s == "success" for s in dstat)
        elif rule == "all_done":
            should_run = True
        elif rule == "one_failed":
            should_run = any(s in FAILURES for s in dstat)
        else:  # none_failed
            should_run = not any(s in FAILURES for s in dstat)
        assert (name in ran) == should_run, (name, rule, dict(zip(deps[name], dstat, strict=True)))
        if should_run:
            assert r.status == expected_status[kinds[name]], r
            assert r.attempts == 1
            if rule != "all_success":  # dependents under a trigger rule see each dep's status
                assert {d: v["status"] for d, v in seen_deps[name].items()} == \
                    dict(zip(deps[name], dstat, strict=True))
            continue
        assert r.status == "skipped" and r.attempts == 0, r
        if rule == "one_failed":
            assert r.message == "trigger rule one_failed: no dependency failed"
            continue
        # a skip names a dependency that is the reason for it
        named = r.message.split("'")[1]
        assert named in deps[name], r.message
        if rule == "none_failed":
            assert status[named] in FAILURES and r.message.startswith("trigger rule none_failed")
        else:
            assert status[named] != "success"
            assert r.message.startswith(f"dependency '{named}' ")
    failed = any(s in FAILURES for s in status.values())
    assert result.status == ("failed" if failed else "success")
