"""Probe: how many of the Go sloth-runner's example workflows load and run here.

Given a checkout of the Go project's `examples/` folder (it never enters this repository:
`git clone https://github.com/chalkan3-sloth/sloth-runner` elsewhere), this runs
`sloth-runner list` and `sloth-runner run` on every `.sloth` and `.lua` file and prints the
counts by first error, then each file with its outcome.

    python bench/go_examples.py /path/to/sloth-runner/examples [--allow exec] [--details]

Runs happen in a temporary directory, with their own SLOTH_RUNNER_HOME, under `--sandbox`
(these files install packages, manage users and services: on a machine of yours, `--allow`
grants what you accept), and with a timeout each. Do not grant `exec` to all of them at once:
some end with `pkill -f 'yes'` or `pkill -f 'sleep 30'`, which kill whatever else on the
machine matches (this probe's own runs pass `--yes`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

# Files whose first error is the Go engine's own: it rejects them too.
GO_REJECTS = (
    (re.compile(r"attempt to call a table value \(global 'workflow'\)"),
     "uses workflow(\"name\"), which the Go engine has no such function for"),
    (re.compile(r"attempt to call a nil value \(global 'stack'\)"),
     "uses stack(\"name\"), which the Go engine has no such function for"),
    (re.compile(r"'\}' expected"), "a Lua syntax error in the example itself"),
    (re.compile(r"attempt to call a nil value \(method 'run'\)"),
     "calls :run() on a built task, which the Go engine does not offer"),
    (re.compile(r"attempt to call a nil value \(field 'create'\)"),
     "calls goroutine.create, which Go's goroutine module does not have"),
)
NOT_HERE = re.compile(r"module '(\w+)' not found|attempt to index a nil value \(global '(\w+)'\)")


def classify(text: str) -> str:
    """A first error, with paths, lines and names taken out so that alike errors count as one."""
    if not text:
        return "ok"
    for pattern, reason in GO_REJECTS:
        if pattern.search(text):
            return f"rejected by Go as well: {reason}"
    missing = NOT_HERE.search(text)
    if missing:
        return f"needs the '{missing.group(1) or missing.group(2)}' module (not here)"
    if "(field 'register')" in text or re.search(r"event\.register", text):
        return "needs watchers (event.register.*, an agents feature; not here)"
    if "delegated to agent" in text:
        return "needs agents (:delegate_to)"
    if "not allowed in the sandbox" in text:
        kind = re.search(r"--allow (\w+)", text)
        return f"stopped by the probe's sandbox ({kind.group(1) if kind else '?'})"
    if "is a hook definition" in text:
        return "a hook file (sloth-runner hook add)"
    text = re.sub(r"^error: ", "", text)
    text = re.sub(r"\S+\.(sloth|lua):\d+: ", "", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    return text[:90]


TASK_PROBLEM = re.compile(r"^(FAILED|ERROR|TIMEOUT)\s+\S+ \(")


def first_error(proc: subprocess.CompletedProcess) -> str:
    """"" for a success (exit 0); else the load error or the first task that did not succeed
    (not a log line that happens to say FAILED)."""
    if proc.returncode == 0:
        return ""
    for line in (proc.stderr + proc.stdout).splitlines():
        line = line.strip()
        if line.startswith("error:") or TASK_PROBLEM.match(line):
            return line
    return f"exit code {proc.returncode}"


EVENT_IN_HEADER = re.compile(r"^--.*\b(?:event[ _]type|triggers? on)s?:?\s*([a-z_]+\.[a-z_.*]+)",
                             re.I | re.M)


def add_hook(base: list[str], path: str, work: str, env: dict, timeout: float) -> str:
    """`hook add FILE`; a file in Go's on_event() form names neither itself nor its event, so
    it is added as Go users do, `hook add NAME --file FILE --event TYPE`, with the type its
    header comment gives (else workflow.completed)."""
    added = subprocess.run(base + ["hook", "add", path], capture_output=True, text=True,
                           cwd=work, env=env, timeout=timeout)
    if added.returncode != 3 or "--file" not in added.stderr:
        return "hook add: " + classify(first_error(added))
    with open(path, encoding="utf-8") as fh:
        found = EVENT_IN_HEADER.search(fh.read(2000))
    name = os.path.splitext(os.path.basename(path))[0]
    added = subprocess.run(base + ["hook", "add", name, "--file", path, "--event",
                                   found.group(1) if found else "workflow.completed"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=timeout)
    return "hook add NAME --file --event (Go's form): " + classify(first_error(added))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("examples", help="the Go project's examples/ folder")
    ap.add_argument("--allow", default="", help="grants for the runs (default: none)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--details", action="store_true", help="one line per file")
    args = ap.parse_args()
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(args.examples)
                   for name in names if name.endswith((".sloth", ".lua")))
    loads: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sloth-go-examples-") as work:
        env = dict(os.environ, SLOTH_RUNNER_HOME=os.path.join(work, "home"))
        base = [sys.executable, "-m", "sloth_runner"]
        for path in files:
            listed = subprocess.run(base + ["list", "-f", path], capture_output=True, text=True,
                                    cwd=work, env=env, timeout=args.timeout)
            load = classify(first_error(listed))
            loads[load] += 1
            run = "not run (does not load)"
            if load.startswith("a hook file"):
                run = add_hook(base, path, work, env, args.timeout)
                runs[run] += 1
            if load == "ok":
                sandbox = ["--sandbox"] + (["--allow", args.allow] if args.allow else [])
                try:
                    ran = subprocess.run(base + ["run", "-f", path, "--yes", *sandbox],
                                         capture_output=True, text=True, cwd=work, env=env,
                                         timeout=args.timeout)
                    run = classify(first_error(ran))
                except subprocess.TimeoutExpired:
                    run = f"still running after {args.timeout:g} s"
                runs[run] += 1
            rows.append((os.path.relpath(path, args.examples), load, run))
    print(f"{len(files)} example files\n\nload (`sloth-runner list`):")
    for reason, n in loads.most_common():
        print(f"  {n:4d}  {reason}")
    print("\nrun (`sloth-runner run --sandbox`, or `hook add` for a hook file), of those that "
          "load:")
    for reason, n in runs.most_common():
        print(f"  {n:4d}  {reason}")
    if args.details:
        print()
        for name, load, run in rows:
            print(f"{name}: load {load}; run {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
