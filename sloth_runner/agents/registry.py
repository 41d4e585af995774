"""Which agents exist and whether they are up: each agent's heartbeat record in Redis
(see protocol.py for the keys and timings)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from sloth_runner.agents import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Heartbeat:
    """The agent side: writes its record every HEARTBEAT_S until stopped."""

    def __init__(self, client: Any, name: str, slots: int, worker: str, pool: bool) -> None:
        from sloth_runner import __version__

        self.client, self.name = client, name
        self.base = {"name": name, "host": socket.gethostname(), "address": _address(),
                     "version": __version__, "slots": slots, "worker": worker, "pool": pool,
                     "pid": os.getpid(), "started_at": time.time()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sloth-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self, status: str = "up") -> None:
        busy = self.client.get(protocol.busy_key(self.name))
        record = {**self.base, "status": status, "heartbeat": time.time(),
                  "busy": int(busy or 0), "load": round(os.getloadavg()[0], 2)}
        self.client.set(protocol.record_key(self.name), json.dumps(record),
                        ex=protocol.RECORD_TTL_S)

    def _loop(self) -> None:
        while not self._stop.wait(protocol.HEARTBEAT_S):
            try:
                self.beat()
            except Exception:  # the broker is away for a moment: the next beat will say
                pass

    def stop(self) -> None:
        self._stop.set()
        try:
            self.beat("stopped")
            self.client.delete(protocol.busy_key(self.name))
        except Exception:
            pass


def _address() -> str:
    """The address other hosts would reach this one at (best effort, no traffic sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: a route lookup only
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def agents(client: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Every known agent's record, with `status` up, lost or stopped, by name."""
    now = time.time() if now is None else now
    out = []
    for key in client.scan_iter(match=protocol.AGENT_PREFIX + "*"):
        name = key.decode() if isinstance(key, bytes) else key
        if name.endswith(":busy"):
            continue
        raw = client.get(name)
        if raw is None:
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        age = now - float(record.get("heartbeat") or 0)
        record["age_s"] = round(age, 1)
        if record.get("status") != "stopped" and age > protocol.LOST_AFTER_S:
            record["status"] = "lost"
        out.append(record)
    return sorted(out, key=lambda r: r["name"])


def up(client: Any) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in agents(client) if r.get("status") == "up"}
