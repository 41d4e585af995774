"""Calibration shipped with sloth-runner: the parameters (a, b) of ai/calibration.py's map per
(model, method), for models whose decisions were measured against labelled answers.

SmolLM2-135M-Instruct (the bundled model), option_logprobs: fitted by
`python bench/decide_calibration.py --fit` on the *fit* part of the labelled decisions,
bench/data/decisions.jsonl (154 decisions: 32 with two options, 89 with three, 8 with four, 25
triage). The held-out part, bench/data/decisions_held_out.jsonl, was written after this method
and its fit were fixed, and is used only to measure them (BENCHMARKS.md, "Decision calibration
(issue 9)"). The fitted slope is 0: the model's share of probability for its choice does not
tell its right choices from its wrong ones, so the map gives chance (1/k) plus a lift b, i.e.
0.58 with two options, 0.41 with three, 0.32 with four.
"""

from __future__ import annotations

SHIPPED: dict[tuple[str, str], tuple[float, float]] = {
    ("SmolLM2-135M-Instruct", "option_logprobs"): (0.0, 0.3238),
}
