"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp's server).

A compatible server is configuration (`base_url`, `model`, key), not a class. One SDK client per
(base_url, key, timeout) for the whole process, over one pooled HTTP client, so connections are
reused: building a client per call costs ~44 ms (measured with simonw/llm). The SDK's own retries
are off: the AI client does retries itself, so that every attempt is counted and `Retry-After`
is honoured. Each attempt is bounded as a whole by its deadline (providers/deadline.py).

Foreign exceptions (the SDK's, httpx's) become the error tree in one place, `_translate`, with
the cause kept. The provider's own words are not cut here: the client scrubs them whole first.
"""

from __future__ import annotations

import threading
import time

from sloth_runner.ai.errors import AIStatusError, AIStreamBroken, AITimeout
from sloth_runner.ai.providers.base import Provider
from sloth_runner.ai.types import AIRequest, AIResponse
from sloth_runner.errors import AIConnectionError, AIError

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
    401: "check the API key (OPENAI_API_KEY or ai.configure{api_key = ...})",
    403: "the key is not allowed to use this model or endpoint",
    404: "check the model name and base_url",
    429: "rate limited: lower ai.configure{rate_limit = ...} or try again later",
}


def shared_client(base_url: str | None, api_key: str | None, timeout: float,
                  http_client: Any = None) -> Any:
    key = (base_url, api_key, timeout, id(http_client) if http_client is not None else None)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import openai

            from sloth_runner.ai.providers import deadline

            client = openai.OpenAI(api_key=api_key or "no-key-needed", base_url=base_url,
                                   timeout=timeout, max_retries=0,
                                   http_client=http_client or deadline.http_client())
            _clients[key] = client
        return client


_served: dict[str, tuple[str, int]] = {}


def is_openai_host(base_url: str | None) -> bool:
    """OpenAI itself (no base_url, or api.openai.com): where OpenAI model names mean anything."""
    if not base_url:
        return True
    from urllib.parse import urlsplit

    return (urlsplit(base_url).hostname or "").endswith("openai.com")


def served_model(settings: AISettings, http_client: Any = None) -> tuple[str, int]:
    """(the model a compatible server serves — its only one, or its first —, how many it
    lists), from its `/v1/models`, asked once per server for the process. Raises AIError when
    it cannot say: then the user must name the model."""
    url = str(settings.base_url)
    with _clients_lock:
        known = _served.get(url)
    if known is not None:
        return known
    host = _host(url)
    try:
        client = shared_client(settings.base_url, settings.api_key,
                               min(settings.timeout, 10.0), http_client)
        models = [m.id for m in client.models.list().data if getattr(m, "id", None)]
    except Exception as exc:  # noqa: BLE001 (any failure: the same advice)
        import openai

        # unreachable (a fallback skips it for a while) or refusing (a wrong URL or key)
        kind = AIConnectionError if isinstance(exc, openai.APIConnectionError) else AIError
        raise kind("openai", None, f"no model is set and {host} did not list its models "
                   f"({exc.__class__.__name__}): set SLOTH_AI_MODEL or "
                   "ai.configure{model = ...}") from exc
    if not models:
        raise AIError("openai", None, f"no model is set and {host} lists none: set "
                      "SLOTH_AI_MODEL or ai.configure{model = ...}")
    found = (models[0], len(models))
    with _clients_lock:
        _served[url] = found
    return found


def knows_model(settings: AISettings) -> bool:
    """Whether the model is known without asking the server: set, on OpenAI itself (its
    default), or already listed by the server in this process."""
    if settings.model or is_openai_host(settings.base_url):
        return True
    with _clients_lock:
        return str(settings.base_url) in _served


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc or url


class _Progress:
    """How far an attempt got, for the error that ends it."""

    __slots__ = ("chunks", "delivered")

    def __init__(self) -> None:
        self.chunks = 0
        self.delivered = False  # text reached the caller (on_token)


class OpenAIProvider(Provider):
    name = "openai"
    can_stream = True
    can_logprobs = True

    def __init__(self, settings: AISettings, http_client: Any = None) -> None:
        self.settings = settings
        self.http_client = http_client

    def default_model(self) -> str:
        """The configured model; with none, on OpenAI itself its default, and on any other
        server the model it serves (asked once per server: `served_model`)."""
        if self.settings.model:
            return self.settings.model
        if not is_openai_host(self.settings.base_url):
            return served_model(self.settings, self.http_client)[0]
        return DEFAULT_MODEL

    def execute(self, request: AIRequest, on_token: Callable[[str], None] | None = None,
                deadline: float | None = None) -> AIResponse:
        """One attempt. A request with a shape is sent the best response_format this endpoint
        has not refused (ai/structured.py); a refusal moves down the ladder within the attempt."""
        from sloth_runner.ai import structured

        s = self.settings
        model = request.model or self.default_model()
        formats = request.shape.formats(s.structured) \
            if request.shape is not None and request.api == "chat" else []
        endpoint = structured.endpoint_of(s.base_url, model, request.shape)
        # "json_schema" asks for it every time, whatever an "auto" call found out before
        rung = structured.first_rung(endpoint) if formats and s.structured == "auto" else 0
        while True:
            try:
                response = self._send(request, model, on_token, deadline,
                                      formats[rung] if rung < len(formats) else None)
            except AIStatusError as exc:
                if rung >= len(formats) or not structured.is_refusal(exc):
                    raise
                if s.structured == "json_schema":
                    raise AIStatusError(self.name, model, exc.detail, "this server does not "
                                        "take response_format json_schema: use "
                                        "ai.configure{structured = \"auto\"} to fall back",
                                        exc.status or 400) from exc
                structured.refused(endpoint, rung)
                rung += 1
                continue
            response.structured = structured.used(formats, rung) if formats else None
            return response

    def _send(self, request: AIRequest, model: str, on_token: Callable[[str], None] | None,
              deadline: float | None, response_format: dict[str, Any] | None) -> AIResponse:
        from sloth_runner.ai.providers.deadline import attempt_deadline

        s = self.settings
        progress = _Progress()
        if deadline is not None and deadline <= time.monotonic():
            raise AITimeout(self.name, model, self._timed_out())
        try:
            client = shared_client(s.base_url, s.api_key, s.timeout, self.http_client)
            options = {k: v for k, v in request.options.items() if v is not None}
            if response_format is not None:
                options["response_format"] = response_format
            stream = bool(request.stream and on_token is not None)
            with attempt_deadline(deadline):
                if request.api == "completions":
                    if request.logprobs:
                        options["logprobs"] = 1
                    raw = client.completions.create(model=model, prompt=request.prompt or "",
                                                    stream=stream, **options)
                else:
                    if request.logprobs:
                        options["logprobs"] = True
                        options.setdefault("top_logprobs", 1)  # llama.cpp sends none without
                    from sloth_runner.ai.images import wire

                    raw = client.chat.completions.create(model=model,
                                                         messages=wire(request.messages),
                                                         stream=stream, **options)
                if stream:
                    return self._read_stream(raw, model, request.api, on_token, progress)
                return self._read(raw, model, request.api)
        except AIError:
            raise
        except Exception as exc:
            raise self._translate(exc, model, progress, deadline) from exc

    def _translate(self, exc: Exception, model: str, progress: _Progress,
                   deadline: float | None) -> AIError:
        """The one place where the SDK's and httpx's exceptions become ours."""
        import openai

        where = self._where()
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            advice = ADVICE.get(status) or ("the provider had a server error" if status >= 500
                                            else "")
            return AIStatusError(self.name, model, _detail(exc), advice, status,
                                 _retry_after(exc.response))
        timed_out = isinstance(exc, openai.APITimeoutError) or (
            deadline is not None and time.monotonic() >= deadline - 0.005)
        if timed_out:  # a stream cut by the deadline raises httpx's own ReadTimeout
            return AITimeout(self.name, model, self._timed_out(progress.chunks),
                             partial=progress.delivered)
        if progress.chunks:
            return AIStreamBroken(self.name, model, f"stream from {where} broke off after "
                                  f"{progress.chunks} chunks: {type(exc).__name__}: {exc}",
                                  partial=progress.delivered)
        if isinstance(exc, TypeError):  # the SDK refused an option before sending: not retried
            return AIError(self.name, model, f"the request was not sent: {exc}")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return AIConnectionError(self.name, model, f"cannot reach {where}: "
                                     f"{type(cause).__name__}: {cause}")
        return AIConnectionError(self.name, model, f"bad response from {where}: "  # malformed
                                 f"{type(exc).__name__}: {exc}")

    def _timed_out(self, chunks: int = 0) -> str:
        got = f" (the answer stopped after {chunks} chunks)" if chunks else ""
        return (f"no answer within {self.settings.timeout:g}s from {self._where()}{got} "
                "(ai.configure{timeout = ...})")

    def _where(self) -> str:
        return self.settings.base_url or "api.openai.com"

    def _read(self, raw: Any, model: str, api: str) -> AIResponse:
        choices = getattr(raw, "choices", None)
        if not choices:
            raise AIConnectionError(self.name, model,
                                    f"malformed response from {self._where()}: no choices")
        choice = choices[0]
        logprobs = None
        tokens: list[Any] = []
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
                tokens = [getattr(t, "token", None) for t in content]
        usage = getattr(raw, "usage", None)
        response = AIResponse(text, getattr(raw, "model", None) or model, self.name,
                              choice.finish_reason, getattr(usage, "prompt_tokens", None),
                              getattr(usage, "completion_tokens", None), logprobs)
        if logprobs and all(isinstance(t, str) for t in tokens):
            response.tokens = [str(t) for t in tokens]
        return response

    def _read_stream(self, raw: Any, model: str, api: str,
                     on_token: Callable[[str], None] | None,
                     progress: _Progress) -> AIResponse:
        parts: list[str] = []
        logprobs: list[float] = []
        finish = None
        usage = None
        served_model = model
        for chunk in raw:
            progress.chunks += 1
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
                    progress.delivered = True
                    on_token(piece)
            if choice.finish_reason:
                finish = choice.finish_reason
        if finish is None:
            raise AIStreamBroken(self.name, model, f"stream from {self._where()} ended "
                                 f"before the model finished ({progress.chunks} chunks)",
                                 partial=progress.delivered)
        return AIResponse("".join(parts), served_model, self.name, finish,
                          getattr(usage, "prompt_tokens", None),
                          getattr(usage, "completion_tokens", None), logprobs or None)


def _detail(exc: Any) -> str:
    """The provider's own words, whole: the client scrubs them before it cuts them."""
    body = exc.body if isinstance(exc.body, dict) else None
    detail = ""
    if body:
        err = body.get("error", body)
        detail = err.get("message", "") if isinstance(err, dict) else str(err)
    return str(detail or getattr(exc, "message", "") or "")


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
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
