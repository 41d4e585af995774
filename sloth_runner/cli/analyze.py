"""`sloth-runner analyze`: patterns in the recorded history (failures, trends, anomalies,
resources, retry advice), the same analysis `ai.analyze_patterns` gives a workflow."""

from __future__ import annotations

import argparse
import sys
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    from sloth_runner.analytics.patterns import ALPHA, KINDS

    p = sub.add_parser("analyze", help="find failure patterns, trends, anomalies and retry "
                                       "advice in the run history")
    p.add_argument("--since", default="30d", help="how far back to look (default 30d)")
    p.add_argument("--type", action="append", choices=KINDS, dest="types", metavar="KIND",
                   help=f"only this kind of pattern: {', '.join(KINDS)} (repeatable; "
                        "default: all)")
    p.add_argument("--min-confidence", type=float, default=1 - ALPHA, metavar="C",
                   help="report patterns at least this sure (default %(default)g): confidence "
                        "is 1 - q, the claim's p-value adjusted for every claim tested, so "
                        "at most 1 - C of the patterns reported are expected to be false")
    p.add_argument("--predict", action="store_true",
                   help="instead of patterns: the predicted failure risk of each task's next "
                        "run on this host now, and how well the model predicted the newest "
                        "runs of the history")
    p.add_argument("--html", metavar="FILE",
                   help="also write the analytics view (patterns and plots) as one "
                        "self-contained HTML file")
    add_output(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sloth_runner.analytics import patterns
    from sloth_runner.durations import parse_duration
    from sloth_runner.store import queries
    from sloth_runner.store.runs import recover_interrupted

    try:
        window = parse_duration(args.since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from exc
    if not 0 < args.min_confidence < 1:
        raise UsageError("--min-confidence must be between 0 and 1 (exclusive)")
    store = open_store()
    recover_interrupted(store)
    if args.predict:
        return _predict(args, store, time.time() - window)
    records = queries.attempts_since(store, time.time() - window)
    heals = queries.heals_since(store, time.time() - window)
    found = patterns.analyze(records, args.types, alpha=1 - args.min_confidence, heals=heals)
    if args.html:
        _html(store, args.since, args.html)
    if args.output == "json":
        print_json({"since": args.since, "attempts": len(records), "patterns": found})
        return 0
    if not records:
        print(f"no task attempts recorded in the last {args.since}")
        return 0
    if not found:
        print(f"no patterns in {len(records)} attempts over the last {args.since}")
        return 0
    for p in found:
        print(f"[{p['confidence']:.2f}] {p['type']:<20} {p['description']}")
        print(f"{'':7}{'':21}-> {p['recommendation']}")
    return 0


def _html(store: Any, since: str, path: str) -> None:
    try:
        from sloth_runner.ui.report import write_report
    except ImportError as exc:
        raise UsageError(f"--html needs {exc.name}: pip install 'sloth-runner[ui]'") from None
    try:
        count = write_report(store, since, path)
    except OSError as exc:
        raise UsageError(f"--html: cannot write {path}: {exc.strerror}") from None
    print(f"report: {path} ({count} patterns)", file=sys.stderr)


def _predict(args: argparse.Namespace, store: Any, since: float) -> int:
    """--predict: the model's own chronological evaluation, then each task that ran since
    `since`, with the risk of its next run here and now, with its last run's parameters."""
    from sloth_runner.analytics.predict import FailurePredictor, current_load
    from sloth_runner.cli.run import print_predictions
    from sloth_runner.store.runs import HOST

    predictor = FailurePredictor(store)
    tasks = [(wf, t) for wf, t in predictor.known_tasks()
             if (predictor.last_run(wf, t) or 0) >= since]
    predictions = predictor.predict_tasks(tasks, host=HOST, load=current_load(),
                                          last_params=True)
    predictions.sort(key=lambda p: -(p["probability"] if p["probability"] is not None else -1))
    summary = predictor.summary()
    if args.output == "json":
        print_json({"since": args.since, "host": HOST, "model": summary,
                    "predictions": predictions})
        return 0
    ev = summary["evaluation"]
    if ev.get("model"):
        print(f"evaluated chronologically: fitted on the oldest {ev['train_runs']} runs, "
              f"tested on the newest {ev['test_runs']} ({ev['test_outcomes']} finished tasks "
              f"with {summary['min_task_runs']}+ runs before them, {ev['test_failures']} "
              "failed):")
        print(f"  {'':<14}{'AUROC':>7}{'Brier':>8}{'F1':>7}")
        for key, name in (("model", "model"), ("last_outcome", "last outcome"),
                          ("failure_rate", "failure rate")):
            m = ev[key]
            auroc = f"{m['auroc']:.2f}" if m["auroc"] is not None else "-"
            print(f"  {name:<14}{auroc:>7}{m['brier']:>8.3f}{m['f1']:>7.2f}")
    elif ev.get("reason"):
        print(f"no evaluation: {ev['reason']}")
    if not tasks:
        print(f"no finished task runs in the last {args.since}")
        return 0
    print(f"next run of each task on {HOST} now, with its last run's parameters:")
    print_predictions(summary, predictions)
    return 0
