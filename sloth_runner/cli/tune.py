"""`sloth-runner tune -f FILE`: timeouts, retries and max_parallel_tasks for a workflow file,
recommended from the history of its own runs, with the evidence; `--diff` shows the edit of
the Lua file, `--write` makes it (analytics/tuning*.py, analytics/luaedit.py)."""

from __future__ import annotations

import argparse

from sloth_runner.cli.common import (
    add_debug,
    add_output,
    add_values,
    parse_params,
    print_json,
    read_values,
    warn,
)
from sloth_runner.errors import LoadError, UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.engine.model import Workflow


def register(sub: Any) -> None:
    p = sub.add_parser(
        "tune", help="recommend timeouts, retries and max_parallel_tasks from a file's history",
        description="Recommend, from the recorded runs of a workflow file, a timeout and "
        "retries per task and max_parallel_tasks per workflow, with the evidence, the critical "
        "path and the expected run time. --diff shows the change to the Lua file, --write "
        "makes it (only the builder calls involved change).")
    p.add_argument("-f", "--file", required=True, help="workflow file (.lua)")
    p.add_argument("--since", default="30d", metavar="DURATION",
                   help="how far back to look (default 30d)")
    p.add_argument("--percentile", type=float, default=99.0, metavar="P",
                   help="percentile of successful durations a timeout starts from (default 99)")
    p.add_argument("--margin", type=float, default=1.5, metavar="X",
                   help="factor over that percentile (default 1.5)")
    p.add_argument("--min-successes", type=int, default=5, metavar="N",
                   help="successful attempts a task needs for a timeout (default 5)")
    p.add_argument("--diff", action="store_true", help="print the change as a unified diff")
    p.add_argument("--write", action="store_true",
                   help="change the file in place (atomically; checked by loading it again)")
    p.add_argument("--param", action="append", metavar="K=V",
                   help="parameter for params.K, if the file needs one to load")
    add_values(p)
    p.add_argument("--sandbox", action="store_true", help="load with the Lua sandbox")
    add_output(p)
    add_debug(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sloth_runner.durations import parse_duration

    try:
        args.window = parse_duration(args.since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from exc
    if not 0 < args.percentile <= 100:
        raise UsageError("--percentile must be above 0 and at most 100")
    if args.margin < 1:
        raise UsageError("--margin must be at least 1 (a timeout below the measured durations "
                         "would fail the task)")
    if args.min_successes < 1:
        raise UsageError("--min-successes must be at least 1")
    try:
        return _tune(args)
    except LoadError as exc:
        if args.output == "json":
            print_json({"status": "error", "error": str(exc)})
            return exc.exit_code
        raise


def _load(args: argparse.Namespace) -> tuple[list[Workflow], frozenset[tuple[str, str]]]:
    """The file's workflows, and the tasks that already run in a worker process."""
    from sloth_runner.reporting import make_reporter
    from sloth_runner.running import Run

    reporter = make_reporter("json", debug=args.debug)  # load-time logs go to stderr
    with Run(args.file, listener=reporter, sandbox=args.sandbox, debug=args.debug,
             params=parse_params(args.param), values=read_values(args.values)) as run:
        workflows = run.load()
        warn(run.warnings)
        in_worker = frozenset((wf.name, t.name) for wf in workflows for t in wf.tasks
                              if run.in_worker(t))
    return workflows, in_worker


def _tune(args: argparse.Namespace) -> int:
    import time

    from sloth_runner.analytics import tuning, tuning_edits
    from sloth_runner.analytics.tuning_host import host_resources
    from sloth_runner.cli.common import open_store
    from sloth_runner.store import tuning_queries
    from sloth_runner.store.runs import recover_interrupted

    original = _read(args.file)
    workflows, in_worker = _load(args)
    store = open_store()
    recover_interrupted(store)
    runs, unresolved = tuning_queries.runs_of_file(store, args.file, time.time() - args.window)
    if not runs:
        message = f"no runs of {args.file} recorded in the last {args.since}: nothing to tune"
        if unresolved:
            message += (f" ({unresolved} runs of a file of that name recorded a path relative "
                        "to another directory: run tune from there)")
        if args.output == "json":
            print_json({"file": args.file, "since": args.since, "runs": 0,
                        "unmatched_runs": unresolved, "message": message, "workflows": [],
                        "changes": []})
        else:
            print(message)
        return 0
    attempts = tuning_queries.attempts_of_runs(store, [r["id"] for r in runs])
    settings = tuning.Settings(args.percentile, args.margin, args.min_successes)
    report = {"file": args.file, "since": args.since, "runs": len(runs),
              "unmatched_runs": unresolved,
              **tuning.tune(workflows, attempts, host_resources(), settings, in_worker)}
    text = original.decode("utf-8")
    plan = tuning_edits.plan(text, args.file, report)
    report["changes"] = plan.changes
    tuned = plan.text
    diff = tuning_edits.unified_diff(text, tuned, args.file)
    if args.diff:
        report["diff"] = diff
    report["written"] = False
    if args.write and tuned != text:
        from sloth_runner.analytics.tuning_write import write_verified

        write_verified(args.file, original, tuned.encode("utf-8"),
                       lambda: _check(args, plan.expected()))
        report["written"] = True
    if args.output == "json":
        print_json(report)
        return 0
    from sloth_runner.analytics.tuning_report import render

    print(render(report, diff if args.diff else None, args.write), end="")
    return 0


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory, not a workflow file") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc


def _check(args: argparse.Namespace, expected: dict[tuple[str, str | None, str], Any]
           ) -> str | None:
    """None if the written file loads and defines what was written; else what is wrong."""
    try:
        workflows, _ = _load(args)
    except LoadError as exc:
        return f"does not load: {exc}"
    actual: dict[tuple[str, str | None, str], Any] = {}
    for wf in workflows:
        actual[(wf.name, None, "max_parallel_tasks")] = wf.max_parallel
        for t in wf.tasks:
            actual[(wf.name, t.name, "timeout")] = t.timeout
            actual[(wf.name, t.name, "retries")] = t.retries
    wrong = [f"{wf}{'/' + task if task else ''} {setting} is {actual.get((wf, task, setting))!r}"
             f", not {value!r}" for (wf, task, setting), value in expected.items()
             if actual.get((wf, task, setting)) != value]
    return f"does not define what was written ({'; '.join(wrong)})" if wrong else None
