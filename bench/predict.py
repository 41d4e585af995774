"""Failure prediction (issue 9): the model against two baselines, evaluated chronologically,
and what `run --predict` adds to a run.

    python bench/predict.py [--seeds 3] [--runs 600] [--real-runs 250] [--rounds 9]

How it is judged: each history's runs are ordered by start; the first 60 % are the past
(the weights are fitted on them), the last 40 % the future (measured). Nothing is shuffled.
A future task run is predicted with the features of its moment: they know every run before it
(including earlier future runs, as a model in use would) and nothing of its own run or later;
the weights know only the past. Only task runs whose task had 30 runs before them are scored
(a task with fewer gets no probability). F1 uses, for each predictor, the threshold with the
best F1 on the past's predictions (the last-outcome baseline is 0/1: threshold 0.5).

Baselines: the task's last outcome (1 if its last run failed, else 0) and its failure rate so
far. On generated histories the *oracle* is the generator's own failure probability for the
run: the best any predictor could do, and for "dep" more than one could before the run (it
knows whether fetch needed a retry in that very run).

(a) generated histories (tests/analytics/histories.py), 600 runs of 5 tasks over 150 days,
    each planted cause alone, mixed, and none (noise), with background failures of 1 % and
    of 3 % a task run; mean over `--seeds` seeds.
(b) a history made by running bench/data/predict_flaky.lua through the real CLI
    (`python -m sloth_runner run -f ... --param target=... --param region=...`) in a
    temporary SLOTH_RUNNER_HOME, `--real-runs` times.
(c) overhead: a 100-task workflow with a trained model; whole runs with and without
    `--predict`, alternating, and the prediction step timed in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sloth_runner.analytics import predict  # noqa: E402
from sloth_runner.analytics.features import outcomes_from_records  # noqa: E402
from tests.analytics.histories import history  # noqa: E402

SCENARIOS = [
    ("host", {"plant": ("host",)}, "deploy fails 90 % on build-07"),
    ("hour", {"plant": ("hour",), "bad_hours": (2, 3, 4, 5)},
     "test fails 80 % between 02:00 and 06:00"),
    ("param", {"plant": ("param",)}, "build fails 85 % with target=arm64"),
    ("load", {"plant": ("load",)}, "build fails 80 % at load > 6"),
    ("flaky", {"plant": ("flaky",), "fetch_retries": 0}, "fetch fails 30 %, whatever the run"),
    ("outage", {"plant": ("outage",)},
     "outage spells: fetch needs retries, deploy fails 85 %"),
    ("dep", {"plant": ("dep",)},
     "deploy fails 85 % when fetch needed a retry in the same run"),
    ("mixed", {"plant": ("host", "hour", "param", "load", "outage"), "bad_hours": (2, 3, 4, 5)},
     "host + hour + param + load + outage"),
    ("noise", {"plant": ()}, "nothing planted"),
]
PREDICTORS = ("model", "last_outcome", "failure_rate", "oracle")


def oracle_of(records: list[dict], base: float, fetch_extra: int) -> dict[tuple, float]:
    """(run, task) -> the generator's probability that the task fails for good in that run:
    its first attempt's, times a retry's (the background rate) for each retry allowed."""
    out: dict[tuple, float] = {}
    for r in records:
        if r["attempt"] == 1:
            extra = fetch_extra if r["task"] == "fetch" else 0
            out[(r["run_id"], r["task"])] = r["p_fail"] * base ** extra
    return out


def generated(seeds: int, runs: int) -> list[dict]:
    rows = []
    for name, options, what in SCENARIOS:
        for base in (0.01, 0.03):
            per_seed = []
            for seed in range(1, seeds + 1):
                records = history(seed, runs=runs, days=150.0, base=base, truth=True,
                                  **options)  # type: ignore[arg-type]
                plant = options["plant"]
                fetch_extra = options.get("fetch_retries", 1 if {"dep", "flaky", "outage"}
                                          & set(plant) else 0)  # type: ignore[arg-type]
                truth = oracle_of(records, base, int(fetch_extra))  # type: ignore[arg-type]
                _, examples = predict.replay(outcomes_from_records(records))
                per_seed.append(predict.evaluate(examples, 0.6, others={
                    "oracle": lambda e, t=truth: t[(e.outcome.run_id, e.outcome.task)]}))
            rows.append({"scenario": name, "what": what, "base": base,
                         **_mean(per_seed)})
    return rows


def _mean(results: list[dict]) -> dict:
    out: dict = {"test_outcomes": sum(r["test_outcomes"] for r in results) / len(results),
                 "test_failures": sum(r["test_failures"] for r in results) / len(results)}
    for p in PREDICTORS:
        if p in results[0]:
            out[p] = {m: statistics.fmean(r[p][m] for r in results if r[p][m] is not None)
                      for m in ("auroc", "brier", "f1")}
    return out


def real(runs: int, seed: int) -> dict:
    """Run the flaky workflow through the CLI `runs` times in a fresh home; evaluate."""
    rng = random.Random(seed)
    flow = os.path.join(ROOT, "bench", "data", "predict_flaky.lua")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SLOTH_RUNNER_HOME": home, "PYTHONPATH": ROOT}
        started = time.perf_counter()
        for _ in range(runs):
            target = rng.choice(["amd64", "amd64", "arm64"])
            region = rng.choice(["eu-west", "us-east", "ap-south"])
            subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", flow, "--param",
                            f"target={target}", "--param", f"region={region}", "-o", "json"],
                           env=env, capture_output=True, check=False)
        spent = time.perf_counter() - started
        os.environ["SLOTH_RUNNER_HOME"] = home
        from sloth_runner.store import Store
        from sloth_runner.store.predictions import final_outcomes

        store = Store()
        outcomes = outcomes_from_records(final_outcomes(store))
        store.close()
    _, examples = predict.replay(outcomes)
    result = predict.evaluate(examples, 0.6)
    result.update(outcomes=len(outcomes), failures=sum(o.failed for o in outcomes),
                  seconds=round(spent, 1))
    return result


HUNDRED = """
for i = 1, 100 do
    local name = string.format("t%03d", i)
    local p = (i % 10 == 0) and 0.3 or 0.02
    task(name):command(function()
        if math.random() < p then return false, name .. " failed" end
        return true
    end):build()
