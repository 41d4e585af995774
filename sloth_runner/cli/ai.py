"""`sloth-runner ai usage|logs|new|encrypt-config|decrypt-config`."""

from __future__ import annotations

import argparse
import os
import sys
import time

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import ConfigError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KEY_ENV = "CONFIG_ENCRYPTION_KEY"


def register(sub: Any) -> None:
    p = sub.add_parser("ai", help="AI usage, call logs and encrypted AI config files")
    ops = p.add_subparsers(dest="op", metavar="OP")
    u = ops.add_parser("usage", help="tokens, calls and cost, by model and workflow")
    u.add_argument("--since", default="1d", help="period, e.g. 1d, 7d, 12h (default 1d)")
    add_output(u)
    lg = ops.add_parser("logs", help="recent AI calls (scrubbed prompts and responses)")
    lg.add_argument("-n", type=int, default=20, help="how many (default 20)")
    lg.add_argument("--full", action="store_true", help="show whole prompts and responses")
    add_output(lg)
    for name, verb in (("encrypt-config", "encrypt"), ("decrypt-config", "decrypt")):
        c = ops.add_parser(name, help=f"{verb} a YAML AI config file (Fernet)")
        c.add_argument("input")
        c.add_argument("-o", "--output", required=True, help="where to write the result")
        c.add_argument("--key-env", default=KEY_ENV,
                       help=f"environment variable holding the key (default {KEY_ENV})")
    n = ops.add_parser("new", help="write a workflow file from a plain-language description; "
                       "it is checked (loads, dry-runs) and shown before it is written")
    n.add_argument("description", help="what the workflow should do, in plain words")
    n.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the workflow file to write")
    n.add_argument("--style", choices=("modern", "table"), default="modern",
                   help="task(...) builders (modern, default) or workflow.define{tasks = {...}}")
    n.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    n.add_argument("--attempts", type=int, default=3,
                   help="tries, each told what was wrong with the last (default 3)")
    n.add_argument("-y", "--yes", action="store_true",
                   help="write without asking (only a terminal is asked)")
    n.add_argument("--json", action="store_true",
                   help="print the result as JSON (the file, its tasks and plan) and write it")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError("ai needs an operation: usage, logs, new, encrypt-config or "
                         "decrypt-config")
    if args.op in ("encrypt-config", "decrypt-config"):
        return _crypt(args)
    if args.op == "new":
        return _new(args)
    from sloth_runner.ai.money import usd
    from sloth_runner.store.ai_usage import AIUsageStore

    usage = AIUsageStore(open_store())
    if args.op == "usage":
        from sloth_runner.durations import parse_duration

        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from exc
        stats = usage.stats(since)
        stats["since"] = args.since
        if args.output == "json":
            print_json(stats)
            return 0
        print(f"today: {stats['calls_today']} calls, {stats['tokens_today']} tokens, "
              f"{usd(stats['estimated_cost'])}")
        print(f"last {args.since}: {stats['failed_attempts']} failed attempts")
        for title, key in (("by model", "by_model"), ("by workflow", "by_workflow")):
            print(f"{title}:")
            for name, row in sorted(stats[key].items()):
                print(f"  {name:<32} {row['calls']:>5} calls {row['tokens']:>9} tokens "
                      f"{usd(row['cost'])}")
        return 0
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    rows = usage.logs(args.n)
    if args.output == "json":
        print_json({"calls": rows})
        return 0
    for r in reversed(rows):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        where = "/".join(x for x in (r["workflow"], r["task"]) if x) or "-"
        head = (f"{when} {r['provider']}:{r['model']} {r['operation']} #{r['attempt']} "
                f"{r['status']} {where} {r['prompt_tokens']}+{r['completion_tokens']} tok "
                f"{(r['latency_ms'] or 0):.0f} ms "
                f"{usd(r['cost_usd']) if r.get('priced', 1) else 'cost unknown'}"
                + (" cached" if r["cached"] else "")
                + (" replayed" if r.get("replayed") else "")
                + (f" (fallback from {r['fallback_from']}: {r.get('fallback_reason')})"
                   if r.get("fallback_from") else ""))
        print(head)
        for label, text in (("prompt", r["prompt"]), ("response", r["response"]),
                            ("error", r["error"])):
            if text:
                shown = text if args.full else _short(text)
                print(f"  {label}: {shown}")
    return 0


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _crypt(args: argparse.Namespace) -> int:
    from sloth_runner.ai.settings import decrypt, encrypt, new_key

    key = os.environ.get(args.key_env)
    try:
        with open(args.input, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"{args.input}: {exc.strerror or exc}") from exc
    if args.op == "decrypt-config":
        if not key:
            raise ConfigError(args.key_env, "is not set: it must hold the key the file was "
                              "encrypted with")
        result = decrypt(data, key, args.input)
    else:
        if not key:
            key = new_key()
            print(f"generated a new key; keep it secret and set it as {args.key_env} to use "
                  f"the file:\n{key}", file=sys.stderr)
        from sloth_runner.services.codec import yaml_decode

        try:
            yaml_decode(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(args.input, f"not a YAML config file: {exc}") from exc
        result = encrypt(data, key)
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(result)
    return 0


def _new(args: argparse.Namespace) -> int:
    """`ai new`: generate (sloth_runner/ai/newflow.py: the spec, its checks, a dry run), show
    the file and its plan, then write it, never over an existing file without --force."""
    from sloth_runner.ai import newflow
    from sloth_runner.ai.newflow_render import describe

    if args.attempts < 1:
        raise UsageError("--attempts must be at least 1")
    if not args.description.strip():
        raise UsageError("ai new needs a description of the workflow")
    target = _new_target(args.output, args.force)
    from sloth_runner.ai.client import AIService

    result = newflow.generate(
        AIService(), args.description, filename=os.path.basename(target), style=args.style,
        attempts=args.attempts, progress=lambda text: print(f"sloth-runner: {text}",
                                                            file=sys.stderr))
    if args.json:
        _write_new(target, result.lua, args.force)
        print_json({**result.as_dict(), "file": target, "written": True, "lua": result.lua})
        return 0
    print(result.lua)
    spec = result.spec
    print(f"workflow {spec['workflow']}: {len(spec['tasks'])} tasks in {len(result.waves)} "
          f"waves ({result.provider} model {result.model}, attempt {result.attempts})")
    width = max(len(t["name"]) for t in spec["tasks"])
    for t in spec["tasks"]:
        extra = [f"after {', '.join(t['depends_on'])}"] if t["depends_on"] else []
        extra += [t["trigger_rule"]] if t["trigger_rule"] != "all_success" else []
        extra += [f"retries {t['retries']}"] if t["retries"] else []
        extra += [f"timeout {t['timeout']}"] if t["timeout"] else []
        more = f" ({'; '.join(extra)})" if extra else ""
        print(f"  {t['name']:<{width}}  {describe(t['run'])}{more}")
    for note in result.notes:
        print(f"  note: {note}")
    if not args.yes and sys.stdin.isatty() and sys.stdout.isatty():
        sys.stdout.write(f"write {target}? [Y/n] ")  # not input(): it may prompt on stderr
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("", "y", "yes"):
            print(f"{target}: not written", file=sys.stderr)
            return 1
    _write_new(target, result.lua, args.force)
    print(f"wrote {target}; run it with: sloth-runner run -f {target}")
    return 0


def _new_target(path: str, force: bool) -> str:
    """-o FILE, checked before the model is asked: a file we may create (or, with --force,
    replace) in a folder that exists."""
    if not path.strip():
        raise UsageError("-o needs a file name")
    if os.path.isdir(path):
        raise UsageError(f"-o {path}: is a directory; name a file, e.g. {path.rstrip('/')}"
                         "/workflow.lua")
    if os.path.lexists(path) and not force:
        raise UsageError(f"{path} exists: pass --force to overwrite it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"-o {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"-o {path}: cannot write in {folder}")
    return path


def _write_new(path: str, text: str, force: bool) -> None:
    """Without --force a file that appeared meanwhile is not replaced (O_EXCL); with it, the
    new file replaces the old one whole (written beside it, then renamed)."""
    try:
        if not force:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except FileExistsError as exc:
        raise UsageError(f"{path} exists: pass --force to overwrite it") from exc
    except OSError as exc:
        raise UsageError(f"-o {path}: {exc.strerror or exc}") from exc
