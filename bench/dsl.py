"""Cost of defining tasks with the fluent DSL, per task (target: <= 5 us).

Measures executing a Lua file that defines N tasks (`task(..):command(fn):depends_on(..):build()`)
in a fresh runtime, then the whole load as a run does it (`Run.load()`: runtime, DSL, the
description of each task, engine objects, DAG checks).

    python bench/dsl.py --tasks 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from sloth_runner.engine.events import Listener
from sloth_runner.lua.modules import install_core_modules
from sloth_runner.lua.runtime import LuaRuntime
from sloth_runner.lua.services import Services
from sloth_runner.running import Run


def source(n: int) -> str:
    return ("for i = 1, %d do\n"
            "  local t = task('t' .. i):description('task'):command(function() return true end)\n"
            "  if i > 1 then t:depends_on({'t' .. (i - 1)}) end\n"
            "  t:build()\nend\n" % n)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    src = source(args.tasks)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(src)
    services = Services(Listener(), lambda: None, tempfile.gettempdir(), lambda: None)
    define, whole = [], []
    for _ in range(args.rounds):
        rt = LuaRuntime()
        install_core_modules(rt, services)
        start = time.perf_counter()
        rt.run_file(src, "bench.lua")
        define.append((time.perf_counter() - start) / args.tasks * 1e6)
        start = time.perf_counter()
        with Run(fh.name) as run:
            run.load()
            whole.append((time.perf_counter() - start) / args.tasks * 1e6)
    print(f"{args.tasks} tasks, {args.rounds} rounds, medians: "
          f"Lua DSL {statistics.median(define):.2f} us/task (best {min(define):.2f}); "
          f"whole load (runtime, DSL, conversion, DAG checks) {statistics.median(whole):.2f} us/task "
          f"(best {min(whole):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
