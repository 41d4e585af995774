"""The healing loop of the engine, with plain Python actions and choosers."""

from __future__ import annotations

from sloth_runner.engine.events import Listener
from sloth_runner.engine.healing import Heal, HealAction, HealChoice
from sloth_runner.engine.model import Outcome, Task, Workflow
from sloth_runner.engine.runner import run_workflows


class Seen(Listener):
    def __init__(self):
        self.attempts, self.heals = [], []

    def attempt_finished(self, record):
        self.attempts.append((record.task, record.attempt, record.status, record.final))

    def heal_finished(self, record):
        self.heals.append(record)


def run(task):
    seen = Seen()
    result = run_workflows([Workflow("w", (task,))], listener=seen)
    return result.workflows[0].tasks[0], seen


def broken_until(state):
    def action(ctx):
        return Outcome(state.get("fixed", False), error=None if state.get("fixed") else
                       "cannot open /srv/cache: No such file or directory")
    return action


def always(name, requests=None):
    def choose(request):
        if requests is not None:
            requests.append(request)
        return HealChoice(name, "test", f"chose {name}")
    return choose


def test_a_declared_action_that_fixes_the_cause_heals_the_task():
    state, requests = {}, []
    fix = HealAction("make_dir", lambda ctx: state.update(fixed=True) or Outcome(True))
    task = Task("build", broken_until(state), retries=1, retry_delay=0,
                heal=Heal({"make_dir": fix}, 1, always("make_dir", requests)))
    result, seen = run(task)
    assert result.status == "success" and result.attempts == 3
    # one final attempt per task, as without healing
    assert seen.attempts == [("build", 1, "failed", False), ("build", 2, "failed", False),
                             ("build", 3, "success", True)]
    (h,) = seen.heals
    assert (h.action, h.method, h.healed, h.attempt, h.round) == ("make_dir", "test", True, 2, 1)
    (req,) = requests
    assert "No such file" in req.error and [a.name for a in req.actions] == ["make_dir"]


def test_only_declared_actions_can_run():
    ran = []
    fix = HealAction("clear_cache", lambda ctx: ran.append("clear_cache") or Outcome(True))
    task = Task("deploy", lambda ctx: Outcome(False, error="boom"),
                heal=Heal({"clear_cache": fix}, 3, always("rm_rf_slash")))
    result, seen = run(task)
    assert result.status == "failed" and result.attempts == 1 and ran == []
    (h,) = seen.heals
    assert h.action is None and h.healed is None
    assert seen.attempts == [("deploy", 1, "failed", True)]


def test_a_failing_action_ends_healing_without_another_attempt():
    broken = HealAction("restart", lambda ctx: Outcome(False, error="systemctl: unit not found"))
    task = Task("db", lambda ctx: Outcome(False, error="refused"),
                heal=Heal({"restart": broken}, 2, always("restart")))
    result, seen = run(task)
    assert result.status == "failed" and result.attempts == 1
    (h,) = seen.heals
    assert h.action == "restart" and h.action_error == "systemctl: unit not found"
    assert seen.attempts == [("db", 1, "failed", True)]


def test_an_action_that_cannot_fix_it_is_tried_max_attempts_times_and_recorded():
    calls = []
    useless = HealAction("flush", lambda ctx: calls.append(ctx.result.error) or Outcome(True))
    task = Task("t", lambda ctx: Outcome(False, error=f"still broken ({len(calls)})"),
                heal=Heal({"flush": useless}, 2, always("flush")))
    result, seen = run(task)
    assert result.status == "failed" and result.attempts == 3
    assert [h.healed for h in seen.heals] == [False, False]
    assert calls == ["still broken (0)", "still broken (1)"]  # each saw the failure it follows
    assert [a[3] for a in seen.attempts] == [False, False, True]


def test_no_heal_for_success_skips_or_a_task_without_heal():
    chooser = []
    task = Task("ok", lambda ctx: Outcome(True),
                heal=Heal({"x": HealAction("x", lambda ctx: Outcome(True))}, 1,
                          always("x", chooser)))
    result, seen = run(task)
    assert result.status == "success" and chooser == [] and seen.heals == []
