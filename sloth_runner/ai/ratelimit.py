"""Requests/min and tokens/min, shared by every caller of one provider key: threads of a run,
retries, and every sloth-runner process using the same SLOTH_RUNNER_HOME.

A sliding 60-second log, not a token bucket: a bucket of capacity N refilled at N/min admits up
to 2N in some 60 s window (a full burst, then the refill). The log admits a call only if the
calls that still count plus this one stay within both limits, which is what a provider enforces.

Why rpm = 3 once let 5 requests through within 59.4 s: the log lived in each process's memory,
so every `sloth-runner run` (and every run of a workflow within the minute) started with an
empty window; and a call was counted from its admission only, while a provider counts it when
the request *arrives*, which can be any moment until the attempt ends (the first call of a run
spends ~1 s importing the SDK and connecting), so the next window opened early.

So the log lives in the home's SQLite database (`SQLiteRateLog`, store/ai_usage.py), shared by
concurrent runs: the limit is the provider's, per endpoint and key, not per process. And a call
counts from its admission until 60 s after its attempt ended (`settle`); until then its entry
lasts `max_duration + 60` s, which also frees the entries of a process that died mid-call.
Retries are calls like any other. Two short write transactions per call (bench/ai.py measures
them). `MemoryLog` is the same log for one process. Token counts are estimated before the call
and replaced by the reported usage after it.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

WINDOW_S = 60.0
DEFAULT_MAX_DURATION_S = 3600.0


class RateLimitTooSmall(ValueError):
    pass


class Entry:
    """One call in the log: counts until `until`; `settled` once its attempt ended."""

    __slots__ = ("id", "until", "tokens", "settled")

    def __init__(self, id: int, until: float, tokens: int, settled: bool) -> None:
        self.id, self.until, self.tokens, self.settled = id, until, tokens, settled


class Grant:
    """One admitted call; `settle` it when its attempt has ended."""

    __slots__ = ("id", "at", "tokens")

    def __init__(self, id: int, at: float, tokens: int) -> None:
        self.id = id
        self.at = at
        self.tokens = tokens


class MemoryLog:
    """The log for one process. `admit` and `settle` are atomic, like SQLiteRateLog's."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}
        self._next = 1
        self._lock = threading.Lock()

    def admit(self, bucket: str, clock: Callable[[], float], fits: Callable[[int, int], bool],
              lease: float, tokens: int) -> tuple[int | None, float, list[Entry]]:
        """Atomically: drop what expired; if `fits(count, tokens)` of what is left, log the
        call and return its id, else None and the entries (to work out how long to wait)."""
        with self._lock:
            now = clock()  # read inside: a caller delayed on the lock would stamp the past
            for key in [k for k, e in self._entries.items() if e.until <= now]:
                del self._entries[key]
            live = sorted(self._entries.values(), key=lambda e: e.until)
            if not fits(len(live), sum(e.tokens for e in live)):
                return None, now, live
            entry = Entry(self._next, now + lease, tokens, False)
            self._next += 1
            self._entries[entry.id] = entry
            return entry.id, now, []

    def settle(self, bucket: str, entry_id: int, clock: Callable[[], float], window: float,
               tokens: int) -> None:
        with self._lock:
            entry = self._entries.get(entry_id)
            if entry is not None:
                entry.until, entry.tokens, entry.settled = clock() + window, tokens, True


class RateLimiter:
    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, log: Any = None,
                 bucket: str = "default") -> None:
        # wall-clock time by default: the log is shared with other processes
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.clock = clock
        self.sleep = sleep
        self.log = log if log is not None else MemoryLog()
        self.bucket = bucket

    def acquire(self, tokens: int, timeout: float | None = None,
                max_duration: float | None = None) -> Grant:
        """Block until the call fits; return its grant. `max_duration` bounds how long the
        call can take (its attempt's timeout). Raises RateLimitTooSmall if the call can never
        fit, TimeoutError at once if it cannot fit within `timeout` seconds."""
        if self.tpm is not None and tokens > self.tpm:
            raise RateLimitTooSmall(f"one call needs ~{tokens} tokens but tokens_per_minute "
                                    f"is {self.tpm}")
        lease = DEFAULT_MAX_DURATION_S if max_duration is None else max_duration
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            entry_id, now, live = self.log.admit(self.bucket, self.clock, self._fits(tokens),
                                                 lease + WINDOW_S, tokens)
            if entry_id is not None:
                return Grant(entry_id, now, tokens)
            # The earliest moment the call could fit, supposing every unsettled call ended
            # now. Sleeping until then is never too long (a call that ends later only counts
            # until later), and the loop looks again.
            earliest = self._earliest(live, tokens, now)
            if deadline is not None and earliest > deadline:
                raise TimeoutError("the rate limit would delay this call past its deadline")
            self.sleep(max(earliest - now, 0.001))

    def settle(self, grant: Grant, actual_tokens: int) -> None:
        """The call's attempt has ended: it counts for 60 s more, with its real token count."""
        self.log.settle(self.bucket, grant.id, self.clock, WINDOW_S, actual_tokens)
        grant.tokens = actual_tokens

    def _fits(self, tokens: int) -> Callable[[int, int], bool]:
        def fits(count: int, used: int) -> bool:
            if self.rpm is not None and count + 1 > self.rpm:
                return False
            return self.tpm is None or used + tokens <= self.tpm
        return fits

    def _earliest(self, live: list[Entry], tokens: int, now: float) -> float:
        def end(e: Entry) -> float:
            return e.until if e.settled else min(e.until, now + WINDOW_S)

        count, used = len(live), sum(e.tokens for e in live)
        for entry in sorted(live, key=end):
            count -= 1
            used -= entry.tokens
            if (self.rpm is None or count + 1 <= self.rpm) and \
                    (self.tpm is None or used + tokens <= self.tpm):
                return end(entry)
        return now
