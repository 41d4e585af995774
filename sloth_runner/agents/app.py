"""The Celery application agents and controllers share, and the tasks agents run.

Settings chosen on purpose (docs/ARCHITECTURE.md, "Agents"):
- JSON only (`accept_content=["json"]`): a pickle message would be code the broker's writer
  runs on the agent.
- Acknowledged when received (`task_acks_late=False`, `task_reject_on_worker_lost=False`): if
  an agent dies half-way through, the broker must not hand the half-done task to another agent
  on its own; the controller sees the agent lost and applies the task's own retry policy.
- One message at a time per slot (`worker_prefetch_multiplier=1`): a busy agent does not hoard
  work another could start.
- The `threads` pool: a slot only waits for the process that runs the attempt, which is where
  timeouts and kills apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from sloth_runner.agents import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUTPUT_LINE_LIMIT = 64 * 1024


_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()
_processes: Any = None  # the agent's warm attempt processes (agents/runners.py)


def attempt_processes(warm: int = 1) -> Any:
    """The agent's warm attempt processes, made on first use (`agent start` makes them with
    one per slot before the first message arrives)."""
    global _processes
    with _apps_lock:
        if _processes is None:
            from sloth_runner.agents.runners import AttemptProcesses

            _processes = AttemptProcesses(warm)
        return _processes


def thread_pool() -> Any:
    """Celery's threads pool, with what it lacks: on a cold shutdown (a second Ctrl-C) Celery
    asks the pool to terminate each running job; here that kills each attempt's process tree
    (Celery's own pool raises NotImplementedError, a traceback). A warm one says what it waits
    for."""
    from celery.concurrency.thread import TaskPool

    class AttemptPool(TaskPool):  # type: ignore[misc]
        def terminate_job(self, pid: Any, signal: Any = None) -> None:
            if _processes is not None:
                _processes.kill_running()

        def on_stop(self) -> None:
            """A warm shutdown (Ctrl-C, `agent stop`) waits for the running attempts: say so."""
            running = len(_processes.running) if _processes is not None else 0
            if running:
                print(f"agent {os.environ.get('SLOTH_AGENT_NAME')}: stopping once its {running} "
                      "running attempt(s) end; Ctrl-C again kills them (their tasks fail on "
                      "the controller)", file=sys.__stdout__, flush=True)
            super().on_stop()

    return AttemptPool


def shared_app(broker_url: str) -> Any:
    """One app per broker for the whole process: delegated attempts send from several threads
    at once, and Celery's first import is not safe to race (its lazy module)."""
    with _apps_lock:
        app = _apps.get(broker_url)
        if app is None:
            # results come back on the attempt's channel: no result subscription per task
            app = _apps[broker_url] = make_app(broker_url, results=False)
        return app


def make_app(broker_url: str, results: bool = True) -> Any:
    from celery import Celery

    app = Celery("sloth_runner", broker=broker_url, backend=broker_url if results else None)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_accept_content=["json"], task_acks_late=False,
        task_reject_on_worker_lost=False, worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
        task_default_queue=protocol.POOL_QUEUE, result_expires=3600,
        broker_connection_timeout=5, redis_socket_timeout=10,
        redis_socket_connect_timeout=5, worker_cancel_long_running_tasks_on_connection_loss=True,
    )

    @app.task(name="sloth.ping", bind=True)
    def ping(self: Any) -> dict[str, Any]:
        return {"agent": os.environ.get("SLOTH_AGENT_NAME"), "pid": os.getpid()}

    @app.task(name="sloth.exec", bind=True)
    def run_command(self: Any, command: str, timeout: float | None = None) -> dict[str, Any]:
        """`agent exec NAME "cmd"`: a shell command on this agent, its output published line
        by line as it comes; killed with its process group at `timeout`."""
        return exec_streamed(app, self.request.id, command, timeout)

    @app.task(name="sloth.attempt", bind=True)
    def attempt(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """One delegated task attempt (agents/attempt.py), in its own process group: killed
        at the deadline, or when the controller cancels it (Ctrl-C)."""
        return run_attempt_process(app, self.request.id, payload, broker_url)

    return app


def run_attempt_process(app: Any, task_id: str, payload: dict[str, Any],
                        broker_url: str) -> dict[str, Any]:
    """Hand the attempt to a warm process and wait for its result, killing the process's tree
    at the deadline, when the controller sets the attempt's cancel key, or when the
    controller's key expires (it was killed: CONTROLLER_TTL_S). The result goes back
    on the attempt's output channel (the controller is waiting there) and as the task's
    return value (Celery's result, for a controller that missed the channel)."""
    import time

    from sloth_runner.agents.runners import Ended

    client = app.backend.client
    name = os.environ.get("SLOTH_AGENT_NAME") or ""
    started = time.monotonic()
    channel = protocol.output_channel(task_id)
    base = {"agent": name, "host": os.uname().nodename}
    processes = attempt_processes()
    proc: Any = None
    refusal = _claim_slot(client, name, task_id, payload, channel)
    if refusal is not None:
        client.decr(protocol.busy_key(name))
        return {**base, "success": False, "error": refusal}
    result: dict[str, Any] = {**base, "success": False, "errored": True,
                              "error": f"agent {name} failed to run the attempt (see its log)"}
    try:
        proc = processes.take()
        proc.send({**payload, "broker": broker_url, "channel": channel})
        timeout = payload.get("timeout")
        deadline = started + float(timeout) + 1.0 if timeout else None
        got = None
        controller_checked = time.monotonic()
        while got is None:
            got = proc.result(0.2)
            if got is not None:
                processes.give_back(proc)
                break
            now = time.monotonic()
            if deadline is not None and now > deadline:
                got = {"timeout": True}
            elif client.exists(protocol.cancel_key(task_id)):
                got = {"success": False, "error": "cancelled by the controller"}
            elif payload.get("controller") and now - controller_checked > protocol.HEARTBEAT_S:
                controller_checked = now
                if not client.exists(payload["controller"]):  # killed: nobody waits for it
                    got = {"success": False, "error": "stopped: its controller is gone"}
            if got is not None:
                processes.discard(proc)
        proc = None
        result = {**got, **base}
    except Ended as exc:
        processes.discard(proc)
        proc = None
        result = {**base, "success": False, "errored": True,
                  "error": f"the attempt's process on agent {name} ended without a result: {exc}"}
    except Exception as exc:  # a bug of ours: said on the controller, not only in our log
        result = {**base, "success": False, "errored": True,
                  "error": f"agent {name} could not run the attempt: "
                           f"{exc.__class__.__name__}: {exc}"}
    finally:
        if proc is not None:  # an exception of our own: the process's state is unknown
            processes.discard(proc)
        result.setdefault("duration_s", round(time.monotonic() - started, 6))
        try:
            client.pipeline(transaction=False).decr(protocol.busy_key(name)).publish(
                channel, json.dumps({"level": "result", "result": result})).execute()
        except Exception:  # the controller still has Celery's copy
            pass
    return result


def _claim_slot(client: Any, name: str, task_id: str, payload: dict[str, Any],
                channel: str) -> str | None:
    """In one round trip: count this slot busy, say who took the attempt (a pool task learns
    its agent here), and check it should still start: not cancelled while it waited in the
    queue (Ctrl-C), its controller still alive (not killed with tasks queued)."""
    controller = payload.get("controller")
    checks = client.pipeline(transaction=False).incr(protocol.busy_key(name))
    if payload.get("pool"):
        checks.publish(channel, json.dumps({"level": "agent", "message": name}))
    checks.exists(protocol.cancel_key(task_id))
    checks.exists(controller or protocol.busy_key(name))  # (no controller key: always there)
    *_, cancelled, alive = checks.execute()
    if cancelled:
        return "not started: cancelled by the controller while it waited in the queue"
    if not alive:
        return "not started: its controller is gone (no sign of life for " \
            f"{protocol.CONTROLLER_TTL_S}s)"
    return None


def exec_streamed(app: Any, task_id: str, command: str, timeout: float | None) -> dict[str, Any]:
    import signal
    import time

    client = app.backend.client
    channel = protocol.output_channel(task_id)
    started = time.monotonic()
    proc = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw[:OUTPUT_LINE_LIMIT].decode("utf-8", "replace").rstrip("\n")
        client.publish(channel, line)
    code = proc.wait()
    if timer is not None:
        timer.cancel()
    client.publish(channel, "\x00end")
    return {"exit_code": code if code >= 0 else 128 - code, "timed_out": timed_out.is_set(),
            "duration_s": round(time.monotonic() - started, 3),
            "agent": os.environ.get("SLOTH_AGENT_NAME")}
