"""Requests and responses as the AI service passes them between client and providers."""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.ai.structured import Shape

GENERATION_OPTIONS = ("max_tokens", "temperature", "top_p", "frequency_penalty",
                      "presence_penalty", "stop", "seed")


class CallContext:
    """Who is calling (for usage rows and budgets) and by when it must be done: `deadline` is
    a time.monotonic() value (a task's timeout), bounding every attempt and retry wait."""

    __slots__ = ("run_id", "workflow", "task", "deadline", "attempt")

    def __init__(self, run_id: str | None = None, workflow: str | None = None,
                 task: str | None = None, deadline: float | None = None,
                 attempt: int = 1) -> None:
        self.run_id, self.workflow, self.task, self.deadline = run_id, workflow, task, deadline
        self.attempt = attempt  # of the task: a retry's requests may be answered by replay


class AIRequest:
    """One call. `messages` is always set; `prompt` too for plain completions."""

    __slots__ = ("messages", "prompt", "model", "options", "stream", "logprobs", "api",
                 "sanitize", "grammar", "replay", "shape", "local_only")

    def __init__(self, messages: list[dict[str, Any]], model: str | None = None,
                 options: dict[str, Any] | None = None, prompt: str | None = None,
                 stream: bool = False, logprobs: bool = False, api: str = "chat",
                 sanitize: bool | None = None, grammar: str | None = None) -> None:
        self.messages = messages
        self.prompt = prompt
        self.model = model
        self.options = options or {}
        self.stream = stream
        self.logprobs = logprobs
        self.api = api  # "chat" (chat completions endpoint) or "completions" (legacy text)
        self.sanitize = sanitize  # None: as configured
        # GBNF constraining the answer; the local provider decodes with it, OpenAI-compatible
        # servers are not sent it (callers such as ai.decide check the answer afterwards).
        self.grammar = grammar
        self.replay = True  # a retried task's identical request is answered by its earlier one
        # the JSON the answer must be, for servers (ai/structured.py): their grammar
        self.shape: Shape | None = None
        self.local_only = False  # never sent off this machine (fallback hops are filtered)

    def for_hop(self, provider: str) -> AIRequest:
        """This request as a fallback provider gets it: its own model, the same messages; a
        server gets only the options servers take (not llama.cpp's own, e.g. repeat_penalty)."""
        options = self.options if provider == "local" else \
            {k: v for k, v in self.options.items() if k in GENERATION_OPTIONS}
        copy = AIRequest(self.messages, None, dict(options), self.prompt, self.stream,
                         self.logprobs, self.api, self.sanitize, self.grammar)
        copy.replay, copy.shape, copy.local_only = self.replay, self.shape, self.local_only
        return copy

    def text(self) -> str:
        """Everything that would be sent, for token estimates and cache keys."""
        if self.api == "completions" and self.prompt is not None:
            return self.prompt
        from sloth_runner.ai.images import text_of

        return "\n".join(f"{m.get('role', '')}: {text_of(m.get('content', ''))}"
                         for m in self.messages)


class AIResponse:
    __slots__ = ("text", "model", "provider", "finish_reason", "prompt_tokens",
                 "completion_tokens", "logprobs", "latency_ms", "cost", "cached", "usage_estimated",
                 "replayed", "structured", "fallback_from", "tokens")

    def __init__(self, text: str, model: str, provider: str, finish_reason: str | None = None,
                 prompt_tokens: int | None = None, completion_tokens: int | None = None,
                 logprobs: list[float] | None = None) -> None:
        self.text = text
        self.model = model
        self.provider = provider
        self.finish_reason = finish_reason
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.logprobs = logprobs
        self.latency_ms = 0.0
        self.cost: float | None = 0.0  # None: the model's price is unknown
        self.cached = False
        self.usage_estimated = False
        self.replayed = False  # answered from an earlier attempt of the task (not paid again)
        # what a server held the answer to ("json_schema", "json_object", "none"); None: no
        # shape was asked for, or the local provider's grammar did it
        self.structured: str | None = None
        self.fallback_from: str | None = None  # the provider this answer stood in for
        self.tokens: list[str] | None = None  # the texts of `logprobs`' tokens, when given

    @property
    def confidence(self) -> float | None:
        """exp(mean token log-prob) when the provider gave log-probs; never invented."""
        if not self.logprobs:
            return None
        return math.exp(sum(self.logprobs) / len(self.logprobs))

    def as_dict(self, chat: bool = False, detail: bool = False) -> dict[str, Any]:
        """The Lua-facing result; `detail` adds the tokens and their log-probs and what the
        answer was held to (for ai.decide, which reads its confidence from them)."""
        prompt = self.prompt_tokens or 0
        completion = self.completion_tokens or 0
        out: dict[str, Any] = {
            "text": self.text, "confidence": self.confidence,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
            "model": self.model, "provider": self.provider, "finish_reason": self.finish_reason,
            "latency_ms": round(self.latency_ms, 3), "cost": self.cost, "cached": self.cached,
            "replayed": self.replayed, "fallback_from": self.fallback_from,
        }
        if chat:
            out["message"] = {"role": "assistant", "content": self.text}
        if detail:
            out.update(tokens=self.tokens, logprobs=self.logprobs, structured=self.structured)
        return out

    def to_cache(self) -> dict[str, Any]:
        return {"text": self.text, "model": self.model, "provider": self.provider,
                "finish_reason": self.finish_reason, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "logprobs": self.logprobs,
                "tokens": self.tokens, "structured": self.structured}

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> AIResponse:
        r = cls(data["text"], data["model"], data["provider"], data.get("finish_reason"),
                data.get("prompt_tokens"), data.get("completion_tokens"), data.get("logprobs"))
        r.cached = True
        r.tokens, r.structured = data.get("tokens"), data.get("structured")
        return r
