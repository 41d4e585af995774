"""The providers a call may go to, in order: the configured one, then its `fallback` list.

`ai.configure{fallback = {{base_url = ..., model = ...}, {provider = "local"}}}` (or `fallback:`
in the config file): when a provider cannot answer after its own retries (a dead server, 5xx or
429 to the end, a timeout, a refused key, an unknown model) or its budget would be passed, the
call goes to the next one. A hop names only its endpoint (ENDPOINT_KEYS); timeouts, retries,
budget, scrubbing, prices, logging and `structured` are the first provider's.

Not passed on: a task's deadline that has passed (there is no time for another provider) and a
stream that had already delivered text (the next answer would repeat it).

`local_only = true` on a call keeps only the hops on this machine: the local model, or a server
on a loopback address.

A provider that failed for want of health (unreachable, timed out, 5xx, 429) is skipped by the
calls of the next COOLDOWN_S seconds while a fallback remains: fifty calls of a run should not
each wait out a dead server's timeout before going where the first one went.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from sloth_runner.ai.errors import AIDeadline, AIStreamBroken, AITimeout
from sloth_runner.ai.settings import ENDPOINT_KEYS, AISettings, resolve
from sloth_runner.errors import AIBudgetExceeded, AIConnectionError, AIError, ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

COOLDOWN_S = 30.0
LOCAL_ONLY_HELP = ("no AI provider on this machine is configured for this call; add "
                   "one, e.g. ai.configure{fallback = {{provider = \"local\"}}} (the bundled "
                   "model) or a server on 127.0.0.1")


def hops(primary: AISettings, environ: dict[str, str], bundled_path: str | None
         ) -> list[AISettings]:
    """The primary provider and its fallbacks, each resolved and checked (a bad hop fails
    the call at once, naming it: a chain that breaks when it is needed is worse)."""
    shared = {k: v for k, v in primary.values().items()
              if k not in ENDPOINT_KEYS and k not in ("fallback", "structured")}
    shared["structured"] = primary.structured
    chain = [primary]
    for i, hop in enumerate(primary.fallback, 1):
        hop = dict(hop)
        if "model_path" not in hop:  # a hop is a server unless it says it is local
            hop.setdefault("provider", "openai")
        if hop.get("provider") == "openai" and not hop.get("api_key"):
            same_server = hop.get("base_url") == primary.base_url and primary.provider == "openai"
            if same_server and primary.api_key:  # the same endpoint, another model
                hop["api_key"] = primary.api_key
            elif not hop.get("base_url") and environ.get("OPENAI_API_KEY"):
                hop["api_key"] = environ["OPENAI_API_KEY"]
        try:
            found = resolve({**shared, **hop}, {}, bundled_path)
        except ConfigError as exc:
            raise ConfigError(f"ai.fallback[{i}]", f"{exc.field}: {exc.detail}") from exc
        found.source = f"fallback[{i}]"
        chain.append(found)
    return chain


def misconfigured(s: AISettings, exc: ConfigError, failures: list[Failure]) -> ConfigError:
    """A fallback that could not even start (its model file is gone): named, with what the
    providers before it said."""
    return ConfigError(f"ai.{s.source}", f"{exc.field}: {exc.detail}{after(failures)}")


def on_this_machine(s: AISettings) -> bool:
    if s.provider == "local":
        return True
    host = (urlsplit(s.base_url or "").hostname or "").lower().rstrip(".")
    if host == "localhost":
        return True
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: it could resolve anywhere
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def keep_local(chain: list[AISettings]) -> list[AISettings]:
    local = [s for s in chain if on_this_machine(s)]
    if not local:
        raise ConfigError("local_only", LOCAL_ONLY_HELP)
    return local


def passes_on(exc: AIError) -> bool:
    """Whether the next provider may try: not when the task's time is up or text is out."""
    return not (isinstance(exc, AIDeadline) or getattr(exc, "partial", False))


def reason(exc: AIError) -> str:
    """Why a provider was left, in a word or two, for the call log."""
    if isinstance(exc, AIBudgetExceeded):
        return "budget"
    if exc.status is not None:
        return f"HTTP {exc.status}"
    if isinstance(exc, AITimeout):
        return "timeout"
    if isinstance(exc, AIStreamBroken):
        return "stream broke"
    return "unreachable" if isinstance(exc, AIConnectionError) else "error"


def after(failures: list[Failure]) -> str:
    """What the providers before said, to end the message of the one that failed last."""
    if not failures:
        return ""
    return " (after falling back from " + "; ".join(f"{f.label}: {f.reason}"
                                                  for f in failures) + ")"


def exhausted(failures: list[Failure], last: AIError) -> AIError:
    """The last provider's error, saying what the ones before it said."""
    if failures:
        last.args = (f"{last}{after(failures)}",)
    return last


class Failure:
    """A provider the call left: which (its label), and why, for the next hop's log rows."""

    __slots__ = ("label", "reason")

    def __init__(self, label: str, why: str) -> None:
        self.label, self.reason = label, why


def unhealthy(exc: AIError) -> bool:
    """A failure that says the endpoint is down or overloaded, not that this call was wrong."""
    return isinstance(exc, AIConnectionError) or exc.status == 429 or (exc.status or 0) >= 500


class Cooldowns:
    """Providers that failed for want of health lately, by label (per AI service)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def failed(self, label: str, exc: AIError) -> None:
        if unhealthy(exc):
            with self._lock:
                self._until[label] = (self.clock() + COOLDOWN_S, reason(exc))

    def answered(self, label: str) -> None:
        with self._lock:
            self._until.pop(label, None)

    def skipped(self, label: str) -> Failure | None:
        """Why `label` is skipped now (None: it is not)."""
        with self._lock:
            found = self._until.get(label)
        if found is None or found[0] <= self.clock():
            return None
        return Failure(label, f"{found[1]} in the last {COOLDOWN_S:.0f}s: skipped")
