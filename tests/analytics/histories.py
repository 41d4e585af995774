"""Generated execution histories with known answers: causes planted on purpose, and noise.

A history is a list of attempt records as the runner stores them (see
sloth_runner/analytics/records.py). Each run of the workflow "ci" runs the tasks in order on
one host, at one time, with one set of parameters; a task's failure probability is its base
rate unless a planted cause applies. Used by the analytics tests and by bench/predict.py.
"""

from __future__ import annotations

import random
from typing import Any

HOSTS = ["build-01", "build-02", "build-03", "build-04", "build-05", "build-06", "build-07"]
TASKS = ["checkout", "fetch", "build", "test", "deploy"]
START = 1_780_000_000.0  # a fixed date: histories are reproducible
DAY = 86_400.0


def history(seed: int, *, runs: int = 240, plant: tuple[str, ...] = (), base: float = 0.03,
            retries: int = 0, days: float = 60.0, fetch_retries: int | None = None,
            truth: bool = False, bad_hours: tuple[int, ...] = (3,)) -> list[dict[str, Any]]:
    """Attempt records of `runs` runs over `days` days. `plant` names causes:
    "host"  deploy fails 90 % of the time on build-07, `base` elsewhere
    "hour"  test fails 80 % of the time between 03:00 and 03:59 (local time)
    "param" build fails 85 % of the time with params.target == "arm64"
    "dep"   deploy fails 85 % of the time when fetch needed a retry (fetch is flaky: 30 %)
    "load"  build fails 80 % of the time when the host's load at start is above 6
    "flaky" fetch fails 30 % of the time, whatever the run, and a retry usually recovers it
    "outage" the artifact server fetch and deploy share has outages (a run starts one with
            probability 6 %, each later run ends it with probability 30 %: spells of about
            three runs); during one fetch's first attempt fails 70 % of the time (a retry
            usually recovers it) and deploy fails 85 % of the time. Unlike "dep", this can be
            foreseen before a run: the outage shows in the runs before it.
    With `retries`, every task is retried that many times (a retry of a planted failure
    fails again, except fetch's flakiness, which passes). `fetch_retries` overrides how often
    fetch is retried (with 0, "flaky" fetch fails for good 30 % of the time). With `truth`,
    each record carries `p_fail`: the failure probability the generator used for it.
    `bad_hours` are the hours "hour" plants its failures in (03:00-03:59 by default)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    times = sorted(START + rng.random() * days * DAY for _ in range(runs))
    commits = [f"{rng.getrandbits(40):010x}" for _ in range(8)]
    fetch_extra = retries if retries else (1 if "dep" in plant or "flaky" in plant else 0)
    if "outage" in plant and not retries:
        fetch_extra = 1
    if fetch_retries is not None:
        fetch_extra = fetch_retries
    outages = _outages(seed, runs) if "outage" in plant else [False] * runs
    for i, at in enumerate(times):
        run_id = f"run{seed}-{i:05d}"
        host = rng.choice(HOSTS)
        load = rng.choice([rng.uniform(0.1, 2.5)] * 4 + [rng.uniform(6.5, 12.0)])
        params = {"target": rng.choice(["amd64", "amd64", "arm64"]),
                  "env": rng.choice(["staging", "prod"]), "build_id": f"b{seed}-{i}"}
        commit = commits[min(len(commits) - 1, int(len(commits) * i / runs))]
        hour = _local_hour(at)
        clock = at
        fetch_retried = False
        for task in TASKS:
            attempts_allowed = 1 + (fetch_extra if task == "fetch" else retries)
            for attempt in range(1, attempts_allowed + 1):
                p = base
                if task == "deploy" and "host" in plant and host == "build-07":
                    p = 0.9
                if task == "test" and "hour" in plant and hour in bad_hours:
                    p = 0.8
                if task == "build" and "param" in plant and params["target"] == "arm64":
                    p = 0.85
                if task == "build" and "load" in plant and load > 6:
                    p = 0.8
                if task == "deploy" and "dep" in plant and fetch_retried:
                    p = 0.85
                if task == "fetch" and ("flaky" in plant or "dep" in plant):
                    p = 0.3 if attempt == 1 else base
                if outages[i] and task == "fetch":
                    p = 0.7 if attempt == 1 else base
                if outages[i] and task == "deploy":
                    p = 0.85
                failed = rng.random() < p
                duration = max(0.05, rng.gauss(20.0 if task == "build" else 5.0, 0.5))
                backoff = 2.0 ** (attempt - 1) if attempt > 1 else None
                if backoff:
                    clock += backoff
                out.append({
                    "run_id": run_id, "workflow": "ci", "task": task, "attempt": attempt,
                    "final": not failed or attempt == attempts_allowed,
                    "status": "failed" if failed else "success",
                    "started_at": clock, "ended_at": clock + duration, "duration_s": duration,
                    "exit_code": (1 if failed else 0),
                    "error": f"{task} failed: connection reset on 10.0.{i % 250}.{attempt}:5432"
                    if failed else None,
                    "host": host, "load_1m": round(load, 2), "mem_free_mb": 8000,
                    "git_commit": commit, "params": params, "backoff_s": backoff,
                    "cpu_s": 0.5, "max_rss_kb": None,
                })
                if truth:
                    out[-1]["p_fail"] = p
                clock += duration
                if task == "fetch" and attempt > 1:
                    fetch_retried = True
                if not failed:
                    break
            else:
                break  # the task failed for good: the rest of the run does not run
    return out


def _outages(seed: int, runs: int) -> list[bool]:
    """Which runs fall in an outage: a chain of its own random numbers, so that the other
    plants' histories stay what they were."""
    rng = random.Random(seed * 7919 + 1)
    out, down = [], False
    for _ in range(runs):
        down = rng.random() >= 0.3 if down else rng.random() < 0.06
        out.append(down)
    return out


def _local_hour(at: float) -> int:
    import time

    return time.localtime(at).tm_hour


def store_history(store: Any, records: list[dict[str, Any]], *, workflow: str | None = None,
                  end_before: float | None = None) -> int:
    """Write `records` into `store` as the recorder would: a `runs` row per run, an
    `attempts` row per record (renamed to `workflow` if given). With `end_before`, times are
    moved by whole days so that the last run starts in the day before it (local hours stay
    what was planted). Returns the number of attempt rows."""
    import json

    shift = 0.0
    if end_before is not None and records:
        last = max(r["started_at"] for r in records)
        shift = (int((end_before - last) // DAY) - 1) * DAY
    runs: dict[str, tuple] = {}
    rows = []
    for r in records:
        at = r["started_at"] + shift
        runs.setdefault(r["run_id"], (r["run_id"], "ci.lua", at, "success", 0, r["host"],
                                      json.dumps(r["params"]), r["git_commit"]))
        rows.append((r["run_id"], workflow or r["workflow"], r["task"], r["attempt"],
                     int(r["final"]), r["status"], at, at + r["duration_s"], r["duration_s"],
                     r["exit_code"], r["error"], r["host"], r["load_1m"], r["mem_free_mb"],
                     r["backoff_s"], r["cpu_s"]))
    with store.transaction() as c:
        c.executemany("INSERT INTO runs (id, file, started_at, status, pid, host, params_json,"
                      " git_commit) VALUES (?,?,?,?,?,?,?,?)", list(runs.values()))
        c.executemany("INSERT INTO attempts (run_id, workflow, task, attempt, final, status,"
                      " started_at, ended_at, duration_s, exit_code, error, host, load_1m,"
                      " mem_free_mb, backoff_s, cpu_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      rows)
    return len(rows)
