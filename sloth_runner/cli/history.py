"""`sloth-runner history`: recent runs, or the attempts of one run."""

from __future__ import annotations

import argparse
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="show recent runs, or one run's task attempts")
    p.add_argument("run_id", nargs="?", help="a run id (or its prefix) to show in detail")
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    add_output(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sloth_runner.store import queries
    from sloth_runner.store.runs import recover_interrupted

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    store = open_store()
    recover_interrupted(store)
    if args.run_id:
        run_id = queries.find_run(store, args.run_id)
        if run_id is None:
            raise UsageError(f"no single run matches '{args.run_id}'")
        attempts = queries.run_attempts(store, run_id)
        if args.output == "json":
            print_json({"run_id": run_id, "attempts": attempts})
            return 0
        for a in attempts:
            detail = a["error"] or a["message"] or ""
            print(f"{a['workflow']}/{a['task']:<24} #{a['attempt']} {a['status']:<8} "
                  f"{a['duration_s']:7.2f}s  {detail.splitlines()[0] if detail else ''}")
        return 0
    runs = queries.recent_runs(store, args.limit)
    if args.output == "json":
        print_json({"runs": runs})
        return 0
    if not runs:
        print("no runs recorded yet")
        return 0
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
        dur = f"{r['duration_s']:.2f}s" if r["duration_s"] is not None else "-"
        tasks = ", ".join(f"{n} {s}" for s, n in sorted(r["tasks"].items()))
        print(f"{r['run_id']}  {when}  {r['status']:<11} {dur:>8}  {r['file']}  [{tasks}]")
    return 0
