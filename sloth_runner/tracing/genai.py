"""One logged AI call as a span's name and attributes, per the OpenTelemetry semantic
conventions for generative AI client spans (plain data: no OpenTelemetry import here).

What the AI service logs (ai/client.py, `AIService.observers`) maps as follows:

- `gen_ai.system` and its newer name `gen_ai.provider.name`: `openai` for the OpenAI-compatible
  provider (whatever server it talks to: the conventions name the API, and a compatible server
  cannot be told apart), `llama_cpp` for the local GGUF model run by llama-cpp-python (not a
  well-known value of the conventions, which allow custom ones).
- `gen_ai.operation.name`: `text_completion` for `complete` (the completions API); `chat` for
  everything else (chat, decide, generate_code, ai_new: all are chat requests). Our own name
  stays in `sloth.ai.operation`.
- `gen_ai.request.model`: the model asked; `gen_ai.response.model`: the one the server said
  answered (they differ when a server maps a name to a snapshot).
- Tokens, finish reason, `error.type` (the HTTP status, `timeout`, or `_OTHER`), and ours:
  `sloth.ai.cost_usd`, `sloth.ai.priced`, `sloth.ai.cached`, `sloth.ai.replayed`,
  `sloth.ai.attempt` (the call's own retry number), `sloth.ai.fallback_from` and
  `sloth.ai.fallback_reason` (a call answered by a fallback provider: which one it stood in
  for, and why).

Prompt and response texts are recorded only when
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, and then only as the call log keeps
them: scrubbed, and only while `ai.configure{log_prompts = ...}` is on (the default). They go
to `gen_ai.input.messages` / `gen_ai.output.messages` as one text part each (the messages of a
request are one text there, "role: content" a line).
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CAPTURE_VAR = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
SYSTEMS = {"openai": "openai", "local": "llama_cpp"}
OPERATIONS = {"complete": "text_completion"}  # every other call is a chat request


def capture_content(environ: Mapping[str, str]) -> bool:
    """The standard switch for recording prompts and responses (off unless "true")."""
    return environ.get(CAPTURE_VAR, "").strip().lower() == "true"


def ai_span(row: Mapping[str, Any], capture: bool = False) -> tuple[str, dict[str, Any]]:
    """(span name, attributes) of one AI call attempt, from its call-log row."""
    operation = OPERATIONS.get(row.get("operation") or "", "chat")
    provider = row.get("provider") or ""
    system = SYSTEMS.get(provider, provider or "_OTHER")
    model = row.get("request_model") or row.get("model") or ""
    ok = row.get("status") == "ok"
    attrs: dict[str, Any] = {
        "gen_ai.system": system, "gen_ai.provider.name": system,
        "gen_ai.operation.name": operation, "sloth.ai.operation": row.get("operation"),
        "sloth.ai.attempt": row.get("attempt"), "sloth.ai.status": row.get("status"),
        "sloth.ai.cached": bool(row.get("cached")), "sloth.ai.replayed": bool(row.get("replayed")),
        "sloth.ai.priced": bool(row.get("priced")),
        "sloth.ai.fallback_from": row.get("fallback_from"),
        "sloth.ai.fallback_reason": row.get("fallback_reason"),
    }
    if model:
        attrs["gen_ai.request.model"] = model
    if ok:
        if row.get("model"):
            attrs["gen_ai.response.model"] = row["model"]
        attrs["gen_ai.usage.input_tokens"] = int(row.get("prompt_tokens") or 0)
        attrs["gen_ai.usage.output_tokens"] = int(row.get("completion_tokens") or 0)
        attrs["sloth.ai.cost_usd"] = float(row.get("cost_usd") or 0.0)
        if row.get("finish_reason"):
            attrs["gen_ai.response.finish_reasons"] = [str(row["finish_reason"])]
    else:
        status = row.get("http_status")
        attrs["error.type"] = str(status) if status else \
            "timeout" if row.get("status") == "timeout" else "_OTHER"
        if status:
            attrs["http.response.status_code"] = int(status)
    if capture:
        if row.get("prompt"):
            attrs["gen_ai.input.messages"] = _messages("user", row["prompt"])
        if row.get("response"):
            attrs["gen_ai.output.messages"] = _messages("assistant", row["response"],
                                                        row.get("finish_reason"))
    name = f"{operation} {model}" if model else operation
    return name, {k: v for k, v in attrs.items() if v is not None}


def _messages(role: str, text: str, finish_reason: str | None = None) -> str:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)
