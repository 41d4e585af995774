"""AIService: the plain-Python AI API behind `require("ai")`, usable without Lua.

Every call goes the same way: settings -> scrub -> replay or cache -> for each provider of the
fallback chain (ai/fallback.py): budget -> rate limit -> attempts with retries, one usage row
per attempt (ai/sending.py). Heavy libraries load on the first call that needs them.

Errors are scrubbed whole before they are cut (ai/errors.publish), cached answers are kept
scrubbed (`Scrubber.mask`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time

from sloth_runner import paths
from sloth_runner.ai import fallback, sending
from sloth_runner.ai.errors import publish
from sloth_runner.ai.providers import bundled
from sloth_runner.ai.ratelimit import RateLimiter
from sloth_runner.ai.settings import AISettings, load_config_file, normalise, resolve
from sloth_runner.ai.types import GENERATION_OPTIONS, AIRequest, AIResponse, CallContext
from sloth_runner.errors import AIError, ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.providers.base import Provider
    from sloth_runner.ai.structured import Shape
    from sloth_runner.store.ai_usage import AIUsageStore, SQLiteRateLog

__all__ = ["AIService", "CallContext", "notice_marker"]

BUNDLED_NOTICE = ("no AI provider configured: using the bundled SmolLM2-135M model (tiny and "
                  "offline: good for trying things and for tests, not for quality). Set "
                  "OPENAI_API_KEY or call ai.configure{...} to use a real model.")


def notice_marker(key: str) -> str:
    """The file saying on which day a once-a-day notice was last shown in this home."""
    return os.path.join(paths.home(), "notices", f"{key}.day")


class AIService:
    def __init__(self, usage: Callable[[], AIUsageStore] | None = None,
                 environ: dict[str, str] | None = None, http_client: Any = None,
                 notice: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 scrubber: Any = None, run_id: str | None = None) -> None:
        self._usage_factory = usage
        self._usage: AIUsageStore | None = None
        self.environ = environ
        self.http_client = http_client
        # Notices go to the reporter (the CLI passes one) or stderr, never stdout: with -o json
        # stdout is the JSON document.
        self.notice = notice or (lambda text: print(f"sloth-runner: {text}", file=sys.stderr))
        self.sleep = sleep
        self.configured: dict[str, Any] = {}
        self._scrubber = scrubber  # shared with log output, so placeholders agree in a run
        self.run_id = run_id  # of the run this service belongs to, for usage rows and budgets
        self._settings: dict[str | None, AISettings] = {}
        self._providers: dict[str, Provider] = {}
        self._chains: dict[str, list[AISettings]] = {}
        self.cooldowns = fallback.Cooldowns()
        self._noticed: set[str] = set()
        self._lock = threading.Lock()
        from sloth_runner.ai.replay import Replays

        self.replays = Replays()  # a retried task's identical requests: not paid twice
        self._rate_log: SQLiteRateLog | None = None
        self._inflight = 0
        self._idle = threading.Condition()
        # called with each attempt's row as it is logged (tracing makes spans of them); an
        # observer that fails never fails the call
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    # -- configuration ------------------------------------------------------------------------
    def configure(self, values: dict[str, Any]) -> None:
        checked = normalise(values, "ai.configure")  # fail now, naming the field
        if checked.get("config_file"):  # a wrong key or a bad file fails here, not later
            key = checked.get("encryption_key", self.configured.get("encryption_key"))
            load_config_file(checked["config_file"], key)
        with self._lock:
            self.configured.update(values)
            self._settings.clear()
            self._providers.clear()
            self._chains.clear()

    def settings(self, provider: str | None = None) -> AISettings:
        with self._lock:
            found = self._settings.get(provider)
            if found is None:
                values = dict(self.configured)
                if provider is not None:
                    values["provider"] = provider
                found = resolve(values, self.environ, bundled.bundled_model_path())
                self._settings[provider] = found
        if found.source == "bundled":
            self._notice_daily("bundled", BUNDLED_NOTICE)
        return found

    def provider(self, settings: AISettings) -> Provider:
        s = settings  # one provider per endpoint, model and key (a fallback may share a server)
        key = (f"{s.provider}|{s.base_url}|{s.api_key}|{s.model}|{s.timeout}|{s.structured}|"
               f"{s.model_path}|{s.device}|{s.threads}|{s.context_size}")
        with self._lock:
            found = self._providers.get(key)
            if found is None:
                if settings.provider == "local":
                    from sloth_runner.ai.providers.local import LocalProvider

                    found = LocalProvider(settings, self.notice)
                else:
                    from sloth_runner.ai.providers.openai_compat import OpenAIProvider

                    found = OpenAIProvider(settings, self.http_client)
                self._providers[key] = found
            return found

    @property
    def scrubber(self) -> Any:
        if self._scrubber is None:
            from sloth_runner.scrub import Scrubber

            self._scrubber = Scrubber()
        return self._scrubber

    def scrub(self, text: str) -> str:
        return str(self.scrubber.scrub(text)[0])

    def outgoing(self, text: str, provider: str | None = None) -> str:
        """`text` as a call to `provider` would send it: scrubbed unless scrubbing is off."""
        s = self.settings(provider)
        self.scrubber.add_known(s.api_key)
        return self.scrub(text) if s.sanitize else text

    def usage(self) -> AIUsageStore:
        if self._usage is None:
            if self._usage_factory is not None:
                self._usage = self._usage_factory()
            else:
                from sloth_runner.store import Store
                from sloth_runner.store.ai_usage import AIUsageStore

                self._usage = AIUsageStore(Store())
        return self._usage

    # -- the calls ----------------------------------------------------------------------------
    def complete(self, spec: str | dict[str, Any], ctx: CallContext | None = None,
                 on_token: Callable[[str], None] | None = None,
                 provider: str | None = None) -> dict[str, Any]:
        spec = {"prompt": spec} if isinstance(spec, str) else dict(spec)
        prompt = spec.pop("prompt", None)
        if not isinstance(prompt, str) or not prompt:
            raise ConfigError("complete.prompt", "must be a non-empty string")
        request = self._request(spec, [{"role": "user", "content": prompt}], prompt=prompt)
        return self.call(request, ctx, "complete", on_token, provider).as_dict()

    def chat(self, spec: dict[str, Any], ctx: CallContext | None = None,
             on_token: Callable[[str], None] | None = None,
             provider: str | None = None, grammar: str | None = None,
             operation: str = "chat", shape: Shape | None = None) -> dict[str, Any]:
        """`grammar` (GBNF, for internal callers such as ai.decide; not a Lua option, as
        llama.cpp aborts the process on a malformed grammar) constrains local decoding,
        `shape` (a JSON schema) a server's (ai/structured.py); with either, the result
        has the detail ai.decide reads. `operation` is what the call log says the call was
        for (decide, generate_code)."""
        spec = dict(spec)
        messages = spec.pop("messages", None)
        if not isinstance(messages, list) or not messages:
            raise ConfigError("chat.messages", "must be a list of {role=, content=} tables")
        from sloth_runner.ai.images import content_parts

        for i, m in enumerate(messages, 1):
            if not isinstance(m, dict) or m.get("content") is None or \
                    m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
                raise ConfigError(f"chat.messages[{i}]", "needs role (system, user or "
                                  "assistant) and content (a string, or text and image parts)")
        if spec.get("api") == "completions":
            raise ConfigError("chat.api", "chat messages go to the chat endpoint; the legacy "
                              "completions endpoint takes ai.complete{prompt = ..., api = "
                              "\"completions\"}")
        request = self._request(spec, [
            {"role": m["role"], "content": content_parts(m["content"], f"chat.messages[{i}]")}
            for i, m in enumerate(messages, 1)])
        request.grammar, request.shape = grammar, shape
        return self.call(request, ctx, operation, on_token, provider).as_dict(
            chat=True, detail=grammar is not None or shape is not None)

    def generate_code(self, spec: dict[str, Any], ctx: CallContext | None = None,
                      provider: str | None = None) -> dict[str, Any]:
        from sloth_runner.ai import codegen

        return codegen.generate(self, spec, ctx, provider)

    def decide(self, spec: dict[str, Any], ctx: CallContext | None = None,
               provider: str | None = None) -> dict[str, Any]:
        from sloth_runner.ai import decide

        return decide.decide(self, spec, ctx, provider)

    def request(self, kind: str, spec: Any, ctx: CallContext | None = None,
                on_token: Callable[[str], None] | None = None,
                provider: str | None = None) -> dict[str, Any]:
        """One of complete, chat, decide or generate_code, by name (decide and generate_code
        do not stream)."""
        if kind == "complete":
            return self.complete(spec, ctx, on_token, provider)
        if kind == "chat":
            return self.chat(spec, ctx, on_token, provider)
        if kind == "decide":
            return self.decide(spec, ctx, provider)
        if kind == "generate_code":
            return self.generate_code(spec, ctx, provider)
        raise ValueError(f"the AI service has no call '{kind}'")

    def analyze_patterns(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Patterns in `data` (a list of attempt records) or in the recorded history."""
        from sloth_runner.analytics import patterns
        from sloth_runner.durations import parse_duration

        window = spec.get("time_window", "30d")
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            raise ConfigError("analyze_patterns.time_window", str(exc)) from exc
        kinds = spec.get("pattern_types")
        if kinds is not None and not isinstance(kinds, list):
            raise ConfigError("analyze_patterns.pattern_types", "must be a list of names")
        data = spec.get("data")
        heals = None
        if data is None:
            from sloth_runner.store.queries import attempts_since, heals_since

            data = attempts_since(self.usage().store, time.time() - seconds)
            heals = heals_since(self.usage().store, time.time() - seconds)
        elif not isinstance(data, list):
            raise ConfigError("analyze_patterns.data", "must be a list of attempt records")
        from sloth_runner.analytics.records import RecordError

        minimum = spec.get("min_confidence", 1 - patterns.ALPHA)
        if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) \
                or not 0 < minimum < 1:
            raise ConfigError("analyze_patterns.min_confidence",
                              "must be a number between 0 and 1 (exclusive)")
        try:
            return patterns.analyze(data, kinds, alpha=1 - minimum, heals=heals)
        except RecordError as exc:
            raise ConfigError("analyze_patterns.data", f"{exc} (records need at least "
                              "`task` and `status`)") from exc
        except ValueError as exc:
            raise ConfigError("analyze_patterns.pattern_types", str(exc)) from exc

    def predict_failure(self, task: Any, options: dict[str, Any]) -> dict[str, Any]:
        """`ai.predict_failure`: the risk of a task's next run, learned from the history
        (analytics/predict.py). One model per service, loaded (or trained) on first use."""
        from sloth_runner.analytics.predict import FailurePredictor, predict_failure

        predictor = getattr(self, "_failure_predictor", None)
        if predictor is None:
            predictor = self._failure_predictor = FailurePredictor(self.usage().store)
        return predict_failure(predictor, task, options)

    def _request(self, spec: dict[str, Any], messages: list[dict[str, Any]],
                 prompt: str | None = None) -> AIRequest:
        known = set(GENERATION_OPTIONS) | {"model", "stream", "logprobs", "api", "on_token",
                                           "sanitize", "replay", "local_only"}
        for key in spec:
            if key not in known:
                raise ConfigError(key, f"unknown option (options: {', '.join(sorted(known))})")
        api = spec.get("api", "chat")
        if api not in ("chat", "completions"):
            raise ConfigError("api", "must be \"chat\" or \"completions\"")
        request = AIRequest(messages, spec.get("model"),
                            {k: spec[k] for k in GENERATION_OPTIONS if k in spec}, prompt,
                            bool(spec.get("stream")), bool(spec.get("logprobs")), api,
                            spec.get("sanitize"))
        if spec.get("replay") is not None:
            if not isinstance(spec["replay"], bool):
                raise ConfigError("replay", "must be true or false")
            request.replay = spec["replay"]
        if spec.get("local_only") is not None:
            if not isinstance(spec["local_only"], bool):
                raise ConfigError("local_only", "must be true or false")
            request.local_only = spec["local_only"]
        return request

    def call(self, request: AIRequest, ctx: CallContext | None, operation: str,
             on_token: Callable[[str], None] | None = None,
             provider_name: str | None = None) -> AIResponse:
        ctx = ctx or CallContext(self.run_id)
        if ctx.run_id is None:
            ctx.run_id = self.run_id
        chain = self.chain(provider_name, request.local_only)
        s = chain[0]
        scrub_it = s.sanitize if request.sanitize is None else request.sanitize
        if scrub_it:
            from sloth_runner.ai.images import scrub_parts

            request.messages = [{**m, "content": scrub_parts(m["content"], self.scrub)}
                                for m in request.messages]
            if request.prompt is not None:
                request.prompt = self.scrub(request.prompt)
        if on_token is not None:
            request.stream = True
        if s.logprobs:
            request.logprobs = True
        failures: list[fallback.Failure] = []
        first = None
        if not (len(chain) > 1 and self.cooldowns.skipped(chain[0].label())
                and self._asks_for_model(chain[0], request)):  # a cooling server: not asked
            try:
                first = self._hop(chain[0], request, failures)
            except AIError as exc:  # a server's model could not be found out
                publish(exc, self.scrub)
                self._leave(chain, 0, None, exc, failures)
        keys = self._keys(first, request, ctx)
        if first is not None:
            early = self._answered(first, keys, request, ctx, operation, on_token)
            if early is not None:
                return early
        with self._attempt():  # until its last row is written: see wait_idle
            for i, hop_settings in enumerate(chain):
                cooling = None if i == len(chain) - 1 else \
                    self.cooldowns.skipped(hop_settings.label())
                if cooling is not None:
                    failures.append(cooling)
                    continue
                if i == 0 and first is None:
                    continue
                hop = None
                sent = request if i == 0 else request.for_hop(hop_settings.provider)
                try:
                    hop = first if i == 0 and first is not None else \
                        self._hop(hop_settings, sent, failures)
                    response = sending.send(self, hop, sent, ctx, operation, on_token)
                except AIError as exc:
                    if hop is None:
                        publish(exc, self.scrub)  # it failed before sending (no model)
                    self._leave(chain, i, hop, exc, failures)
                    continue
                except ConfigError as exc:
                    if i == 0:
                        raise
                    raise fallback.misconfigured(hop_settings, exc, failures) from exc
                self.cooldowns.answered(hop_settings.label())
                self._remember(keys, hop, ctx, response)
                return response
        raise AssertionError("unreachable")

    def _leave(self, chain: list[AISettings], i: int, hop: sending.Hop | None, exc: AIError,
               failures: list[fallback.Failure]) -> None:
        """Provider `i` could not answer: raise (it was the last, or the error is not for
        another provider to fix), or note why and let the loop try the next."""
        if i == len(chain) - 1 or not fallback.passes_on(exc):
            raise fallback.exhausted(failures, exc)
        self.cooldowns.failed(chain[i].label(), exc)
        left, why = chain[i].label(hop.model if hop else None), fallback.reason(exc)
        failures.append(fallback.Failure(left, why))
        self.notice_once(f"fallback|{left}|{why}", f"AI: {left} failed ({why}): falling back "
                         f"to the next provider ({chain[i + 1].label()})")

    def chain(self, provider_name: str | None = None, local_only: bool = False
              ) -> list[AISettings]:
        """The providers a call may go to, in order (ai/fallback.py). `ai["local"]` is the
        local model alone: it never falls back to a server."""
        primary = self.settings(provider_name)
        key = f"chain|{provider_name}"
        with self._lock:
            found = self._chains.get(key)
        if provider_name == "local" or not primary.fallback:
            found = [primary]
        elif found is None:  # resolved once per configuration (configure() clears it)
            found = fallback.hops(primary, dict(os.environ if self.environ is None
                                                else self.environ),
                                  bundled.bundled_model_path())
            with self._lock:
                self._chains[key] = found
        for hop in found:
            self.scrubber.add_known(hop.api_key)
        return fallback.keep_local(found) if local_only else found

    def _hop(self, s: AISettings, request: AIRequest,
             failures: list[fallback.Failure]) -> sending.Hop:
        provider = self.provider(s)
        model = request.model or provider.default_model()
        if provider.name == "openai" and not request.model and not s.model:
            self._say_which_model(s, model)
        if provider.name == "local":
            request.model = None  # one GGUF is loaded; a name like "gpt-4" cannot change it
        if not failures:
            return sending.Hop(s, provider, model)
        return sending.Hop(s, provider, model, failures[-1].label, failures[-1].reason)

    @staticmethod
    def _asks_for_model(s: AISettings, request: AIRequest) -> bool:
        """Whether finding the model means asking the server (`/v1/models`)."""
        from sloth_runner.ai.providers.openai_compat import knows_model

        return s.provider == "openai" and not request.model and not knows_model(s)

    def _keys(self, first: sending.Hop | None, request: AIRequest, ctx: CallContext
              ) -> tuple[Any, str | None]:
        """(replay key, cache key) of this call, made once, from the first provider: what
        the next identical call will look up, whoever answers this one."""
        if first is None:
            return None, None
        replay = self.replays.key(ctx, first.provider.name, first.model, request) \
            if request.replay and ctx.task is not None else None
        cache = _cache_key(first.provider.name, first.model, request) \
            if first.settings.cache and request.options.get("temperature") == 0 \
            and not request.stream else None
        return replay, cache

    def _answered(self, hop: sending.Hop, keys: tuple[Any, str | None], request: AIRequest,
                  ctx: CallContext, operation: str, on_token: Callable[[str], None] | None
                  ) -> AIResponse | None:
        """An answer without asking: an earlier attempt's (replay), or the cache's."""
        replay, cache = keys
        if replay is not None:
            earlier = self.replays.answer(replay, ctx.attempt) or \
                self.replays.recorded_answer(ctx, operation, self.scrub(request.text()))
            if earlier is not None:  # a retry asks what an earlier attempt asked: not paid twice
                response = AIResponse.from_cache(earlier)
                response.cached, response.replayed, response.cost = False, True, 0.0
                if on_token is not None and response.text:
                    on_token(response.text)
                self.record(ctx, hop, operation, request, response, 1, "ok")
                return response
        if cache is not None:
            hit = self.usage().cached(cache)
            if hit is not None:
                response = AIResponse.from_cache(hit)
                self.record(ctx, hop, operation, request, response, 1, "ok")
                return response
        return None

    def _remember(self, keys: tuple[Any, str | None], hop: sending.Hop, ctx: CallContext,
                  response: AIResponse) -> None:
        """For a retry of the task (replay), whoever answered; for later runs (cache), only
        the first provider's own answers (a fallback's would stand in for it for good)."""
        replay, cache = keys
        if replay is not None:
            self.replays.remember(replay, ctx.attempt, response.to_cache())
        if cache is not None and hop.fallback_from is None:
            cached = response.to_cache()  # kept beyond the run: what the model said, scrubbed
            cached["text"] = self.scrubber.mask(response.text)
            self.usage().remember(cache, cached)

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no attempt is running (at most `timeout` s). An attempt cut by a task's
        deadline logs its row a moment after the task timed out: call this before the process
        exits so that row is not lost. True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    # -- helpers ------------------------------------------------------------------------------
    def _attempt(self) -> _InFlight:
        return _InFlight(self)

    def record(self, ctx: CallContext, hop: sending.Hop, operation: str, request: AIRequest,
               response: AIResponse | None, attempt: int, status: str,
               error: str | None = None, http_status: int | None = None,
               latency: float | None = None) -> None:
        """One attempt's row in the call log, then the observers (see __init__)."""
        s, model = hop.settings, hop.model
        prompt = text = None
        if s.log_prompts:
            prompt = self.scrub(request.text())
            text = self.scrub(response.text) if response is not None else None
        row: dict[str, Any] = {
            "run_id": ctx.run_id, "workflow": ctx.workflow, "task": ctx.task,
            "provider": s.provider, "model": response.model if response else model,
            "operation": operation, "attempt": attempt, "status": status,
            "prompt_tokens": response.prompt_tokens if response else 0,
            "completion_tokens": response.completion_tokens if response else 0,
            "latency_ms": response.latency_ms if response else latency,
            "cost_usd": (response.cost or 0.0) if response and not response.cached else 0.0,
            "priced": not (response is not None and response.cost is None),
            "replayed": bool(response and response.replayed),
            "cached": bool(response and response.cached), "http_status": http_status,
            "error": error, "prompt": prompt, "response": text,
            "fallback_from": hop.fallback_from, "fallback_reason": hop.reason,
        }
        self.usage().record(row)
        if self.observers:
            ended = time.time()
            seen = {**row, "task_attempt": ctx.attempt, "request_model": model,
                    "finish_reason": response.finish_reason if response else None,
                    "started_at": ended - (row["latency_ms"] or 0.0) / 1000, "ended_at": ended}
            for observe in list(self.observers):
                try:
                    observe(seen)
                except Exception:  # noqa: BLE001, S112 (a trace is never worth a failed call)
                    continue

    def _say_which_model(self, s: AISettings, model: str) -> None:
        """With no model set, a compatible server's own model is used: say which, once."""
        from sloth_runner.ai.providers.openai_compat import is_openai_host, served_model

        if is_openai_host(s.base_url):
            return
        served = served_model(s)[1]
        which = "the only model" if served == 1 else f"the first of {served} models"
        self.notice_once(f"model|{s.base_url}",
                          f"AI: no model set; using '{model}', {which} served at "
                          f"{s.base_url} (choose with SLOTH_AI_MODEL or "
                          "ai.configure{model = ...})")

    def notice_once(self, key: str, text: str) -> None:
        with self._lock:
            if key in self._noticed:
                return
            self._noticed.add(key)
        self.notice(text)

    def _notice_daily(self, key: str, text: str) -> None:
        """At most once a day per SLOTH_RUNNER_HOME (a marker file), and once per service."""
        with self._lock:
            if key in self._noticed:
                return
            self._noticed.add(key)
        today = time.strftime("%Y-%m-%d", time.localtime())
        marker = notice_marker(key)
        try:
            with open(marker) as fh:
                if fh.read().strip() == today:
                    return
        except OSError:
            pass
        try:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            tmp = f"{marker}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                fh.write(today)
            os.replace(tmp, marker)
        except OSError:
            pass  # a read-only home: show the notice every time rather than never
        self.notice(text)

    def limiter(self, s: AISettings) -> RateLimiter | None:
        """A limiter over the home database's rate log, so concurrent runs share the limit;
        one bucket per provider endpoint and key (the key itself is never stored)."""
        if s.requests_per_minute is None and s.tokens_per_minute is None:
            return None
        with self._lock:
            if self._rate_log is None:
                from sloth_runner.store.ai_usage import SQLiteRateLog

                self._rate_log = SQLiteRateLog(self.usage().store)
            log = self._rate_log
        who = f"{s.provider}|{s.base_url or ''}|{s.api_key or ''}|{s.model_path or ''}"
        bucket = hashlib.sha256(who.encode()).hexdigest()[:24]
        return RateLimiter(s.requests_per_minute, s.tokens_per_minute, log=log, bucket=bucket)


class _InFlight:
    """Counts running attempts, for `AIService.wait_idle`."""

    __slots__ = ("service",)

    def __init__(self, service: AIService) -> None:
        self.service = service

    def __enter__(self) -> None:
        with self.service._idle:
            self.service._inflight += 1

    def __exit__(self, *exc: object) -> None:
        with self.service._idle:
            self.service._inflight -= 1
            self.service._idle.notify_all()


def _cache_key(provider: str, model: str, request: AIRequest) -> str:
    payload = json.dumps([provider, model, request.api, request.messages, request.prompt,
                          sorted(request.options.items()), request.logprobs, request.grammar,
                          request.shape.key() if request.shape is not None else None],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
