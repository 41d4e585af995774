"""`ai.decide`: ask the model to choose one of the given options, and say how sure it was.

The answer is constrained after the fact: the choice is always one of the options (matched from
the model's first line, else its first mention of an option). `confidence` is exp(mean token
log-prob) of the model's answer when the provider returns log-probs, else nil. If the model
named no option at all, the first option is returned with `fallback = true` and confidence 0,
so a workflow can refuse to act on it (`threshold`).
"""

from __future__ import annotations

import json
import re

from sloth_runner.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.ai.client import AIService, CallContext

OPTION_KEYS = ("options", "strategies", "choices", "environments", "available_tests")
SITUATION_KEYS = ("situation", "analysis", "question")
PASS_THROUGH = ("model", "max_tokens", "temperature")
CONTEXT_LIMIT = 4000


def decide(service: AIService, spec: dict[str, Any], ctx: CallContext | None,
           provider: str | None) -> dict[str, Any]:
    key = next((k for k in OPTION_KEYS if k in spec), None)
    options = spec.get(key) if key else None
    if not isinstance(options, list) or not options or \
            not all(isinstance(o, str) and o for o in options):
        raise ConfigError("decide.options", "needs a list of option names, e.g. options = "
                          "{\"scale_up\", \"add_replica\"} (or strategies/choices/environments)")
    threshold = spec.get("threshold")
    if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
        raise ConfigError("decide.threshold", "must be a number between 0 and 1")
    situation = next((str(spec[k]) for k in SITUATION_KEYS if spec.get(k)), "")
    context = {k: v for k, v in spec.items()
               if k not in (key, "threshold", *SITUATION_KEYS, *PASS_THROUGH)}
    context_text = json.dumps(context, sort_keys=True, default=str)
    if len(context_text) > CONTEXT_LIMIT:
        context_text = context_text[:CONTEXT_LIMIT] + "…"
    numbered = "\n".join(f"- {o}" for o in options)
    messages = [
        {"role": "system", "content": "You are a careful DevOps decision engine. You choose "
                                      "exactly one of the options you are given."},
        {"role": "user", "content": (f"Situation: {situation or 'see context'}\n"
                                     f"Context: {context_text}\n"
                                     f"Options:\n{numbered}\n"
                                     "Reply with the chosen option's name alone on the first "
                                     "line, then one sentence explaining why.")},
    ]
    request = {"messages": messages, "temperature": spec.get("temperature", 0),
               "max_tokens": spec.get("max_tokens", 96), "logprobs": True}
    if spec.get("model"):
        request["model"] = spec["model"]
    result = service.chat(request, ctx, provider=provider)
    text = result["text"].strip()
    choice, how = match_option(text, options)
    fallback = choice is None
    if fallback:
        choice = options[0]
    confidence = 0.0 if fallback else result["confidence"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasoning = " ".join(lines[1:]) if how == "first line" and len(lines) > 1 else text
    if fallback:
        reasoning = (f"the model's answer named none of the options; fell back to the first "
                     f"({choice}). It said: {text[:200]}")
    confident = None if confidence is None or threshold is None else confidence >= threshold
    return {"choice": choice, "confidence": confidence, "reasoning": reasoning,
            "options": options, "fallback": fallback, "confident": confident, "text": text,
            "model": result["model"], "provider": result["provider"]}


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", re.sub(r"[^\w\s\-]", " ", text.lower())).strip()


def match_option(text: str, options: list[str]) -> tuple[str | None, str]:
    """(option, how): exact first line, else the earliest mention anywhere, else (None, "")."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    first_norm = _norm(first)
    for option in options:
        if _norm(option) == first_norm:
            return option, "first line"
    hits = []
    body = _norm(text)
    for option in options:
        found = re.search(rf"\b{re.escape(_norm(option))}\b", body)
        if found:
            hits.append((found.start(), -len(option), option))
    if hits:
        return min(hits)[2], "mention"
    return None, ""
