"""`ai.decide`: structured decisions from a model, constrained to what the workflow allows.

A decision is one chat call with log-probs, in one of three forms chosen by the request's keys:

- **choose one** (`options`, `strategies`, `choices` or `environments`): `choice` is always one of
  the options, matched from the model's first line, else from its first mention of an option.
- **choose several** (`available_tests`, `candidates`): `selected` (and `selected_tests` for
  `available_tests`) lists the named options in the order given. A model that names none gets
  every option back (running all the tests is the safe mistake) with `fallback = true`.
- **triage** (only `analysis`, `situation` or `question`): `severity` is one of low, medium,
  high, critical, with `issue` (one line) and `actions` (a list).

Answers are constrained after the fact, never invented: when the model names no allowed value the
result says `fallback = true` with confidence 0, so a workflow can refuse to act (`threshold`).

How sure the model is, `method`, is measured in one of three ways:

- `option_logprobs` (choose one and triage, on the local model): every option is scored,
  log P(name | prompt) (option_scores.py); the choice is the most probable option and the raw
  confidence its share of the options' probability. The reasoning is then generated with the
  choice fixed by the grammar.
- `answer_probability` (other providers, and choose several): exp(mean token log-prob) of the
  answer the model gave, when the provider returns log-probs.
- `none`: no log-probs, or a fallback: `confidence` is nil, or 0 for a fallback.

`raw_confidence` is that measure; `confidence` is it calibrated for the model and method
(calibration.py: shipped for the bundled model, refitted from `ai.record_outcome`), and
`calibration` says which map applied ("shipped", "recorded" or "none"). `confident` compares
the calibrated `confidence` with `threshold`.

The context is scrubbed whole before it is cut to CONTEXT_LIMIT characters, and quotes of the
model's answer or of the situation are scrubbed before they are shortened: a cut through a secret
leaves a piece that no detector recognises (SCRUB FIRST, CUT AFTER).
"""

from __future__ import annotations

import json
import math
import re

from sloth_runner.ai import calibration, decide_json, option_scores
from sloth_runner.errors import ConfigError
from sloth_runner.scrub.engine import clip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from sloth_runner.ai.protocols import ChatService
    from sloth_runner.ai.settings import AISettings
    from sloth_runner.ai.types import CallContext
    from sloth_runner.store.ai_usage import AIUsageStore

    class DecisionService(ChatService, Protocol):
        """What a decision needs beyond chat: the provider's settings and the provider itself
        (to score options on a local model) and the store (for recorded outcomes)."""

        def settings(self, provider: str | None = None) -> AISettings: ...

        def provider(self, settings: AISettings) -> Any: ...

        def usage(self) -> AIUsageStore: ...

        def chain(self, provider: str | None = None, local_only: bool = False
                  ) -> list[AISettings]: ...

ONE_OF_KEYS = ("options", "strategies", "choices", "environments")
MANY_OF_KEYS = ("available_tests", "candidates")
SITUATION_KEYS = ("situation", "analysis", "question")
PASS_THROUGH = ("model", "max_tokens", "temperature", "threshold", "local_only")
# A one-of answer is also published under a name that reads naturally at the call site.
ALIASES = {"strategies": "strategy", "environments": "environment"}
ENVIRONMENT_NAMES = {"dev", "development", "test", "testing", "qa", "uat", "stage", "staging",
                     "preprod", "pre-production", "production", "prod", "canary", "preview",
                     "sandbox", "demo", "local"}
SEVERITIES = ["low", "medium", "high", "critical"]
CONTEXT_LIMIT = 4000
QUOTE_LIMIT = 200
SYSTEM = ("You are a careful DevOps decision engine. You answer only with the names you are "
          "given, in the format you are asked for.")


