"""`sloth-runner run`: load a file, run the chosen workflows, record history, report."""

from __future__ import annotations

import argparse

from sloth_runner.cli.common import (
    add_debug,
    add_values,
    parse_params,
    print_json,
    read_values,
    warn,
)
from sloth_runner.errors import LoadError, UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run workflows from a Lua file",
                       description="Run workflows from a Lua file. Exit code 0: all tasks "
                       "succeeded; 1: a task failed; 2: the file could not be loaded; 3: usage; "
                       "4: a task could not run (an error, not a failure); 130: interrupted.")
    p.add_argument("-f", "--file", required=True, help="workflow file (.lua)")
    p.add_argument("workflows", nargs="*", metavar="WORKFLOW",
                   help="workflows to run (default: all, in file order); a first name that is "
                   "no workflow of a file that has some is taken as the stack name (Go's)")
    p.add_argument("--task", action="append", metavar="NAME",
                   help="run only this task and what it depends on (repeatable)")
    p.add_argument("--param", action="append", metavar="K=V", help="parameter for params.K")
    add_values(p)
    p.add_argument("--executor", choices=("local", "celery"), default="local",
                   help="celery: tasks without :delegate_to run on the agents started with "
                   "--pool (default: local)")
    p.add_argument("--no-heal", action="store_true",
                   help="never run the repair actions of tasks' :heal{}")
    p.add_argument("--max-parallel", type=int, metavar="N",
                   help="tasks to run at once (default: workflow config, else 8)")
    p.add_argument("--dry-run", action="store_true", help="show the plan without running it")
    p.add_argument("--predict", action="store_true",
                   help="before running, show each task's predicted failure risk, learned "
                   "from the history, and record it")
    p.add_argument("--force", action="store_true",
                   help="run tasks even when their inputs and outputs are up to date")
    p.add_argument("--sandbox", action="store_true",
                   help="no processes, no file writes outside the workdir, no network, only "
                   "harmless environment variables, unless granted with --allow")
    p.add_argument("--allow", action="append", metavar="GRANTS",
                   help="with --sandbox: grant exec, fs, net and/or env (comma-separated)")
    p.add_argument("--interactive", action="store_true",
                   help="ask before each task: run, skip or abort")
    p.add_argument("--yes", "-y", action="store_true",
                   help="answer yes to every question (no prompts; overrides --interactive)")
    p.add_argument("--replay", metavar="RUN_ID",
                   help="answer the AI calls with that run's answers (same task, same "
                        "prompt, in order): a reproducible re-run for debugging")
    p.add_argument("--delegate-to", metavar="HOST",
                   help="run every task on this agent (needs sloth-runner's agents)")
    p.add_argument("-o", "--output", default="text",
                   choices=("text", "json", "enhanced", "rich", "modern"),
                   help="output format (default: text; enhanced, rich and modern are the "
                   "text output's names in the Go sloth-runner)")
    add_debug(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    grants = tuple(g.strip() for item in args.allow or () for g in item.split(",") if g.strip())
    if grants and not args.sandbox:
        raise UsageError("--allow only means something with --sandbox")
    if args.output in ("enhanced", "rich", "modern"):
        args.output = "text"
    params = parse_params(args.param)
    args.values_read = read_values(args.values)
    try:
        return _run(args, params, grants)
    except LoadError as exc:
        if args.output == "json":
            print_json({"status": "error", "error": str(exc)})
            return exc.exit_code
        raise


def _run(args: argparse.Namespace, params: dict[str, Any], grants: tuple[str, ...]) -> int:
    from sloth_runner.reporting import make_reporter
    from sloth_runner.running import Run

    reporter = make_reporter(args.output, debug=args.debug)
    with Run(args.file, params=params, listener=reporter, sandbox=args.sandbox, grants=grants,
             debug=args.debug, force=args.force, process_ends=True, values=args.values_read,
             delegate_to=args.delegate_to, heal=not args.no_heal,
             executor=args.executor) as run:
        if args.interactive and not args.yes:
            run.gate = lambda task: _ask(task, lambda: run.interrupted)
        if args.replay:
            _replay_from(run, args.replay)
        run.load()
        warn(run.warnings)
        names = list(args.workflows)
        if _is_stack_name(names, [wf.name for wf in run.workflows]):
            run.stack = names.pop(0)  # Go: `sloth-runner run STACK -f file`
            warn([f"'{run.stack}' is no workflow of {args.file}: taken as the stack name"])
        workflows = run.select(names, args.task)
        if not workflows:  # a script: its top-level code has run, and that is all it asked for
            if args.output == "json":
                print_json({"run_id": None, "status": "success", "workflows": []})
            else:
                print(f"{args.file} defines no tasks; its top-level code ran")
            return 0
        predictions = _predict(run, workflows, args) if args.predict else None
        if args.dry_run:
            return _dry_run(args, workflows)
        result = run.execute(workflows, max_parallel=args.max_parallel)
        if args.output == "json":
            # predictions are not scrubbed again: their words come from the history, which
            # was scrubbed when it was stored (and scrubbing 100 tasks' words costs ~50 ms)
            print_json({**run.redact(_as_json(result)), **_predictions_field(predictions)})
        else:
            print(f"run {result.run_id}: {result.status} in {result.duration_s:.2f}s"
                  f" (details: sloth-runner history {result.run_id})")
    return exit_code(result)


def _replay_from(run: Any, prefix: str) -> None:
    """Load a finished run's AI answers into this run's AI service (ai/replay.py)."""
    from sloth_runner.store import queries
    from sloth_runner.store.ai_usage import AIUsageStore

    found = queries.find_run(run.store, prefix)
    if found is None:
        raise UsageError(f"--replay: no run {prefix} (or more than one starts so): see "
                         "`sloth-runner history`")
    if not run.ai.replays.load(AIUsageStore(run.store).answers_of(found)):
        warn([f"--replay: run {found} recorded no AI answers (none made, or log_prompts was "
              "off): every call is sent"])


def _is_stack_name(names: list[str], workflows: list[str]) -> bool:
    """Go's `run STACK -f file`: a first name that is no workflow of a file that defines some,
    unless it looks like a misspelt workflow name (then `select` says which exist)."""
    if not names or names[0] in workflows or not workflows:
        return False
    import difflib

    return not difflib.get_close_matches(names[0], workflows, n=1, cutoff=0.75)


def _ask(task: str, stopped: Callable[[], Any]) -> str:
    """--interactive: run, skip or abort, asked on the terminal before each task. Ctrl-C at
    the prompt interrupts the run: the signal handler cannot break a blocking read (Python
    retries it), so the answer is waited for in short polls that also watch `stopped()`."""
    import select
    import sys

    while True:
        if stopped():
            return "interrupted"
        sys.stderr.write(f"run task '{task}'? [Y]es / [s]kip / [a]bort: ")
        sys.stderr.flush()
        while True:
            if stopped():
                sys.stderr.write("\n")
                return "interrupted"
            try:
                ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            except (OSError, ValueError):  # not a selectable stream: wait for the line
                ready = [sys.stdin]
            if ready:
                break
        answer = sys.stdin.readline()
        if stopped():
            return "interrupted"
        if not answer:  # end of input: nobody to ask
            return "abort"
        choice = answer.strip().lower()[:1]
        if choice in ("", "y"):
            return "run"
        if choice == "s":
            return "skip"
        if choice == "a":
            return "abort"


def exit_code(result: Any) -> int:
    """0 success, 1 a task failed, 4 a task could not run, 130 interrupted."""
    from sloth_runner.engine.model import ERROR

    if result.status == "interrupted":
        return 130
    if result.status == "success":
        return 0
    statuses = {t.status for wf in result.workflows for t in wf.tasks}
    return 4 if ERROR in statuses and not statuses & {"failed", "timeout"} else 1


def _dry_run(args: argparse.Namespace, workflows: list) -> int:
    from sloth_runner.engine import dag

    plan = [{"name": wf.name, "waves": dag.levels(wf),
             "heal": {t.name: _heal_plan(t.heal) for t in wf.tasks if t.heal is not None}}
            for wf in workflows]
    if args.output == "json":
        print_json({"status": "dry-run", "workflows": plan})
        return 0
    for wf, item in zip(workflows, plan, strict=True):
        print(f"workflow {wf.name}: {len(wf.tasks)} tasks in {len(item['waves'])} waves")
        for i, wave in enumerate(item["waves"], 1):
            print(f"  wave {i}: {', '.join(wave)}")
        for task, heal in item["heal"].items():
            print(f"  heal {task} (up to {heal['max_attempts']}):")
            for a in heal["actions"]:
                how = f"shell: {a['shell']}" if a["shell"] else "a Lua function"
                when = f"; when the failure mentions \"{a['when']}\"" if a["when"] else ""
                about = f" - {a['description']}" if a["description"] else ""
                print(f"    {a['name']}: {how}{when}{about}")
    return 0


def _heal_plan(heal: Any) -> dict[str, Any]:
    return {"max_attempts": heal.max_attempts,
            "actions": [{"name": a.name, "shell": a.shell, "when": a.when,
                         "description": a.description} for a in heal.actions.values()]}


def _as_json(result: Any) -> dict:
    return {
        "run_id": result.run_id,
        "status": result.status,
        "duration_s": round(result.duration_s, 6),
        "workflows": [
            {
                "name": wf.name,
                "status": wf.status,
                "duration_s": round(wf.duration_s, 6),
                "error": wf.error,
                "tasks": [
                    {"name": t.name, "status": t.status, "attempts": t.attempts,
                     "duration_s": round(t.duration_s, 6), "message": t.message,
                     "outputs": t.outputs, "error": t.error}
                    for t in wf.tasks
                ],
            }
            for wf in result.workflows
        ],
    }


def _predict(run: Any, workflows: list, args: argparse.Namespace) -> list[dict[str, Any]]:
    """--predict: each chosen task's failure risk before the run, from the history's model
    (analytics/predict.py), printed (text output) and recorded with the run's id."""
    import os

    from sloth_runner.analytics.predict import FailurePredictor, current_load
    from sloth_runner.services.runcontext import Workspace
    from sloth_runner.store.predictions import record
    from sloth_runner.store.runs import HOST

    predictor = FailurePredictor(run.store)
    folder = os.path.dirname(os.path.abspath(run.path))
    predictions = predictor.predict_tasks(
        [(wf.name, t.name) for wf in workflows for t in wf.tasks], host=HOST,
        params=run.redact(run.params), load=current_load(),
        changed=Workspace(folder).result().get("changed_files"))
    if not args.dry_run:
        record(run.store, run.run_id, predictions)
    if args.output != "json":
        print_predictions(predictor.summary(), predictions)
    return predictions


def _predictions_field(predictions: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {} if predictions is None else {"predictions": predictions}


def print_predictions(summary: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    """A line per task: its risk and the strongest reason, or why there is none."""
    if summary["method"] != "logistic_regression":
        print(f"failure risk: none predicted, too little history ({summary['reason']})")
        return
    measured = summary["evaluation"].get("model") or {}
    judged = f"; on the newest runs AUROC {measured['auroc']:.2f}, Brier " \
             f"{measured['brier']:.3f}" if measured.get("auroc") is not None else ""
    print(f"failure risk (logistic regression on {summary['trained_on']} finished task "
          f"runs{judged}):")
    width = max((len(f"{p['workflow']}/{p['task']}") for p in predictions), default=0)
    for p in predictions:
        name = f"{p['workflow']}/{p['task']}"
        if p["probability"] is None:
            print(f"  {name:<{width}}     -  {p['reason']}")
            continue
        raising = [f["factor"] for f in p["top_factors"] if f["weight"] > 0]
        why = raising[0] if raising else "nothing raises it above the usual"
        print(f"  {name:<{width}}  {p['probability'] * 100:3.0f} %  {why}")
