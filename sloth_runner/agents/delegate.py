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
CODE_SUFFIXES = (".lua", ".sloth")
MAX_FILES, MAX_BYTES = 200, 4 * 1024 * 1024
CANCEL_GRACE_S = 5.0


def workflow_files(path: str) -> tuple[str, dict[str, str], int]:
    """(the entry's name relative to its folder, {relative path: text}, how many were left
    out): the workflow file and the sources beside it that import()/require() may load, Lua
    first, then data files, within MAX_FILES and MAX_BYTES. The walk stops at the limit (a
    workflow at the top of a big tree does not read all of it)."""
    folder = os.path.dirname(os.path.abspath(path))
    entry = os.path.relpath(os.path.abspath(path), folder)
    found: list[tuple[int, str]] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "node_modules")
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(root, name), folder)
            if rel != entry and name.endswith(SOURCE_SUFFIXES):
                found.append((0 if name.endswith(CODE_SUFFIXES) else 1, rel))
        if len(found) > 4 * MAX_FILES:
            break
    with open(os.path.abspath(path), encoding="utf-8") as fh:
        files = {entry: fh.read()}  # always, whatever the limits cut
    total = len(files[entry])
    found.sort(key=lambda kind_rel: kind_rel[0])  # stable: folder order within each kind
    for _, rel in found:
        if len(files) >= MAX_FILES:
            break
        try:
            with open(os.path.join(folder, rel), encoding="utf-8") as fh:
                text = fh.read(MAX_BYTES - total + 1)
        except (OSError, UnicodeDecodeError):
            continue
        if total + len(text) > MAX_BYTES:
            continue
        total += len(text)
        files[rel] = text
    return entry, files, len(found) + 1 - len(files)


class Controller:
    """What the delegated tasks of one run share: the files they ship (read once, on first use,
    as the run loaded them), the run's values and sandbox, the listener their agents' lines go
    to, and where the AI calls made on agents are recorded (the controller's history)."""

    def __init__(self, path: str, values: Any, run_id: str, listener: Callable[[], Any],
                 store: Callable[[], Any], grants: Any, services: Callable[[], Any]) -> None:
        import threading

        self.path, self.run_id = path, run_id
        self.values = plain(values)  # a YAML date travels as its text, as JSON can carry it
        self.folder = os.path.dirname(os.path.abspath(path))
        self.services = services  # the run's Lua services: where events from agents go
        # `run --sandbox` holds on the agent too: the grants travel with each attempt
        self.sandbox = sorted(grants.allowed) if grants.sandbox else None
        self.listener, self.store = listener, store
        self._files: tuple[str, str] | None = None  # (broker key, JSON)
        self._stored = False
        self._inbox: Any = None
        self._lock = threading.Lock()

    def files(self, client: Any) -> str:
        """The broker key of the run's files: read and stored once a run (not sent with each
        of 1,000 attempts), stored again after `files_gone`."""
        with self._lock:
            if self._files is None:
                import hashlib

                entry, files, left_out = workflow_files(self.path)
                if left_out:
                    self.listener().log(
                        "warn", f"{left_out} file(s) beside {entry} are not sent to agents "
                        f"(limits: {MAX_FILES} files, {MAX_BYTES // 1024 // 1024} MiB; Lua "
                        "files first): a delegated task that loads one will not find it",
                        None, None)
                blob = json.dumps({"entry": entry, "files": files}, sort_keys=True)
                key = protocol.files_key(hashlib.sha256(blob.encode()).hexdigest())
                self._files = (key, blob)
            key, blob = self._files
            if not self._stored:
                client.set(key, blob, ex=protocol.FILES_TTL_S)
                self._stored = True
            return key

    def files_gone(self) -> None:
        """An agent found no files under the key (expired, the broker restarted)."""
        with self._lock:
            self._stored = False

    def inbox(self, url: str) -> Any:
        """The run's one subscription for its agents' lines (agents/inbox.py), made again if
        the broker went away meanwhile."""
        from sloth_runner.agents.inbox import Inbox

        with self._lock:
            if self._inbox is None or self._inbox.error is not None:
                if self._inbox is not None:
                    self._inbox.close()
                self._inbox = Inbox(url)
            return self._inbox

    def close(self) -> None:
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None

    def forward_events(self, events: list[dict[str, Any]]) -> None:
        """`event.dispatch` calls made on an agent, to this run's hooks (recorded here)."""
        from sloth_runner.lua.events_module import port_of

        port = port_of(self.services()) if events else None
        if port is None or port.closed:
            return
        scrubber = lambda: self.services().scrubber  # noqa: E731
        for e in events:
            if isinstance(e, dict) and isinstance(e.get("type"), str):
                port.send(e["type"], e.get("data") or {}, e.get("workflow"), e.get("task"),
                          scrubber, e.get("at"))

    def record_ai_calls(self, calls: list[dict[str, Any]],
                        decisions: list[dict[str, Any]]) -> None:
        """The agent's AI calls and decisions, as this run's: `ai usage`, budgets and the
        dashboard count delegated work."""
        if not calls and not decisions:
            return
        from sloth_runner.store.ai_usage import AIUsageStore

        usage = AIUsageStore(self.store())
        for call in calls:
            if isinstance(call, dict) and call.get("provider") and call.get("operation"):
                usage.record({**call, "run_id": self.run_id})
        for decision in decisions:
            if isinstance(decision, dict):
                usage.record_decision({**decision, "run_id": self.run_id})


