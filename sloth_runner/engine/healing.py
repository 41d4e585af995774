"""Self-healing tasks: when a task has failed for good (retries spent), one of the repair
actions its author declared may run, and the task gets one more attempt.

The engine only runs the loop. Which action (or none) is chosen is asked of `Heal.choose`,
given by the composition root (sloth_runner/healing.py: a rule the action declares, what healed
this task's same error before, else the AI's constrained decision). The choice is made only
among the declared actions: a name that is not one of them is "none", so nothing undeclared can
ever run. Each round is reported to the listeners as a HealRecord (history, output).

A round: choose; run the action (a failing action ends healing); run one more attempt of the
task. The attempt that failed is recorded as final only when no further attempt follows, so the
history has one final attempt per task and run, as without healing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

from sloth_runner.engine.model import (
    FAILED,
    SUCCESS,
    TIMEOUT,
    Action,
    Blocking,
    Outcome,
    Request,
    Task,
    TaskContext,
    TaskResult,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUTPUT_TAIL_CHARS = 2000


class HealAction:
    """One declared repair: its engine action, and what a chooser may know of it."""

    __slots__ = ("name", "action", "when", "description", "shell")

    def __init__(self, name: str, action: Action, *, when: str | None = None,
                 description: str | None = None, shell: str | None = None) -> None:
        self.name, self.action, self.when = name, action, when
        self.description, self.shell = description, shell


class Heal:
    """A task's :heal{...}: its actions, how many rounds, and who chooses."""

    __slots__ = ("actions", "max_attempts", "choose")

    def __init__(self, actions: dict[str, HealAction], max_attempts: int,
                 choose: Callable[[HealRequest], HealChoice]) -> None:
        self.actions, self.max_attempts, self.choose = actions, max_attempts, choose


class HealRequest:
    """What the chooser is told: the failure and the actions it may pick from."""

    __slots__ = ("workflow", "task", "status", "error", "output", "attempts", "round",
                 "actions", "location")

    def __init__(self, workflow: str, task: str, status: str, error: str, output: str,
                 attempts: int, round_: int, actions: list[HealAction], location: str) -> None:
        self.workflow, self.task, self.status, self.error = workflow, task, status, error
        self.output, self.attempts, self.round = output, attempts, round_
        self.actions, self.location = actions, location


class HealChoice:
    """An action's name or None ("none"), how it was chosen and why."""

    __slots__ = ("action", "method", "reasoning", "confidence")

    def __init__(self, action: str | None, method: str, reasoning: str = "",
                 confidence: float | None = None) -> None:
        self.action, self.method, self.reasoning = action, method, reasoning
        self.confidence = confidence


class HealRecord:
    """One healing round, as the history keeps it."""

    __slots__ = ("workflow", "task", "round", "attempt", "action", "method", "reasoning",
                 "confidence", "error", "action_error", "healed", "at")

    def __init__(self, workflow: str, task: str, round_: int, attempt: int, choice: HealChoice,
                 error: str, action_error: str | None, healed: bool | None) -> None:
        self.workflow, self.task, self.round, self.attempt = workflow, task, round_, attempt
        self.action, self.method = choice.action, choice.method
        self.reasoning, self.confidence = choice.reasoning, choice.confidence
        self.error, self.action_error, self.healed = error, action_error, healed
        self.at = time.time()


def _failure_text(outcome: Outcome) -> tuple[str, str]:
    """(the error, the output's tail). A command's error is its exit code and the last line it
    wrote to stderr, so that "same error" means the same thing went wrong."""
    from sloth_runner.services.runcontext import failure_text

    out = outcome.outputs if isinstance(outcome.outputs, dict) else {}
    error = failure_text(outcome.error, outcome.message, outcome.exit_code, out) or \
        "task returned false"
    tail = "\n".join(str(out.get(k) or "") for k in ("stdout", "stderr") if out.get(k))
    return error, tail[-OUTPUT_TAIL_CHARS:]


def heal_task(task: Task, ctx: TaskContext, listener: Any, status: str, outcome: Outcome,
              attempt_once: Callable[[int], Generator[Request, Any, tuple[str, Outcome]]],
              record: Callable[[str, Outcome, bool], None], out_of_time: Callable[[], bool],
              ) -> Generator[Request, Any, tuple[str, Outcome]]:
    """Heal rounds after the task's last attempt failed (`status`, `outcome`); returns the
    final (status, outcome). `record(status, outcome, final)` records the latest attempt."""
    heal = task.heal
    assert heal is not None
    for round_ in range(1, heal.max_attempts + 1):
        if status not in (FAILED, TIMEOUT) or out_of_time():
            break
        error, tail = _failure_text(outcome)
        request = HealRequest(ctx.workflow, task.name, status, error, tail, ctx.attempt, round_,
                              list(heal.actions.values()), task.location)
        choice = yield Blocking(lambda request=request: heal.choose(request))
        if choice.action not in heal.actions:  # "none", or anything undeclared
            choice = HealChoice(None, choice.method, choice.reasoning, choice.confidence)
            listener.heal_finished(HealRecord(ctx.workflow, task.name, round_, ctx.attempt,
                                              choice, error, None, None))
            listener.log("info", f"heal: no action ({choice.method}): {choice.reasoning}",
                         ctx.workflow, task.name)
            break
        ctx.result = TaskResult(task.name, status, attempts=ctx.attempt, error=error,
                                outputs=outcome.outputs)
        from sloth_runner.engine.lifecycle import drive

        done = yield from drive(heal.actions[choice.action].action, ctx)
        ctx.result = None
        if not done.success:
            why = done.error or done.message or (
                f"exit code {done.exit_code}" if done.exit_code else "returned false")
            listener.heal_finished(HealRecord(ctx.workflow, task.name, round_, ctx.attempt,
                                              choice, error, why, None))
            listener.log("warn", f"heal: action '{choice.action}' failed: {why}", ctx.workflow,
                         task.name)
            break
        record(status, outcome, False)  # another attempt follows
        listener.log("info", f"heal: ran '{choice.action}' ({choice.method}: "
                             f"{choice.reasoning}); trying again", ctx.workflow, task.name)
        status, outcome = yield from attempt_once(ctx.attempt + 1)
        healed = status == SUCCESS
        listener.heal_finished(HealRecord(ctx.workflow, task.name, round_, ctx.attempt - 1,
                                          choice, error, None, healed))
        listener.log("info" if healed else "warn",
                     f"heal: after '{choice.action}' the task "
                     f"{'succeeded' if healed else 'failed again'}", ctx.workflow, task.name)
    record(status, outcome, True)
    return status, outcome
