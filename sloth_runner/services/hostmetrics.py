"""What a deployment decision wants to know about this machine, and whether services answer.

`load_metrics` reads the kernel's own counters (load average, /proc/meminfo, statvfs): no
dependency, microseconds. `health` combines those host checks with optional HTTP checks of the
services a workflow names, and reports the worst status, so a workflow can hold a deployment
while production is unhealthy.
"""

from __future__ import annotations

import os
import time

from sloth_runner.errors import IntegrationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Host thresholds: (degraded at, unhealthy at).
LOAD_PER_CPU = (1.5, 3.0)
MEMORY_USED_PERCENT = (90.0, 97.0)
DISK_USED_PERCENT = (90.0, 97.0)
RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def load_metrics(disk_path: str = "/") -> dict[str, Any]:
    """Load averages, CPU count, memory and disk use of this host."""
    cpus = os.cpu_count() or 1
    try:
        load1, load5, load15 = os.getloadavg()
    except OSError:
        load1 = load5 = load15 = 0.0
    metrics: dict[str, Any] = {
        "load_1m": round(load1, 2), "load_5m": round(load5, 2), "load_15m": round(load15, 2),
        "cpu_count": cpus, "load_per_cpu": round(load1 / cpus, 3), "measured_at": time.time(),
    }
    memory = _meminfo()
    if memory:
        total, available = memory
        metrics["memory_total_mb"] = round(total / 1024)
        metrics["memory_available_mb"] = round(available / 1024)
        metrics["memory_used_percent"] = round(100.0 * (total - available) / total, 1)
    try:
        st = os.statvfs(disk_path)
        total_bytes = st.f_blocks * st.f_frsize
        if total_bytes:
            used = total_bytes - st.f_bavail * st.f_frsize
            metrics["disk_used_percent"] = round(100.0 * used / total_bytes, 1)
    except OSError:
        pass
    return metrics


def health(urls: list[str] | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """{status, checks = [{name, status, detail}], ...}: status is the worst of the checks."""
    metrics = load_metrics()
    checks = [
        _graded("load", metrics["load_per_cpu"], LOAD_PER_CPU,
                f"load {metrics['load_1m']} on {metrics['cpu_count']} CPUs"),
    ]
    if "memory_used_percent" in metrics:
        checks.append(_graded("memory", metrics["memory_used_percent"], MEMORY_USED_PERCENT,
                              f"{metrics['memory_used_percent']}% of memory in use"))
    if "disk_used_percent" in metrics:
        checks.append(_graded("disk", metrics["disk_used_percent"], DISK_USED_PERCENT,
                              f"{metrics['disk_used_percent']}% of / in use"))
    for url in urls or []:
        checks.append(_http_check(url, timeout))
    status = max((c["status"] for c in checks), key=RANK.__getitem__)
    return {"status": status, "healthy": status == "healthy", "checks": checks,
            "metrics": metrics}


def _graded(name: str, value: float, limits: tuple[float, float], detail: str) -> dict[str, Any]:
    status = "healthy" if value < limits[0] else "degraded" if value < limits[1] else "unhealthy"
    return {"name": name, "status": status, "value": value, "detail": detail}


def _http_check(url: str, timeout: float) -> dict[str, Any]:
    """GET `url`: 2xx/3xx is healthy, anything else (or no answer) unhealthy."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise IntegrationError(f"monitoring.get_health: {url!r} is not an http(s) URL")
    import urllib.error
    import urllib.request

    started = time.monotonic()
    name = display_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http only)
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"name": name, "status": "unhealthy", "detail": f"no answer: {reason}",
                "latency_ms": round((time.monotonic() - started) * 1000, 1)}
    latency = round((time.monotonic() - started) * 1000, 1)
    status = "healthy" if 200 <= code < 400 else "unhealthy"
    return {"name": name, "status": status, "http_status": code, "latency_ms": latency,
            "detail": f"HTTP {code} in {latency} ms"}


def display_url(url: str) -> str:
    """scheme://host[:port]/path without credentials or query (they may hold secrets)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _meminfo() -> tuple[int, int] | None:
    """(MemTotal, MemAvailable) in kB, or None where /proc/meminfo is missing."""
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if values.get("MemTotal") and "MemAvailable" in values:
        return values["MemTotal"], values["MemAvailable"]
    return None
