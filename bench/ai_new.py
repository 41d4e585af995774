"""`sloth-runner ai new` on the bundled local model: the constrained spec path (as shipped: the
spec under a grammar, rendered by our code, checked, up to 3 attempts) vs free generation (the
model asked for the Lua file directly, one attempt, no repair), on 20 fixed DevOps requests.

A file counts when it loads and `sloth-runner run -f FILE --dry-run` succeeds (exit 0, the same
check for both). Also counted: files whose `module.function(...)` calls all name functions
that exist in the runtime's module tables (a dry run does not call task functions, so a file
can dry-run and still call `docker.build` or `fs.copy`).

    python bench/ai_new.py [--limit N] [--out /tmp/ai_new_bench.md]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REQUESTS = [
    "nightly: back up postgres, verify the dump, upload it, alert on failure",
    "every hour, check that the API at https://api.internal/health is up and alert if not",
    "build the docker image, run the unit tests, push the image to the registry and deploy "
    "to staging",
    "clone https://github.com/acme/site.git, build it with npm, run the tests and deploy the "
    "dist folder with rsync",
    "rotate the nginx logs, compress the old ones and delete logs older than 30 days",
    "run terraform plan, then terraform apply, then check that the load balancer answers",
    "renew the TLS certificates with certbot and reload nginx; alert the team if it fails",
    "check disk usage on this host and send a warning alert when it is over 90 percent",
    "pull the latest code in /srv/app, install the python requirements, run migrations and "
    "restart the service",
    "dump the mysql database, gzip it, and copy it to s3 with the aws cli",
    "run the integration tests against staging, and if they pass, promote the build to "
    "production",
    "download the latest release tarball from https://example.com/app.tar.gz, unpack it into "
    "/opt/app and restart the app",
    "every morning, report the AWS costs of the last 7 days and the EC2 utilization",
    "scale the kubernetes deployment web to 5 replicas, wait for the rollout, then run the "
    "smoke tests",
    "vacuum and analyze the postgres database, then record the time of the last vacuum in "
    "state",
    "lint the code, run the unit tests and build the wheel; the lint and tests can run in "
    "parallel",
    "write a maintenance banner file to /var/www/maintenance.html, deploy, then remove the "
    "banner",
    "check that https://shop.example.com and https://api.example.com are healthy and log the "
    "host load",
    "snapshot the database volume, prune snapshots older than 14 days, alert on failure",
    "fetch the on-call schedule from https://oncall.example.com/api/today and post a summary "
    "to the team webhook",
]
MODULES = ("exec", "fs", "log", "state", "json", "yaml", "http", "net", "git", "monitoring",
           "notifications", "aws", "ai", "event", "goroutine")
LIST_FUNCTIONS = """
local out = {}
for _, m in ipairs({%s}) do
    local t = _G[m]
    if type(t) == "table" then
        for k, v in pairs(t) do
            if type(v) == "function" then out[#out + 1] = m .. "." .. k
            elseif type(v) == "table" then
                for k2, v2 in pairs(v) do
                    if type(v2) == "function" then out[#out + 1] = m .. "." .. k .. "." .. k2 end
                end
            end
        end
    end
end
print(json.encode(out))
task("noop"):command("true"):build()
"""
CALL = re.compile(r"\b(%s)((?:\.[A-Za-z_]\w*)+)\s*[({\"']" % "|".join(MODULES))


def known_functions() -> set[str]:
    """Every function of the module tables, read from a real runtime (not from our list)."""
    import json

    from sloth_runner.engine.events import Listener
    from sloth_runner.running import Run

    lines: list[str] = []

    class Logs(Listener):
        def log(self, level: str, message: str, workflow: object, task: object) -> None:
            lines.append(message)

    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "list.lua")
    with open(path, "w") as fh:
        fh.write(LIST_FUNCTIONS % ", ".join(f'"{m}"' for m in MODULES))
    with Run(path, listener=Logs()) as run:
        run.load()
    return set(json.loads(lines[0]))


def unknown_calls(lua: str, known: set[str]) -> list[str]:
    code = "\n".join(line.split("--", 1)[0] for line in lua.splitlines())
    return sorted({m + rest for m, rest in CALL.findall(code) if m + rest not in known})


def free_prompt(request: str) -> list[dict[str, str]]:
    """The same help as the constrained path: the functions in the system message, and the
    same example as a previous turn (the file our code renders from the example spec)."""
    from sloth_runner.ai import newflow, newflow_render, newflow_spec

    functions = "\n".join(f"  {name}({', '.join(a.name for a in args)}): {what}"
                          for name, (args, what) in newflow_spec.FUNCTIONS.items())
    system = ("You are a DevOps engineer. You write sloth-runner workflow files in Lua. Tasks "
              f"run shell commands or call these module functions:\n{functions}")

    def ask(what: str) -> str:
        return (f"Write a sloth-runner workflow file (Lua) for this request: {what}\nReply with "
                "only the Lua code in a single fenced code block.")

    example = newflow_render.render(newflow.EXAMPLE, "modern")
    return [{"role": "system", "content": system},
            {"role": "user", "content": ask(newflow.EXAMPLE_REQUEST)},
            {"role": "assistant", "content": f"```lua\n{example}```"},
            {"role": "user", "content": ask(request)}]


def constrained(service: object, request: str, attempts: int) -> dict:
    from sloth_runner.ai import newflow

    started = time.perf_counter()
    try:
        result = newflow.generate(service, request, filename="wf.lua",  # type: ignore[arg-type]
                                  attempts=attempts)
    except newflow.GenerationFailed as exc:
        return {"lua": None, "error": str(exc), "attempts": attempts,
                "seconds": time.perf_counter() - started}
    return {"lua": result.lua, "error": None, "attempts": result.attempts,
            "seconds": time.perf_counter() - started}


def free(service: object, request: str) -> dict:
    """The same sampling as the constrained path's first attempt (greedy, llama.cpp's repeat
    penalty), without a grammar."""
    from sloth_runner.ai import codegen, newflow

    started = time.perf_counter()
    text = newflow._call(service, free_prompt(request),  # type: ignore[arg-type]
                         newflow._options(1, 1500, True))
    return {"lua": codegen.extract_code(text), "error": None, "attempts": 1,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=len(REQUESTS))
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    from sloth_runner.ai import newflow
    from sloth_runner.ai.client import AIService

    service = AIService(environ={})
    service.configure({"provider": "local", "retry_attempts": 0})
    service.complete("hello")  # load the model outside the measurement
    known = known_functions()
    rows: dict[str, list[dict]] = {"constrained": [], "free": []}
    for i, request in enumerate(REQUESTS[:args.limit], 1):
        for name in ("constrained", "free"):  # alternating, so drift hits both alike
            row = constrained(service, request, args.attempts) if name == "constrained" \
                else free(service, request)
            problems = ["no file"] if row["lua"] is None else \
                newflow.dry_run(row["lua"], "wf.lua", strict=False)[0]
            row["dry_runs"] = not problems
            row["unknown"] = unknown_calls(row["lua"] or "", known)
            rows[name].append(row)
            shown = "ok" if row["dry_runs"] else (row["error"] or problems[0])[:150]
            print(f"[{i:2}] {name:11} {row['seconds']:5.1f}s attempts {row['attempts']} "
                  f"{shown}" + (f" unknown: {row['unknown']}" if row["unknown"] else ""),
                  file=sys.stderr)
    n = min(args.limit, len(REQUESTS))
    share = {k: sum(r["dry_runs"] for r in v) / n for k, v in rows.items()}
    table = [f"{n} DevOps requests, bundled SmolLM2-135M-Instruct (llama.cpp in-process, 1 "
             "thread), one run, alternating per request.\n",
             "| generation | loads and dry-runs | ... and calls only existing module functions "
             "| first attempt | mean attempts | mean time |",
             "|---|---|---|---|---|---|"]
    for name, label in (("constrained", f"spec under a grammar, rendered by our code, "
                                        f"checked (up to {args.attempts} attempts)"),
                        ("free", "free: the model writes the Lua (1 attempt, no repair)")):
        v = rows[name]
        ok = sum(r["dry_runs"] for r in v)
        clean = sum(r["dry_runs"] and not r["unknown"] for r in v)
        first = sum(r["dry_runs"] and r["attempts"] == 1 for r in v)
        table.append(f"| {label} | {ok}/{n} ({ok / n:.0%}) | {clean}/{n} | {first}/{n} | "
                     f"{statistics.mean(r['attempts'] for r in v):.2f} | "
                     f"{statistics.mean(r['seconds'] for r in v):.1f} s |")
    ratio = share["constrained"] / share["free"] if share["free"] else float("inf")
    table.append(f"\nConstrained / free, share that loads and dry-runs: "
                 f"{share['constrained']:.0%} / {share['free']:.0%} = "
                 + (f"{ratio:.1f}x" if share["free"] else "free had none"))
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
