"""The dashboard (issue 11): server time of its heaviest views, page weight, live latency.

    python bench/ui.py [--runs 10000] [--tasks 1000] [--rounds 15]

1. Server time (in-process, Starlette's TestClient: the app's own time, no network) of the runs
   view over a home with `--runs` runs, and of the run view of a `--tasks`-task run (a real run
   of a generated file). Medians of `--rounds`.
2. Page weight: what a browser fetches for the runs view with no runs (HTML, CSS, JS): the
   dashboard's own weight, without the user's data.
3. Live latency: a real `sloth-runner ui` on 127.0.0.1, its live feed open (server-sent
   events), a real run of a one-task file; the time from the task's end (as the run recorded
   it) to the feed's event naming the run. Medians of 5.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(home: Path, runs: int) -> None:
    """`runs` finished runs of 5 tasks each, as the recorder writes them (one transaction)."""
    from sloth_runner.store import Store

    store = Store(str(home / "sloth.db"))
    now = time.time() - runs * 60
    rows, attempts = [], []
    for i in range(runs):
        run_id = f"{i:012x}"
        started = now + i * 60
        status = "failed" if i % 7 == 0 else "success"
        rows.append((run_id, f"/srv/jobs/job{i % 20}.lua", "default", started, started + 5,
                     status, 1000 + i, "vm", "{}", "", None))
        for t in range(5):
            attempts.append((run_id, "default", f"t{t}", 1, 1,
                             "failed" if status == "failed" and t == 4 else "success",
                             started + t, started + t + 1, 1.0, 0, "", None, "vm", "{}"))
    with store.transaction() as c:
        c.executemany("INSERT INTO runs (id, file, workflows, started_at, ended_at, status, pid,"
                      " host, params_json, grants, stack) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, status,"
                      " started_at, ended_at, duration_s, exit_code, message, error, host,"
                      " outputs_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", attempts)
    store.close()


def big_run(home: Path, tasks: int, folder: Path) -> str:
    """A real run of a `tasks`-task file (layers of 25, each task depending on one above)."""
    lines = ["local all = {}"]
    for i in range(tasks):
        dep = f':depends_on({{"t{i - 25}"}})' if i >= 25 else ""
        lines.append(f'all[#all + 1] = task("t{i}"):command(function() return true end){dep}'
                     ":build()")
    lines.append('workflow.define("big"):tasks(all)')
    path = folder / "big.lua"
    path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SLOTH_RUNNER_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", str(path), "-o",
                          "json"], env=env, capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)["run_id"])


def timed(client, path: str, rounds: int) -> tuple[float, int]:
    client.get(path)  # warm: templates compiled, connection open
    times = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
        size = len(response.content)
    return statistics.median(times), size


def live_latency(home: Path, folder: Path, rounds: int = 5) -> list[float]:
    from tests.ai.llama_server import free_port

    port = free_port()
    env = {**os.environ, "SLOTH_RUNNER_HOME": str(home)}
    server = subprocess.Popen([sys.executable, "-m", "sloth_runner", "ui", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wf = folder / "one.lua"
    wf.write_text('task("t"):command(function() return true end):build()\n')
    out = []
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(rounds):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/live")
            feed = conn.getresponse()
            feed.readline()  # "retry: ..." — the feed is open
            feed.readline()
            run = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", str(wf),
                                  "-o", "json"], env=env, capture_output=True, text=True)
            run_id = json.loads(run.stdout)["run_id"]
            while True:
                line = feed.readline().decode()
                if line.startswith("data:") and run_id in line:
                    seen = time.time()
                    break
            conn.close()
            db = sqlite3.connect(home / "sloth.db")
            ended = db.execute("SELECT max(ended_at) FROM attempts WHERE run_id = ?",
                               (run_id,)).fetchone()[0]
            db.close()
            out.append(seen - ended)
    finally:
        server.terminate()
        server.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sloth-bench-ui-"))
    home = folder / "home"
    home.mkdir()
    os.environ["SLOTH_RUNNER_HOME"] = str(home)
    big = big_run(home, args.tasks, folder)
    fill(home, args.runs)

    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}")
    with TestClient(make_app(Settings()), base_url="http://127.0.0.1") as client:
        runs_t, runs_size = timed(client, "/", args.rounds)
        run_t, run_size = timed(client, f"/runs/{big}", args.rounds)
        filtered_t, _ = timed(client, "/?status=failed&since=30d", args.rounds)
    empty = folder / "empty"
    empty.mkdir()
    os.environ["SLOTH_RUNNER_HOME"] = str(empty)
    with TestClient(make_app(Settings()), base_url="http://127.0.0.1") as client:
        weight = sum(len(client.get(p).content) for p in ("/", "/static/app.css",
                                                          "/static/app.js"))
    os.environ["SLOTH_RUNNER_HOME"] = str(home)
    latency = live_latency(home, folder)
    print(f"\n| view | server time (median of {args.rounds}) | response | target |\n"
          "|---|---|---|---|")
    print(f"| runs, {args.runs:,} runs in the store | {runs_t * 1000:.1f} ms | "
          f"{runs_size / 1024:.0f} KiB | < 150 ms {'✓' if runs_t < 0.15 else '✗'} |")
    print(f"| runs, filtered (failed, 30d) | {filtered_t * 1000:.1f} ms | | < 150 ms "
          f"{'✓' if filtered_t < 0.15 else '✗'} |")
    print(f"| run of {args.tasks:,} tasks (DAG, timeline, table) | {run_t * 1000:.1f} ms | "
          f"{run_size / 1024:.0f} KiB | < 150 ms {'✓' if run_t < 0.15 else '✗'} |")
    print(f"\npage weight without data (HTML + CSS + JS): {weight / 1024:.1f} KiB "
          f"(target < 300 KB {'✓' if weight < 300_000 else '✗'})")
    med = statistics.median(latency)
    print(f"live: task end → event on the open feed, median of {len(latency)}: "
          f"{med * 1000:.0f} ms (max {max(latency) * 1000:.0f} ms; target < 1 s "
          f"{'✓' if med < 1 else '✗'})")


if __name__ == "__main__":
    main()
