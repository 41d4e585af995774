"""Calibrated confidence for `ai.decide`: Platt scaling of the decision's raw score, anchored
at chance, per model and method; shipped for the bundled model, refitted from recorded outcomes.

A decision's raw confidence `p` (decide.py says how each `method` measures it) is mapped to

    confidence = sigmoid(a * (logit(p) - logit(c)) + logit(c) + b)

where `c` is what chance would give: 1/k for an `option_logprobs` decision among k options,
and nothing (logit(c) = 0, plain Platt scaling) for `answer_probability`, which is not a share
among options. Why this form:

- With a = 1, b = 0 it is the identity: a model without a fitted map reports its raw score.
- With a = 0 every decision gets chance plus the lift b: what a model whose preferences carry no
  information deserves. The bundled 135M model is that model: on the labelled decisions its
  choices are right barely more often than chance, and its raw shares (0.7 on average) do not
  tell its right answers from its wrong ones (bench/decide_calibration.py). The number of
  options does: two options are right more often than four.
- Among decisions with the same number of options it is monotone in `p` for a >= 0, so it never
  reorders them; calibration fixes what the numbers *mean*.
- Two numbers fit from a hundred labelled decisions; a richer map would fit noise.

Where the parameters come from, first match wins:

1. **recorded**: once MIN_OUTCOMES outcomes of decisions by this model and method were recorded
   (`ai.record_outcome(decision, correct)`), a fit of the newest MAX_OUTCOMES of them. The fit is
   a maximum a posteriori one, with a Gaussian prior (strength PRIOR_STRENGTH) centred on the
   shipped parameters (or on the identity): a few outcomes nudge the shipped map, many replace
   it. It is redone at each decision (tens of ms for 2,000 outcomes), so every new outcome
   counts at once.
2. **shipped**: calibration_params.SHIPPED, fitted on labelled decisions (said there).
3. **none**: the raw score is reported as it is.

A fitted slope below zero would mean that a higher raw score predicts a *wrong* answer; from a
few dozen outcomes that is noise far more often than truth, so the slope is held at 0 instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from sloth_runner.ai.calibration_params import SHIPPED
from sloth_runner.errors import ConfigError
from sloth_runner.store.decisions import DecisionOutcomes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from sloth_runner.store.db import Store

METHODS = ("option_logprobs", "answer_probability")  # "none" has nothing to calibrate
MIN_OUTCOMES = 30
MAX_OUTCOMES = 2000
PRIOR_STRENGTH = 2.0
EPSILON = 1e-6  # raw scores are clipped to [EPSILON, 1 - EPSILON] before the logit


class Outcome(NamedTuple):
    """One labelled decision: its raw confidence, whether it was right, and chance (1/k for a
    share among k options, else None)."""

    raw: float
    correct: bool
    chance: float | None = None


@dataclass(frozen=True)
class Platt:
    """confidence = sigmoid(a * (logit(raw) - logit(chance)) + logit(chance) + b)."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, raw: float, chance: float | None = None) -> float:
        anchor = logit(chance) if chance is not None else 0.0
        return _sigmoid(self.a * (logit(raw) - anchor) + anchor + self.b)


IDENTITY = Platt()


def chance_of(method: str, n_options: int | None) -> float | None:
    """What chance would give the raw score of `method`: 1/k for a share among k options."""
    if method == "option_logprobs" and n_options:
        return 1.0 / n_options
    return None


def logit(p: float) -> float:
    p = min(max(p, EPSILON), 1 - EPSILON)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def fit(samples: Iterable[Outcome | tuple[float, bool]], prior: Platt = IDENTITY,
        strength: float = PRIOR_STRENGTH) -> Platt:
    """The map that best predicts `correct` from the raw confidence: Newton's method on the
    log-loss plus (strength / 2) * |(a, b) - prior|^2. The penalty keeps the problem strictly
    convex, so it converges even when the outcomes separate perfectly."""
    if strength <= 0:
        raise ValueError("the prior's strength must be positive")
    data = []
    for sample in samples:
        o = Outcome(*sample)
        anchor = logit(o.chance) if o.chance is not None else 0.0
        data.append((logit(o.raw) - anchor, anchor, 1.0 if o.correct else 0.0))
    a, b = _newton(data, prior, strength, fit_slope=True)
    if a < 0:
        a, b = _newton(data, Platt(0.0, prior.b), strength, fit_slope=False)
    return Platt(a, b)


