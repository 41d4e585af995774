"""The controller's one connection for everything its agents send back during a run.

A run with 1,000 delegated tasks in flight must not hold 1,000 Redis subscriptions, nor read
the agents' registry 1,000 times a heartbeat. So each run has one Inbox per broker: one
pattern subscription (`sloth:out:RUN-*`) whose lines a thread hands to the attempt they belong
to, and one view of the registry, read at most once a second, that every waiting attempt
checks its agent against. If the broker goes away, every waiting attempt learns it at once. The
same thread keeps the run's controller key alive, so agents skip the queued attempts of a
controller that was killed.
"""

from __future__ import annotations

import os
import queue
import threading
import time

from sloth_runner.agents import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REGISTRY_MAX_AGE_S = 1.0
BROKEN = object()  # put in every waiting attempt's queue when the broker goes away


class Inbox:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10,
                                           health_check_interval=30)
        self.prefix = os.urandom(6).hex()
        self.controller_key = protocol.controller_key(self.prefix)
        self.client.set(self.controller_key, "1", ex=protocol.CONTROLLER_TTL_S)
        self.error: BaseException | None = None
        self._waiting: dict[str, queue.SimpleQueue[Any]] = {}
        self._lock = threading.Lock()
        self._registry: dict[str, dict[str, Any]] = {}
        self._registry_at = 0.0
        self._registry_lock = threading.Lock()
        self._closed = threading.Event()
        self._pubsub = self.client.pubsub()
        self._pubsub.psubscribe(protocol.output_channel(self.prefix + "-*"))
        # confirmed before any attempt is sent: a line published earlier would be lost
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "psubscribe":
                break
        self._thread = threading.Thread(target=self._route, name="sloth-inbox", daemon=True)
        self._thread.start()

    def open(self) -> tuple[str, queue.SimpleQueue[Any]]:
        """A new attempt's id and the queue its lines will arrive on."""
        task_id = f"{self.prefix}-{os.urandom(6).hex()}"
        lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._lock:
            self._waiting[task_id] = lines
            if self.error is not None:
                lines.put(BROKEN)
        return task_id, lines

    def done(self, task_id: str) -> None:
        with self._lock:
            self._waiting.pop(task_id, None)

    def _route(self) -> None:
        skip = len(protocol.output_channel(""))
        beat_at = 0.0
        while not self._closed.is_set():
            try:
                if time.monotonic() >= beat_at:  # this controller is alive (see protocol.py)
                    self.client.set(self.controller_key, "1", ex=protocol.CONTROLLER_TTL_S)
                    beat_at = time.monotonic() + protocol.HEARTBEAT_S
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except Exception as exc:  # the broker went away: everyone waiting hears it now
                if not self._closed.is_set():  # (closing the connection ends the loop too)
                    self._broken(exc)
                return
            if message is None:
                continue
            channel = message["channel"]
            task_id = (channel.decode() if isinstance(channel, bytes) else channel)[skip:]
            with self._lock:
                lines = self._waiting.get(task_id)
            if lines is not None:
                lines.put(message["data"])

    def _broken(self, exc: BaseException) -> None:
        with self._lock:
            self.error = exc
            for lines in self._waiting.values():
                lines.put(BROKEN)

    def agents(self) -> dict[str, dict[str, Any]]:
        """The registry by name, at most REGISTRY_MAX_AGE_S old."""
        from sloth_runner.agents.registry import agents

        with self._registry_lock:
            if time.monotonic() - self._registry_at > REGISTRY_MAX_AGE_S:
                self._registry = {a["name"]: a for a in agents(self.client)}
                self._registry_at = time.monotonic()
            return self._registry

    def close(self) -> None:
        """At the run's end: not waiting for the thread (a daemon), which ends when its
        connection is closed under it."""
        self._closed.set()
        try:
            self.client.delete(self.controller_key)
            self._pubsub.close()
            self.client.close()
        except Exception:
            pass
