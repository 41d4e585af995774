"""AIService: the plain-Python AI API behind `require("ai")`, usable without Lua.

Every call goes the same way: settings -> scrub -> cache -> budget -> rate limit -> provider,
with retries (429, 5xx, timeouts, dropped connections; exponential backoff with jitter, honouring
Retry-After) and one usage row per attempt. Heavy libraries load on the first call that needs them.

Each attempt is bounded as a whole by `timeout` and by the caller's deadline (`CallContext`), and
is logged however it ends, a cut one with status "timeout". Errors are scrubbed whole before they
are cut (ai/errors.publish), cached answers are kept scrubbed (`Scrubber.mask`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import threading
import time

from sloth_runner import paths
from sloth_runner.ai import pricing, tokens
from sloth_runner.ai.errors import AIDeadline, AITimeout, publish
from sloth_runner.ai.money import usd
from sloth_runner.ai.providers import bundled
from sloth_runner.ai.ratelimit import RateLimiter, RateLimitTooSmall
from sloth_runner.ai.settings import AISettings, load_config_file, normalise, resolve
from sloth_runner.ai.types import GENERATION_OPTIONS, AIRequest, AIResponse, CallContext
from sloth_runner.errors import AIBudgetExceeded, AIError, ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.ai.providers.base import Provider
    from sloth_runner.store.ai_usage import AIUsageStore, SQLiteRateLog

__all__ = ["AIService", "CallContext", "notice_marker"]

MAX_RETRY_WAIT_S = 60.0
DEFAULT_MAX_TOKENS_ESTIMATE = 512
# An attempt cut at the caller's deadline is logged at once, but its error is handed back only
# this long after the deadline: the engine times the task out at the deadline itself, and its
# TIMEOUT must come first (else the task would end as an AI error, racing the timer).
DEADLINE_GRACE_S = 0.25
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
        key = f"{settings.provider}|{settings.base_url}|{settings.model_path}|{settings.device}"
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
             operation: str = "chat") -> dict[str, Any]:
        """`grammar` (GBNF, for internal callers such as ai.decide; not a Lua option, as
        llama.cpp aborts the process on a malformed grammar) constrains local decoding;
        `operation` is what the call log says the call was for (decide, generate_code)."""
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
        request = self._request(spec, [
            {"role": m["role"], "content": content_parts(m["content"], f"chat.messages[{i}]")}
            for i, m in enumerate(messages, 1)])
        request.grammar = grammar
        return self.call(request, ctx, operation, on_token, provider).as_dict(chat=True)

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
                                           "sanitize", "replay"}
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
        return request

    def call(self, request: AIRequest, ctx: CallContext | None, operation: str,
             on_token: Callable[[str], None] | None = None,
             provider_name: str | None = None) -> AIResponse:
        ctx = ctx or CallContext(self.run_id)
        if ctx.run_id is None:
            ctx.run_id = self.run_id
        s = self.settings(provider_name)
        provider = self.provider(s)
        model = request.model or provider.default_model()
        if provider.name == "openai" and not request.model and not s.model:
            self._say_which_model(s, model)
        if provider.name == "local":
            request.model = None  # one GGUF is loaded; a name like "gpt-4" cannot change it
        scrub_it = s.sanitize if request.sanitize is None else request.sanitize
        self.scrubber.add_known(s.api_key)
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

        replay_key = None
        if request.replay and ctx.task is not None:
            replay_key = self.replays.key(ctx, provider.name, model, request)
            earlier = self.replays.answer(replay_key, ctx.attempt) or \
                self.replays.recorded_answer(ctx, operation, self.scrub(request.text()))
            if earlier is not None:  # a retry asks what an earlier attempt asked: not paid twice
                response = AIResponse.from_cache(earlier)
                response.cached, response.replayed, response.cost = False, True, 0.0
                if on_token is not None and response.text:
                    on_token(response.text)
                self._record(ctx, s, operation, model, request, response, 1, "ok")
                return response
        cache_key = None
        if s.cache and request.options.get("temperature") == 0 and not request.stream:
            cache_key = _cache_key(provider.name, model, request)
            hit = self.usage().cached(cache_key)
            if hit is not None:
                response = AIResponse.from_cache(hit)
                self._record(ctx, s, operation, model, request, response, 1, "ok")
                return response

        price = pricing.price_for(provider.name, model, s.prices)
        estimate = tokens.estimate(request.text())
        expected_out = int(request.options.get("max_tokens") or DEFAULT_MAX_TOKENS_ESTIMATE)
        self._check_budget(ctx, s, model, pricing.cost(price, estimate, expected_out))
        limiter = self._limiter(s)
        with self._attempt():  # until its last row is written: see wait_idle
            attempts = 1 + max(0, s.retry_attempts)
            timeouts = 0
            for attempt in range(1, attempts + 1):
                grant = None
                expired = ctx.deadline is not None and time.monotonic() >= ctx.deadline
                if limiter is not None and not expired:
                    try:
                        left = None if ctx.deadline is None else ctx.deadline - time.monotonic()
                        grant = limiter.acquire(estimate + expected_out, timeout=left,
                                                max_duration=s.timeout)
                    except RateLimitTooSmall as exc:
                        raise ConfigError("ai.rate_limit.tokens_per_minute", str(exc)) from exc
                    except TimeoutError as exc:
                        raise AIError(provider.name, model, "the rate limit would delay this call "
                                      "past the task's timeout") from exc
                started = time.monotonic()
                deadline = started + s.timeout
                if ctx.deadline is not None:
                    deadline = min(deadline, ctx.deadline)
                try:
                    if expired:
                        raise AIDeadline(provider.name, model, "the task's deadline had passed: "
                                         "not sent")
                    response = provider.execute(request, on_token, deadline)
                except AIError as caught:
                    latency = (time.monotonic() - started) * 1000
                    if limiter is not None and grant is not None:
                        limiter.settle(grant, 0)
                    failure = _deadline_error(caught, ctx, latency)
                    publish(failure, self.scrub)
                    self._record(ctx, s, operation, model, request, None, attempt,
                                 "timeout" if isinstance(failure, AITimeout) else "error",
                                 error=str(failure), http_status=failure.status, latency=latency)
                    if isinstance(failure, AIDeadline) and ctx.deadline is not None:
                        _hold_until(ctx.deadline + DEADLINE_GRACE_S)
                    timeouts += isinstance(failure, AITimeout)
                    gave_up_on_time = isinstance(failure, AITimeout) and \
                        timeouts > s.timeout_retries and failure.retryable
                    if not failure.retryable or attempt == attempts or gave_up_on_time:
                        if attempt > 1 and failure.retryable:
                            failure.args = (f"{failure} (gave up after {attempt} attempts)",)
                        if isinstance(failure, AITimeout) and ctx.deadline is None:
                            failure.args = (f"{failure}; the server may still be busy with the "
                                            "abandoned request (a single-request server such "
                                            "as llama.cpp's stays busy until it finishes): "
                                            "raise ai.configure{timeout = ...} or "
                                            "SLOTH_AI_TIMEOUT",)
                        raise failure  # noqa: B904 (it is `caught`, or its cause is)
                    self._wait_before_retry(failure, attempt, ctx)
                    continue
                response.latency_ms = (time.monotonic() - started) * 1000
                if response.prompt_tokens is None or response.completion_tokens is None:
                    response.usage_estimated = True
                    response.prompt_tokens = response.prompt_tokens or estimate
                    response.completion_tokens = (response.completion_tokens
                                                  or tokens.estimate(response.text))
                if price is None:
                    response.cost = None
                    self._notice_once(f"price|{model}", unknown_price_notice(model))
                else:
                    response.cost = pricing.cost(price, response.prompt_tokens,
                                                 response.completion_tokens)
                if limiter is not None and grant is not None:
                    limiter.settle(grant, response.prompt_tokens + response.completion_tokens)
                self._record(ctx, s, operation, model, request, response, attempt, "ok")
                if replay_key is not None:
                    self.replays.remember(replay_key, ctx.attempt, response.to_cache())
                if cache_key is not None:  # kept beyond the run: what the model said, scrubbed
                    cached = response.to_cache()
                    cached["text"] = self.scrubber.mask(response.text)
                    self.usage().remember(cache_key, cached)
                return response
            raise AssertionError("unreachable")

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no attempt is running (at most `timeout` s). An attempt cut by a task's
        deadline logs its row a moment after the task timed out: call this before the process
        exits so that row is not lost. True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    # -- helpers ------------------------------------------------------------------------------
    def _attempt(self) -> _InFlight:
        return _InFlight(self)

    def _wait_before_retry(self, exc: AIError, attempt: int, ctx: CallContext) -> None:
        nominal = min(MAX_RETRY_WAIT_S, 0.5 * 2 ** (attempt - 1))
        delay = nominal / 2 + random.uniform(0, nominal / 2)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_WAIT_S))
        if ctx.deadline is not None and time.monotonic() + delay >= ctx.deadline:
            raise exc
        self.sleep(delay)

    def _check_budget(self, ctx: CallContext, s: AISettings, model: str, expected: float
                      ) -> None:
        if s.budget_daily_usd is None and s.budget_run_usd is None:
            return
        usage = self.usage()
        problems = []
        if s.budget_daily_usd is not None:
            spent = usage.spent()
            if spent + expected > s.budget_daily_usd:
                problems.append(f"today's AI spend {usd(spent)} + this call's estimated "
                                f"{usd(expected)} would pass budget.daily_usd "
                                f"{usd(s.budget_daily_usd)}")
        if s.budget_run_usd is not None and ctx.run_id is not None:
            spent = usage.spent(run_id=ctx.run_id)
            if spent + expected > s.budget_run_usd:
                problems.append(f"this run's AI spend {usd(spent)} + this call's estimated "
                                f"{usd(expected)} would pass budget.run_usd "
                                f"{usd(s.budget_run_usd)}")
        if not problems:
            return
        if s.budget_action == "stop":
            raise AIBudgetExceeded(s.provider, model, "; ".join(problems) + " (not sent)")
        self._notice_once(f"budget|{ctx.run_id}", "AI budget: " + "; ".join(problems))

    def _record(self, ctx: CallContext, s: AISettings, operation: str, model: str,
                request: AIRequest, response: AIResponse | None, attempt: int, status: str,
                error: str | None = None, http_status: int | None = None,
                latency: float | None = None) -> None:
        prompt = text = None
        if s.log_prompts:
            prompt = self.scrub(request.text())
            text = self.scrub(response.text) if response is not None else None
        row = {
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
        }
        self.usage().record(row)
        if self.observers:
            ended = time.time()
            seen = {**row, "task_attempt": ctx.attempt,
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
        self._notice_once(f"model|{s.base_url}",
                          f"AI: no model set; using '{model}', {which} served at "
                          f"{s.base_url} (choose with SLOTH_AI_MODEL or "
                          "ai.configure{model = ...})")

    def _notice_once(self, key: str, text: str) -> None:
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

    def _limiter(self, s: AISettings) -> RateLimiter | None:
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


def unknown_price_notice(model: str) -> str:
    return (f"AI: no price is known for model '{model}': its cost is recorded as unknown. "
            f"Give one with ai.configure{{prices = {{[\"{model}\"] = {{input = 0.5, "
            "output = 1.5}}}} (USD per 1M tokens)")


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


def _hold_until(moment: float) -> None:
    left = moment - time.monotonic()
    if left > 0:
        threading.Event().wait(left)


def _deadline_error(exc: AIError, ctx: CallContext, latency_ms: float) -> AIError:
    """An attempt timed out at the caller's deadline (a task's timeout): say so, and do not
    retry. The provider only knows that its attempt's time ran out."""
    if isinstance(exc, AIDeadline) or not isinstance(exc, AITimeout) or ctx.deadline is None \
            or time.monotonic() < ctx.deadline - 0.005:
        return exc
    cut = AIDeadline(exc.provider, exc.model, f"the task's deadline passed "
                     f"{latency_ms / 1000:.1f}s into the attempt", partial=exc.partial)
    cut.__cause__ = exc
    return cut


def _cache_key(provider: str, model: str, request: AIRequest) -> str:
    payload = json.dumps([provider, model, request.api, request.messages, request.prompt,
                          sorted(request.options.items()), request.logprobs, request.grammar],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
