"""Delegated task attempts, in a process of their own on the agent:

    python -m sloth_runner.agents.attempt --serve

The agent keeps a few of these warm (agents/runners.py): each reads one attempt's payload per
line on stdin and writes its outcome as one line on its result pipe. The agent kills the
process's whole tree at an attempt's deadline or when the controller cancels it (a timeout
holds whatever the task's code does), then starts a fresh one.

For each attempt it writes the workflow's files into a temporary folder, loads the file as a run
would (with `on_agent`: nothing is delegated again, no worker processes), runs the task's
attempt (pre_hook, command, post_hook) with the dependencies' outputs it was sent, publishes its
log lines on the attempt's output channel as they come, and returns the outcome with the AI
calls it made (recorded in the controller's history, not here). A loaded file is kept for the
next attempts of the same controller run (same files, params, values and sandbox): a 200-task
run loads its file once per warm process, not 200 times. `run --sandbox` holds here too.

The process has the agent's environment, never the controller's: AI keys and configuration
are the agent's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

from sloth_runner.engine.events import Listener
from sloth_runner.store.ai_usage import AIUsageStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RESULT_PREFIX = "\x00sloth-result "
FOLDER_ENV = "SLOTH_ATTEMPT_FOLDER"  # set by the agent: this process's own temporary folder
KEEP_LOADED = 2  # files kept loaded per process (a controller run each)


class Publisher:
    """Log lines and streamed text to the controller, over Redis pub/sub, as JSON."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        self.channel: str | None = None

    def send(self, doc: dict[str, Any]) -> None:
        if self.channel is None:
            return
        try:
            self.client.publish(self.channel, json.dumps(doc))
        except Exception:  # a lost line is better than a lost attempt
            pass


class Forward(Listener):
    """What the loaded file logs or streams, to the channel of the attempt running now."""

    def __init__(self) -> None:
        self.publisher: Publisher | None = None

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        if self.publisher is not None:
            self.publisher.send({"level": level, "message": message})

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        if self.publisher is not None and text:
            self.publisher.send({"level": "stream", "message": text})


