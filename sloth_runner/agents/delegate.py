"""The controller's side of a delegated task: an engine action that sends the attempt to an
agent's queue and waits for its result, relaying its log lines as they come.

Faults, each ending the attempt within a bounded time (docs/ARCHITECTURE.md, "Agents"):
- the agent is not up: an error at once, naming the agents that are (no waiting on a queue
  nobody consumes);
- the agent stops sending heartbeats mid-attempt (killed, network cut): failed, "agent NAME
  lost", LOST_AFTER_S after its last heartbeat; the task's own retries then apply;
- the broker is unreachable: an error naming the broker (its password masked);
- Ctrl-C or the deadline: the controller sets the attempt's cancel key, the agent kills the
  attempt's process group.
"""

from __future__ import annotations

import json
import os
import time

from sloth_runner.agents import protocol
from sloth_runner.engine.model import Blocking, Outcome, TaskContext, TaskTimeout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

SOURCE_SUFFIXES = (".lua", ".sloth", ".yaml", ".yml", ".json")
MAX_FILES, MAX_BYTES = 200, 4 * 1024 * 1024
CANCEL_GRACE_S = 5.0


def workflow_files(path: str) -> tuple[str, dict[str, str]]:
    """(the entry's name relative to its folder, {relative path: text}): the workflow file and
    the sources beside it that import()/require() may load, within limits."""
    folder = os.path.dirname(os.path.abspath(path))
    entry = os.path.relpath(os.path.abspath(path), folder)
    files: dict[str, str] = {}
    total = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder)
            if rel != entry and not name.endswith(SOURCE_SUFFIXES):
                continue
            try:
                with open(full, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
            total += len(text)
            if len(files) >= MAX_FILES or total > MAX_BYTES:
                break
            files[rel] = text
    with open(os.path.abspath(path), encoding="utf-8") as fh:
        files[entry] = fh.read()  # always, whatever the limits cut
    return entry, files


class Delegated:
    """An engine action: the task's attempt runs on `agent`, or (`agent` None: `run --executor
    celery`) on whichever pool agent takes it from the shared queue."""

    def __init__(self, agent: str | None, broker: Callable[[], str], path: str, values: Any,
                 listener: Callable[[], Any]) -> None:
        self.agent, self.broker, self.path, self.values = agent, broker, path, values
        self.listener = listener

    def __call__(self, ctx: TaskContext) -> Generator[Any, Any, Outcome]:
        result: Outcome = yield Blocking(lambda: self._remote(ctx))
        return result

    def _remote(self, ctx: TaskContext) -> Outcome:
        import redis

        from sloth_runner.agents.broker import mask

        url = self.broker()
        try:
            return self._send_and_wait(ctx, url)
        except (redis.RedisError, OSError) as exc:  # a failure: the run exits 1
            return Outcome(False,
                           error=f"task '{ctx.task}': the broker {mask(url)} is unreachable "
                                 f"({exc.__class__.__name__}: {exc})")

    def _send_and_wait(self, ctx: TaskContext, url: str) -> Outcome:
        import redis

        from sloth_runner.agents.app import shared_app
        from sloth_runner.agents.registry import agents

        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        known = {a["name"]: a for a in agents(client)}
        alive = ", ".join(sorted(n for n, a in known.items() if a["status"] == "up"))
        if self.agent is None:
            if not any(a["status"] == "up" and a.get("pool") for a in known.values()):
                return Outcome(False, errored=True,
                               error=f"task '{ctx.task}': --executor celery needs an agent "
                                     "started with --pool, and none is up (agents up: "
                                     f"{alive or 'none'})")
        else:
            record = known.get(self.agent)
            if record is None or record.get("status") != "up":
                state = f" ({record['status']})" if record else ""
                return Outcome(False, errored=True,
                               error=f"task '{ctx.task}' is delegated to agent '{self.agent}', "
                                     f"which is not up{state} (agents up: {alive or 'none'})")
        entry, files = workflow_files(self.path)
        remaining = ctx.deadline - time.monotonic() if ctx.deadline is not None else None
        payload = {"files": files, "entry": entry, "workflow": ctx.workflow, "task": ctx.task,
                   "params": _plain(ctx.params), "values": self.values, "deps": ctx.deps,
                   "attempt": ctx.attempt,
                   "timeout": max(0.1, remaining) if remaining is not None else None}
        task_id = f"{os.urandom(8).hex()}"
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(protocol.output_channel(task_id))
        app = shared_app(url)
        queue = protocol.queue(self.agent) if self.agent else protocol.POOL_QUEUE
        async_result = app.send_task("sloth.attempt", args=[payload], task_id=task_id,
                                     queue=queue)
        agent = self.agent  # a pool task's is known once an agent has taken it
        ctx.host = agent

        def cancel() -> None:  # at once, on the thread that cancels (Ctrl-C, the deadline)
            try:
                client.set(protocol.cancel_key(task_id), "1", ex=3600)
            except Exception:  # the broker is gone: the agent's deadline still holds
                pass

        unregister = ctx.cancel.on_cancel(cancel)
        listener = self.listener()
        next_check = time.monotonic() + protocol.HEARTBEAT_S
        cancelled_at: float | None = None
        try:
            while True:
                message = pubsub.get_message(timeout=0.2)
                if message is not None:
                    taken = self._relay(listener, ctx, message["data"], agent)
                    if taken:
                        agent = ctx.host = taken
                    continue
                if async_result.ready():
                    break
                now = time.monotonic()
                if cancelled_at is None and (ctx.cancel.cancelled or (
                        ctx.deadline is not None and now > ctx.deadline + 2.0)):
                    client.set(protocol.cancel_key(task_id), "1", ex=3600)
                    cancelled_at = now
                if cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_S:
                    return Outcome(False, error=f"agent {agent} did not confirm the stop")
                if now >= next_check and agent is not None:
                    next_check = now + protocol.HEARTBEAT_S
                    current = {a["name"]: a for a in agents(client)}.get(agent)
                    if current is not None and current.get("status") == "stopped":
                        return Outcome(False, error=f"agent {agent} stopped during the "
                                                    "attempt (its attempts were killed)")
                    if current is None or current.get("status") != "up":
                        age = current.get("age_s") if current else "?"
                        return Outcome(False, error=f"agent {agent} lost: no heartbeat "
                                                    f"for {age}s during the attempt")
        finally:
            unregister()
            pubsub.close()
        reply = async_result.get(timeout=10, propagate=False)
        if not isinstance(reply, dict):
            return Outcome(False, errored=True,
                           error=f"agent {agent}: the attempt failed there: {reply}")
        ctx.usage.add(float(reply.get("cpu_s") or 0.0), int(reply.get("max_rss_kb") or 0))
        if reply.get("timeout"):
            raise TaskTimeout()
        return Outcome(bool(reply.get("success")), reply.get("message") or "",
                       reply.get("outputs"), reply.get("error"), reply.get("exit_code"),
                       errored=bool(reply.get("errored")))

    def _relay(self, listener: Any, ctx: TaskContext, data: bytes,
               agent: str | None) -> str | None:
        """Pass a line on; returns the agent's name when the line says who took the task."""
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if doc.get("level") == "agent":
            return str(doc.get("message") or "") or None
        text = f"[{agent}] {doc.get('message', '')}"
        if doc.get("level") == "stream":
            listener.stream(ctx.workflow, ctx.task, text)
        else:
            listener.log(str(doc.get("level") or "info"), text, ctx.workflow, ctx.task)
        return None


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON can carry them (the task name and workflow are set on the agent)."""
    return {k: v for k, v in params.items() if k not in ("task_name", "workflow_name")}


def delegated_action(task: str, agent: str | None, where: str, path: str, values: Any,
                     listener: Callable[[], Any]) -> Any:
    """A `Delegated` action, or, with no broker configured (or an agent chosen by a function),
    a Refused one: an error that says what to do, which no retry can help."""
    from sloth_runner.agents.broker import resolve
    from sloth_runner.engine.refused import Refused
    from sloth_runner.errors import ConfigError

    if agent is not None and agent.startswith("(a "):  # chosen by a function: not (yet)
        return Refused(f"{where}: task '{task}': :delegate_to() needs an agent's name",
                       errored=True)
    try:
        url = resolve(None)
    except ConfigError as exc:
        to = f"delegated to agent '{agent}'" if agent else \
            "sent to the agents' pool (--executor celery)"
        return Refused(f"{where}: task '{task}' is {to}, and {exc}", errored=True)
    return Delegated(agent, lambda: url, path, values, listener)
