"""`sloth-runner state get|set|delete|list`: the persistent state workflows share."""

from __future__ import annotations

import argparse
import json

from sloth_runner.cli.common import add_output, open_store, print_json
from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("state", help="read and write persistent workflow state")
    ops = p.add_subparsers(dest="op", metavar="OP")
    g = ops.add_parser("get", help="print a value")
    g.add_argument("key")
    add_output(g)
    s = ops.add_parser("set", help="set a value (parsed as JSON when it is valid JSON)")
    s.add_argument("key")
    s.add_argument("value")
    d = ops.add_parser("delete", help="remove a key")
    d.add_argument("key")
    ls = ops.add_parser("list", help="list keys and values")
    ls.add_argument("prefix", nargs="?", default="")
    add_output(ls)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sloth_runner.store.state import StateStore

    if not args.op:
        raise UsageError("state needs an operation: get, set, delete or list")
    state = StateStore(open_store())
    if args.op == "get":
        found = state.get(args.key)
        if found is None:
            raise UsageError(f"no state key '{args.key}'")
        if args.output == "json":
            print_json(found)
        else:
            print(found if isinstance(found, str) else json.dumps(found))
    elif args.op == "set":
        try:
            value: Any = json.loads(args.value)
        except json.JSONDecodeError:
            value = args.value
        state.set(args.key, value)
    elif args.op == "delete":
        if not state.delete(args.key):
            raise UsageError(f"no state key '{args.key}'")
    else:
        items = state.items(args.prefix)
        if args.output == "json":
            print_json(dict(items))
        else:
            for key, value in items:
                print(f"{key} = {json.dumps(value)}")
    return 0
