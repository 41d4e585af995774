"""What retries cost on the AI side: a retried task's AI calls (replay), and a busy server.

1. Replay (issue 12, part 4): the replay tests' workflow, whose task makes two AI calls and
   then fails twice before it succeeds (3 attempts), run with the real CLI against an OpenAI-compatible server
   on 127.0.0.1 (the tests' fault server): requests the server received and tokens billed,
   as shipped and with `replay = false` on the calls (every attempt asks again).
2. A single-request server that is busy (issue 12, part 2): every request answers after 3 s,
   the call's timeout is 1 s, `retry_attempts = 3`. Wall time until the call gives up and
   requests sent, as shipped (`timeout_retries = 1`: one more try after a timeout) and as
   before (every retry after a timeout, `timeout_retries = 3`).

    python bench/ai_retries.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)



def replay_run(server, extra: str) -> tuple[int, int]:
    from tests.ai.test_replay import FLAKY  # the workflow the replay tests run

    home = tempfile.mkdtemp()
    path = os.path.join(home, "flaky.lua")
    with open(path, "w") as fh:
        fh.write(FLAKY.format(extra=extra))
    env = {**os.environ, "SLOTH_RUNNER_HOME": home, "OPENAI_API_KEY": "sk-bench",
           "OPENAI_BASE_URL": server.base_url, "SLOTH_AI_MODEL": "gpt-4o-mini",
           "PYTHONPATH": ROOT}
    server.play()
    proc = subprocess.run([sys.executable, "-m", "sloth_runner", "run", "-f", path, "-o",
                           "json"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    logs = subprocess.run([sys.executable, "-m", "sloth_runner", "ai", "logs", "-n", "50", "-o",
                           "json"], env=env, capture_output=True, text=True)
    calls = json.loads(logs.stdout)["calls"]
    billed = sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls if not c["replayed"])
    return len(server.requests), billed


def busy_server(server, timeout_retries: int) -> tuple[float, int]:
    from sloth_runner.ai.client import AIService
    from sloth_runner.errors import AIError

    service = AIService(environ={}, notice=lambda text: None)
    service.configure({"api_key": "sk-bench", "base_url": server.base_url,
                       "model": "gpt-4o-mini", "timeout": "1s", "retry_attempts": 3,
                       "timeout_retries": timeout_retries})
    server.play(*["slow:3"] * 8)
    started = time.perf_counter()
    try:
        service.complete("summarise the incident")
    except AIError:
        pass
    return time.perf_counter() - started, len(server.requests)


def main() -> None:
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    from tests.ai.fault_server import FaultServer

    server = FaultServer()
    try:
        shipped = replay_run(server, "")
        again = replay_run(server, ", replay = false")
        busy_server(server, 0)  # load the SDK outside the measurement
        now = busy_server(server, 1)
        before = busy_server(server, 3)
    finally:
        server.stop()
    print("1. a task with 2 AI calls, failing twice after them, 3 attempts (real CLI)\n")
    print("| | requests sent | tokens billed |")
    print("|---|---|---|")
    print(f"| replay (shipped) | {shipped[0]} | {shipped[1]} |")
    print(f"| replay = false | {again[0]} | {again[1]} |")
    print("\n2. a busy server (answers after 3 s), timeout 1 s, retry_attempts 3\n")
    print("| | until the call gives up | requests sent |")
    print("|---|---|---|")
    print(f"| timeout_retries = 1 (shipped) | {now[0]:.1f} s | {now[1]} |")
    print(f"| timeout_retries = 3 (every retry, as before) | {before[0]:.1f} s | {before[1]} |")


if __name__ == "__main__":
    main()
