"""Answers with a shape on OpenAI-compatible servers: `response_format`, and what each endpoint takes.

A caller that needs a shaped answer (ai.decide's choice, JSON from generate_code, a workflow spec
for `ai new`) puts a `Shape` on its request. The local provider decodes with the caller's GBNF
grammar instead; a server is asked, best first:

1. `json_schema`, strict: OpenAI's structured outputs, also llama.cpp's `llama-server`, vLLM and
   Ollama. The server's decoder can then only write what the schema allows (an enum of options).
2. `json_object` with the schema beside it: llama-cpp-python's server, which builds a grammar
   from it but refuses `json_schema`.
3. nothing: the answer is checked after the fact, as before.

What an endpoint (base_url and model) refused is remembered for the process, so the refusal's
round trip is paid once. `structured` in ai.configure: "auto" (that ladder), "json_schema" (only
the first rung: a refusal is an error) or "off" (never sent).
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.errors import AIError

NONE = "none"


class Shape:
    """The JSON an answer must be: `schema` as strict structured outputs take it (None: any
    JSON object), `bounded` the same with lengths bounded, for servers that turn the schema
    into a grammar (a tiny model that rambles in a free string stops at the bound)."""

    __slots__ = ("name", "schema", "bounded")

    def __init__(self, name: str, schema: dict[str, Any] | None = None,
                 bounded: dict[str, Any] | None = None) -> None:
        self.name = name
        self.schema = schema
        self.bounded = bounded or schema

    def formats(self, mode: str) -> list[dict[str, Any]]:
        """The response_format values to try, best first."""
        if mode == "off":
            return []
        if self.schema is None:
            return [{"type": "json_object"}]
        ladder: list[dict[str, Any]] = [{"type": "json_schema",
                   "json_schema": {"name": self.name, "strict": True, "schema": self.schema}},
                  {"type": "json_object", "schema": self.bounded}]
        return ladder[:1] if mode == "json_schema" else ladder

    def key(self) -> Any:
        """For cache and replay keys: the same request with another shape is another request."""
        return [self.name, self.schema]


_refused: dict[str, int] = {}  # endpoint -> how many rungs of the ladder it refused
_lock = threading.Lock()


def first_rung(endpoint: str) -> int:
    with _lock:
        return _refused.get(endpoint, 0)


def refused(endpoint: str, rung: int) -> None:
    with _lock:
        _refused[endpoint] = max(_refused.get(endpoint, 0), rung + 1)


def is_refusal(exc: AIError) -> bool:
    """The server said no to the response_format itself, not to the request: a 400 or 422
    naming it, or the 500 with a validation error that llama-cpp-python's server answers.
    Only the server's own words are read (not our advice, nor an echo of the prompt in them
    beyond the first 300 characters)."""
    text = str(getattr(exc, "detail", "") or "")[:300].lower()
    return exc.status in (400, 422, 500) and any(
        word in text for word in ("response_format", "json_schema", "json_object",
                                  "response format", "structured output"))


def endpoint_of(base_url: str | None, model: str, shape: Shape | None = None) -> str:
    """What a refusal is remembered for: the server, the model and the kind of answer (one
    schema a server cannot take does not stop the others being asked)."""
    return f"{base_url or 'https://api.openai.com/v1'}|{model}|{shape.name if shape else ''}"


def used(formats: list[dict[str, Any]], rung: int) -> str:
    """What the answer was held to: "json_schema", "json_object" or "none"."""
    return str(formats[rung]["type"]) if rung < len(formats) else NONE


def forget() -> None:
    """Tests: detect again."""
    with _lock:
        _refused.clear()
