"""ai.decide, constrained vs matched afterwards: on the bundled local model, or through a server.

The same decisions (choose one, choose several, triage) are asked twice through AIService. On
the local provider: once as shipped (the answer decoded under the decision's GBNF grammar) and
once with the grammar switched off. With `--server`: through llama-cpp-python's
OpenAI-compatible server running the same bundled model (1 thread), once as shipped
(`structured = "auto"`: the decision's JSON schema as response_format, which that server turns
into a grammar) and once with `structured = "off"` (the text answer matched afterwards, as
before). For each it prints how often the answer named an allowed value (no fallback), and the
mean latency and completion tokens per decision.

    python bench/decide.py [--rounds 1] [--server]
"""

from __future__ import annotations

import statistics
import time

import local_model

DECISIONS = [
    {"situation": "Database CPU usage is 85%", "options": ["scale_up", "optimize_queries",
                                                           "add_replica"],
     "constraints": {"budget": "limited", "downtime": "not_allowed"}},
    {"context": {"load": 0.2, "tests": "passed"}, "options": ["staging", "production", "canary"]},
    {"strategies": ["blue_green", "canary", "rolling", "immediate"], "risk_tolerance": "medium"},
    {"situation": "Disk 95% full on the log server", "options": ["rotate_logs", "add_volume",
                                                                 "ignore"]},
    {"situation": "Error rate doubled after the deploy", "options": ["rollback", "hotfix",
                                                                     "wait"]},
    {"situation": "Nightly backup took 3x longer", "choices": ["investigate", "ignore"]},
    {"changed_files": ["api/server.py"], "time_budget": "10m",
     "available_tests": ["unit", "integration", "e2e", "performance"]},
    {"changed_files": ["docs/README.md"], "available_tests": ["unit", "e2e", "lint"]},
    {"analysis": "ERROR db: connection refused (40 times in 1 min)"},
    {"analysis": "WARN cache hit ratio 91% (usual 93%)"},
    {"analysis": "FATAL api: out of memory, pod restarted 6 times"},
]


def run(service, constrained: bool) -> dict:
    from sloth_runner.ai import decide

    shipped = decide.grammar
    if not constrained:
        decide.grammar = lambda form, options: None  # type: ignore[assignment]
    valid, latency, tokens = 0, [], []
    try:
        for spec in DECISIONS:
            started = time.perf_counter()
            answer = service.decide(dict(spec))
            latency.append(time.perf_counter() - started)
            valid += not answer["fallback"]
        for row in service.usage().logs(len(DECISIONS)):
            tokens.append(row["completion_tokens"])
    finally:
        decide.grammar = shipped
    return {"valid": valid, "latency": statistics.mean(latency), "tokens": statistics.mean(tokens)}


def server_run(base_url: str, structured: str) -> dict:
    from sloth_runner.ai.client import AIService

    service = AIService(environ={})
    service.configure({"provider": "openai", "base_url": base_url, "model": "smollm2",
                       "timeout": 120, "retry_attempts": 0, "structured": structured,
                       "prices": {"smollm2": {"input": 0, "output": 0}}})
    valid, latency = 0, []
    for spec in DECISIONS:
        started = time.perf_counter()
        answer = service.decide(dict(spec))
        latency.append(time.perf_counter() - started)
        valid += not answer["fallback"]
    tokens = [row["completion_tokens"] for row in service.usage().logs(len(DECISIONS))]
    return {"valid": valid, "latency": statistics.mean(latency),
            "tokens": statistics.mean(tokens)}


def server_main(rounds: int) -> None:
    import os
    import sys
    import tempfile

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    from tests.ai.llama_server import LlamaServer

    server = LlamaServer()
    try:
        server_run(server.base_url, "off")  # warm the server and its log-prob path
        results: dict[str, list[dict]] = {"auto": [], "off": []}
        for _ in range(rounds):
            for mode in ("auto", "off"):
                results[mode].append(server_run(server.base_url, mode))
    finally:
        server.stop()
    print(f"{len(DECISIONS)} decisions x {rounds} rounds, llama-cpp-python's server, bundled "
          "SmolLM2-135M, 1 thread\n")
    table("through the server", results, (
        ("auto", "JSON schema as response_format (shipped, structured=auto)"),
        ("off", "free text, matched afterwards (structured=off)")))


def table(first: str, results: dict[str, list[dict]], labels: tuple) -> None:
    """The figures of each way of asking, as a Markdown table for BENCHMARKS.md."""
    print(f"| {first} | answers naming an allowed value | mean latency "
          "| mean completion tokens |")
    print("|---|---|---|---|")
    for name, label in labels:
        rows = results[name]
        valid = sum(r["valid"] for r in rows)
        total = len(DECISIONS) * len(rows)
        print(f"| {label} | {valid}/{total} | {statistics.mean(r['latency'] for r in rows):.2f} s "
              f"| {statistics.mean(r['tokens'] for r in rows):.0f} |")

def main() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server", action="store_true")
    args = parser.parse_args()
    if args.server:
        server_main(args.rounds)
        return
    sys.argv[1:] = ["--rounds", str(args.rounds)]  # what local_model.setup parses
    _, service = local_model.setup(__doc__, default_rounds=1)
    service.decide(dict(DECISIONS[0]))  # decisions use log-probs: load that instance too
    results: dict[str, list[dict]] = {"grammar": [], "free": []}
    for _ in range(args.rounds):
        for name in ("grammar", "free"):
            results[name].append(run(service, name == "grammar"))
    print(f"{len(DECISIONS)} decisions x {args.rounds} rounds, bundled SmolLM2-135M, 1 thread\n")
    table("decoding", results, (("grammar", "under the decision's grammar (shipped)"),
                                ("free", "free, matched afterwards")))

if __name__ == "__main__":
    main()
