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

from tests.analytics.histories import history, store_history  # noqa: E402


def build(home: str, attempts: int) -> int:
    os.environ["SLOTH_RUNNER_HOME"] = home
    from sloth_runner.store import Store

    store = Store()
    records = history(1, runs=max(1, attempts // 5), plant=("host", "hour", "flaky"), days=365)
    written = store_history(store, records, end_before=time.time())
    store.close()
    return written


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
