"""A GGUF model run in-process by llama-cpp-python (`pip install 'sloth-runner[local]'`).

One loaded model per (file, settings) for the whole process, behind a lock: llama.cpp contexts
are not thread-safe. Log-probs need `logits_all=True`, which is much slower, so a second instance
is loaded only when a call asks for them. Threads default to 1 and OpenMP waits passively: with
two threads on a busy 2-core box llama.cpp's spin-waiting drops to ~2 tokens/s.

Every call is decoded as a stream, even when the caller wants the whole answer at once: between
two tokens is the only place a generation can be stopped, so that is where an attempt's deadline
is checked (llama.cpp calls Python hooks such as logits processors through ctypes, which
swallows their exceptions). Usage is still exact: the prompt's tokens are the context's length
when the first token arrives, and each chunk is one token.
"""

from __future__ import annotations

import os
import threading
import time

from sloth_runner.ai.errors import AITimeout
from sloth_runner.ai.providers import bundled
from sloth_runner.ai.providers.base import Provider
from sloth_runner.ai.types import AIRequest, AIResponse
from sloth_runner.errors import AIError, AIProviderError, ConfigError

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
        except ImportError as exc:
            raise ConfigError("ai.provider", "the local provider needs llama-cpp-python: "
                              "pip install 'sloth-runner[local]'") from exc
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
            raise ConfigError("ai.model_path", f"cannot load {path}: {exc}") from exc
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

    def execute(self, request: AIRequest, on_token: Callable[[str], None] | None = None,
                deadline: float | None = None) -> AIResponse:
        from sloth_runner.ai.images import has_images

        s = self.settings
        if has_images(request.messages):  # before loading anything
            raise AIProviderError(self.name, self.default_model(), "this model reads text "
                                  "only: a message with an image needs a provider whose model "
                                  "takes images (an OpenAI-compatible server with a vision "
                                  "model)")
        llama, lock = load_model(self.path, logits_all=request.logprobs, device=s.device,
                                 threads=s.threads, context=s.context_size, notice=self.notice)
        model = self.default_model()
        options = {k: v for k, v in request.options.items() if v is not None}
        options.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if request.grammar:
            import llama_cpp

            options["grammar"] = llama_cpp.LlamaGrammar.from_string(request.grammar,
                                                                    verbose=False)
        show = on_token if request.stream else None
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not lock.acquire(timeout=wait):  # another call is using the model
            raise AITimeout(self.name, model, self._timed_out("waiting for the model"))
        try:
            if request.api == "completions":
                raw = llama.create_completion(request.prompt or "", stream=True,
                                              logprobs=1 if request.logprobs else None,
                                              **options)
            else:
                if request.logprobs:
                    options.setdefault("top_logprobs", 1)  # else llama.cpp returns none
                raw = llama.create_chat_completion(request.messages, stream=True,
                                                   logprobs=request.logprobs or None,
                                                   **options)
            return self._read_stream(llama, raw, model, request.api, show, deadline)
        except AIError:
            raise
        except (ValueError, RuntimeError) as exc:  # e.g. the prompt does not fit the context
            raise AIProviderError(self.name, model, str(exc)) from exc
        finally:
            lock.release()

    def _timed_out(self, what: str = "") -> str:
        return (f"no answer within {self.settings.timeout:g}s from the local model"
                + (f" ({what})" if what else "") + " (ai.configure{timeout = ...})")

    def _read_stream(self, llama: Any, raw: Any, model: str, api: str,
                     on_token: Callable[[str], None] | None,
                     deadline: float | None) -> AIResponse:
        parts: list[str] = []
        logprobs: list[float] = []
        finish = None
        prompt_tokens = None
        tokens = 0
        try:
            for chunk in raw:
                if prompt_tokens is None:
                    prompt_tokens = int(llama.n_tokens)  # the prompt, evaluated
                if deadline is not None and time.monotonic() >= deadline:
                    raise AITimeout(self.name, model, self._timed_out(f"stopped after {tokens} "
                                    "tokens"), partial=bool(parts and on_token is not None))
                choice = chunk["choices"][0]
                piece = choice.get("text") if api == "completions" else \
                    (choice.get("delta") or {}).get("content")
                if piece:
                    tokens += 1
                    parts.append(piece)
                    if on_token is not None:
                        on_token(piece)
                logprobs.extend(_logprobs(choice) or [])
                finish = choice.get("finish_reason") or finish
        finally:
            close = getattr(raw, "close", None)
            if close is not None:
                close()  # stops the generation when the loop was left early
        return AIResponse("".join(parts), model, self.name, finish, prompt_tokens, tokens,
                          logprobs or None)


def _logprobs(choice: dict) -> list[float] | None:
    lp = choice.get("logprobs")
    if not lp:
        return None
    if isinstance(lp, dict) and lp.get("content"):
        return [t["logprob"] for t in lp["content"] if t.get("logprob") is not None]
    if isinstance(lp, dict) and lp.get("token_logprobs"):
        return [p for p in lp["token_logprobs"] if p is not None]
    return None
