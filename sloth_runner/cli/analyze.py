"""`sloth-runner analyze`: patterns in the recorded history (failures, trends, anomalies,
resources, retry advice), the same analysis `ai.analyze_patterns` gives a workflow."""

from __future__ import annotations

import argparse
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    from sloth_runner.analytics.patterns import KINDS

    p = sub.add_parser("analyze", help="find failure patterns, trends, anomalies and retry "
                                       "advice in the run history")
    p.add_argument("--since", default="30d", help="how far back to look (default 30d)")
    p.add_argument("--type", action="append", choices=KINDS, dest="types", metavar="KIND",
                   help=f"only this kind of pattern: {', '.join(KINDS)} (repeatable; "
                        "default: all)")
    p.add_argument("--min-confidence", type=float, default=0.0,
                   help="hide patterns less sure than this (0 to 1)")
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
    if not 0 <= args.min_confidence <= 1:
        raise UsageError("--min-confidence must be between 0 and 1")
    store = open_store()
    recover_interrupted(store)
    records = queries.attempts_since(store, time.time() - window)
    found = [p for p in patterns.analyze(records, args.types)
             if p["confidence"] >= args.min_confidence]
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