def _newton(data: list[tuple[float, float, float]], prior: Platt, strength: float,
            fit_slope: bool) -> tuple[float, float]:
    """Damped Newton on (x, anchor, y) triples: each step is halved until the objective goes
    down, since a full step from far away can overshoot (plain Newton on the log-loss is not
    globally convergent)."""
    a, b = (prior.a if fit_slope else 0.0), prior.b
    current = _objective(data, a, b, prior, strength)
    for _ in range(100):
        ga = strength * (a - prior.a) if fit_slope else 0.0
        gb = strength * (b - prior.b)
        haa = hab = 0.0
        hbb = strength
        for x, anchor, y in data:
            q = _sigmoid(a * x + anchor + b)
            w = q * (1 - q)
            gb += q - y
            hbb += w
            if fit_slope:
                ga += (q - y) * x
                haa += w * x * x
                hab += w * x
        if fit_slope:
            haa += strength
            det = haa * hbb - hab * hab
            da = (hbb * ga - hab * gb) / det
            db = (haa * gb - hab * ga) / det
        else:
            da, db = 0.0, gb / hbb
        step = 1.0
        while True:
            trial = _objective(data, a - step * da, b - step * db, prior, strength)
            if trial <= current or step < 1e-6:
                break
            step /= 2
        a, b, current = a - step * da, b - step * db, trial
        if abs(step * da) < 1e-9 and abs(step * db) < 1e-9:
            break
    return a, b


def _objective(data: list[tuple[float, float, float]], a: float, b: float, prior: Platt,
               strength: float) -> float:
    """Log-loss of the map (a, b) plus the prior's penalty."""
    loss = strength / 2 * ((a - prior.a) ** 2 + (b - prior.b) ** 2)
    for x, anchor, y in data:
        z = a * x + anchor + b
        # log(1 + e^z) - y z, computed without overflow
        loss += (z if z > 0 else 0.0) + math.log1p(math.exp(-abs(z))) - y * z
    return loss


def calibrator(store: Store | None, model: str, method: str) -> tuple[Platt | None, str]:
    """(the map to apply, where it came from: "recorded", "shipped" or "none")."""
    params = SHIPPED.get((model, method))
    shipped = Platt(*params) if params is not None else None
    if store is not None and method in METHODS:
        outcomes = DecisionOutcomes(store)
        if outcomes.count(model, method) >= MIN_OUTCOMES:
            recorded = [Outcome(raw, ok, chance_of(method, k))
                        for raw, ok, k in outcomes.recent(model, method, MAX_OUTCOMES)]
            return fit(recorded, shipped or IDENTITY), "recorded"
    if shipped is not None:
        return shipped, "shipped"
    return None, "none"


def calibrate(store: Store | None, model: str, method: str, raw: float | None,
              n_options: int | None = None) -> tuple[float | None, str]:
    """(calibrated confidence, where its map came from) for a raw confidence."""
    if raw is None or method not in METHODS:
        return raw, "none"
    found, source = calibrator(store, model, method)
    if found is None:
        return raw, source
    return found.apply(raw, chance_of(method, n_options)), source


def record_outcome(store: Store, decision: Any, correct: Any,
                   run_id: str | None = None) -> dict[str, Any]:
    """Remember whether `decision` (the table ai.decide returned) was right. Returns
    {model, method, outcomes, refit}: how many outcomes (model, method) now has, and whether
    that is enough for them to replace the shipped calibration."""
    if not isinstance(correct, bool):
        raise ConfigError("record_outcome.correct", "must be true or false (was the decision "
                          "right?)")
    if not isinstance(decision, dict) or "method" not in decision:
        raise ConfigError("record_outcome.decision", "pass the table ai.decide returned")
    method = decision.get("method")
    if method not in METHODS:
        raise ConfigError("record_outcome.decision", f"this decision has no confidence to "
                          f"calibrate (method = {method}: the provider returned no log-probs, or "
                          "the answer was a fallback)")
    model, raw = decision.get("model"), decision.get("raw_confidence")
    options = decision.get("options")
    if not isinstance(model, str) or not model or isinstance(raw, bool) or \
            not isinstance(raw, int | float) or not 0 <= raw <= 1 or \
            not isinstance(options, list) or not options:
        raise ConfigError("record_outcome.decision", "needs the model, options and "
                          "raw_confidence that ai.decide returned; pass its table unchanged")
    form = "triage" if "severity" in decision else "many" if "selected" in decision else "one"
    choice = decision.get("choice")
    provider = decision.get("provider")
    count = DecisionOutcomes(store).record(
        model=model, method=method, raw_confidence=float(raw), correct=correct,
        n_options=len(options), provider=provider if isinstance(provider, str) else None,
        form=form, choice=choice if isinstance(choice, str) else None, run_id=run_id)
    return {"model": model, "method": method, "outcomes": count,
            "refit": count >= MIN_OUTCOMES}
