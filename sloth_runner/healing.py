"""Which repair to try when a task has failed for good (the chooser of engine/healing.py).

In order, the first that answers wins:
1. **a rule the action declares**: `when = "text"` is found (ignoring case) in the error or the
   output tail. Predictable, and free.
2. **what worked before**: an action that healed this task's same error (same template: the
   same message but for numbers, ids and paths) at least once and at least half the times it
   was tried, the best first.
3. **the AI**: `ai.decide` among the declared actions and "none", told the error, the output
   tail, each action's description and what each did for this task before. The choice is
   constrained to those names; an unavailable AI means "none", never a guess.

Nothing else can run: the engine ignores a name that is not declared.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.healing import HealChoice, HealRequest


class Healer:
    """Chooses for one run: `store()` and `ai()` are the run's, built when first needed."""

    def __init__(self, store: Callable[[], Any], ai: Callable[[], Any], file: str) -> None:
        self.store, self.ai, self.file = store, ai, file

    def choose(self, request: HealRequest) -> HealChoice:
        from sloth_runner.engine.healing import HealChoice

        seen = f"{request.error}\n{request.output}".lower()
        for action in request.actions:
            if action.when and action.when.lower() in seen:
                return HealChoice(action.name, "rule",
                                  f"the failure mentions \"{action.when}\"", 1.0)
        past = self.history(request)
        best = max(((k, n, name) for name, (k, n) in past.items() if k and 2 * k >= n),
                   default=None)
        if best is not None:
            k, n, name = best
            return HealChoice(name, "history",
                              f"'{name}' healed this error {k} of {n} times before", k / n)
        return self.ask(request, past)

    def history(self, request: HealRequest) -> dict[str, tuple[int, int]]:
        """{action: (healed, tried)} for this task's same error in earlier runs of the file."""
        from sloth_runner.services.runcontext import error_template

        template = error_template(request.error)
        rows = self.store().query(
            "SELECT action, sum(healed = 1) AS healed, count(*) AS tried FROM heals"
            " WHERE workflow = ? AND task = ? AND file = ? AND error_template IS ?"
            " AND action IS NOT NULL GROUP BY action",
            (request.workflow, request.task, self.file, template))
        declared = {a.name for a in request.actions}
        return {r["action"]: (int(r["healed"] or 0), int(r["tried"]))
                for r in rows if r["action"] in declared}

    def ask(self, request: HealRequest, past: dict[str, tuple[int, int]]) -> HealChoice:
        from sloth_runner.engine.healing import HealChoice
        from sloth_runner.errors import SlothError

        names = [a.name for a in request.actions]
        spec: dict[str, Any] = {
            "situation": f"The task '{request.task}' failed ({request.status}) after "
                         f"{request.attempts} attempt(s). Choose the repair action that fixes "
                         "the cause of this failure, or none if no action fits.",
            "options": [*names, "none"],
            "error": request.error,
            "output_tail": request.output,
            "actions": {a.name: a.description or (f"runs: {a.shell}" if a.shell else
                                                  "a Lua function") for a in request.actions},
        }
        if past:
            spec["history"] = {name: f"healed {k} of {n} tries" for name, (k, n) in past.items()}
        try:
            answer = self.ai().decide(spec, None)
        except SlothError as exc:
            return HealChoice(None, "none", f"no rule matched and the AI could not decide: "
                                            f"{exc}")
        choice = answer.get("choice")
        reasoning = str(answer.get("reasoning") or "")
        if answer.get("fallback") or choice not in names:
            return HealChoice(None, "model", reasoning or "the model chose none",
                              answer.get("confidence"))
        return HealChoice(choice, "model", reasoning, answer.get("confidence"))
