"""The scheduler with plain Python actions: no Lua involved, as the layering promises."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import Blocking, Outcome, Sleep, Task, Workflow
from sloth_runner.engine.runner import run_workflows
from sloth_runner.engine.scheduler import Scheduler
from sloth_runner.errors import LuaScriptError


class Log(Listener):
    def __init__(self):
        self.attempts = []

    def attempt_finished(self, record):
        self.attempts.append(record)


def ok(ctx):
    return Outcome(True, outputs={"me": ctx.task})


def fail(ctx):
    return Outcome(False, "nope")


def sleeper(seconds, spans=None):
    def action(ctx):
        start = time.monotonic()
        yield Blocking(lambda: time.sleep(seconds))
        if spans is not None:
            spans[ctx.task] = (start, time.monotonic())
        return Outcome(True)

    return action


def run(*tasks, **kw):
    return {r.name: r for r in Scheduler(Workflow("w", tasks), **kw).run().tasks}


def test_blocking_tasks_overlap_and_respect_max_parallel():
    spans = {}
    action = sleeper(0.2, spans)
    res = run(*(Task(f"s{i}", action) for i in range(4)), max_parallel=2)
    assert all(r.status == "success" for r in res.values())
    # never more than two at once, and at least two at once
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak == 2


def test_dependents_of_a_failure_are_skipped_and_independent_branches_go_on():
    res = run(Task("a", fail), Task("b", ok, ("a",)), Task("c", ok, ("b",)), Task("x", ok))
    assert res["a"].status == "failed"
    assert res["b"].status == "skipped" and "dependency 'a' failed" in res["b"].message
    assert res["c"].status == "skipped" and "dependency 'b' was skipped" in res["c"].message
    assert res["x"].status == "success"


def test_outputs_flow_to_dependents():
    seen = {}

    def reader(ctx):
        seen.update(ctx.deps)
        return Outcome(True)

    run(Task("a", ok), Task("b", reader, ("a",)))
    assert seen == {"a": {"me": "a"}}


def test_retries_record_every_attempt_then_succeed():
    calls = []

    def flaky(ctx):
        calls.append(ctx.attempt)
        return Outcome(len(calls) >= 3, "try again")

    log = Log()
    res = run(Task("f", flaky, retries=3, retry_delay=0.01), listener=log)
    assert res["f"].status == "success" and res["f"].attempts == 3
    assert [a.attempt for a in log.attempts] == [1, 2, 3]
    assert [a.status for a in log.attempts] == ["failed", "failed", "success"]
    assert [a.final for a in log.attempts] == [False, False, True]


def test_retries_exhausted_fail():
    log = Log()
    res = run(Task("f", fail, retries=2, retry_delay=0.0, backoff="fixed"), listener=log)
    assert res["f"].status == "failed" and res["f"].attempts == 3
    assert len(log.attempts) == 3


def test_timeout_interrupts_a_blocking_wait_and_is_retried():
    log = Log()
    started = time.monotonic()
    res = run(Task("t", sleeper(5), timeout=0.1, retries=1, retry_delay=0.0), listener=log)
    assert res["t"].status == "timeout"
    assert res["t"].error == "timed out after 0.1s"
    assert [a.status for a in log.attempts] == ["timeout", "timeout"]
    assert time.monotonic() - started < 4  # it did not wait for the sleeps


def test_sleep_requests_do_not_hold_a_worker():
    before = set(threading.enumerate())
    seen = {}

    def napper(ctx):
        yield Sleep(0.2)
        seen["workers"] = [t for t in threading.enumerate()
                           if t not in before and t.name.startswith("sloth-io")]
        return Outcome(True)

    res = run(Task("n", napper), Task("s", sleeper(0.05)), max_parallel=2)
    assert {r.status for r in res.values()} == {"success"}
    assert len(seen["workers"]) == 1  # the blocking task's; the sleep is a timer, not a thread


def test_action_exception_is_an_error_of_the_task_not_of_the_run():
    def broken(ctx):
        raise RuntimeError("bug")

    res = run(Task("b", broken), Task("ok", ok), Task("after", ok, ("b",)))
    # it could not run (an error), which is not the same as running and saying no (failed)
    assert res["b"].status == "error" and "RuntimeError: bug" in res["b"].error
    assert "Traceback" in res["b"].trace and "raise RuntimeError" in res["b"].trace
    assert res["after"].status == "skipped" and "could not run" in res["after"].message
    assert res["ok"].status == "success"


def test_run_if_false_skips_and_abort_if_aborts():
    res = run(Task("maybe", ok, run_if=lambda ctx: Outcome(False)), Task("after", ok, ("maybe",)))
    assert res["maybe"].status == "skipped" and "run_if" in res["maybe"].message
    assert res["after"].status == "skipped"

    wf = Workflow("w", (Task("stop", ok, abort_if=lambda ctx: Outcome(True)),
                        Task("later", ok, ("stop",)), Task("other", sleeper(0.05))))
    result = Scheduler(wf, max_parallel=1).run()
    statuses = {t.name: t.status for t in result.tasks}
    assert statuses["stop"] == "failed"
    assert statuses["later"] == "skipped"
    assert result.status == "failed" and "abort_if" in result.error


def test_hooks_run_with_the_result():
    seen = []

    def hook(ctx):
        seen.append((ctx.task, ctx.result.status))
        return Outcome(True)

    run(Task("a", ok, on_success=hook), Task("b", fail, on_failure=hook))
    assert sorted(seen) == [("a", "success"), ("b", "failed")]


def test_workflow_timeout_stops_starting_tasks():
    wf = Workflow("w", (Task("slow", sleeper(5)), Task("next", ok, ("slow",))), timeout=0.2)
    result = Scheduler(wf).run()
    statuses = {t.name: t.status for t in result.tasks}
    assert statuses == {"slow": "timeout", "next": "skipped"}


def test_on_start_false_skips_the_workflow():
    wf = Workflow("w", (Task("a", ok),), on_start=lambda params: False)
    other = Workflow("v", (Task("b", ok),))
    res = run_workflows([wf, other])
    assert res.status == "success"  # skipping is the workflow's choice, not a failure
    assert res.workflows[0].status == "skipped"
    assert res.workflows[0].tasks[0].status == "skipped"
    assert res.workflows[1].tasks[0].status == "success"
    def broken(params):
        raise LuaScriptError("wf.lua:3: attempt to index a nil value")

    res = run_workflows([Workflow("w", (Task("a", ok),), on_start=broken)])
    assert res.status == "failed"  # an on_start that raises is a failure


@st.composite
def dags(draw):
    n = draw(st.integers(1, 30))
    edges = {}
    for i in range(n):
        earlier = [f"t{j}" for j in range(i)]
        edges[f"t{i}"] = tuple(draw(st.lists(st.sampled_from(earlier), unique=True, max_size=4))
                               ) if earlier else ()
    order = draw(st.permutations(list(edges)))
    blocking = draw(st.sets(st.sampled_from(list(edges))))
    return edges, order, blocking


@settings(max_examples=60, deadline=None)
@given(dags(), st.integers(1, 6))
def test_each_task_runs_once_and_only_after_its_dependencies(graph, max_parallel):
    edges, order, blocking = graph
    finished: list[str] = []
    lock = threading.Lock()

    def make(name):
        def action(ctx):
            for dep in edges[name]:
                assert dep in finished, f"{name} started before {dep} finished"
            if name in blocking:
                yield Blocking(lambda: time.sleep(0.001))
            with lock:
                finished.append(name)
            return Outcome(True)

        return action

    tasks = tuple(Task(name, make(name), edges[name]) for name in order)
    result = Scheduler(Workflow("w", tasks), max_parallel=max_parallel).run()
    assert result.status == "success"
    assert sorted(finished) == sorted(edges)
    assert len(finished) == len(set(finished))
