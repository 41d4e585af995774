"""ai.decide's confidence against labelled decisions, on the bundled model: accuracy, expected
calibration error, Brier score and AUROC of confidence for correctness, before (raw) and after
calibration, on held-out decisions.

The labelled decisions are DevOps situations written for this benchmark, each with 2-4 options
(choose one) or a severity to rate (triage), a right answer and why it is right. The position
of the right answer among the options was set by a hash of the decision's id, so a model that
prefers the first (or last) option gains nothing. They come in two parts:

- fit: bench/data/decisions.jsonl (154). The method was developed on these and the shipped
  parameters (sloth_runner/ai/calibration_params.py) are fitted on them: `--fit` asks them and
  prints that fit.
- held out: bench/data/decisions_held_out.jsonl (118), written after the method and its fit were
  fixed and used for nothing but these figures.

ECE uses 10 equal-width bins. "noise floor" is the mean ECE that perfectly calibrated
confidences would show on the same decisions (outcomes drawn from the confidences, 2,000 times):
an ECE near it is as good as this many decisions can show.

    python bench/decide_calibration.py [--fit] [--baseline] [--limit N] [--save F | --load F]

--baseline also asks every held-out decision the way ai.decide did before option scoring (the
greedy answer under the grammar, confidence exp(mean token log-prob)), for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIT = os.path.join(HERE, "data", "decisions.jsonl")
HELD_OUT = os.path.join(HERE, "data", "decisions_held_out.jsonl")
BINS = 10
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def load_set(path: str, limit: int | None) -> list[dict]:
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return rows[:limit] if limit else rows


def ask(service, rows: list[dict], label: str) -> list[dict]:
    out = []
    for i, row in enumerate(rows, 1):
        started = time.perf_counter()
        d = service.decide(dict(row["spec"]))
        out.append({"id": row["id"], "method": d["method"], "raw": d["raw_confidence"],
                    "confidence": d["confidence"], "calibration": d["calibration"],
                    "n_options": len(d["options"]), "choice": d["choice"],
                    "correct": d["choice"] == row["answer"],
                    "seconds": time.perf_counter() - started})
        print(f"\r{label}: {i}/{len(rows)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def run_model(args: argparse.Namespace) -> dict[str, list[dict]]:
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()  # no recorded outcomes: shipped map
    from sloth_runner.ai import option_scores
    from sloth_runner.ai.client import AIService

    service = AIService(environ={})
    service.configure({"provider": "local", "retry_attempts": 0})
    service.decide({"situation": "warm-up", "options": ["a", "b"]})  # load outside the timing
    held_out = load_set(HELD_OUT, args.limit)
    results = {"held_out": ask(service, held_out, "held out")}
    if args.fit:
        results["fit"] = ask(service, load_set(FIT, args.limit), "fit part")
    if args.baseline:
        shipped = option_scores.score
        option_scores.score = lambda *a, **k: None  # type: ignore[assignment]
        try:
            results["held_out_before"] = ask(service, held_out, "held out, as before")
        finally:
            option_scores.score = shipped
    return results


def noise_floor(confidence: list[float], rounds: int = 2000) -> float:
    from sloth_runner.ai.calibration_metrics import expected_calibration_error

    rng = random.Random(9)
    total = 0.0
    for _ in range(rounds):
        drawn = [rng.random() < c for c in confidence]
        total += expected_calibration_error(confidence, drawn, BINS) or 0.0
    return total / rounds


def line(label: str, confidence: list[float], correct: list[bool], floor: bool) -> str:
    from sloth_runner.ai.calibration_metrics import summary

    s = summary(confidence, correct, BINS)
    auroc = "n/a" if s["auroc"] is None else f"{s['auroc']:.2f}"
    extra = f"{noise_floor(confidence):.3f}" if floor else ""
    return (f"| {label} | {s['n']} | {s['accuracy']:.2f} | {s['ece']:.3f} | {s['brier']:.3f} "
            f"| {auroc} | {extra} |")


def report(results: dict[str, list[dict]]) -> None:
    from sloth_runner.ai.calibration import Outcome, Platt, chance_of, fit
    from sloth_runner.ai.calibration_metrics import selective
    from sloth_runner.ai.calibration_params import SHIPPED

    shipped = Platt(*SHIPPED[("SmolLM2-135M-Instruct", "option_logprobs")])
    held = [r for r in results["held_out"] if r["raw"] is not None]
    ok = [r["correct"] for r in held]
    print(f"ECE: {BINS} equal-width bins. All rows: the held-out decisions.\n")
    print("| confidence | decisions | accuracy | ECE | Brier | AUROC | noise floor of ECE |")
    print("|---|---|---|---|---|---|---|")
    before = [r for r in results.get("held_out_before", []) if r["raw"] is not None]
    if before:
        print(line("before: greedy answer, exp(mean token log-prob)", [r["raw"] for r in before],
                   [r["correct"] for r in before], False))
    print(line("option log-probs, raw (choice's share)", [r["raw"] for r in held], ok, False))
    print(line("option log-probs, calibrated (shipped), as ai.decide reports it",
               [r["confidence"] for r in held], ok, True))
    if "fit" in results:
        sample = [Outcome(r["raw"], r["correct"], chance_of(r["method"], r["n_options"]))
                  for r in results["fit"] if r["raw"] is not None]
        now = fit(sample)
        print(line("option log-probs, calibrated (fitted now on the fit part)",
                   [now.apply(r["raw"], chance_of(r["method"], r["n_options"])) for r in held],
                   ok, True))
    for k in sorted({r["n_options"] for r in held}):
        part = [r for r in held if r["n_options"] == k]
        print(f"\n{k} options: {len(part)} decisions, right {statistics.mean(r['correct'] for r in part):.2f}"
              f", chance {1 / k:.2f}, calibrated confidence "
              f"{statistics.mean(r['confidence'] for r in part):.2f}", end="")
    print("\n\nWhat `threshold` keeps (held out, confidence as ai.decide reports it):\n")
    print("| threshold | decisions kept | accuracy of those kept |")
    print("|---|---|---|")
    conf = [r["confidence"] for r in held]
    for t in THRESHOLDS:
        kept, acc = selective(conf, ok, t)
        print(f"| {t:.1f} | {kept:.0%} | {'-' if acc is None else f'{acc:.2f}'} |")
    every = [r for rs in results.values() for r in rs]
    print(f"\n{len(every)} decisions asked, mean {statistics.mean(r['seconds'] for r in every):.2f}"
          f" s each ({sum(r['seconds'] for r in every):.0f} s in all); shipped map a="
          f"{shipped.a:g}, b={shipped.b:g}; calibration used: "
          f"{sorted({r['calibration'] for r in results['held_out']})}")
    if "fit" in results:
        print(f"fit part ({len(sample)} decisions): a={now.a!r}, b={now.b!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true",
                        help="also ask the fit part and print the fit (for calibration_params)")
    parser.add_argument("--baseline", action="store_true",
                        help="also ask each held-out decision the way ai.decide did before")
    parser.add_argument("--limit", type=int, help="only the first N decisions of each part")
    parser.add_argument("--save", help="write the per-decision results to this JSON file")
    parser.add_argument("--load", help="read per-decision results saved by --save instead "
                        "of asking the model")
    args = parser.parse_args()
    if args.load:
        with open(args.load) as fh:
            results = json.load(fh)
    else:
        started = time.perf_counter()
        results = run_model(args)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; bundled "
              f"SmolLM2-135M-Instruct, 1 thread; {time.perf_counter() - started:.0f} s\n")
        if args.save:
            with open(args.save, "w") as fh:
                json.dump(results, fh)
    report(results)


if __name__ == "__main__":
    main()