end
"""


STEP = """
import argparse, sys, time
from sloth_runner.cli import run as cli_run
from sloth_runner.running import Run

run = Run(sys.argv[1], process_ends=True)
run.load()
workflows = run.select([], None)
run.store  # opened by every run anyway: not --predict's cost
started = time.perf_counter()
cli_run._predict(run, workflows, argparse.Namespace(dry_run=False, output="json"))
print((time.perf_counter() - started) * 1000)
"""


def overhead(history_runs: int, rounds: int) -> dict:
    """What --predict adds to a 100-task run, the model trained on `history_runs` runs:
    the prediction step in a fresh process each time (its imports, loading the model and
    folding in what was recorded since, 100 predictions, recording them), and whole runs
    with and without --predict, alternating (this machine's noise is larger than the
    difference). `history_runs` of 100 tasks and 2 x `rounds` runs are chosen so that no
    retraining (20 % growth) falls among the measured runs."""
    with tempfile.TemporaryDirectory() as tmp:
        home = os.path.join(tmp, "home")
        flow = os.path.join(tmp, "hundred.lua")
        with open(flow, "w") as fh:
            fh.write(HUNDRED)
        # byte-compiled modules, as an installed package has them (here, in a temporary place)
        env = {**os.environ, "SLOTH_RUNNER_HOME": home, "PYTHONPATH": ROOT,
               "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        def run(*extra: str) -> float:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", flow, "-o", "json",
                            *extra], env=env, capture_output=True, check=False)
            return time.perf_counter() - started

        for _ in range(history_runs):
            run()
        trained = run("--predict")  # trains the model
        steps, plain, with_predict = [], [], []
        for _ in range(rounds):
            out = subprocess.run([sys.executable, "-c", STEP, flow], env=env,
                                 capture_output=True, text=True, check=True)
            steps.append(float(out.stdout.strip().splitlines()[-1]))
            plain.append(run())
            with_predict.append(run("--predict"))
        with open(os.path.join(home, "models", "failure.json")) as fh:
            saved = json.load(fh)
        size = os.path.getsize(os.path.join(home, "models", "failure.json"))
    diffs = [b - a for a, b in zip(plain, with_predict, strict=True)]
    return {"history_runs": history_runs, "rounds": rounds,
            "trained_on": saved["trained_n"], "first_predict_run_s": round(trained, 3),
            "step_median_ms": round(statistics.median(steps), 1),
            "step_max_ms": round(max(steps), 1),
            "plain_median_s": round(statistics.median(plain), 4),
            "predict_median_s": round(statistics.median(with_predict), 4),
            "whole_run_added_median_ms": round(statistics.median(diffs) * 1000, 1),
            "model_file_kb": round(size / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=600)
    ap.add_argument("--real-runs", type=int, default=250)
    ap.add_argument("--real-seed", type=int, default=1)
    ap.add_argument("--history-runs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--skip", action="append", default=[], choices=("a", "b", "c"))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    figures: dict = {}
    if "a" not in args.skip:
        started = time.perf_counter()
        figures["generated"] = rows = generated(args.seeds, args.runs)
        print(f"(a) generated histories, {args.seeds} seeds each, "
              f"{time.perf_counter() - started:.0f}s")
        print("| history | background | AUROC model / last / rate / oracle | Brier model / "
              "last / rate / oracle | F1 model / last / rate / oracle |")
        print("|---|---|---|---|---|")
        for r in rows:
            cells = [" / ".join(f"{r[p][m]:.{3 if m == 'brier' else 2}f}" for p in PREDICTORS)
                     for m in ("auroc", "brier", "f1")]
            print(f"| {r['scenario']}: {r['what']} | {r['base']:.0%} | " + " | ".join(cells)
                  + " |")
    if "b" not in args.skip:
        result = real(args.real_runs, args.real_seed)
        figures["real"] = result
        print(f"(b) {args.real_runs} runs through the CLI in {result['seconds']}s: "
              f"{result['outcomes']} finished task runs, {result['failures']} failed; "
              f"test: {result['test_runs']} runs, {result['test_outcomes']} task runs, "
              f"{result['test_failures']} failed")
        for p in ("model", "last_outcome", "failure_rate"):
            m = result[p]
            print(f"  {p:<13} AUROC {m['auroc']:.3f}  Brier {m['brier']:.4f}  F1 {m['f1']:.3f}")
    if "c" not in args.skip:
        figures["overhead"] = result = overhead(args.history_runs, args.rounds)
        print(f"(c) overhead: {json.dumps(result)}")
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
