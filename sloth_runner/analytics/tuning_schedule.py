"""A workflow's DAG with measured durations: critical path, simulated run time, parallelism.

`tune` estimates what a workflow would take by replaying its DAG with each task's median
successful duration, the way the scheduler runs it (engine/scheduler.py): ready tasks start
in definition order, at most `max_parallel_tasks` at once, and a task's dependents become
ready when it ends. Tasks that together ask for more cores than the host has share them, each
slowed in proportion (processor sharing). Retries, retry delays, worker start-up and hooks are
not counted, so the estimate is for a run in which nothing fails; and the medians were measured
under the parallelism of past runs, so contention is in them once already.

`max_parallel_tasks` is sized against the host (see `parallelism`): memory is a hard bound
(the heaviest tasks by peak RSS must fit together in the budget: running out of memory kills
tasks), CPU a soft one (oversubscribed cores make every task slower, not the run fail).
Memory and CPU are those of the tasks' child processes (wait4's rusage): Lua code running in
sloth-runner's own process is not in them, and a child's peak RSS is recorded only when it
exceeds sloth-runner's own (services/process.py, child_peak_kb).
"""

from __future__ import annotations

import heapq
import math
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Graph = list[tuple[str, tuple[str, ...]]]  # (task, depends_on) in definition order

DEFAULT_MAX_PARALLEL = 8  # the scheduler's, when neither the workflow nor --max-parallel sets one


def critical_path(graph: Graph, durations: dict[str, float]) -> tuple[list[str], float]:
    """The longest chain of dependencies by duration (unknown durations count as 0)."""
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    deps = dict(graph)
    for name in _topological(graph):
        longest = max(deps[name], key=lambda d: finish[d], default=None)
        before[name] = longest
        finish[name] = durations.get(name, 0.0) + (finish[longest] if longest else 0.0)
    if not finish:
        return [], 0.0
    end: str | None = max((name for name, _ in graph), key=lambda n: finish[n])
    total = finish[end] if end else 0.0
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = before[end]
    return path[::-1], total


def simulate(graph: Graph, durations: dict[str, float], limit: int | None,
             cpu: dict[str, float] | None = None, cores: float | None = None) -> dict[str, Any]:
    """The scheduler's run replayed with these durations and this limit (None: no limit):
    {makespan_s, peak (the most tasks at once), cpu_peak (the most cores they asked for at
    once)}. With `cpu` (cores each task keeps busy) and `cores`, tasks that together ask for
    more cores than there are share them: each slows down in proportion (processor sharing),
    which is how an oversubscribed host behaves, roughly.

    Tasks that use no measured CPU run at full speed; the others all run at the same share,
    so they advance on one virtual clock: two heaps give each event in O(log n), and a
    10,000-task workflow replays in milliseconds.
    """
    cpu = cpu or {}
    waiting = {name: len(set(d)) for name, d in graph}
    dependents: dict[str, list[str]] = {name: [] for name, _ in graph}
    for name, d in graph:
        for dep in dict.fromkeys(d):
            dependents[dep].append(name)
    ready = deque(name for name, d in graph if not d)
    wall: list[tuple[float, int, str]] = []     # tasks at full speed: (end, seq, name)
    shared: list[tuple[float, int, str]] = []   # CPU tasks: (end on the virtual clock, ...)
    now = virtual = demand = cpu_peak = 0.0
    seq = peak = 0
    cap = limit if limit is not None else max(1, len(graph))
    while ready or wall or shared:
        while ready and len(wall) + len(shared) < cap:
            name = ready.popleft()
            seq += 1
            work = max(0.0, durations.get(name, 0.0))
            if cpu.get(name, 0.0) > 0:
                heapq.heappush(shared, (virtual + work, seq, name))
                demand += cpu[name]
            else:
                heapq.heappush(wall, (now + work, seq, name))
        peak, cpu_peak = max(peak, len(wall) + len(shared)), max(cpu_peak, demand)
        share = cores / demand if cores and demand > cores else 1.0
        wall_end = wall[0][0] if wall else math.inf
        shared_end = now + (shared[0][0] - virtual) / share if shared else math.inf
        step_to = min(wall_end, shared_end)
        virtual += (step_to - now) * share
        now = step_to
        finished = []
        while wall and wall[0][0] <= now + 1e-9:
            finished.append(heapq.heappop(wall)[2])
        while shared and shared[0][0] <= virtual + 1e-9:
            name = heapq.heappop(shared)[2]
            demand -= cpu[name]
            finished.append(name)
        if not shared:
            demand = 0.0  # no rounding left over
        for name in finished:
            for dependent in dependents[name]:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    ready.append(dependent)
    return {"makespan_s": now, "peak": peak, "cpu_peak": cpu_peak}


