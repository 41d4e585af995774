"""Replay on retry: when a task is retried within a run, the AI requests it makes that are
identical to those of an earlier attempt are answered with that attempt's answers, so a retry
never pays twice (and a flaky step after the AI call is retried against the same answer).

Identical means the same provider, model, messages, grammar and options, temperature and seed
aside (a sampled answer is as good as a new one). The n-th identical request of an attempt gets
the n-th answer of the first attempt that asked it; beyond that, the request is sent. Kept in
memory for the run; `replay = false` on a call opts out.

`run --replay RUN_ID` loads a finished run's answers (its call log: the scrubbed prompt and
response, kept when log_prompts is on) and answers the same task's same prompt with them, in
order: a reproducible re-run for debugging a workflow around its AI steps.
"""

from __future__ import annotations

import json
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.ai.types import AIRequest, CallContext

IGNORED_OPTIONS = ("temperature", "seed", "top_p")
MAX_KEPT = 10_000  # answers kept per run (beyond: not replayed, still answered)


class Replays:
    def __init__(self) -> None:
        self._answers: dict[tuple[Any, ...], tuple[int, list[dict[str, Any]]]] = {}
        self._used: dict[tuple[Any, ...], int] = {}
        self._kept = 0
        self._lock = threading.Lock()
        self._recorded: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def load(self, calls: list[dict[str, Any]]) -> int:
        """A finished run's answers (AIUsageStore.answers_of); how many were loaded."""
        with self._lock:
            for c in calls:
                key = (c["workflow"], c["task"], c["operation"], c["prompt"])
                self._recorded.setdefault(key, []).append({
                    "text": c["response"], "model": c["model"], "provider": c["provider"],
                    "finish_reason": "stop", "prompt_tokens": c["prompt_tokens"],
                    "completion_tokens": c["completion_tokens"]})
        return len(calls)

    def recorded_answer(self, ctx: CallContext, operation: str,
                        prompt: str) -> dict[str, Any] | None:
        """The replayed run's next answer to this task's same prompt, if it had one."""
        if not self._recorded:
            return None
        with self._lock:
            answers = self._recorded.get((ctx.workflow, ctx.task, operation, prompt))
            return answers.pop(0) if answers else None

    @staticmethod
    def key(ctx: CallContext, provider: str, model: str,
            request: AIRequest) -> tuple[Any, ...]:
        import hashlib  # (not on the run path of workflows without AI)

        body = json.dumps([provider, model, request.api, request.messages, request.prompt,
                           request.grammar, {k: v for k, v in request.options.items()
                                             if k not in IGNORED_OPTIONS}],
                          sort_keys=True, default=str)
        return (ctx.run_id, ctx.workflow, ctx.task, hashlib.sha256(body.encode()).hexdigest())

    def answer(self, key: tuple[Any, ...], attempt: int) -> dict[str, Any] | None:
        """The earlier attempt's answer to this request, if this is a later attempt."""
        with self._lock:
            found = self._answers.get(key)
            if found is None or found[0] >= attempt:
                return None
            n = self._used.get((*key, attempt), 0)
            if n >= len(found[1]):
                return None
            self._used[(*key, attempt)] = n + 1
            return found[1][n]

    def remember(self, key: tuple[Any, ...], attempt: int, answer: dict[str, Any]) -> None:
        with self._lock:
            if self._kept >= MAX_KEPT:
                return
            found = self._answers.get(key)
            if found is None:
                self._answers[key] = (attempt, [answer])
            elif found[0] == attempt:
                found[1].append(answer)
            else:
                return
            self._kept += 1
