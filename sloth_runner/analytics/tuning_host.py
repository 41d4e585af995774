"""What this host can give a run's tasks: cores and memory, as `tune` budgets them.

Cores are the CPUs this process may run on (its affinity mask, which `taskset` and cpusets
narrow; `os.cpu_count()` counts the machine's), further capped by a cgroup v2 CPU quota
(`cpu.max`, what a container is given). Memory is `MemTotal` from /proc/meminfo, capped by the
cgroup's `memory.max`. `MemAvailable` is reported too, but not budgeted: it is what happens to
be free while `tune` runs, not what the run will find.
"""

from __future__ import annotations

import math
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MEMORY_SHARE = 0.8  # of the host's memory, for the run's tasks: the rest is for everything else


def host_resources(proc: str = "/proc", cgroup: str = "/sys/fs/cgroup") -> dict[str, Any]:
    """{cores, memory_kb, memory_available_kb, memory_budget_kb, notes}."""
    notes: list[str] = []
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = float(os.cpu_count() or 1)
    quota = _cpu_quota(cgroup)
    if quota is not None and quota < cores:
        notes.append(f"cgroup CPU quota: {quota:g} cores")
        cores = quota
    total, available = _meminfo(proc)
    limit = _memory_limit(cgroup)
    if limit is not None and (total is None or limit < total):
        notes.append(f"cgroup memory limit: {limit // 1024} MiB")
        total = limit
    return {"cores": cores, "memory_kb": total, "memory_available_kb": available,
            "memory_budget_kb": int(total * MEMORY_SHARE) if total else None, "notes": notes}


def _meminfo(proc: str) -> tuple[int | None, int | None]:
    values: dict[str, int] = {}
    try:
        with open(os.path.join(proc, "meminfo"), encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values.get("MemTotal"), values.get("MemAvailable")


def _cpu_quota(cgroup: str) -> float | None:
    """cpu.max `quota period` in cores, or None (`max`, or no cgroup v2)."""
    try:
        with open(os.path.join(cgroup, "cpu.max"), encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota == "max":
            return None
        return max(1.0, math.floor(int(quota) / int(period) * 10) / 10)
    except (OSError, ValueError):
        return None


def _memory_limit(cgroup: str) -> int | None:
    """memory.max in kB, or None."""
    try:
        with open(os.path.join(cgroup, "memory.max"), encoding="ascii") as f:
            text = f.read().strip()
        return None if text == "max" else int(text) // 1024
    except (OSError, ValueError):
        return None
