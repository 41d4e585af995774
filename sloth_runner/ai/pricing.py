"""USD per 1M input/output tokens for common OpenAI models; override with configure{prices=}.

Prices as published by OpenAI (standard tier). Fine-tuned models (`ft:BASE:org:name:id`) use the
fine-tuning price of their base where one is listed, else the base price. Local models cost 0.
Unknown models cost 0 and are reported as `priced = false`.
"""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o1": (15.00, 60.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
}
FINE_TUNED: dict[str, tuple[float, float]] = {
    "gpt-4o": (3.75, 15.00),
    "gpt-4o-mini": (0.30, 1.20),
    "gpt-4.1": (3.00, 12.00),
    "gpt-4.1-mini": (0.80, 3.20),
    "gpt-3.5-turbo": (3.00, 6.00),
}


def price_for(provider: str, model: str, overrides: dict[str, dict[str, float]] | None = None
              ) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, or None if unknown."""
    if overrides and model in overrides:
        p = overrides[model]
        return float(p.get("input", 0.0)), float(p.get("output", 0.0))
    if provider == "local":
        return (0.0, 0.0)
    if model.startswith("ft:"):
        base = model.split(":")[1]
        return FINE_TUNED.get(base) or _lookup(base)
    return _lookup(model)


def _lookup(model: str) -> tuple[float, float] | None:
    if model in PRICES:
        return PRICES[model]
    # dated snapshots: gpt-4o-2024-08-06 -> gpt-4o
    best = max((name for name in PRICES if model.startswith(name + "-")), key=len, default=None)
    return PRICES[best] if best else None


def cost(price: tuple[float, float] | None, prompt_tokens: int, completion_tokens: int) -> float:
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
