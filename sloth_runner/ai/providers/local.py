"""A GGUF model run in-process by llama-cpp-python (`pip install 'sloth-runner[local]'`).

One loaded model per (file, settings) for the whole process, behind a lock: llama.cpp contexts
are not thread-safe. Log-probs need `logits_all=True`, which is much slower, so a second instance
is loaded only when a call asks for them. Threads default to 1 and OpenMP waits passively: with
two threads on a busy 2-core box llama.cpp's spin-waiting drops to ~2 tokens/s.
"""

from __future__ import annotations

import os
import threading

from sloth_runner.ai.providers import bundled
from sloth_runner.ai.providers.base import Provider
from sloth_runner.ai.types import AIRequest, AIResponse
from sloth_runner.errors import AIProviderError, ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.settings import AISettings

DEFAULT_MAX_TOKENS = 256
_models: dict[tuple, tuple[Any, threading.Lock]] = {}
_models_lock = threading.Lock()


def model_file(path: str) -> str:
    """`path` itself, or the one .gguf file inside the directory `path`."""
    if not os.path.isdir(path):
        return path
    found = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
    if len(found) != 1:
        what = "no .gguf file" if not found else f"{len(found)} .gguf files ({', '.join(found)})"
        raise ConfigError("ai.model_path", f"{path} is a directory with {what}: name the file")
    return os.path.join(path, found[0])


def load_model(path: str, *, logits_all: bool, device: str, threads: int, context: int,
               notice: Callable[[str], None] | None = None) -> tuple[Any, threading.Lock]:
    key = (path, logits_all, device, threads, context)
    with _models_lock:
        found = _models.get(key)
        if found is not None:
            return found
        if not os.path.exists(path):
            raise ConfigError("ai.model_path", f"no model file at {path}")
        path = model_file(path)
        bundled.verify(path)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError("ai.provider", "the local provider needs llama-cpp-python: "
                              "pip install 'sloth-runner[local]'") from None
        if device == "gpu" and notice is not None:
            import llama_cpp

            if not llama_cpp.llama_supports_gpu_offload():
                notice("device \"gpu\" was asked for, but this llama-cpp-python build has no "
                       "GPU support: running on the CPU (reinstall it with GPU support to offload)")
        try:
            llama = Llama(model_path=path, n_ctx=context, n_threads=max(1, threads),
                          n_gpu_layers=-1 if device == "gpu" else 0, logits_all=logits_all,
                          verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigError("ai.model_path", f"cannot load {path}: {exc}") from None
        found = (llama, threading.Lock())
        if not _models:
            import atexit

            atexit.register(_close_models)
        _models[key] = found
        return found


def _close_models() -> None:
    """Free models while the interpreter still works: llama-cpp-python's own finaliser, run
    during shutdown, fails noisily ("Exception ignored in Llama.__del__")."""
    with _models_lock:
        for llama, _ in _models.values():
            llama.close()
        _models.clear()


class LocalProvider(Provider):
    name = "local"
    can_stream = True
    can_logprobs = True

    def __init__(self, settings: AISettings, notice: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.path = settings.model_path or ""
        self.notice = notice

    def default_model(self) -> str:
        if self.settings.model:
            return self.settings.model
        base = os.path.basename(self.path.rstrip("/"))
        if base == bundled.MODEL_FILE:
            return bundled.MODEL_NAME
        return base[:-5] if base.endswith(".gguf") else base

    def execute(self, request: AIRequest, on_token: Callable[[str], None] | None = None
                ) -> AIResponse:
        s = self.settings
        llama, lock = load_model(self.path, logits_all=request.logprobs, device=s.device,
                                 threads=s.threads, context=s.context_size, notice=self.notice)
        model = self.default_model()
        options = {k: v for k, v in request.options.items() if v is not None}
        options.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if request.grammar:
            import llama_cpp

            options["grammar"] = llama_cpp.LlamaGrammar.from_string(request.grammar,
                                                                    verbose=False)
        stream = bool(request.stream and on_token is not None)
        with lock:
            try:
                if request.api == "completions":
                    raw = llama.create_completion(request.prompt or "", stream=stream,
                                                  logprobs=1 if request.logprobs else None,
                                                  **options)
                else:
                    if request.logprobs:
                        options.setdefault("top_logprobs", 1)  # else llama.cpp returns none
                    raw = llama.create_chat_completion(request.messages, stream=stream,
                                                       logprobs=request.logprobs or None,
                                                       **options)
                if stream:
                    return self._read_stream(raw, model, request.api, on_token)
                return self._read(raw, model, request.api)
            except ValueError as exc:  # e.g. the prompt does not fit the context window
                raise AIProviderError(self.name, model, str(exc)) from None

    def _read(self, raw: dict, model: str, api: str) -> AIResponse:
        choice = raw["choices"][0]
        text = choice["text"] if api == "completions" else (choice["message"].get("content") or "")
        usage = raw.get("usage") or {}
        return AIResponse(text, model, self.name, choice.get("finish_reason"),
                          usage.get("prompt_tokens"), usage.get("completion_tokens"),
                          _logprobs(choice))

    def _read_stream(self, raw: Any, model: str, api: str,
                     on_token: Callable[[str], None] | None) -> AIResponse:
        parts: list[str] = []
        logprobs: list[float] = []
        finish = None
        for chunk in raw:
            choice = chunk["choices"][0]
            piece = choice.get("text") if api == "completions" else \
                (choice.get("delta") or {}).get("content")
            if piece:
                parts.append(piece)
                if on_token is not None:
                    on_token(piece)
            logprobs.extend(_logprobs(choice) or [])
            finish = choice.get("finish_reason") or finish
        return AIResponse("".join(parts), model, self.name, finish, None, None, logprobs or None)


def _logprobs(choice: dict) -> list[float] | None:
    lp = choice.get("logprobs")
    if not lp:
        return None
    if isinstance(lp, dict) and lp.get("content"):
        return [t["logprob"] for t in lp["content"] if t.get("logprob") is not None]
    if isinstance(lp, dict) and lp.get("token_logprobs"):
        return [p for p in lp["token_logprobs"] if p is not None]
    return None