def parallelism(graph: Graph, durations: dict[str, float], usage: dict[str, dict[str, float]],
                host: dict[str, Any], current: int | None) -> dict[str, Any]:
    """The advice on `max_parallel_tasks`, with its evidence.

    Memory is a hard bound: the heaviest tasks by peak RSS must fit in the budget together.
    CPU is not: tasks that ask for more cores than there are only share them. So, among the
    limits memory allows, the one recommended is the largest that never asks for more cores
    than the host has, unless a larger one is needed to be within 5% of the fastest simulated
    run. It is lowered only for a reason of resources (memory, or cores oversubscribed at the
    current limit), raised only when that makes the simulated run 5% faster or more.
    """
    cores = host.get("cores")
    cpu = {n: float(u.get("cpu_cores") or 0.0) for n, u in usage.items()}
    effective = current or DEFAULT_MAX_PARALLEL
    free = simulate(graph, durations, None, cpu, cores)
    peak = free["peak"]
    mem_limit, mem_heaviest = _fit({n: float(u.get("peak_rss_kb") or 0) for n, u in usage.items()},
                                   host.get("memory_budget_kb"))
    cap = max(1, min(peak, mem_limit) if mem_limit is not None else peak)
    now = min(effective, peak)
    runs = {lim: simulate(graph, durations, lim, cpu, cores) for lim in _candidates(cap, now)}
    best = min(r["makespan_s"] for lim, r in runs.items() if lim <= cap)
    fast = min(lim for lim, r in runs.items() if lim <= cap and
               r["makespan_s"] <= best * 1.05 + 1e-6)
    measured_cpu = cores is not None and any(cpu.values())
    cool = max((lim for lim, r in runs.items() if lim <= cap and r["cpu_peak"] <= cores + 1e-9),
               default=1) if measured_cpu and cores else cap
    target = max(fast, cool)
    time_now, time_target = runs[now]["makespan_s"], runs[target]["makespan_s"]
    cpu_heaviest = [n for n, c in sorted(cpu.items(), key=lambda nc: -nc[1]) if c > 0][:3]
    evidence = {"dag_peak_parallel": peak, "memory_limit": mem_limit,
                "cpu_limit": cool if measured_cpu else None, "fastest_limit": fast,
                "cores_asked_at_current": round(runs[now]["cpu_peak"], 2),
                "heaviest_memory": mem_heaviest, "heaviest_cpu": cpu_heaviest,
                "effective_current": effective,
                "simulated_s": {str(lim): round(r["makespan_s"], 3) for lim, r in runs.items()}}
    if mem_limit is not None and mem_limit < now:
        action, recommended = "lower", target
        reason = (f"{now} tasks can run at once, but only {mem_limit} of the heaviest fit in "
                  f"the host's memory budget together")
        alone = max(usage, key=lambda n: float(usage[n].get("peak_rss_kb") or 0))
        if float(usage[alone].get("peak_rss_kb") or 0) > host["memory_budget_kb"]:
            reason += f" ({alone} alone peaks above it)"
    elif target < now and runs[now]["cpu_peak"] > (cores or 0) > 0:
        action, recommended = "lower", target
        reason = (f"at {now} at once the tasks ask for {runs[now]['cpu_peak']:.1f} cores of "
                  f"{cores:g}; {target} at once is within 5% as fast (simulated "
                  f"{_s(time_target)} vs {_s(time_now)}) with less contention")
    elif target > now and time_target < time_now * 0.95:
        action, recommended = "raise", target
        reason = (f"the DAG can run {peak} at once; {target} at once simulates to "
                  f"{_s(time_target)} instead of {_s(time_now)} with the limit of {effective}"
                  + (", and the host has room for them" if measured_cpu or mem_limit else ""))
    else:
        action, recommended = "keep", current
        reason = (f"the DAG runs at most {peak} at once and the limit is {effective}: "
                  + ("nothing to gain or to save" if measured_cpu or mem_heaviest else
                     "no task's processes used measurable CPU or memory"))
    if recommended == current:
        action = "keep"
    return {"current": current, "recommended": recommended, "action": action,
            "reason": reason, "evidence": evidence}


def _candidates(cap: int, now: int) -> list[int]:
    """The limits worth simulating: all up to 32, then powers of two, the cap and now."""
    found = set(range(1, min(cap, 32) + 1)) | {cap, now}
    step = 64
    while step < cap:
        found.add(step)
        step *= 2
    return sorted(found)


def _s(value: float) -> str:
    return f"{value:.1f}s" if value < 600 else f"{value / 60:.0f}m"


def _fit(weights: dict[str, float], budget: float | None) -> tuple[int | None, list[str]]:
    """(how many of the heaviest fit in `budget` together, or None if all do; their names)."""
    heavy = sorted(((w, n) for n, w in weights.items() if w > 0), key=lambda wn: -wn[0])
    if budget is None or not heavy:
        return None, []
    total, count = 0.0, 0
    for w, _ in heavy:
        if total + w > budget:
            break
        total += w
        count += 1
    if count == len(heavy):
        return None, [n for _, n in heavy[:3]]
    return max(1, count), [n for _, n in heavy[:max(1, count) + 1]]


def _topological(graph: Graph) -> list[str]:
    """Definition order, each task after its dependencies (the graph has no cycle: the loader
    checked)."""
    deps = {name: d for name, d in graph}
    done: set[str] = set()
    out: list[str] = []
    for root, _ in graph:
        stack = [root]
        while stack:
            cur = stack[-1]
            if cur in done:
                stack.pop()
                continue
            pending = [d for d in deps[cur] if d not in done]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            done.add(cur)
            out.append(cur)
    return out
