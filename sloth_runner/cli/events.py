"""`sloth-runner events list|show`: the events runs recorded, and what their hooks did."""

from __future__ import annotations

import argparse
import json
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("events", help="show recorded events and their hook executions",
                       description="Events are recorded for runs that a registered hook "
                       "applies to.")
    ops = p.add_subparsers(dest="op", metavar="OP")
    ls = ops.add_parser("list", help="recent events, newest first")
    ls.add_argument("--type", dest="types", action="append", metavar="TYPE",
                    help="only this type (`task.failed`, or a pattern like `task.*`); "
                         "repeatable")
    ls.add_argument("--run", metavar="RUN", help="only this run's (an id or its prefix)")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    add_output(ls)
    s = ops.add_parser("show", help="one event: its data and its hook executions")
    s.add_argument("id", metavar="ID")
    add_output(s)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError("events needs an operation: list or show")
    return _list(args) if args.op == "list" else _show(args)


def _list(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import list_events

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    events = list_events(open_store(), args.types, args.run, args.limit)
    if args.output == "json":
        print_json({"events": events})
        return 0
    if not events:
        print("no events recorded (runs record events while a hook applies to them)")
        return 0
    for e in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        where = "/".join(p for p in (e["workflow"], e["task"]) if p)
        hooks = ", ".join(f"{n} {s}" for s, n in sorted(e["hooks"].items()))
        print(f"{e['id']:>6}  {when}  {e['type']:<20} {e['run_id'] or '-':<12} {where}"
              f"{'  hooks: ' + hooks if hooks else ''}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import get_event

    try:
        event_id = int(args.id)
    except ValueError:
        raise UsageError(f"an event id is a number (see `sloth-runner events list`), got "
                         f"'{args.id}'") from None
    event = get_event(open_store(), event_id)
    if event is None:
        raise UsageError(f"no event {event_id} (see `sloth-runner events list`)")
    if args.output == "json":
        print_json(event)
        return 0
    print(f"event {event['id']}: {event['type']}")
    rows = [("time", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["at"]))),
            ("run", event["run_id"]), ("stack", event["stack"]), ("workflow", event["workflow"]),
            ("task", event["task"]), ("source", event["source"])]
    for label, value in rows:
        if value:
            print(f"  {label:<9} {value}")
    data = json.dumps(event["data"], indent=2, ensure_ascii=False, default=str)
    print("  data      " + data.replace("\n", "\n            "))
    if not event["hook_runs"]:
        print("  hooks     none ran (yet)")
    for r in event["hook_runs"]:
        took = f"{r['duration_s']:.2f}s" if r["duration_s"] is not None else "-"
        error = (r["error"] or "").splitlines()
        print(f"  hook      {r['hook']}: {r['status']} {took}"
              f"{'  ' + error[0] if error else ''}")
    return 0
