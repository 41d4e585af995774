"""ai.generate_code{language = "json"} on the bundled local model: with the JSON grammar
(as shipped) vs without it (free text, checked and re-asked), alternating.

For each way it prints how many requests ended with valid JSON, how many were valid at the
first attempt, the mean number of attempts and the mean time per request.

    python bench/codegen_json.py [--rounds 2]
"""

from __future__ import annotations

import statistics
import time

import local_model

DESCRIPTIONS = [
    "a config for a web service with a port and a list of hosts",
    "a list of three users with name and email",
    "feature flags for a mobile app",
    "a Kubernetes deployment for nginx with 3 replicas",
    "an npm package.json for a small CLI tool",
    "alerting thresholds for CPU, memory and disk",
    "a CI matrix of Python versions and operating systems",
    "database connection settings for staging and production",
]


def run(service, constrained: bool) -> list[dict]:
    from sloth_runner.ai import codegen

    shipped = dict(codegen.GRAMMARS)
    if not constrained:
        codegen.GRAMMARS.clear()
    rows = []
    try:
        for description in DESCRIPTIONS:
            started = time.perf_counter()
            result = service.generate_code({"language": "json", "description": description})
            rows.append({"valid": result["valid"] is True, "attempts": result["attempts"],
                         "seconds": time.perf_counter() - started})
    finally:
        codegen.GRAMMARS.update(shipped)
    return rows


def main() -> None:
    args, service = local_model.setup(__doc__, default_rounds=2)
    results: dict[str, list[dict]] = {"grammar": [], "free": []}
    for _ in range(args.rounds):
        for name in ("grammar", "free"):
            results[name] += run(service, name == "grammar")
    total = len(DESCRIPTIONS) * args.rounds
    print(f"{len(DESCRIPTIONS)} JSON requests x {args.rounds} rounds, bundled SmolLM2-135M, "
          "1 thread, max_attempts 3, temperature 0.2\n")
    print("| generation | valid in the end | valid at the first attempt | mean attempts | "
          "mean time |")
    print("|---|---|---|---|---|")
    for name, label in (("grammar", "under the JSON grammar (shipped)"),
                        ("free", "free, checked and re-asked")):
        rows = results[name]
        print(f"| {label} | {sum(r['valid'] for r in rows)}/{total} | "
              f"{sum(r['valid'] and r['attempts'] == 1 for r in rows)}/{total} | "
              f"{statistics.mean(r['attempts'] for r in rows):.2f} | "
              f"{statistics.mean(r['seconds'] for r in rows):.1f} s |")


if __name__ == "__main__":
    main()
