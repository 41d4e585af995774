"""One delegated task attempt, in a process of its own on the agent:

    python -m sloth_runner.agents.attempt  < payload.json

The agent's Celery task starts it in a new process group and kills the group at the attempt's
deadline (a timeout holds whatever the task's code does). It writes the workflow's files into
a temporary folder, loads the file as a run would (with `on_agent`: nothing is delegated again,
no worker processes), runs the task's attempt (pre_hook, command, post_hook) with the
dependencies' outputs it was sent, publishes its log lines on the task's output channel as they
come, and prints its outcome as one JSON line on stdout.

The process has the agent's environment, never the controller's: AI keys and configuration
are the agent's own.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RESULT_PREFIX = "\x00sloth-result "


class Publisher:
    """Log lines and streamed text to the controller, over Redis pub/sub, as JSON."""

    def __init__(self, url: str, channel: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        self.channel = channel

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        self._send({"level": level, "message": message})

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        if text:
            self._send({"level": "stream", "message": text})

    def _send(self, doc: dict[str, Any]) -> None:
        try:
            self.client.publish(self.channel, json.dumps(doc))
        except Exception:  # a lost line is better than a lost attempt
            pass


def run_attempt(payload: dict[str, Any]) -> dict[str, Any]:
    from sloth_runner.engine.events import Listener
    from sloth_runner.engine.lifecycle import _attempt, run_now
    from sloth_runner.engine.model import TaskContext, TaskTimeout
    from sloth_runner.errors import SlothError, user_message
    from sloth_runner.running import Run

    folder = tempfile.mkdtemp(prefix="sloth-attempt-")
    for rel, text in payload["files"].items():
        path = os.path.join(folder, rel)
        if os.path.commonpath([folder, os.path.abspath(path)]) != folder:
            return {"success": False, "errored": True, "error": f"refused a file outside the "
                    f"workflow's folder: {rel}"}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    publisher = Publisher(payload["broker"], payload["channel"]) if payload.get("channel") \
        else None

    class Forward(Listener):
        def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
            if publisher is not None:
                publisher.log(level, message, workflow, task)

        def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
            if publisher is not None:
                publisher.stream(workflow, task, text)

    started = time.monotonic()
    with Run(os.path.join(folder, payload["entry"]), params=payload.get("params") or {},
             values=payload.get("values"), listener=Forward(), on_agent=True,
             process_ends=True) as run:
        try:
            workflows = run.load()
        except SlothError as exc:
            return {"success": False, "errored": True, "error": user_message(exc)}
        import signal

        signal.signal(signal.SIGTERM, _stop)  # the run's own handler would only interrupt
        task = next((t for wf in workflows if wf.name == payload["workflow"]
                     for t in wf.tasks if t.name == payload["task"]), None)
        if task is None:
            return {"success": False, "errored": True,
                    "error": f"no task '{payload['task']}' in workflow '{payload['workflow']}' "
                             "on the agent (was the file changed?)"}
        ctx = TaskContext(payload["workflow"], task.name, run.params, payload.get("deps") or {},
                          workdir=task.workdir, env=task.env, user=task.user)
        ctx.attempt = int(payload.get("attempt") or 1)
        timeout = payload.get("timeout")
        ctx.deadline = time.monotonic() + float(timeout) if timeout else None
        try:
            outcome = run_now(lambda c: _attempt(task, c), ctx)
        except TaskTimeout:
            return {"timeout": True, "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb}
        doc: dict[str, Any] = {"success": outcome.success, "message": outcome.message,
                               "outputs": outcome.outputs, "error": outcome.error,
                               "exit_code": outcome.exit_code, "errored": outcome.errored,
                               "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb,
                               "duration_s": round(time.monotonic() - started, 6)}
        return doc


def _stop(signum: int, frame: object) -> None:
    """SIGTERM here means the agent is gone or stopping: kill this attempt's whole tree (its
    commands run in process groups of their own) and end."""
    from sloth_runner.services import proctree

    proctree.kill_tree(os.getpid(), include_root=False)
    os._exit(143)


def _die_with_the_agent() -> None:
    """If the agent is killed (kill -9 included), this attempt and what it started go too:
    the kernel sends SIGTERM when the parent dies (Linux's PR_SET_PDEATHSIG)."""
    import signal

    from sloth_runner.services import proctree

    signal.signal(signal.SIGTERM, _stop)
    try:
        proctree.die_with_parent(signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the agent's own kill still holds
        return
    if os.getppid() == 1:  # the agent died before the line above: nobody waits for us
        _stop(signal.SIGTERM, None)


def main() -> None:
    _die_with_the_agent()
    payload = json.loads(sys.stdin.read())
    result = run_attempt(payload)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
