"""`sloth-runner history`: recent runs, or the attempts of one run."""

from __future__ import annotations

import argparse
import os
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="show recent runs, or one run's task attempts",
                       description="Recent runs; with RUN, that run's attempts; with RUN "
                       "--task NAME, what that task printed and returned.")
    p.add_argument("run_id", nargs="?", metavar="RUN",
                   help="a run id (or its prefix) to show in detail")
    p.add_argument("--task", metavar="NAME", help="with RUN: one task's attempts and outputs")
    p.add_argument("--full", action="store_true",
                   help="with --task: whole outputs (default: the last lines)")
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    add_output(p)
    p.set_defaults(handler=handle)


TAIL_LINES = 40


def handle(args: argparse.Namespace) -> int:
    from sloth_runner.store import queries
    from sloth_runner.store.runs import recover_interrupted

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if (args.task or args.full) and not args.run_id:
        raise UsageError("--task and --full need a RUN")
    if args.full and not args.task:
        raise UsageError("--full goes with --task NAME")
    store = open_store()
    recover_interrupted(store)
    if args.run_id:
        run_id = queries.find_run(store, args.run_id)
        if run_id is None:
            raise UsageError(f"no single run matches '{args.run_id}'")
        if args.task:
            return _task(args, store, run_id)
        attempts = queries.run_attempts(store, run_id)
        if args.output == "json":
            print_json({"run_id": run_id, "run": queries.run_row(store, run_id),
                        "attempts": attempts})
            return 0
        for a in attempts:
            detail = a["error"] or a["message"] or ""
            print(f"{a['workflow']}/{a['task']:<24} #{a['attempt']} {a['status']:<11} "
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
        grants = f"  ({r['grants']})" if r["grants"] else ""
        stack = f"  stack {r['stack']}" if r["stack"] else ""
        print(f"{r['run_id']}  {when}  {r['status']:<11} {dur:>8}  {r['file']}  [{tasks}]"
              f"{stack}{grants}")
    return 0


def _task(args: argparse.Namespace, store: Any, run_id: str) -> int:
    """One task of a run: each attempt's status, message, error, exit code and outputs."""
    import json

    from sloth_runner.store import queries

    attempts = queries.run_attempts(store, run_id, args.task)
    if not attempts:
        names = sorted({a["task"] for a in queries.run_attempts(store, run_id)})
        raise UsageError(f"run {run_id} has no task '{args.task}' (tasks: "
                         f"{', '.join(names) or 'none'})")
    for a in attempts:
        a["outputs"] = json.loads(a.pop("outputs_json")) if a.get("outputs_json") else None
    if args.output == "json":
        print_json({"run_id": run_id, "task": args.task, "attempts": attempts})
        return 0
    for a in attempts:
        print(f"== {a['workflow']}/{a['task']} attempt {a['attempt']}: {a['status']} in "
              f"{a['duration_s']:.2f}s" + (f", exit code {a['exit_code']}"
                                           if a["exit_code"] is not None else ""))
        for label in ("message", "error"):
            if a[label]:
                print(f"{label}: {a[label]}")
        if a.get("log"):
            _print_stream("log", a["log"], None, args.full)
        outputs = a["outputs"] if isinstance(a["outputs"], dict) else {}
        for stream in ("stdout", "stderr"):
            if isinstance(outputs.get(stream), str) and outputs[stream]:
                _print_stream(stream, outputs[stream], outputs.get(f"{stream}_path"), args.full)
        rest = {k: v for k, v in outputs.items()
                if k not in ("stdout", "stderr", "stdout_path", "stderr_path")}
        if rest:
            print("outputs: " + json.dumps(rest, indent=2, default=str))
    return 0


def _print_stream(name: str, text: str, spooled: Any, full: bool) -> None:
    """A stream's last lines, or all of it with --full. Past the 1 MiB kept in memory (the
    end of the output), the whole output is in the run's spool file."""
    whole = None
    if isinstance(spooled, str):
        try:
            whole = os.path.getsize(spooled)
            if full:
                text = _scrubbed_file(spooled)
        except OSError:
            whole = None
    lines = text.rstrip("\n").splitlines()
    if not full and (len(lines) > TAIL_LINES or whole is not None):
        of = f"an output of {whole} bytes" if whole is not None else f"{len(lines)} lines"
        print(f"--- {name} (last {min(TAIL_LINES, len(lines))} lines of {of}; --full for all) ---")
        lines = lines[-TAIL_LINES:]
    else:
        print(f"--- {name} ---")
    for line in lines:
        print(line)


def _scrubbed_file(path: str) -> str:
    """A spool file is the command's raw output (the history keeps only its scrubbed end):
    it is scrubbed as a stream, so a secret split between two reads is still found."""
    from sloth_runner.scrub import Scrubber

    stream = Scrubber().stream()
    parts = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), ""):
            parts.append(stream.feed(chunk))
    parts.append(stream.flush())
    return "".join(parts)
