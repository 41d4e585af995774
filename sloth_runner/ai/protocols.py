"""What `ai.decide` and `ai.generate_code` need from the AI service, as a protocol: they are
handed the service and never import the client (the client imports them, lazily).

Imported for type checking only (`typing` costs start-up time).
"""

from __future__ import annotations

from typing import Any, Protocol

from sloth_runner.ai.types import CallContext


class ChatService(Protocol):
    def chat(self, spec: dict[str, Any], ctx: CallContext | None = None,
             on_token: Any = None, provider: str | None = None, grammar: str | None = None,
             operation: str = "chat", shape: Any = None) -> dict[str, Any]:
        """One chat call; returns the result table (text, confidence, model, provider, ...)."""

    def scrub(self, text: str) -> str:
        """`text` with secrets replaced by this run's placeholders."""

    def outgoing(self, text: str, provider: str | None = None) -> str:
        """`text` as a call to `provider` would send it: scrubbed unless scrubbing is off."""
