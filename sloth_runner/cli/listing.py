"""`sloth-runner list`: the workflows, tasks and dependencies a file defines."""

from __future__ import annotations

import argparse

from sloth_runner.cli.common import add_debug, add_output, add_values, print_json, read_values, warn

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("list", help="list workflows and tasks in a file")
    p.add_argument("-f", "--file", required=True, help="workflow file (.lua)")
    p.add_argument("--sandbox", action="store_true", help="load with the Lua sandbox")
    add_values(p)
    add_output(p)
    add_debug(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sloth_runner.reporting import make_reporter
    from sloth_runner.running import Run

    reporter = make_reporter("json", debug=args.debug)  # load-time logs go to stderr
    with Run(args.file, listener=reporter, sandbox=args.sandbox, debug=args.debug,
             values=read_values(args.values)) as run:
        workflows = run.load()
        warn(run.warnings)
    doc: list[dict[str, Any]] = [
        {"name": wf.name, "description": wf.description, "location": wf.location,
         "tasks": [{"name": t.name, "description": t.description, "depends_on": list(t.depends_on),
                    "location": t.location} for t in wf.tasks]}
        for wf in workflows
    ]
    if args.output == "json":
        print_json({"file": args.file, "workflows": doc})
        return 0
    for wf in doc:
        desc = f" - {wf['description']}" if wf["description"] else ""
        print(f"{wf['name']}{desc}")
        for t in wf["tasks"]:
            deps = f"  (after {', '.join(t['depends_on'])})" if t["depends_on"] else ""
            tdesc = f" - {t['description']}" if t["description"] else ""
            print(f"  {t['name']}{tdesc}{deps}")
    return 0
