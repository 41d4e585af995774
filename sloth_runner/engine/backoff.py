"""Delay before a retry: exponential, linear or fixed, with jitter so retries don't stampede."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


STRATEGIES = ("exponential", "linear", "fixed")
MAX_DELAY_S = 300.0


def retry_delay(strategy: str, base: float, failed_attempt: int, rng: Any = None) -> float:
    """Seconds to wait after attempt number `failed_attempt` (1-based) failed.

    "Equal jitter": half the nominal delay is fixed, half is random, so the wait is never
    shorter than half of what the user asked for and concurrent retries spread out.
    """
    if strategy == "exponential":
        nominal = base * (2 ** (failed_attempt - 1))
    elif strategy == "linear":
        nominal = base * failed_attempt
    else:
        nominal = base
    nominal = min(nominal, MAX_DELAY_S)
    if nominal <= 0:
        return 0.0
    if rng is None:
        import random as rng  # lazily: only a retry pays for it
    return float(nominal / 2 + rng.uniform(0, nominal / 2))
