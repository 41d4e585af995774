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
import threading

from sloth_runner.agents import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUTPUT_LINE_LIMIT = 64 * 1024


_running: set[int] = set()  # pids of the attempt processes this agent runs now
_apps: dict[str, Any] = {}


def thread_pool() -> Any:
    """Celery's threads pool, with the one thing it lacks: on a cold shutdown (a second
    Ctrl-C) Celery asks the pool to terminate each running job; here that kills each attempt's
    process tree (Celery's own pool raises NotImplementedError, a traceback)."""
    from celery.concurrency.thread import TaskPool

    class AttemptPool(TaskPool):  # type: ignore[misc]
        def terminate_job(self, pid: Any, signal: Any = None) -> None:
            from sloth_runner.services import proctree

            for attempt in list(_running):
                proctree.kill_tree(attempt)

    return AttemptPool
_apps_lock = threading.Lock()


def shared_app(broker_url: str) -> Any:
    """One app per broker for the whole process: delegated attempts send from several threads
    at once, and Celery's first import is not safe to race (its lazy module)."""
    with _apps_lock:
        app = _apps.get(broker_url)
        if app is None:
            app = _apps[broker_url] = make_app(broker_url)
        return app


def make_app(broker_url: str) -> Any:
    from celery import Celery

    app = Celery("sloth_runner", broker=broker_url, backend=broker_url)
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
    import signal
    import sys
    import time

    from sloth_runner.agents.attempt import RESULT_PREFIX

    client = app.backend.client
    name = os.environ.get("SLOTH_AGENT_NAME") or ""
    client.incr(protocol.busy_key(name))
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        channel = protocol.output_channel(task_id)
        # who took it: a task sent to the pool queue learns its agent here
        client.publish(channel, json.dumps({"level": "agent", "message": name}))
        payload = {**payload, "broker": broker_url, "channel": channel}
        proc = subprocess.Popen([sys.executable, "-m", "sloth_runner.agents.attempt"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        _running.add(proc.pid)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(payload).encode())
        proc.stdin.close()
        timeout = payload.get("timeout")
        deadline = started + float(timeout) + 1.0 if timeout else None
        why = None
        while True:
            try:
                proc.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if deadline is not None and time.monotonic() > deadline:
                why = "timeout"
            elif client.exists(protocol.cancel_key(task_id)):
                why = "cancelled"
            if why:
                # the whole tree: the attempt's commands run in process groups of their own
                from sloth_runner.services import proctree

                proctree.kill_tree(proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
                break
        out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        base = {"agent": name, "host": os.uname().nodename,
                "duration_s": round(time.monotonic() - started, 6)}
        if why == "timeout":
            return {**base, "timeout": True}
        if why == "cancelled":
            return {**base, "success": False, "error": "cancelled by the controller"}
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_PREFIX):
                return {**base, **json.loads(line[len(RESULT_PREFIX):])}
        tail = (err.strip().splitlines() or ["(no output)"])[-1]
        return {**base, "success": False, "errored": True,
                "error": f"the attempt's process on agent {name} ended with {proc.returncode} "
                         f"without a result: {tail}"}
    finally:
        if proc is not None:
            _running.discard(proc.pid)
        client.decr(protocol.busy_key(name))


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
