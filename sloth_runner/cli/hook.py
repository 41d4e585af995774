"""`sloth-runner hook add|list|show|enable|disable|remove|history|test`: Lua files that react
to events.

The Go sloth-runner's hook commands work as they are: `hook add NAME --file FILE --event TYPE`
(its files define on_event() and declare nothing), `get`/`show`, `enable`/`disable`, `delete`
(our `remove`) and `logs` (our `history`), so scripts written for it keep working here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("hook", help="register Lua hooks that run on events",
                       description="Hooks are Lua files returning {name, event_type(s), stack?, "
                       "timeout?, enabled?, execute = function(event) ... end}, or Go "
                       "sloth-runner hook files defining on_event() (`hook add NAME --file FILE "
                       "--event TYPE`); they run, off the task path, for each event they "
                       "subscribe to.")
    ops = p.add_subparsers(dest="op", metavar="OP")
    a = ops.add_parser("add", help="register a hook file (its path is stored; it is loaded "
                                   "again at each execution)",
                       description="`hook add FILE` registers the hook FILE declares; `hook add "
                       "NAME --file FILE --event TYPE` (the Go sloth-runner's form) registers a "
                       "file defining on_event(). Options override what the file declares.")
    a.add_argument("target", metavar="FILE|NAME",
                   help="the hook file, or with --file the hook's name")
    a.add_argument("-f", "--file", help="the hook file (the first argument is then its name)")
    a.add_argument("-e", "--event", action="append", metavar="TYPE",
                   help="an event type it runs on (repeatable); the Go sloth-runner's names "
                        "(task.completed, ...) are registered under this one's")
    a.add_argument("-d", "--description")
    a.add_argument("-s", "--stack", help="run it only for runs of this stack")
    a.add_argument("--timeout", metavar="DURATION", help="default 30s")
    a.add_argument("--enabled", nargs="?", const=True, type=_boolean, metavar="BOOL",
                   help="--enabled=false registers it disabled")
    a.add_argument("--replace", action="store_true",
                   help="replace a hook of the same name (to change its types, stack, timeout)")
    add_output(a)
    a.set_defaults(run=_add)
    ls = ops.add_parser("list", help="registered hooks, with their last execution")
    ls.add_argument("-s", "--stack", help="only the hooks of this stack")
    add_output(ls)
    ls.set_defaults(run=_list)
    for op, output, what in (("show", "text", "a hook: what it is registered for, its runs"),
                             ("get", "json", "the same as show, as JSON by default")):
        g = ops.add_parser(op, help=what)
        g.add_argument("name")
        add_output(g)
        g.set_defaults(run=_show, output=output)
    for op, what in (("enable", "let a hook run again"),
                     ("disable", "keep a hook registered, but run it for no event")):
        e = ops.add_parser(op, help=what)
        e.add_argument("name")
        e.set_defaults(run=_enable if op == "enable" else _disable)
    r = ops.add_parser("remove", aliases=["delete"], help="unregister a hook (its history stays)")
    r.add_argument("name")
    r.add_argument("-f", "--force", action="store_true",
                   help="accepted for the Go sloth-runner's scripts (nothing is asked here)")
    r.set_defaults(run=_remove)
    h = ops.add_parser("history", aliases=["logs"], help="a hook's executions, newest first")
    h.add_argument("name")
    h.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    add_output(h)
    h.set_defaults(run=_history)
    t = ops.add_parser("test", help="run a hook now on a sample event (recorded in history)",
                       description="Run hook NAME now, in the foreground, on a sample event, "
                       "and record the execution in its history (as a test: of no event, in "
                       "no run); exit 1 if it did not succeed. The sample event has every "
                       "field a run's has: id 0 and run_id \"test\" (no stored event or run "
                       "has them), source \"test\", timestamp now, workflow \"test\" and task "
                       "\"test\" (or those --data gives; a workflow.* event has no task, as in "
                       "a run), the hook's stack (none if it has none), and data shaped like a "
                       "run's for the type, or --data. As in a run, its data is scrubbed of "
                       "secrets before the hook sees it, and what the hook logs, its error and "
                       "the result are shown scrubbed, as its history keeps them.")
    t.add_argument("name")
    t.add_argument("--type", dest="event_type", metavar="TYPE",
                   help="the event's type (default: the hook's first)")
    t.add_argument("-d", "--data", metavar="JSON", help="the event's data, a JSON object")
    add_output(t)
    t.set_defaults(run=_test)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError("hook needs an operation: add, list, show, enable, disable, remove, "
                         "history or test")
    return int(args.run(args))


def _boolean(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def _add(args: argparse.Namespace) -> int:
    from sloth_runner.durations import parse_duration
    from sloth_runner.errors import LoadError
    from sloth_runner.events.hooks import (
        HOOK_NAME,
        HookHost,
        HookOutput,
        is_subscription,
        load_hook,
        subscriptions,
    )
    from sloth_runner.store.events import add_hook, get_hook

    name, file = (args.target, args.file) if args.file is not None else (None, args.target)
    if name is not None and not HOOK_NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a hook name (letters, digits, _ . -, starting with a "
                         "letter or digit): with --file, the first argument is the hook's name")
    for t in args.event or ():
        if not is_subscription(t):
            raise UsageError(f"--event {t!r} is not an event type (like task.failed, task.* or"
                             " *)")
    if args.stack is not None and not args.stack.strip():
        raise UsageError("--stack must be a stack name")
    timeout_s = None
    if args.timeout is not None:
        try:
            timeout_s = parse_duration(args.timeout)
        except ValueError as exc:
            raise UsageError(f"--timeout: {exc}") from None
        if timeout_s <= 0:
            raise UsageError("--timeout must be longer than 0")
    path = os.path.abspath(file)
    store = open_store()
    host = HookHost(store)
    def to_stderr(line: str) -> None:  # what its top-level code logs (scrubbed on its way)
        sys.stderr.write(line + "\n")

    echo = HookOutput(to_stderr)
    try:
        spec, _ = load_hook(path, host.services(echo, None, None))
    except LoadError as exc:  # its message may quote what the file read: `error(token)`
        raise type(exc)(host.scrub(str(exc))) from None
    if spec.on_event and (name is None or not args.event):
        raise UsageError(f"{file} defines on_event() and declares neither its name nor its "
                         "event type (a hook file of the Go sloth-runner): register it with `"
                         + _go_command(name, file, args.event) + "`")
    if spec.name is not None and name is not None and name != spec.name:
        raise UsageError(f"{file} declares hook '{spec.name}', not '{name}': `sloth-runner hook "
                         f"add {shlex.quote(file)}` registers it under its own name")
    name = name or spec.name
    assert name is not None  # a declaration has one; on_event without one was refused above
    types, notes, warnings = subscriptions(args.event or spec.event_types)
    stack = args.stack if args.stack is not None else spec.stack
    description = args.description if args.description is not None else spec.description
    timeout_s = timeout_s or spec.timeout_s
    enabled = args.enabled if args.enabled is not None else spec.enabled
    for line in [f"note: {n}" for n in notes] + [f"warning: {w}" for w in warnings]:
        sys.stderr.write(line + "\n")
    if not add_hook(store, name, path, types, stack, description, timeout_s, args.replace,
                    enabled):
        again = _go_command(name, file, args.event) if args.file is not None else \
            f"sloth-runner hook add {shlex.quote(file)}"
        raise UsageError(f"a hook named '{name}' exists: `{again} --replace` replaces it")
    hook = get_hook(store, name) or {}
    document = {"name": name, "file": path, "event_types": types, "stack": stack,
                "timeout_s": timeout_s, "description": description,
                "enabled": hook.get("enabled", True), "notes": notes, "warnings": warnings}
    if args.output == "json":
        print_json(document)
    else:
        where = f" (stack {stack})" if stack else ""
        off = " disabled" if not document["enabled"] else ""
        print(f"hook '{name}' added{off}: {', '.join(types)}{where}, from {path}")
    return 0


def _go_command(name: str | None, file: str, events: list[str] | None) -> str:
    """The Go form of `hook add` for `file`: its name defaults to the file's (`NAME` if that
    is no hook name), its event to `TYPE`."""
    from sloth_runner.events.hooks import HOOK_NAME

    if name is None:
        stem = os.path.splitext(os.path.basename(file))[0]
        name = stem if HOOK_NAME.fullmatch(stem) else "NAME"
    flags = " ".join(f"--event {shlex.quote(e)}" for e in events or ["TYPE"])
    return f"sloth-runner hook add {shlex.quote(name)} --file {shlex.quote(file)} {flags}"


def _list(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import list_hooks

    hooks = list_hooks(open_store(), stack=args.stack)
    if args.output == "json":
        print_json({"hooks": hooks})
        return 0
    if not hooks:
        print("no hooks registered" + (f" for stack {args.stack}" if args.stack else "")
              + " (add one with `sloth-runner hook add FILE`)")
        return 0
    width = max(len(h["name"]) for h in hooks)
    for h in hooks:
        last = f"{h['runs']} runs, last {h['last_status']}" if h["runs"] else "never ran"
        stack = f"  stack {h['stack']}" if h["stack"] else ""
        off = "  DISABLED" if not h["enabled"] else ""
        print(f"{h['name']:<{width}}  {_types(h['event_types'])}{stack}  "
              f"timeout {h['timeout_s']:g}s{off}  [{last}]  {h['file']}")
    return 0


def _types(types: list[str]) -> str:
    """Event types, those no run sends marked (an agent.* hook registered from a Go file)."""
    from sloth_runner.events.hooks import never_sent

    return ", ".join(t + (" (never fires)" if never_sent(t) else "") for t in types)


def _show(args: argparse.Namespace) -> int:
    from sloth_runner.store.events import list_hooks

    hooks = list_hooks(open_store(), name=args.name)
    if not hooks:
        raise UsageError(f"no hook named '{args.name}' (see `sloth-runner hook list`)")
    [h] = hooks
    if args.output == "json":
        print_json(h)
        return 0
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["added_at"]))
    last = "never ran" if not h["runs"] else f"{h['runs']}, last {h['last_status']} at " + \
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["last_run_at"]))
    for label, value in (("name", h["name"]), ("file", h["file"]),
                         ("event types", _types(h["event_types"])),
                         ("stack", h["stack"] or "any"), ("timeout", f"{h['timeout_s']:g}s"),
                         ("enabled", "yes" if h["enabled"] else "no"),
                         ("description", h["description"] or "-"), ("added", when),
                         ("runs", last)):
        print(f"{label + ':':<13}{value}")
    return 0


def _enable(args: argparse.Namespace) -> int:
    return _set_enabled(args.name, True)


def _disable(args: argparse.Namespace) -> int:
    return _set_enabled(args.name, False)


def _set_enabled(name: str, enabled: bool) -> int:
    from sloth_runner.store.events import set_hook_enabled

    was = set_hook_enabled(open_store(), name, enabled)
    if was is None:
        raise UsageError(f"no hook named '{name}' (see `sloth-runner hook list`)")
    word = "enabled" if enabled else "disabled"
    print(f"hook '{name}' is already {word}" if was == enabled else f"hook '{name}' {word}")
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
    from sloth_runner.events.hooks import GO_NAMES, HookHost, run_hook, sample_event
    from sloth_runner.store.events import get_hook, hook_run_finished, hook_run_started

    store = open_store()
    hook = get_hook(store, args.name)
    if hook is None:
        raise UsageError(f"no hook named '{args.name}' (see `sloth-runner hook list`)")
    kind = GO_NAMES.get(args.event_type, args.event_type) or next(
        (t for t in hook["event_types"] if not t.endswith("*")), None)
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
    host = HookHost(store)
    event = sample_event(host, kind, data, hook["stack"])
    echo = None if args.output == "json" else print  # given lines already scrubbed
    # recorded as a test: of no stored event, in no run (`hook history` says "test TYPE")
    row = hook_run_started(store, hook["name"], {"type": kind}, time.time())
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
    if kind.startswith("agent."):  # never sent here; shaped as the Go sloth-runner's hooks read it
        return {"agent": {"name": "test-agent", "address": "127.0.0.1:50051", "tags": ["test"],
                          "version": "test"}}
    return {"test": True}
