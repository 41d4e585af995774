"""Whole-process wall time and peak RSS of sloth-runner vs pydoit on identical workloads.

Runs the two tools alternately, N rounds, on the same generated workloads, and prints medians
and ratios as Markdown. Use a clean virtualenv so neither tool pays for unrelated site-packages
hooks (see bench/README.md):

    python bench/engine.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {
    # name: (lua source, dodo.py source, extra doit args, target seconds)
    "no-op, 1 task": (
        'task("t"):command(function() return true end):build()\n',
        "def task_t():\n    return {'actions': [lambda: True], 'verbosity': 0}\n",
        [], 0.12,
    ),
}


def chain(n: int) -> tuple[str, str]:
    lua = ("local prev\nfor i = 1, %d do\n  local t = task('t' .. i):command(function() "
           "return true end)\n  if prev then t:depends_on(prev) end\n  t:build()\n"
           "  prev = 't' .. i\nend\n" % n)
    dodo = ("def task_chain():\n    for i in range(1, %d + 1):\n"
            "        d = {'name': f't{i}', 'actions': [lambda: True], 'verbosity': 0}\n"
            "        if i > 1:\n            d['task_dep'] = [f'chain:t{i-1}']\n"
            "        yield d\n" % n)
    return lua, dodo


def independent(n: int) -> tuple[str, str]:
    lua = "for i = 1, %d do task('t' .. i):command(function() return true end):build() end\n" % n
    dodo = ("def task_many():\n    for i in range(%d):\n"
            "        yield {'name': f't{i}', 'actions': [lambda: True], 'verbosity': 0}\n" % n)
    return lua, dodo


def bounded(n: int) -> tuple[str, str]:
    """Independent no-op tasks with a timeout: each runs in a worker process (the isolation
    that makes a timeout hold inside a long C call), so this measures what isolation costs."""
    lua = ("for i = 1, %d do task('t' .. i):timeout('30s'):command(function() return true end)"
           ":build() end\n" % n)
    return lua, independent(n)[1]


def sleepers(n: int, seconds: float) -> tuple[str, str]:
    lua = "for i = 1, %d do task('s' .. i):command('sleep %s'):build() end\n" % (n, seconds)
    dodo = ("def task_sleep():\n    for i in range(%d):\n"
            "        yield {'name': f's{i}', 'actions': ['sleep %s'], 'verbosity': 0}\n"
            % (n, seconds))
    return lua, dodo


WORKLOADS["1,000-task chain"] = (*chain(1000), [], 0.20)
WORKLOADS["1,000 independent tasks"] = (*independent(1000), [], 0.20)
WORKLOADS["10,000-task chain"] = (*chain(10000), [], 1.0)
# a fresh worker process per task (~1.5 ms each): what a task with a timeout pays for isolation
WORKLOADS["1,000 tasks with a timeout (workers)"] = (*bounded(1000), [], 2.0)
WORKLOADS["8 tasks × sleep 0.5"] = (*sleepers(8, 0.5), ["-n", "8", "-P", "thread"], 0.62)


def measure(argv: list[str], cwd: Path, env: dict) -> tuple[float, int, int]:
    """(wall seconds, peak RSS KiB, exit code) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", help="run only workloads whose name contains this")
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    sloth = shutil.which("sloth-runner", path=str(bindir)) or shutil.which("sloth-runner")
    doit = shutil.which("doit", path=str(bindir)) or shutil.which("doit")
    if not sloth or not doit:
        print("needs sloth-runner and doit installed next to this python (pip install . doit)",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sloth-bench-"))
    env = dict(os.environ, SLOTH_RUNNER_HOME=str(work / "home"))
    base = [measure([sys.executable, "-c", "pass"], work, env)[0] for _ in range(args.rounds)]
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}; {args.rounds} rounds, medians; "
          f"bare `python -c pass`: {statistics.median(base):.3f} s\n")
    print("| workload | sloth-runner | doit | doit ÷ sloth | sloth peak RSS | doit peak RSS |"
          " target |")
    print("|---|---|---|---|---|---|---|")
    for name, (lua, dodo, doit_args, target) in WORKLOADS.items():
        if args.only and args.only not in name:
            continue
        case = work / name.replace(" ", "_").replace(",", "").replace("×", "x")
        case.mkdir()
        (case / "wf.lua").write_text(lua)
        (case / "dodo.py").write_text(dodo)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(measure([sloth, "run", "-f", "wf.lua"], case, env))
            theirs.append(measure([doit, "--db-file", str(case / ".doit.db"), *doit_args],
                                  case, env))
        assert all(code == 0 for _, _, code in ours + theirs), f"{name}: a run failed"
        s_wall = statistics.median(w for w, _, _ in ours)
        d_wall = statistics.median(w for w, _, _ in theirs)
        s_rss = max(r for _, r, _ in ours) / 1024
        d_rss = max(r for _, r, _ in theirs) / 1024
        mark = "✓" if s_wall <= target else "✗"
        print(f"| {name} | {s_wall:.3f} s | {d_wall:.3f} s | {d_wall / s_wall:.2f}× | "
              f"{s_rss:.1f} MiB | {d_rss:.1f} MiB | ≤ {target} s {mark} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
