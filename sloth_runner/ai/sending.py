"""One provider's go at a call: budget, rate limit, attempts with retries, one log row each.

Retried: 429, 5xx, timeouts, dropped connections, with exponential backoff and jitter,
honouring Retry-After. A timed-out request is retried at most `timeout_retries` times (the
server may still be busy with it). Each attempt is bounded as a whole by `timeout` and by the
caller's deadline (`CallContext`), and logged however it ends, a cut one with status "timeout".
What happens when this provider gives up (the next one in the fallback chain) is the client's.
"""

from __future__ import annotations

import random
import threading
import time

from sloth_runner.ai import pricing, tokens
from sloth_runner.ai.errors import AIDeadline, AITimeout, publish
from sloth_runner.ai.money import usd
from sloth_runner.ai.ratelimit import RateLimitTooSmall
from sloth_runner.errors import AIBudgetExceeded, AIError, ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sloth_runner.ai.client import AIService
    from sloth_runner.ai.providers.base import Provider
    from sloth_runner.ai.settings import AISettings
    from sloth_runner.ai.types import AIRequest, AIResponse, CallContext

MAX_RETRY_WAIT_S = 60.0
DEFAULT_MAX_TOKENS_ESTIMATE = 512
# An attempt cut at the caller's deadline is logged at once, but its error is handed back only
# this long after the deadline: the engine times the task out at the deadline itself, and its
# TIMEOUT must come first (else the task would end as an AI error, racing the timer).
DEADLINE_GRACE_S = 0.25


class Hop:
    """Where a call goes: a provider, its settings and model, and (for a fallback) which
    provider it stands in for and why, as the call log says."""

    __slots__ = ("settings", "provider", "model", "fallback_from", "reason")

    def __init__(self, settings: AISettings, provider: Provider, model: str,
                 fallback_from: str | None = None, reason: str | None = None) -> None:
        self.settings, self.provider, self.model = settings, provider, model
        self.fallback_from, self.reason = fallback_from, reason


def send(service: AIService, hop: Hop, request: AIRequest, ctx: CallContext, operation: str,
         on_token: Callable[[str], None] | None) -> AIResponse:
    s, provider, model = hop.settings, hop.provider, hop.model
    price = pricing.price_for(provider.name, model, s.prices)
    estimate = tokens.estimate(request.text())
    expected_out = int(request.options.get("max_tokens") or DEFAULT_MAX_TOKENS_ESTIMATE)
    check_budget(service, ctx, s, model, pricing.cost(price, estimate, expected_out),
                 free=price == (0.0, 0.0))
    limiter = service.limiter(s)
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
                raise AIDeadline(provider.name, model, "the task's deadline had passed: not sent")
            response = provider.execute(request, on_token, deadline)
        except AIError as caught:
            latency = (time.monotonic() - started) * 1000
            if limiter is not None and grant is not None:
                limiter.settle(grant, 0)
            failure = deadline_error(caught, ctx, latency)
            publish(failure, service.scrub)
            service.record(ctx, hop, operation, request, None, attempt,
                           "timeout" if isinstance(failure, AITimeout) else "error",
                           error=str(failure), http_status=failure.status, latency=latency)
            if isinstance(failure, AIDeadline) and ctx.deadline is not None:
                hold_until(ctx.deadline + DEADLINE_GRACE_S)
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
                                    "raise ai.configure{timeout = ...} or SLOTH_AI_TIMEOUT",)
                raise failure  # noqa: B904 (it is `caught`, or its cause is)
            wait_before_retry(service, failure, attempt, ctx)
            continue
        response.latency_ms = (time.monotonic() - started) * 1000
        response.fallback_from = hop.fallback_from
        if response.prompt_tokens is None or response.completion_tokens is None:
            response.usage_estimated = True
            response.prompt_tokens = response.prompt_tokens or estimate
            response.completion_tokens = response.completion_tokens or tokens.estimate(
                response.text)
        if price is None:
            response.cost = None
            service.notice_once(f"price|{model}", unknown_price_notice(model))
        else:
            response.cost = pricing.cost(price, response.prompt_tokens,
                                         response.completion_tokens)
        if limiter is not None and grant is not None:
            limiter.settle(grant, response.prompt_tokens + response.completion_tokens)
        service.record(ctx, hop, operation, request, response, attempt, "ok")
        return response
    raise AssertionError("unreachable")


def check_budget(service: AIService, ctx: CallContext, s: AISettings, model: str,
                 expected: float, free: bool = False) -> None:
    """A call that would pass a budget: stopped (AIBudgetExceeded, which the fallback chain
    passes on) or warned about. A call known to be free (the local model) passes no budget;
    one of unknown price is counted as nothing, so it is stopped once the budget is spent."""
    if (s.budget_daily_usd is None and s.budget_run_usd is None) or free:
        return
    usage = service.usage()
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
                            f"{usd(expected)} would pass budget.run_usd {usd(s.budget_run_usd)}")
    if not problems:
        return
    if s.budget_action == "stop":
        raise AIBudgetExceeded(s.provider, model, "; ".join(problems) + " (not sent)")
    service.notice_once(f"budget|{ctx.run_id}", "AI budget: " + "; ".join(problems))


def wait_before_retry(service: AIService, exc: AIError, attempt: int, ctx: CallContext
                      ) -> None:
    nominal = min(MAX_RETRY_WAIT_S, 0.5 * 2 ** (attempt - 1))
    delay = nominal / 2 + random.uniform(0, nominal / 2)
    if exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, MAX_RETRY_WAIT_S))
    if ctx.deadline is not None and time.monotonic() + delay >= ctx.deadline:
        raise exc
    service.sleep(delay)


def unknown_price_notice(model: str) -> str:
    return (f"AI: no price is known for model '{model}': its cost is recorded as unknown. "
            f"Give one with ai.configure{{prices = {{[\"{model}\"] = {{input = 0.5, "
            "output = 1.5}}} (USD per 1M tokens)")


def hold_until(moment: float) -> None:
    left = moment - time.monotonic()
    if left > 0:
        threading.Event().wait(left)


def deadline_error(exc: AIError, ctx: CallContext, latency_ms: float) -> AIError:
    """An attempt timed out at the caller's deadline (a task's timeout): say so, and do not
    retry. The provider only knows that its attempt's time ran out."""
    if isinstance(exc, AIDeadline) or not isinstance(exc, AITimeout) or ctx.deadline is None \
            or time.monotonic() < ctx.deadline - 0.005:
        return exc
    cut = AIDeadline(exc.provider, exc.model, f"the task's deadline passed "
                     f"{latency_ms / 1000:.1f}s into the attempt", partial=exc.partial)
    cut.__cause__ = exc
    return cut
