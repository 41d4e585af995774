"""How long `sloth-runner analyze` takes over a large history (issue 9: under 5 s for
1,000,000 attempt rows), and whether it still finds the planted causes.

    python bench/analyze.py [--attempts 1000000] [--tasks 5]

The history is generated (tests/analytics/histories.py: causes planted on a host, an hour and
a flaky task), written into a fresh SLOTH_RUNNER_HOME with the store's own schema, then the
real command runs on it, timed end to end (process start, query, analysis, output).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.analytics.histories import history  # noqa: E402


def build(home: str, attempts: int) -> int:
    os.environ["SLOTH_RUNNER_HOME"] = home
    from sloth_runner.store import Store

    store = Store()
    runs = max(1, attempts // 5)
    records = history(1, runs=runs, plant=("host", "hour", "flaky"), days=365)
    now = time.time()
    # whole days, so that local hours stay what the generator planted; ends within a day
    shift = (int((now - max(r["started_at"] for r in records)) // 86_400) - 1) * 86_400.0
    seen: dict[str, tuple] = {}
    rows = []
    for r in records:
        at = r["started_at"] + shift
        seen.setdefault(r["run_id"], (r["run_id"], "ci.lua", at, "success", 0, r["host"],
                                      json.dumps(r["params"]), r["git_commit"]))
        rows.append((r["run_id"], r["workflow"], r["task"], r["attempt"], int(r["final"]),
                     r["status"], at, at + r["duration_s"], r["duration_s"], r["exit_code"],
                     r["error"], r["host"], r["load_1m"], r["mem_free_mb"], r["backoff_s"],
                     r["cpu_s"]))
    with store.transaction() as c:
        c.executemany("INSERT INTO runs (id, file, started_at, status, pid, host, params_json,"
                      " git_commit) VALUES (?,?,?,?,?,?,?,?)", list(seen.values()))
        c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, status,"
                      " started_at, ended_at, duration_s, exit_code, error, host, load_1m,"
                      " mem_free_mb, backoff_s, cpu_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      rows)
    store.close()
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attempts", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        n = build(home, args.attempts)
        print(f"wrote {n} attempt rows in {time.perf_counter() - started:.1f}s")
        env = {**os.environ, "SLOTH_RUNNER_HOME": home, "PYTHONPATH": ROOT}
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "sloth_runner", "analyze", "--since",
                                   "400d", "-o", "json"], capture_output=True, text=True,
                                  env=env, check=True)
            times.append(time.perf_counter() - started)
        doc = json.loads(proc.stdout)
        print(f"analyze over {doc['attempts']} attempts: best {min(times):.2f}s, "
              f"median {sorted(times)[len(times) // 2]:.2f}s of {args.rounds}")
        for p in doc["patterns"]:
            print(f"  [{p['confidence']:.4f}] {p['type']}: {p['description']}")


if __name__ == "__main__":
    main()
