"""`sloth-runner hook add|list|remove|history|test`: Lua files that react to events."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

# Names the Go sloth-runner uses for events this one calls otherwise.
_RENAMED = {"task.completed": "task.succeeded", "task.timeout": "task.timed_out",
            "task.retrying": "task.retried", "task.cancelled": "task.failed"}


def register(sub: Any) -> None:
    p = sub.add_parser("hook", help="register Lua hooks that run on events",
                       description="Hooks are Lua files returning {name, event_type(s), stack?, "
                       "timeout?, execute = function(event) ... end}; they run, off the task "
                       "path, for each event they subscribe to.")
    ops = p.add_subparsers(dest="op", metavar="OP")
    a = ops.add_parser("add", help="register a hook file (its path is stored; it is loaded "
                                   "again at each execution)")
    a.add_argument("file")
    a.add_argument("--replace", action="store_true",
                   help="replace a hook of the same name (to change its types, stack, timeout)")
    add_output(a)
    ls = ops.add_parser("list", help="registered hooks, with their last execution")
    add_output(ls)
    r = ops.add_parser("remove", help="unregister a hook (its history stays)")
    r.add_argument("name")
    h = ops.add_parser("history", help="a hook's executions, newest first")
    h.add_argument("name")
    h.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    add_output(h)
    t = ops.add_parser("test", help="run a hook now on a sample event (recorded in history)")
    t.add_argument("name")
    t.add_argument("--type", dest="event_type", metavar="TYPE",
                   help="the event's type (default: the hook's first)")
    t.add_argument("--data", metavar="JSON", help="the event's data, a JSON object")
    add_output(t)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError("hook needs an operation: add, list, remove, history or test")
    return {"add": _add, "list": _list, "remove": _remove, "history": _history,
            "test": _test}[args.op](args)


def _add(args: argparse.Namespace) -> int:
    from sloth_runner.events import ENGINE_TYPES
    from sloth_runner.events.hooks import HookHost, HookOutput, load_hook
    from sloth_runner.store.events import add_hook

    path = os.path.abspath(args.file)
    store = open_store()
    host = HookHost(store)
    def to_stderr(line: str) -> None:  # what its top-level code logs
        sys.stderr.write(line + "\n")

    echo = HookOutput(to_stderr)
    spec, _ = load_hook(path, host.services(echo, None, None))
    for t in spec.event_types:
        if t.startswith(("task.", "workflow.")) and not t.endswith("*") and \
                t not in ENGINE_TYPES:
            hint = f"did you mean '{_RENAMED[t]}'? " if t in _RENAMED else ""
            sys.stderr.write(f"warning: sloth-runner emits no '{t}' event ({hint}runs emit "
                             f"{', '.join(ENGINE_TYPES)}); only event.dispatch can send it\n")
    if not add_hook(store, spec.name, path, spec.event_types, spec.stack, spec.description,
                    spec.timeout_s, args.replace):
        raise UsageError(f"a hook named '{spec.name}' exists: `sloth-runner hook add "
                         f"{args.file} --replace` replaces it")
    document = {"name": spec.name, "file": path, "event_types": spec.event_types,
                "stack": spec.stack, "timeout_s": spec.timeout_s,
                "description": spec.description}
    if args.output == "json":
        print_json(document)
    else:
        where = f" (stack {spec.stack})" if spec.stack else ""
        print(f"hook '{spec.name}' added: {', '.join(spec.event_types)}{where}, from {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import list_hooks

    hooks = list_hooks(open_store())
    if args.output == "json":
        print_json({"hooks": hooks})
        return 0
    if not hooks:
        print("no hooks registered (add one with `sloth-runner hook add FILE`)")
        return 0
    width = max(len(h["name"]) for h in hooks)
    for h in hooks:
        last = f"{h['runs']} runs, last {h['last_status']}" if h["runs"] else "never ran"
        stack = f"  stack {h['stack']}" if h["stack"] else ""
        print(f"{h['name']:<{width}}  {', '.join(h['event_types'])}{stack}  "
              f"timeout {h['timeout_s']:g}s  [{last}]  {h['file']}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import remove_hook

    if not remove_hook(open_store(), args.name):
        raise UsageError(f"no hook named '{args.name}' (see `sloth-runner hook list`)")
    print(f"hook '{args.name}' removed")
    return 0


def _history(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import get_hook, hook_history

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    store = open_store()
    runs = hook_history(store, args.name, args.limit)
    if not runs and get_hook(store, args.name) is None:
        raise UsageError(f"no hook named '{args.name}' (see `sloth-runner hook list`)")
    if args.output == "json":
        print_json({"hook": args.name, "runs": runs})
        return 0
    if not runs:
        print(f"hook '{args.name}' has not run yet")
        return 0
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
        took = f"{r['duration_s']:.2f}s" if r["duration_s"] is not None else "-"
        event = f"event {r['event_id']} {r['event_type']}" if r["event_id"] is not None else \
            f"test {r['event_type']}"
        error = (r["error"] or "").splitlines()
        print(f"{r['id']:>5}  {when}  {r['status']:<8} {took:>8}  {event}"
              f"{'  ' + error[0] if error else ''}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from sloth_runner.events.hooks import HookHost, run_hook
    from sloth_runner.store.events import get_hook, hook_run_finished, hook_run_started

    store = open_store()
    hook = get_hook(store, args.name)
    if hook is None:
        raise UsageError(f"no hook named '{args.name}' (see `sloth-runner hook list`)")
    kind = args.event_type or next((t for t in hook["event_types"] if not t.endswith("*")), None)
    if kind is None:
        raise UsageError(f"hook '{args.name}' subscribes to patterns only "
                         f"({', '.join(hook['event_types'])}): give --type")
    data = _sample_data(kind)
    if args.data is not None:
        try:
            data = json.loads(args.data)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--data is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError("--data must be a JSON object, like '{\"key\": \"value\"}'")
    event = {"id": None, "type": kind, "at": time.time(), "run_id": None,
             "workflow": data.get("workflow"), "task": data.get("task"),
             "stack": hook["stack"], "source": "test", "data": data}
    echo = None if args.output == "json" else print
    row = hook_run_started(store, hook["name"], event, time.time())
    host = HookHost(store)
    result = run_hook(host, hook, event, time.monotonic() + float(hook["timeout_s"]), echo=echo)
    hook_run_finished(store, row, result.status, result.duration_s, result.error, result.output)
    if args.output == "json":
        print_json({"hook": hook["name"], "event": event, "status": result.status,
                    "duration_s": result.duration_s, "error": result.error,
                    "output": result.output})
    else:
        print(f"hook '{hook['name']}' on {kind}: {result.status} in {result.duration_s:.2f}s")
        if result.error:
            print(f"error: {result.error}")
    return 0 if result.status == "success" else 1


def _sample_data(kind: str) -> dict[str, Any]:
    """Data shaped like what a run sends for `kind`, for a test."""
    if kind.startswith("task."):
        status = {"task.succeeded": "success", "task.failed": "failed",
                  "task.timed_out": "timeout", "task.skipped": "skipped",
                  "task.retried": "failed"}.get(kind, "running")
        data: dict[str, Any] = {"workflow": "test", "task": "test", "status": status,
                                "attempts": 1, "duration_s": 0.0, "message": "",
                                "error": None if status in ("success", "running", "skipped")
                                else "a sample failure (sloth-runner hook test)"}
        return data
    if kind.startswith("workflow."):
        ok = kind != "workflow.failed"
        return {"workflow": "test", "status": "success" if ok else "failed", "duration_s": 0.0,
                "error": None if ok else "a sample failure (sloth-runner hook test)",
                "tasks": {"success" if ok else "failed": 1},
                "failed_tasks": [] if ok else ["test"]}
    return {"test": True}
