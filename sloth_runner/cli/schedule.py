"""`sloth-runner schedule add|list|pause|resume|remove|run|history`: cron schedules of runs.

The commands only manage what is stored in the home's database; due runs are started by the
long-running process (`sloth-runner server`), which calls the same service
(sloth_runner/schedules). `schedule run` starts one now from this process and prints its run id.
"""

from __future__ import annotations

import argparse

from sloth_runner.cli.common import add_output, parse_params, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

OPS = "add, list, pause, resume, remove, run or history"


def register(sub: Any) -> None:
    p = sub.add_parser("schedule", help="run workflows on a cron schedule",
                       description="Cron schedules of workflow runs, stored in the home's "
                       "database. `sloth-runner server` starts the due runs: a schedule never "
                       "overlaps itself (a due time while its last run still runs is skipped, "
                       "and recorded why), and times missed while no server ran are skipped "
                       "(recorded once, with how many) or, with --catch-up, run once.")
    ops = p.add_subparsers(dest="op", metavar="OP")
    a = ops.add_parser("add", help="add a schedule",
                       description="Add schedule NAME: run FILE's workflows (default: all) at "
                       "the times CRON gives, in time zone ZONE (default: this machine's, "
                       "stored by name). Runs start in FILE's folder; their output goes to "
                       "the home's logs/schedules/NAME/.")
    a.add_argument("name")
    a.add_argument("--cron", required=True, metavar="EXPR",
                   help='5 fields (minute hour day-of-month month day-of-week), e.g. '
                        '"0 2 * * *", or @hourly, @daily, @weekly, @monthly, @yearly')
    # the workflows follow the file: argparse cannot match a second positional after options
    # that follow the first (`add NAME --cron X -f FILE deploy`)
    a.add_argument("-f", "--file", required=True, nargs="+", metavar=("FILE", "WORKFLOW"),
                   help="the workflow file (.lua), then the workflows to run (default: all, "
                        "in file order)")
    a.add_argument("--param", action="append", metavar="K=V", help="parameter for params.K")
    a.add_argument("-v", "--values", action="append", metavar="FILE",
                   help="YAML values file passed to each run (repeatable; later files win)")
    a.add_argument("--tz", metavar="ZONE",
                   help="IANA time zone of the cron times, e.g. Europe/Berlin (default: this "
                        "machine's)")
    a.add_argument("--catch-up", action="store_true",
                   help="after downtime, run once for the times missed (default: skip them)")
    a.add_argument("--replace", action="store_true",
                   help="replace a schedule of the same name (its history stays)")
    add_output(a)
    a.set_defaults(run=_add)
    ls = ops.add_parser("list", help="schedules, their next runs and last run")
    add_output(ls)
    ls.set_defaults(run=_list)
    for op, what in (("pause", "stop starting runs of a schedule (until resume)"),
                     ("resume", "start its runs again, from its next time after now"),
                     ("remove", "remove a schedule (its history stays)")):
        q = ops.add_parser(op, help=what)
        q.add_argument("name")
        q.set_defaults(run={"pause": _pause, "resume": _resume, "remove": _remove}[op])
    r = ops.add_parser("run", help="start a run of a schedule now and print its run id",
                       description="Start a run of schedule NAME now (paused or not), in the "
                       "background, as its due runs are; print its run id once the run has "
                       "recorded itself. Refused while a run of it is still going on.")
    r.add_argument("name")
    r.add_argument("--wait", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the run's id (default 10)")
    add_output(r)
    r.set_defaults(run=_run)
    h = ops.add_parser("history", help="what became of a schedule's due times, newest first")
    h.add_argument("name")
    h.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    add_output(h)
    h.set_defaults(run=_history)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError(f"schedule needs an operation: {OPS}")
    return int(args.run(args))


def _service() -> Any:
    try:
        from sloth_runner.schedules import ScheduleService, check_cron
    except ImportError as exc:  # pragma: no cover - the package itself is always there
        raise UsageError(f"schedules need {exc.name}") from None
    try:
        check_cron("@daily")  # croniter is imported here: say what to install if it is not
    except ImportError as exc:
        raise UsageError(f"schedules need the {exc.name} package: pip install "
                         "'sloth-runner[ui]' (or pip install croniter)") from None
    return ScheduleService()


def _add(args: argparse.Namespace) -> int:
    service = _service()
    file, *workflows = args.file
    s = service.add(args.name, args.cron, file, workflows, parse_params(args.param),
                    args.values or (), timezone=args.tz, catch_up=args.catch_up,
                    replace=args.replace)
    if args.output == "json":
        print_json(_document(s))
        return 0
    from sloth_runner.schedules import format_time

    what = ", ".join(s["workflows"]) or "all workflows"
    print(f"schedule '{s['name']}' added: {s['cron']} ({s['timezone']}), {what} of {s['file']}"
          + (", catching up after downtime" if s["catch_up"] else "")
          + (" (paused)" if s["paused"] else ""))
    if s["next_runs"]:
        print(f"next run: {format_time(s['next_runs'][0], s['timezone'])}")
    return 0


def _document(s: dict[str, Any]) -> dict[str, Any]:
    """A schedule as JSON: the stored fields, with times also in the schedule's zone."""
    from sloth_runner.schedules import format_time

    zone = s["timezone"]
    doc = dict(s)
    doc["next_runs"] = [format_time(t, zone, iso=True) for t in s["next_runs"]]
    for key in ("created_at", "last_run_at", "next_run_at"):  # epoch seconds, and local
        doc[f"{key}_local"] = format_time(s[key], zone, iso=True) if s[key] else None
    return doc


def _list(args: argparse.Namespace) -> int:
    from sloth_runner.schedules import format_time

    schedules = _service().schedules(count=3 if args.output == "json" else 1)
    if args.output == "json":
        print_json({"schedules": [_document(s) for s in schedules]})
        return 0
    if not schedules:
        print("no schedules (add one with `sloth-runner schedule add NAME --cron \"0 2 * * *\" "
              "-f FILE`)")
        return 0
    table = [("NAME", "CRON", "ZONE", "NEXT RUN", "LAST RUN", "STATUS", "STATE")]
    for s in schedules:
        zone = s["timezone"]
        nxt = "-" if s["paused"] or not s["next_runs"] else format_time(s["next_runs"][0], zone)
        last = "-" if s["last_run_at"] is None else format_time(s["last_run_at"], zone) + \
            (f" {s['last_run_id']}" if s["last_run_id"] else "")
        status = s["last_status"] or "-"
        if s["last_outcome"] in ("skipped_overlap", "skipped_missed"):  # since that run
            status += ", then skipped (" + s["last_outcome"].split("_")[1] + ")"
        state = "paused" if s["paused"] else "active"
        table.append((s["name"], s["cron"], zone, nxt, last, status,
                      state + (", catch-up" if s["catch_up"] else "")))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _pause(args: argparse.Namespace) -> int:
    was = _service().pause(args.name)
    print(f"schedule '{args.name}' is already paused" if was else
          f"schedule '{args.name}' paused")
    return 0


def _resume(args: argparse.Namespace) -> int:
    service = _service()
    changed = service.resume(args.name)
    if not changed:
        print(f"schedule '{args.name}' is not paused")
        return 0
    from sloth_runner.schedules import format_time

    s = service.get(args.name, count=1)
    nxt = format_time(s["next_runs"][0], s["timezone"]) if s["next_runs"] else "-"
    print(f"schedule '{args.name}' resumed; next run: {nxt}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    _service().remove(args.name)
    print(f"schedule '{args.name}' removed")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must not be negative")
    service = _service()
    run_id = service.trigger_now(args.name, wait=args.wait)
    start = service.history(args.name, 1)[0]
    if args.output == "json":
        print_json({"schedule": args.name, "run_id": run_id, "pid": start["pid"],
                    "log_file": start["log_file"]})
        return 0
    if run_id is None:
        print(f"schedule '{args.name}' started (pid {start['pid']}); its run id is not known "
              f"yet: see `sloth-runner schedule history {args.name}` (log: {start['log_file']})")
    else:
        print(run_id)
    return 0


def _history(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    service = _service()
    rows = service.history(args.name, args.limit)
    if args.output == "json":
        print_json({"schedule": args.name, "runs": rows})
        return 0
    if not rows:
        print(f"schedule '{args.name}' has not run yet")
        return 0
    from sloth_runner.schedules import format_time, local_timezone
    from sloth_runner.store.schedules import get_schedule

    s = get_schedule(service.store, args.name)  # gone: a removed schedule's history stays
    zone = s["timezone"] if s else local_timezone()
    for r in rows:
        due = format_time(r["due_at"], zone) if r["due_at"] is not None else "now (manual)"
        run = f"run {r['run_id']} {r['run_status'] or ''}".rstrip() if r["run_id"] else ""
        why = r["reason"] or ""
        print(f"{r['id']:>5}  {due:<22} {r['outcome']:<16} {run}"
              + (f"  {why}" if why else ""))
    return 0
