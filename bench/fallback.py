"""The fallback chain when the first provider is down: what a run of AI calls costs.

The first provider is a black hole on 127.0.0.1 (it accepts connections and never answers), with
`timeout = 1s` and no retries; the fallback is a healthy OpenAI-compatible server (the tests'
fault server). N calls are made one after another through AIService:

- as shipped: the first call waits out the timeout, then the dead provider is skipped for 30 s;
- without the cooldown: every call waits out the timeout before falling back;
- the healthy server alone, for the floor.

    python bench/fallback.py [--calls 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def black_hole() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue in the backlog; nothing ever answers
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def run(calls: int, settings: dict, cooldown: bool) -> float:
    from sloth_runner.ai import fallback
    from sloth_runner.ai.client import AIService

    saved = fallback.COOLDOWN_S
    fallback.COOLDOWN_S = saved if cooldown else 0.0
    try:
        service = AIService(environ={}, notice=lambda text: None)
        service.configure(settings)
        started = time.perf_counter()
        for i in range(calls):
            out = service.complete({"prompt": f"call {i}", "max_tokens": 8})
            assert out["text"] == "reply text", out
        return time.perf_counter() - started
    finally:
        fallback.COOLDOWN_S = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    from tests.ai.fault_server import FaultServer

    healthy = FaultServer()
    hole, dead = black_hole()
    try:
        common = {"api_key": "sk-bench", "model": "gpt-4o-mini", "timeout": "1s",
                  "retry_attempts": 0}
        chain = {**common, "base_url": dead,
                 "fallback": [{"base_url": healthy.base_url, "api_key": "sk-bench",
                               "model": "gpt-4o-mini"}]}
        run(2, {**common, "base_url": healthy.base_url}, True)  # load the SDK outside
        floor = run(args.calls, {**common, "base_url": healthy.base_url}, True)
        shipped = run(args.calls, chain, True)
        without = run(args.calls, chain, False)
    finally:
        hole.close()
        healthy.stop()
    print(f"{args.calls} calls, first provider a black hole (timeout 1 s, no retries), "
          "fallback a healthy server on 127.0.0.1\n")
    print("| | total | per call |")
    print("|---|---|---|")
    for label, value in (("healthy server alone (floor)", floor),
                         ("dead first provider, shipped (skipped for 30 s after it fails)",
                          shipped),
                         ("dead first provider, no cooldown (waited out on every call)",
                          without)):
        print(f"| {label} | {value:.2f} s | {value / args.calls * 1000:.0f} ms |")
    print(f"\nno cooldown / shipped: {without / shipped:.1f}x")


if __name__ == "__main__":
    main()