class CollectedUsage(AIUsageStore):
    """The AI call log of delegated work: each call goes back to the controller with the
    attempt's outcome and is recorded in its history (`ai usage`, `history`, budgets there),
    not in the agent's. The response cache and the rate-limit log stay the agent's."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.calls: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []

    def record(self, call: dict[str, Any]) -> None:
        self.calls.append(dict(call))

    def record_decision(self, decision: dict[str, Any]) -> None:
        self.decisions.append({**decision, "at": time.time()})


class CollectedEvents:
    """The agent's sink for `event.dispatch`: events go back with the outcome, to the
    controller's hooks (an agent runs no hooks of its own for delegated work)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def dispatch(self, kind: str, data: Any, workflow: str | None, task: str | None,
                 scrubber: Any, at: float | None = None) -> None:
        scrub = scrubber()
        from sloth_runner.engine.events import map_strings

        self.events.append({"type": kind, "workflow": workflow, "task": task,
                            "at": at or time.time(),
                            "data": map_strings(data, lambda t: str(scrub.scrub(t)[0]))})

    def take(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events


class Loaded:
    """One workflow file loaded for the attempts of one controller run."""

    def __init__(self, payload: dict[str, Any], shipped: dict[str, Any],
                 forward: Forward) -> None:
        from sloth_runner.running import Run

        # inside the folder the agent gives this process, removed with it (killed or not)
        self.folder = tempfile.mkdtemp(prefix="files-", dir=os.environ.get(FOLDER_ENV))
        for rel, text in shipped["files"].items():
            path = os.path.join(self.folder, rel)
            if os.path.commonpath([self.folder, os.path.abspath(path)]) != self.folder:
                raise RefusedFile(rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        self.run = Run(os.path.join(self.folder, shipped["entry"]),
                       params=payload.get("params") or {}, values=payload.get("values"),
                       listener=forward, on_agent=True, process_ends=True,
                       sandbox=payload.get("sandbox") is not None,
                       grants=tuple(payload.get("sandbox") or ()))
        self.usage: CollectedUsage | None = None

        def usage() -> Any:
            if self.usage is None:
                self.usage = CollectedUsage(self.run.store)
            return self.usage

        self.run.ai_usage = usage
        self.workflows = self.run.load()
        from sloth_runner.lua.events_module import port_of

        self.events = CollectedEvents()
        port = port_of(self.run.services)
        if port is not None:
            port.attach(self.events)

    def calls(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The AI calls and decisions made since the last time asked (one attempt's)."""
        if self.usage is None:
            return [], []
        if self.run._ai is not None:  # a call cut short still writes its row
            self.run._ai.wait_idle(2.0)
        calls, self.usage.calls = self.usage.calls, []
        decisions, self.usage.decisions = self.usage.decisions, []
        return calls, decisions

    def close(self) -> None:
        self.run.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class RefusedFile(Exception):
    def __init__(self, rel: str) -> None:
        super().__init__(f"refused a file outside the workflow's folder: {rel}")


class Attempts:
    """The attempts this process runs, one at a time, with the files it has loaded."""

    def __init__(self) -> None:
        self.loaded: dict[str, Loaded] = {}  # oldest first
        self.forward = Forward()
        self.publishers: dict[str, Publisher] = {}

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        from sloth_runner.errors import SlothError, user_message

        started = time.monotonic()
        url = payload.get("broker")
        if url and payload.get("channel"):
            publisher = self.publishers.get(url) or self.publishers.setdefault(url, Publisher(url))
            publisher.channel = payload["channel"]
            self.forward.publisher = publisher
        else:
            self.forward.publisher = None
        try:
            loaded = self._loaded(payload)
            if loaded is None:  # the controller stores them again and resends
                return {"files_missing": True}
        except (SlothError, RefusedFile) as exc:
            return {"success": False, "errored": True, "error": user_message(exc)
                    if isinstance(exc, SlothError) else str(exc)}
        try:
            result = attempt(loaded, payload)
        finally:
            self.forward.publisher = None
        result["ai_calls"], result["decisions"] = loaded.calls()
        result["events"] = loaded.events.take()
        result["folder"] = loaded.folder  # the controller names its own file instead
        result.setdefault("duration_s", round(time.monotonic() - started, 6))
        return result

    def _loaded(self, payload: dict[str, Any]) -> Loaded | None:
        """The file loaded for this controller run (None: its files are not in the broker)."""
        key = hashlib.sha256(json.dumps(
            [payload.get("run"), payload["files"], payload.get("params"),
             payload.get("values"), payload.get("sandbox")], sort_keys=True,
            default=str).encode()).hexdigest()
        found = self.loaded.pop(key, None)
        if found is None:
            publisher = self.forward.publisher
            raw = publisher.client.get(payload["files"]) if publisher is not None else None
            if raw is None:
                return None
            while len(self.loaded) >= KEEP_LOADED:
                self.loaded.pop(next(iter(self.loaded))).close()
            found = Loaded(payload, json.loads(raw), self.forward)
            import signal

            signal.signal(signal.SIGTERM, _stop)  # a run's own handler would only interrupt
        self.loaded[key] = found  # the most recent last
        return found

    def close(self) -> None:
        for loaded in self.loaded.values():
            loaded.close()
        self.loaded.clear()


def attempt(loaded: Loaded, payload: dict[str, Any]) -> dict[str, Any]:
    """The task's attempt (pre_hook, command, post_hook), or another of its phases, with the
    outputs it was sent."""
    from sloth_runner.engine.lifecycle import run_now
    from sloth_runner.engine.model import TaskContext, TaskTimeout

    task = next((t for wf in loaded.workflows if wf.name == payload["workflow"]
                 for t in wf.tasks if t.name == payload["task"]), None)
    if task is None:
        return {"success": False, "errored": True,
                "error": f"no task '{payload['task']}' in workflow '{payload['workflow']}' "
                         "on the agent (was the file changed?)"}
    ctx = TaskContext(payload["workflow"], task.name, loaded.run.params,
                      payload.get("deps") or {}, workdir=task.workdir, env=task.env,
                      user=task.user)
    ctx.attempt = int(payload.get("attempt") or 1)
    timeout = payload.get("timeout")
    ctx.deadline = time.monotonic() + float(timeout) if timeout else None
    phase = payload.get("phase") or "command"
    action = phase_action(task, phase)
    if action is None:
        return {"success": False, "errored": True,
                "error": f"task '{task.name}' has no {phase} on the agent (was the file changed?)"}
    if payload.get("result"):  # on_success / on_failure see how the task ended
        from sloth_runner.engine.model import TaskResult

        ctx.result = TaskResult(task.name, **payload["result"])
    try:
        outcome = run_now(action, ctx)
    except TaskTimeout:
        return {"timeout": True, "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb}
    return {"success": outcome.success, "message": outcome.message, "outputs": outcome.outputs,
            "error": outcome.error, "exit_code": outcome.exit_code, "errored": outcome.errored,
            "trace": outcome.trace, "cpu_s": ctx.usage.cpu_s, "max_rss_kb": ctx.usage.max_rss_kb}


def phase_action(task: Any, phase: str) -> Any:
    """What `phase` of the task runs: its attempt (pre_hook, command, post_hook), a condition
    (run_if, abort_if), an end hook (on_success, on_failure, on_timeout) or a heal action."""
    from sloth_runner.engine.lifecycle import _attempt

    if phase == "command":
        return lambda c: _attempt(task, c)
    if phase.startswith("heal:"):
        heal = getattr(task, "heal", None)
        chosen = heal.actions.get(phase[5:]) if heal is not None else None
        return chosen.action if chosen is not None else None
    if phase in ("run_if", "abort_if", "on_success", "on_failure", "on_timeout"):
        return getattr(task, phase, None)
    return None


def _stop(signum: int, frame: object) -> None:
    """SIGTERM here means the agent is gone or stopping: kill this process's whole tree (its
    commands run in process groups of their own) and end."""
    from sloth_runner.services import proctree

    proctree.kill_tree(os.getpid(), include_root=False)
    os._exit(143)


def _die_with_the_agent() -> None:
    """If the agent is killed (kill -9 included), this process and what it started go too:
    the kernel sends SIGTERM when the thread that started it dies (Linux's PR_SET_PDEATHSIG;
    the agent starts these from one long-lived thread)."""
    import signal

    from sloth_runner.services import proctree

    signal.signal(signal.SIGTERM, _stop)
    try:
        proctree.die_with_parent(signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the agent's own kill still holds
        return
    if os.getppid() == 1:  # the agent died before the line above: nobody waits for us
        _stop(signal.SIGTERM, None)


def serve() -> None:
    """Attempts from stdin, one JSON line each; outcomes on the result pipe (what was stdout:
    anything the attempt's code prints goes to stderr instead, never into a result)."""
    _die_with_the_agent()
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import sloth_runner.engine.lifecycle  # noqa: F401  (warm: paid before the first attempt)
    import sloth_runner.running  # noqa: F401

    attempts = Attempts()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                result = attempts.run(json.loads(line))
            except Exception as exc:  # reported, and the process stays usable
                result = {"success": False, "errored": True,
                          "error": f"the attempt failed on the agent: "
                                   f"{exc.__class__.__name__}: {exc}"}
            results.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
            results.flush()
    finally:
        attempts.close()


if __name__ == "__main__":
    serve()
