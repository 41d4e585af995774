"""ai.decide on the bundled local model: grammar-constrained decoding vs matching afterwards.

The same decisions (choose one, choose several, triage) are asked twice through AIService's local
provider: once as shipped (the answer decoded under the decision's GBNF grammar) and once with
the grammar switched off (the model answers freely and the same parsers match its text). For
each it prints how often the model's answer named an allowed value (no fallback), and the mean
latency and completion tokens per decision.

    python bench/decide.py [--rounds 1]
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


def main() -> None:
    args, service = local_model.setup(__doc__, default_rounds=1)
    service.decide(dict(DECISIONS[0]))  # decisions use log-probs: load that instance too
    results: dict[str, list[dict]] = {"grammar": [], "free": []}
    for _ in range(args.rounds):
        for name in ("grammar", "free"):
            results[name].append(run(service, name == "grammar"))
    print(f"{len(DECISIONS)} decisions x {args.rounds} rounds, bundled SmolLM2-135M, 1 thread\n")
    print("| decoding | answers naming an allowed value | mean latency | mean completion tokens |")
    print("|---|---|---|---|")
    for name, label in (("grammar", "under the decision's grammar (shipped)"),
                        ("free", "free, matched afterwards")):
        rows = results[name]
        valid = sum(r["valid"] for r in rows)
        total = len(DECISIONS) * len(rows)
        print(f"| {label} | {valid}/{total} | {statistics.mean(r['latency'] for r in rows):.2f} s "
              f"| {statistics.mean(r['tokens'] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
