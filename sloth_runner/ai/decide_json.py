"""ai.decide on OpenAI-compatible servers: the answer as JSON under the server's grammar.

The local model decodes a decision under a GBNF grammar (decide.grammar). A server cannot take
GBNF, but most take a JSON schema (`response_format`, ai/structured.py): the choice is an `enum`
of the options, so a server that honours it can only name an allowed one. The prompt asks for
the same JSON, so a server that takes no schema usually answers in it too.

Reading the answer never trusts the server: the JSON is parsed when whole, the fields are read
one by one when it was cut off at max_tokens (the choice comes first, so it is there), and
anything else is left to decide's text matching.
"""

from __future__ import annotations

import json
import math
import re

from sloth_runner.ai.structured import Shape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SEVERITIES = ["low", "medium", "high", "critical"]
REASON_LIMIT = 240  # characters, in the bounded schema: a tiny model stops at a sentence
MAX_ACTIONS = 3


def shape(form: str, options: list[str]) -> Shape:
    """The decision's JSON schema: strict (no length bounds: strict structured outputs take
    none) and bounded (for servers that make a grammar of it)."""
    return Shape("decision", _schema(form, options, False), _schema(form, options, True))


def _schema(form: str, options: list[str], bounded: bool) -> dict[str, Any]:
    def text(limit: int) -> dict[str, Any]:
        return {"type": "string", "maxLength": limit} if bounded else {"type": "string"}

    name = {"type": "string", "enum": list(dict.fromkeys(options))}
    if form == "one":
        props: dict[str, Any] = {"choice": name, "reasoning": text(REASON_LIMIT)}
    elif form == "many":
        names: dict[str, Any] = {"type": "array", "items": name}
        if bounded:
            names.update(minItems=1, maxItems=len(options))
        props = {"selected": names, "reasoning": text(REASON_LIMIT)}
    else:
        actions: dict[str, Any] = {"type": "array", "items": text(160)}
        if bounded:
            actions.update(minItems=1, maxItems=MAX_ACTIONS)
        props = {"severity": {"type": "string", "enum": SEVERITIES},
                 "issue": text(REASON_LIMIT), "actions": actions}
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def ask(form: str, listed: str) -> str:
    """What to reply, as JSON, for each form (fields described, not templated: a small model
    copies a template's placeholders)."""
    if form == "one":
        return (f"Options:\n{listed}\nReply in JSON with \"choice\" (the chosen option's "
                "name) and \"reasoning\" (one sentence explaining why).")
    if form == "many":
        return (f"Options:\n{listed}\nChoose the options worth running (one or more). Reply "
                "in JSON with \"selected\" (the chosen options' names) and \"reasoning\" "
                "(one sentence explaining why).")
    return ("Rate the severity as low, medium, high or critical. Reply in JSON with "
            "\"severity\", \"issue\" (the main problem, in one sentence) and \"actions\" "
            "(one to three things to do about it).")


def read(text: str, form: str, options: list[str]) -> dict[str, Any] | None:
    """The fields of a JSON answer that name allowed values, or None (not JSON, or no allowed
    value in it): then the text is matched as any other answer."""
    data = _whole(text) or _fields(text)
    if form == "one":
        choice = data.get("choice")
        if choice not in options:
            return None
        return {"choice": choice, "reasoning": _str(data.get("reasoning"))}
    if form == "many":
        picked = data.get("selected")
        if not isinstance(picked, list):
            return None
        named = [o for o in options if o in picked]  # in the order given, once each
        if not named:
            return None
        return {"selected": named, "reasoning": _str(data.get("reasoning"))}
    severity = data.get("severity")
    if severity not in SEVERITIES:
        return None
    actions = data.get("actions")
    return {"severity": severity, "issue": _str(data.get("issue")),
            "actions": [str(a).strip() for a in actions if str(a).strip()]
            if isinstance(actions, list) else []}


def field_text(text: str, form: str) -> str | None:
    """The value a JSON answer gave for its decision field (a list joined by commas), when the
    answer is JSON with that field: then it is the only text to match, since the reasoning
    may well name an option the model turned down."""
    data = _whole(text) or _fields(text)
    value = data.get({"one": "choice", "many": "selected"}.get(form, "severity"))
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return None if value is None else str(value)


def _whole(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:text.rfind("}") + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


_STRING = r'"((?:[^"\\]|\\.)*)"'


def _fields(text: str) -> dict[str, Any]:
    """The fields that were written whole before the answer was cut off."""
    found: dict[str, Any] = {}
    for key in ("choice", "reasoning", "severity", "issue"):
        m = re.search(rf'"{key}"\s*:\s*{_STRING}', text)
        if m:
            found[key] = _unquote(m.group(1))
    for key in ("selected", "actions"):
        m = re.search(rf'"{key}"\s*:\s*\[([^\]]*)', text)
        if m:
            found[key] = [_unquote(v) for v in re.findall(_STRING, m.group(1))]
    return found


def _unquote(raw: str) -> str:
    try:
        return str(json.loads(f'"{raw}"'))
    except ValueError:
        return raw


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def value_probability(text: str, tokens: list[str] | None, logprobs: list[float] | None,
                      key: str, value: str) -> float | None:
    """exp(mean log-prob) of the tokens that wrote `value` after `"key"` in a JSON answer: how
    sure the model was of its choice, not of the braces and quotes the schema forced. None
    when the server gave no token texts or they do not spell the answer."""
    if not tokens or not logprobs or len(tokens) != len(logprobs) or "".join(tokens) != text:
        return None
    m = re.search(rf'"{re.escape(key)}"\s*:\s*"({re.escape(value)})"', text)
    if m is None:
        return None
    start, end = m.span(1)
    at, picked = 0, []
    for token, lp in zip(tokens, logprobs, strict=True):
        if at < end and at + len(token) > start:
            picked.append(lp)
        at += len(token)
    return math.exp(sum(picked) / len(picked)) if picked else None
