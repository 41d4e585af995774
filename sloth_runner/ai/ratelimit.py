"""Requests/min and tokens/min shared by every concurrent caller in the process.

A sliding 60-second log, not a token bucket: a bucket of capacity N refilled at N/min admits up
to 2N in some 60 s window (a full burst, then the refill). The log admits a call only if the
calls of the last 60 s plus this one stay within both limits, which is what a provider enforces.
Token counts are estimated before the call and reconciled with the reported usage after it.
"""

from __future__ import annotations

import threading
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

WINDOW_S = 60.0


class RateLimitTooSmall(ValueError):
    pass


class Grant:
    """One admitted call; `settle` replaces its estimate with the real token count."""

    __slots__ = ("at", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens


class RateLimiter:
    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.clock = clock
        self.sleep = sleep
        self._log: deque[Grant] = deque()
        self._cond = threading.Condition()

    def acquire(self, tokens: int, timeout: float | None = None) -> Grant:
        """Block until the call fits; return its grant. Raises if it can never fit."""
        if self.tpm is not None and tokens > self.tpm:
            raise RateLimitTooSmall(f"one call needs ~{tokens} tokens but tokens_per_minute "
                                    f"is {self.tpm}")
        deadline = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                now = self.clock()
                while self._log and self._log[0].at <= now - WINDOW_S:
                    self._log.popleft()
                used = sum(g.tokens for g in self._log)
                fits_requests = self.rpm is None or len(self._log) + 1 <= self.rpm
                fits_tokens = self.tpm is None or used + tokens <= self.tpm
                if fits_requests and fits_tokens:
                    grant = Grant(now, tokens)
                    self._log.append(grant)
                    return grant
                wait = self._log[0].at + WINDOW_S - now if self._log else 0.01
                if deadline is not None:
                    if now >= deadline:
                        raise TimeoutError("rate limit wait exceeded the call's deadline")
                    wait = min(wait, deadline - now)
                self._cond.release()
                try:
                    self.sleep(max(wait, 0.001))
                finally:
                    self._cond.acquire()

    def settle(self, grant: Grant, actual_tokens: int) -> None:
        with self._cond:
            grant.tokens = actual_tokens
            self._cond.notify_all()

    def window(self) -> list[tuple[float, int]]:
        with self._cond:
            return [(g.at, g.tokens) for g in self._log]
