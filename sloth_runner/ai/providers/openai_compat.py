"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp's server).

A compatible server is configuration (`base_url`, `model`, key), not a class. One SDK client per
(base_url, key, timeout) for the whole process, so connections are pooled: building a client per
call costs ~44 ms (measured with simonw/llm). The SDK's own retries are off: the AI client does
retries itself, so that every attempt is counted and `Retry-After` is honoured.
"""

from __future__ import annotations

import threading

from sloth_runner.ai.providers.base import Provider
from sloth_runner.ai.types import AIRequest, AIResponse
from sloth_runner.errors import AIConnectionError, AIProviderError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.settings import AISettings

DEFAULT_MODEL = "gpt-4o-mini"
_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()

ADVICE = {
    400: "the provider rejected the request; check the parameters and the model's limits",
    401: "check the API key (OPENAI_API_KEY or ai.configure{api_key=...})",
    403: "the key is not allowed to use this model or endpoint",
    404: "check the model name and base_url",
    429: "rate limited: lower ai.configure{rate_limit=...} or try again later",
}


def shared_client(base_url: str | None, api_key: str | None, timeout: float,
                  http_client: Any = None) -> Any:
    key = (base_url, api_key, timeout, id(http_client) if http_client is not None else None)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import openai

            client = openai.OpenAI(api_key=api_key or "no-key-needed", base_url=base_url,
                                   timeout=timeout, max_retries=0, http_client=http_client)
            _clients[key] = client
        return client


class OpenAIProvider(Provider):
    name = "openai"
    can_stream = True
    can_logprobs = True

    def __init__(self, settings: AISettings, http_client: Any = None) -> None:
        self.settings = settings
        self.http_client = http_client

    def default_model(self) -> str:
        return self.settings.model or DEFAULT_MODEL

    def execute(self, request: AIRequest, on_token: Callable[[str], None] | None = None
                ) -> AIResponse:
        import openai

        s = self.settings
        client = shared_client(s.base_url, s.api_key, s.timeout, self.http_client)
        model = request.model or self.default_model()
        options = {k: v for k, v in request.options.items() if v is not None}
        stream = bool(request.stream and on_token is not None)
        try:
            if request.api == "completions":
                if request.logprobs:
                    options["logprobs"] = 1
                raw = client.completions.create(model=model, prompt=request.prompt or "",
                                                stream=stream, **options)
            else:
                if request.logprobs:
                    options["logprobs"] = True
                    options.setdefault("top_logprobs", 1)  # llama.cpp returns none without it
                raw = client.chat.completions.create(model=model, messages=request.messages,
                                                     stream=stream, **options)
            if stream:
                return self._read_stream(raw, model, request.api, on_token)
            return self._read(raw, model, request.api)
        except openai.APIStatusError as exc:
            raise AIProviderError(self.name, model, _status_message(exc),
                                  status=exc.status_code,
                                  retry_after=_retry_after(exc.response)) from None
        except openai.APITimeoutError:
            raise AIConnectionError(self.name, model, f"no answer within {s.timeout:g}s from "
                                    f"{self._where()} (ai.configure{{timeout=...}})") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise AIConnectionError(self.name, model, f"cannot reach {self._where()}: "
                                    f"{type(cause).__name__}: {cause}") from None
        except (openai.APIError, ValueError, OSError) as exc:  # includes malformed bodies
            raise AIConnectionError(self.name, model, f"bad response from {self._where()}: "
                                    f"{type(exc).__name__}: {exc}") from None

    def _where(self) -> str:
        return self.settings.base_url or "api.openai.com"

    def _read(self, raw: Any, model: str, api: str) -> AIResponse:
        choices = getattr(raw, "choices", None)
        if not choices:
            raise AIConnectionError(self.name, model,
                                    f"malformed response from {self._where()}: no choices")
        choice = choices[0]
        logprobs = None
        if api == "completions":
            text = choice.text or ""
            if choice.logprobs is not None and choice.logprobs.token_logprobs:
                logprobs = [p for p in choice.logprobs.token_logprobs if p is not None]
        else:
            message = choice.message
            text = (message.content if message is not None else None) or ""
            content = getattr(getattr(choice, "logprobs", None), "content", None)
            if content:
                logprobs = [t.logprob for t in content]
        usage = getattr(raw, "usage", None)
        return AIResponse(text, getattr(raw, "model", None) or model, self.name,
                          choice.finish_reason,
                          getattr(usage, "prompt_tokens", None),
                          getattr(usage, "completion_tokens", None), logprobs)

    def _read_stream(self, raw: Any, model: str, api: str,
                     on_token: Callable[[str], None] | None) -> AIResponse:
        parts: list[str] = []
        logprobs: list[float] = []
        finish = None
        usage = None
        served_model = model
        try:
            for chunk in raw:
                served_model = getattr(chunk, "model", None) or served_model
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if api == "completions":
                    piece = choice.text or ""
                else:
                    piece = (choice.delta.content if choice.delta is not None else None) or ""
                    content = getattr(getattr(choice, "logprobs", None), "content", None)
                    if content:
                        logprobs.extend(t.logprob for t in content)
                if piece:
                    parts.append(piece)
                    if on_token is not None:
                        on_token(piece)
                if choice.finish_reason:
                    finish = choice.finish_reason
        except Exception as exc:
            error = AIConnectionError(self.name, model, f"stream from {self._where()} broke off "
                                      f"after {len(parts)} chunks: {type(exc).__name__}: {exc}")
            error.partial = bool(parts)  # type: ignore[attr-defined]
            raise error from None
        if finish is None:
            error = AIConnectionError(self.name, model, f"stream from {self._where()} ended "
                                      f"before the model finished ({len(parts)} chunks)")
            error.partial = bool(parts)  # type: ignore[attr-defined]
            raise error
        return AIResponse("".join(parts), served_model, self.name, finish,
                          getattr(usage, "prompt_tokens", None),
                          getattr(usage, "completion_tokens", None), logprobs or None)


def _status_message(exc: Any) -> str:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else None
    detail = ""
    if body:
        err = body.get("error", body)
        detail = err.get("message", "") if isinstance(err, dict) else str(err)
    detail = detail or str(getattr(exc, "message", "") or "")
    advice = ADVICE.get(status) or ("the provider had a server error" if status >= 500 else "")
    text = detail.strip()[:300]
    return f"{text}; {advice}" if text and advice else (text or advice or "error")


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import time
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