class Delegated:
    """An engine action: the task's attempt runs on `agent`, or (`agent` None: `run --executor
    celery`) on whichever pool agent takes it from the shared queue."""

    def __init__(self, agent: str | None, broker: Callable[[], str], controller: Controller,
                 phase: str = "command") -> None:
        self.agent, self.broker, self.controller = agent, broker, controller
        self.phase = phase  # the attempt, or a condition, end hook or heal action

    def __call__(self, ctx: TaskContext) -> Generator[Any, Any, Outcome]:
        result: Outcome = yield Blocking(lambda: self._remote(ctx))
        return result

    def _remote(self, ctx: TaskContext) -> Outcome:
        import redis

        from sloth_runner.agents.broker import mask

        url = self.broker()
        try:
            if self.agent is not None and "," in self.agent:  # Go's list of hosts: on each
                return self._on_each(ctx, url, self.agent.split(","))
            return self._send_and_wait(ctx, url, self.agent)
        except (redis.RedisError, OSError) as exc:  # a failure: the run exits 1
            return Outcome(False,
                           error=f"task '{ctx.task}': the broker {mask(url)} is unreachable "
                                 f"({exc.__class__.__name__}: {exc})")

    def _on_each(self, ctx: TaskContext, url: str, agents: list[str]) -> Outcome:
        """The task on every host of a list at once (Go's `delegate_to({"web-01", "web-02"})`):
        it succeeds if it succeeds on all; its outputs are each host's, by host."""
        import threading

        outcomes: dict[str, Outcome | BaseException] = {}

        def one(agent: str) -> None:
            sub = TaskContext(ctx.workflow, ctx.task, ctx.params, ctx.deps, workdir=ctx.workdir,
                              env=ctx.env, user=ctx.user)
            sub.attempt, sub.deadline, sub.cancel = ctx.attempt, ctx.deadline, ctx.cancel
            sub.result = ctx.result
            try:
                outcomes[agent] = self._send_and_wait(sub, url, agent)
            except BaseException as exc:  # noqa: BLE001 (a timeout: raised below, once)
                outcomes[agent] = exc
            ctx.usage.add(sub.usage.cpu_s, sub.usage.max_rss_kb)

        threads = [threading.Thread(target=one, args=(a,), daemon=True) for a in agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ctx.host = ",".join(agents)
        for value in outcomes.values():
            if isinstance(value, BaseException):
                raise value
        done = {a: o for a, o in outcomes.items() if isinstance(o, Outcome)}
        failed = [a for a in agents if not done[a].success]
        return Outcome(
            not failed,
            f"ran on {len(agents)} hosts" + (f", failed on {', '.join(failed)}" if failed
                                              else ""),
            {a: {"message": done[a].message, "outputs": done[a].outputs,
                 "success": done[a].success} for a in agents},
            "; ".join(f"{a}: {done[a].error}" for a in failed) or None,
            next((done[a].exit_code for a in failed if done[a].exit_code), None),
            errored=any(done[a].errored for a in failed))

    def _send_and_wait(self, ctx: TaskContext, url: str, target: str | None) -> Outcome:
        inbox = self.controller.inbox(url)
        known = inbox.agents()
        agent = resolve(target, known)
        refusal = self._refusal(ctx, known, target, agent)
        if refusal is not None:
            return refusal
        remaining = ctx.deadline - time.monotonic() if ctx.deadline is not None else None
        result = ctx.result
        payload = plain({
            "workflow": ctx.workflow, "task": ctx.task, "phase": self.phase,
            "params": _plain(ctx.params), "values": self.controller.values, "deps": ctx.deps,
            "attempt": ctx.attempt, "run": self.controller.run_id,
            "sandbox": self.controller.sandbox, "pool": agent is None,
            "timeout": max(0.1, remaining) if remaining is not None else None,
            "result": None if result is None else {  # for on_success / on_failure
                "status": result.status, "attempts": result.attempts,
                "duration_s": result.duration_s, "message": result.message,
                "outputs": result.outputs, "error": result.error}})
        for _ in range(2):  # again once if the agent found no files under the key
            payload["files"] = self.controller.files(inbox.client)
            payload["controller"] = inbox.controller_key
            reply = self._attempt(ctx, url, inbox, payload, agent)
            if not (isinstance(reply, dict) and reply.get("files_missing")):
                break
            self.controller.files_gone()
        if isinstance(reply, Outcome):
            return reply
        agent = ctx.host
        if not isinstance(reply, dict):
            return Outcome(False, errored=True,
                           error=f"agent {agent}: the attempt failed there: {reply}")
        ctx.usage.add(float(reply.get("cpu_s") or 0.0), int(reply.get("max_rss_kb") or 0))
        self.controller.record_ai_calls(reply.get("ai_calls") or [],
                                        reply.get("decisions") or [])
        self.controller.forward_events(reply.get("events") or [])
        if reply.get("timeout"):
            raise TaskTimeout()
        here = self._here(reply.get("folder"))
        return Outcome(bool(reply.get("success")), here(reply.get("message")) or "",
                       reply.get("outputs"), here(reply.get("error")), reply.get("exit_code"),
                       errored=bool(reply.get("errored")), trace=here(reply.get("trace")))

    def _here(self, folder: Any) -> Callable[[Any], Any]:
        """Text from the agent with its copy's folder replaced by the file's own (an error's
        `file:line` names the user's file, not a temporary path on another host)."""
        if not isinstance(folder, str) or not folder:
            return lambda text: text
        mine = self.controller.folder
        return lambda text: text.replace(folder, mine) if isinstance(text, str) else text

    def _attempt(self, ctx: TaskContext, url: str, inbox: Any, payload: dict[str, Any],
                 agent: str | None) -> Any:
        """Send the attempt and wait for its result (or an Outcome saying why there is none)."""
        from sloth_runner.agents.app import shared_app

        task_id, lines = inbox.open()
        client = inbox.client

        def cancel() -> None:  # at once, on the thread that cancels (Ctrl-C, the deadline)
            try:
                client.set(protocol.cancel_key(task_id), "1", ex=3600)
            except Exception:  # the broker is gone: the agent's deadline still holds
                pass

        # on_timeout runs after its attempt was cancelled: only a later cancel stops it
        watch = not ctx.cancel.cancelled
        unregister = ctx.cancel.on_cancel(cancel) if watch else (lambda: None)
        try:
            queue = protocol.queue(agent) if agent else protocol.POOL_QUEUE
            shared_app(url).send_task("sloth.attempt", args=[payload], task_id=task_id,
                                      queue=queue)
            ctx.host = agent  # a pool task's is known once an agent has taken it
            return self._wait(ctx, inbox, task_id, lines, watch)
        finally:
            unregister()
            inbox.done(task_id)

    def _refusal(self, ctx: TaskContext, known: dict[str, dict[str, Any]], target: str | None,
                 agent: str | None) -> Outcome | None:
        """Fail fast when nobody would take the attempt, naming the agents that are up."""
        alive = ", ".join(sorted(n for n, a in known.items() if a["status"] == "up"))
        if target is None:
            if not any(a["status"] == "up" and a.get("pool") for a in known.values()):
                return Outcome(False, errored=True,
                               error=f"task '{ctx.task}': --executor celery needs an agent "
                                     "started with --pool, and none is up (agents up: "
                                     f"{alive or 'none'})")
            return None
        record = known.get(agent) if agent else None
        if record is None or record.get("status") != "up":
            state = f" ({record['status']})" if record else ""
            return Outcome(False, errored=True,
                           error=f"task '{ctx.task}' is delegated to agent '{target}', "
                                 f"which is not up{state} (agents up: {alive or 'none'})")
        return None

    def _wait(self, ctx: TaskContext, inbox: Any, task_id: str, lines: Any,
              watch: bool) -> Any:
        """The attempt's result (relaying its lines meanwhile), or an Outcome saying why it
        ended without one: the agent lost or stopped, the broker gone, no confirmed stop."""
        import queue

        from sloth_runner.agents.inbox import BROKEN

        listener = self.controller.listener()
        next_check = time.monotonic() + protocol.HEARTBEAT_S
        cancelled_at: float | None = None
        while True:
            try:
                data = lines.get(timeout=0.2)
            except queue.Empty:
                data = None
            if data is BROKEN:
                raise inbox.error
            if data is not None:
                kind, value = self._relay(listener, ctx, data, ctx.host)
                if kind == "agent":
                    ctx.host = value
                elif kind == "result":
                    return value
                continue
            now = time.monotonic()
            if cancelled_at is None and ((watch and ctx.cancel.cancelled) or (
                    ctx.deadline is not None and now > ctx.deadline + 2.0)):
                inbox.client.set(protocol.cancel_key(task_id), "1", ex=3600)
                cancelled_at = now
            if cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_S:
                return Outcome(False, error=f"agent {ctx.host} did not confirm the stop")
            if now < next_check:
                continue
            next_check = now + protocol.HEARTBEAT_S
            stored = stored_result(inbox.client, task_id)  # the channel's copy was missed
            if stored is not None:
                return stored
            if ctx.host is None:
                continue
            current = inbox.agents().get(ctx.host)
            if current is not None and current.get("status") == "stopped":
                return Outcome(False, error=f"agent {ctx.host} stopped during the attempt "
                                            "(its attempts were killed)")
            if current is None or current.get("status") != "up":
                age = current.get("age_s") if current else "?"
                return Outcome(False, error=f"agent {ctx.host} lost: no heartbeat for "
                                            f"{age}s during the attempt")

    def _relay(self, listener: Any, ctx: TaskContext, data: bytes,
               agent: str | None) -> tuple[str | None, Any]:
        """Pass a line on. ("agent", name) when the line says who took the task, ("result",
        the attempt's result) when it is the last one."""
        try:
            doc = json.loads(data)
        except ValueError:
            return None, None
        if doc.get("level") == "agent":
            return "agent", str(doc.get("message") or "") or None
        if doc.get("level") == "result":
            return "result", doc.get("result")
        text = f"[{agent}] {doc.get('message', '')}"
        if doc.get("level") == "stream":
            listener.stream(ctx.workflow, ctx.task, text)
        else:
            listener.log(str(doc.get("level") or "info"), text, ctx.workflow, ctx.task)
        return None, None


def resolve(target: str | None, known: dict[str, dict[str, Any]]) -> str | None:
    """The agent `target` names: an agent's name, or, as Go also accepts, its address
    (`10.0.0.5:50051`, the port ignored) or host name, when exactly one agent that is up has
    it. None for the pool (`target` None) and for a target nobody answers to."""
    if target is None or target in known:
        return target
    host = target.rsplit(":", 1)[0] if ":" in target else target
    matches = [n for n, a in known.items()
               if a.get("status") == "up" and host in (a.get("address"), a.get("host"))]
    return matches[0] if len(matches) == 1 else None


def stored_result(client: Any, task_id: str) -> Any:
    """The result Celery stored for the attempt (the agent returns it too), or None."""
    raw = client.get(f"celery-task-meta-{task_id}")
    if raw is None:
        return None
    doc = json.loads(raw)
    if doc.get("status") == "SUCCESS":
        return doc.get("result")
    if doc.get("status") in ("FAILURE", "REVOKED"):
        return f"{doc.get('status')}: {doc.get('result')}"
    return None


def plain(value: Any) -> Any:
    """`value` as JSON carries it (dates as their text), so that every hop can encode it."""
    return json.loads(json.dumps(value, default=str))


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON can carry them (the task name and workflow are set on the agent)."""
    return {k: v for k, v in params.items() if k not in ("task_name", "workflow_name")}


def delegated_action(task: str, agent: str | None, where: str, controller: Controller,
                     phase: str = "command") -> Any:
    """A `Delegated` action, or, with no broker configured (or an agent chosen by a function),
    a Refused one: an error that says what to do, which no retry can help."""
    from sloth_runner.agents.broker import resolve
    from sloth_runner.engine.refused import Refused
    from sloth_runner.errors import ConfigError

    if phase == "artifacts":  # files that would have to cross hosts: not carried (yet)
        return Refused(f"{where}: task '{task}': :artifacts()/:consumes() are not carried to "
                       "or from agents; write them to shared storage (s3, a shared folder) "
                       "and pass their location in the task's outputs", errored=True)
    if agent is not None and agent.startswith("(a "):  # chosen by a function: not (yet)
        return Refused(f"{where}: task '{task}': :delegate_to() needs an agent's name",
                       errored=True)
    try:
        url = resolve(None)
    except ConfigError as exc:
        to = f"delegated to agent '{agent}'" if agent else \
            "sent to the agents' pool (--executor celery)"
        return Refused(f"{where}: task '{task}' is {to}, and {exc}", errored=True)
    return Delegated(agent, lambda: url, controller, phase)