def decide(service: DecisionService, spec: dict[str, Any], ctx: CallContext | None,
           provider: str | None) -> dict[str, Any]:
    threshold = spec.get("threshold")
    if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
        raise ConfigError("decide.threshold", "must be a number between 0 and 1")
    one_key = next((k for k in ONE_OF_KEYS if k in spec), None)
    many_key = next((k for k in MANY_OF_KEYS if k in spec), None)
    situation = next((str(spec[k]) for k in SITUATION_KEYS if spec.get(k)), "")
    if one_key:
        options = _names(spec[one_key], one_key)
        form = "one"
    elif many_key:
        options = _names(spec[many_key], many_key)
        form = "many"
    elif situation:
        options, form = SEVERITIES, "triage"
    else:
        raise ConfigError("decide.options", "needs a list of option names, e.g. options = "
                          "{\"scale_up\", \"add_replica\"} (or strategies, choices, environments, "
                          "available_tests), or an analysis/situation to triage")
    context = {k: v for k, v in spec.items()
               if k not in (one_key, many_key, *SITUATION_KEYS, *PASS_THROUGH)}
    context_text = ""
    if context:  # scrubbed whole, then cut
        context_text = clip(service.outgoing(json.dumps(context, sort_keys=True, default=str),
                                             provider), CONTEXT_LIMIT)
    local_only = spec.get("local_only", False)
    if not isinstance(local_only, bool):
        raise ConfigError("decide.local_only", "must be true or false")
    first = service.chain(provider, local_only)[0]  # who answers, unless it fails
    if provider is None and first.provider == "local" and \
            first.model_path == service.settings("local").model_path:
        provider = "local"  # local_only put the local model first: options are scored there
    # servers: the answer as JSON under the server's grammar where it takes a schema
    as_json = first.provider != "local" and first.structured != "off"
    request = _request(spec, form, situation, context_text, options, as_json)
    scores = None
    if form != "many":  # a set of choices has no one option to score
        sent = [{**m, "content": service.outgoing(m["content"], provider)}
                for m in request["messages"]]  # as the call will send them
        scores = option_scores.score(service, provider, sent, options, ctx)
    allowed = options
    if scores is not None:
        allowed = [options[max(range(len(options)), key=scores.__getitem__)]]
    result = service.chat(request, ctx, provider=provider, grammar=grammar(form, allowed),
                          operation="decide",
                          shape=decide_json.shape(form, options) if as_json else None)
    text = result["text"].strip()

    def quote(said: str) -> str:
        return clip(service.scrub(said), QUOTE_LIMIT)

    read = decide_json.read(text, form, options) if as_json else None
    said = (decide_json.field_text(text, form) if as_json else None) or text
    if read is not None:
        answer = _from_json(read, form, options, one_key or many_key or "options")
    elif form == "one":
        answer = _one_of(said, options, one_key or "options", quote)
    elif form == "many":
        answer = _many_of(said, options, many_key or "candidates", quote)
    else:
        answer = _triage(said, situation, quote)
    method, raw = _raw_confidence(answer, result, options, scores, read is not None)
    confidence: float | None
    if answer["fallback"]:
        confidence, source = 0.0, "none"
    else:
        confidence, source = calibration.calibrate(service.usage().store, result["model"],
                                                   method, raw, len(options))
    answer.update({
        "confidence": confidence, "raw_confidence": raw, "method": method,
        "calibration": source,
        "confident": None if confidence is None or threshold is None else confidence >= threshold,
        "options": options, "text": text, "model": result["model"],
        "provider": result["provider"], "structured": result.get("structured"),
        "fallback_from": result.get("fallback_from"),
    })
    _remember(service, answer, ctx)
    return answer


def _remember(service: DecisionService, answer: dict[str, Any], ctx: CallContext | None) -> None:
    """The decision in the history, for the dashboard (a store that cannot take it: skipped)."""
    record = getattr(service.usage(), "record_decision", None)
    if record is None:
        return
    shown = {k: answer[k] for k in ("choice", "choices", "severity", "priority", "reasoning",
                                    "answer") if k in answer}
    record({"run_id": ctx.run_id if ctx else None, "workflow": ctx.workflow if ctx else None,
            "task": ctx.task if ctx else None, "provider": answer["provider"],
            "model": answer["model"], "options": [service.scrub(o) for o in answer["options"]],
            "answer": shown,
            "confidence": answer["confidence"], "raw_confidence": answer["raw_confidence"],
            "method": answer["method"], "calibration": answer["calibration"],
            "fallback": answer["fallback"]})


