"""`sloth-runner ai usage|logs|encrypt-config|decrypt-config`."""

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
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.op:
        raise UsageError("ai needs an operation: usage, logs, encrypt-config or decrypt-config")
    if args.op in ("encrypt-config", "decrypt-config"):
        return _crypt(args)
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
                + (" cached" if r["cached"] else ""))
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
