"""The provider interface: one method, plus capability flags."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sloth_runner.ai.types import AIRequest, AIResponse


class Provider:
    name = "base"
    can_stream = False
    can_logprobs = False

    def execute(self, request: AIRequest, on_token: Callable[[str], None] | None = None,
                deadline: float | None = None) -> AIResponse:
        """Run one request once (no retries: the client does those), finished or abandoned by
        `deadline` (a time.monotonic() value; AITimeout past it). Raise AIError subclasses,
        translated from the library's own exceptions in one place, keeping the cause."""
        raise NotImplementedError

    def default_model(self) -> str:
        raise NotImplementedError
