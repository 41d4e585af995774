"""Warm attempt processes on an agent (`python -m sloth_runner.agents.attempt --serve`).

Starting Python, importing the engine and loading the workflow file costs ~0.35 s of CPU; a
delegated no-op should cost about a Celery round trip. So an agent keeps one warm process per
slot, ready before the attempt arrives, and reuses it (with the file it has already loaded)
for the next attempt. An attempt cut at its deadline or cancelled by the controller kills its
process's whole tree, as before; a fresh one is started at once for the next attempt.

Every process is started from one long-lived thread: Linux's PR_SET_PDEATHSIG, which ends the
attempt processes when the agent dies (kill -9 included), fires when the *thread* that started
them ends, and Celery's pool threads come and go.
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_ATTEMPTS = 500  # a process is replaced after this many attempts (memory stays bounded)
FOLDER_PREFIX = "sloth-agent-"  # + the agent's pid: its processes' temporary folders


def remove_stale_folders() -> int:
    """At an agent's start: the temporary folders of agents that died without removing them
    (kill -9), recognised by their pid no longer running. How many were removed."""
    import shutil

    base, removed = tempfile.gettempdir(), 0
    for name in os.listdir(base):
        if not name.startswith(FOLDER_PREFIX):
            continue
        pid = name[len(FOLDER_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed += 1
    return removed


class Ended(Exception):
    """The process ended without a result."""


class AttemptProcess:
    """One warm process: an attempt's payload in, its result out, one at a time."""

    def __init__(self) -> None:
        from sloth_runner.agents.attempt import FOLDER_ENV, RESULT_PREFIX

        self.prefix = RESULT_PREFIX.encode()
        self.stderr = tempfile.TemporaryFile()
        # the copies of workflow files it makes go in here, removed with it however it ends
        self.folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sloth_runner.agents.attempt", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            start_new_session=True, env={**os.environ, FOLDER_ENV: self.folder})
        self.pid = self.proc.pid
        self.attempts = 0
        self._buffer = b""

    def send(self, payload: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.attempts += 1
        try:
            self.proc.stdin.write(json.dumps(payload, default=str).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise Ended(self.tail()) from exc

    def result(self, wait: float) -> dict[str, Any] | None:
        """The attempt's result, or None if it has not come within `wait` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + wait
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                raise Ended(self.tail())
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        if not line.startswith(self.prefix):
            raise Ended(f"an unexpected line on its result pipe: {line[:200]!r}")
        result: dict[str, Any] = json.loads(line[len(self.prefix):])
        return result

    def tail(self) -> str:
        """The last line it wrote on stderr (why it ended), or its exit status."""
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - 4096))
        lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        code = self.proc.poll()
        return lines[-1] if lines else f"exit status {code}" if code is not None else \
            "(no output)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Its whole tree: the attempt's commands run in process groups of their own."""
        import signal

        from sloth_runner.services import proctree

        proctree.kill_tree(self.pid)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.close()

    def close(self) -> None:
        import shutil

        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        self.stderr.close()
        if self.proc.poll() is None:  # still running (a process given back at shutdown)
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


class AttemptProcesses:
    """The agent's warm processes: taken by an attempt, given back when it ends normally,
    killed (and replaced) when it is cut short."""

    def __init__(self, warm: int = 1) -> None:
        self.warm = warm
        self._idle: list[AttemptProcess] = []
        self._lock = threading.Lock()
        self._starting = 0
        self._requests: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.running: set[int] = set()  # pids of the processes in an attempt now
        self._thread = threading.Thread(target=self._serve, name="sloth-attempt-starter",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._requests.get()
            if job is None:
                return
            job()

    def _start(self) -> AttemptProcess:
        """A new process, started from the starter thread (see the module's docstring)."""
        done: queue.Queue[AttemptProcess | BaseException] = queue.Queue()

        def job() -> None:
            try:
                done.put(AttemptProcess())
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                done.put(exc)

        self._requests.put(job)
        made = done.get()
        if isinstance(made, BaseException):
            raise made
        return made

    def fill(self) -> None:
        """Start processes in the background until `warm` are idle or starting."""
        with self._lock:
            wanted = self.warm - len(self._idle) - self._starting
            self._starting += max(0, wanted)
        for _ in range(max(0, wanted)):
            def job() -> None:
                try:
                    made = AttemptProcess()
                except OSError:
                    return
                finally:
                    with self._lock:
                        self._starting -= 1
                with self._lock:
                    self._idle.append(made)
            self._requests.put(job)

    def take(self) -> AttemptProcess:
        with self._lock:
            while self._idle:
                found = self._idle.pop()
                if found.alive():
                    self.running.add(found.pid)
                    return found
                found.close()
        made = self._start()
        with self._lock:
            self.running.add(made.pid)
        return made

    def give_back(self, proc: AttemptProcess) -> None:
        with self._lock:
            self.running.discard(proc.pid)
            if proc.alive() and proc.attempts < MAX_ATTEMPTS:
                self._idle.append(proc)
                return
        proc.kill()
        self.fill()

    def discard(self, proc: AttemptProcess) -> None:
        proc.kill()
        with self._lock:
            self.running.discard(proc.pid)
        self.fill()

    def kill_running(self) -> None:
        """A cold shutdown: every attempt's tree, at once."""
        from sloth_runner.services import proctree

        for pid in list(self.running):
            proctree.kill_tree(pid)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for proc in idle:
            proc.kill()
        self._requests.put(None)