def _raw_confidence(answer: dict[str, Any], result: dict[str, Any], options: list[str],
                    scores: list[float] | None, as_json: bool = False
                    ) -> tuple[str, float | None]:
    """(method, raw confidence): the chosen option's share of the options' probability when
    they were scored, else the answer's own probability (of the chosen value's tokens in a
    JSON answer, not of the syntax around it), else nothing."""
    if answer["fallback"]:
        return "none", None
    if scores is not None and answer["choice"] in options:
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        return "option_logprobs", weights[options.index(answer["choice"])] / sum(weights)
    key = "severity" if "severity" in answer else "choice"
    value = decide_json.value_probability(result["text"], result.get("tokens"),
                                          result.get("logprobs"), key,
                                          answer["choice"]) if as_json else None
    if value is not None and "selected" not in answer:
        return "answer_probability", value
    if result["confidence"] is not None:
        return "answer_probability", float(result["confidence"])
    return "none", None


def _names(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not value or \
            not all(isinstance(o, str) and o for o in value):
        raise ConfigError(f"decide.{key}", "needs a non-empty list of names, e.g. "
                          f"{key} = {{\"unit\", \"integration\"}}")
    if any(not o.isprintable() for o in value):
        raise ConfigError(f"decide.{key}", "names must be printable, on one line")
    return value


def grammar(form: str, options: list[str]) -> str:
    """GBNF for the answer's shape, so a local model can only name allowed values (providers
    that cannot constrain decoding are checked afterwards by the same parsers)."""
    names = " | ".join(_gbnf_string(o) for o in options)
    # Bounded lines: a small model that rambles stops at a sentence, not at max_tokens.
    rules = [f"name ::= {names}", "line ::= [^\\n]{1,240}", 'reason ::= [^\\n.]{1,240} "."']
    if form == "one":
        rules.insert(0, 'root ::= name "\\n" reason')
    elif form == "many":
        rules.insert(0, 'root ::= name (", " name)* "\\n" reason')
    else:
        rules.insert(0, 'root ::= name "\\nIssue: " line "\\nActions:\\n" act (act act?)?')
        rules.append('act ::= "- " line "\\n"')
    return "\n".join(rules) + "\n"


def _gbnf_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _request(spec: dict[str, Any], form: str, situation: str, context_text: str,
             options: list[str], as_json: bool = False) -> dict[str, Any]:
    listed = "\n".join(f"- {o}" for o in options)
    if as_json:
        ask = decide_json.ask(form, listed)
    elif form == "one":
        ask = (f"Options:\n{listed}\nReply with the chosen option's name alone on the first "
               "line, then one sentence explaining why.")
    elif form == "many":
        ask = (f"Options:\n{listed}\nChoose the options worth running (one or more). Reply "
               "with their names on the first line, separated by commas, then one sentence "
               "explaining why.")
    else:
        ask = ("Rate the severity as one of: low, medium, high, critical. Reply in this form:\n"
               "<severity>\nIssue: <the main problem, one sentence>\nActions:\n- <action>\n"
               "- <action>")
    prompt = f"Situation: {situation}\n" if situation else ""
    if context_text:
        prompt += f"Context: {context_text}\n"
    request = {"messages": [{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": prompt + ask}],
               "temperature": spec.get("temperature", 0),
               "max_tokens": spec.get("max_tokens", (160 if form == "triage" else 80)
                                      + (40 if as_json else 0)),  # room for the braces
               "logprobs": True}
    if spec.get("model"):
        request["model"] = spec["model"]
    if spec.get("local_only") is not None:
        request["local_only"] = spec["local_only"]
    return request


def _from_json(read: dict[str, Any], form: str, options: list[str], key: str
               ) -> dict[str, Any]:
    """A decision from a JSON answer's allowed values (decide_json.read)."""
    if form == "triage":
        return {"severity": read["severity"], "choice": read["severity"],
                "issue": read["issue"], "actions": read["actions"],
                "reasoning": read["issue"], "fallback": False}
    if form == "many":
        answer = {"selected": read["selected"], "choice": read["selected"][0],
                  "reasoning": read["reasoning"], "fallback": False}
        if key == "available_tests":
            answer["selected_tests"] = read["selected"]
        return answer
    return _named(read["choice"], read["reasoning"], False, key, options)


def _one_of(text: str, options: list[str], key: str, quote: Callable[[str], str]
            ) -> dict[str, Any]:
    choice, how = match_option(text, options)
    fallback = choice is None
    if choice is None:
        choice = options[0]
        reasoning = (f"the model's answer named none of the options; fell back to the first "
                     f"({choice}). It said: {quote(text)}")
    else:
        reasoning = _after_first_line(text) if how == "first line" else text
    return _named(choice, reasoning, fallback, key, options)


def _named(choice: str, reasoning: str, fallback: bool, key: str, options: list[str]
           ) -> dict[str, Any]:
    """A one-of answer, also under the name that reads naturally at the call site."""
    answer: dict[str, Any] = {"choice": choice, "reasoning": reasoning, "fallback": fallback}
    if key in ALIASES:
        answer[ALIASES[key]] = choice
    if all(o.lower() in ENVIRONMENT_NAMES for o in options):
        answer["environment"] = choice
    return answer


def _many_of(text: str, options: list[str], key: str, quote: Callable[[str], str]
             ) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    head = _norm(lines[0]) if lines else ""
    named = [o for o in options if re.search(rf"\b{re.escape(_norm(o))}\b", head)]
    if not named:  # a model that lists one name per line
        body = _norm(text)
        named = [o for o in options if re.search(rf"\b{re.escape(_norm(o))}\b", body)]
    fallback = not named
    reasoning = _after_first_line(text) or text
    if fallback:
        named = list(options)
        reasoning = (f"the model's answer named none of the options; selected all of them. "
                     f"It said: {quote(text)}")
    answer: dict[str, Any] = {"selected": named, "choice": named[0], "reasoning": reasoning,
                              "fallback": fallback}
    if key == "available_tests":
        answer["selected_tests"] = named
    return answer


def _triage(text: str, situation: str, quote: Callable[[str], str]) -> dict[str, Any]:
    first = next((line for line in text.splitlines() if line.strip()), "")
    severity = match_option(first, SEVERITIES)[0] or match_option(text, SEVERITIES)[0]
    fallback = severity is None
    issue = ""
    actions: list[str] = []
    in_actions = False
    for raw in text.splitlines():
        line = raw.strip()
        label = re.match(r"^\W*(issue|problem|actions?|recommendations?)\W*:\s*(.*)$", line, re.I)
        if label and label.group(1).lower() in ("issue", "problem"):
            issue = label.group(2).strip()
            in_actions = False
        elif label:
            in_actions = True
            if label.group(2).strip():
                actions.append(label.group(2).strip())
        elif in_actions and re.match(r"^([-*•]|\d+[.)])\s+", line):
            actions.append(re.sub(r"^([-*•]|\d+[.)])\s+", "", line))
    if not issue:
        rest = [line.strip() for line in text.splitlines()[1:] if line.strip()]
        issue = rest[0] if rest else quote((situation.strip().splitlines() or [""])[0])
    reasoning = text
    if fallback:
        severity = "unknown"
        reasoning = f"the model's answer named no severity. It said: {quote(text)}"
    return {"severity": severity, "choice": severity, "issue": issue, "actions": actions,
            "reasoning": reasoning, "fallback": fallback}


def _after_first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[1:])


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
