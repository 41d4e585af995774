"""The hook dispatcher: a detached process that runs a run's hooks.

`python -m sloth_runner.events.dispatcher RUN_ID [--stack NAME]`, started by the run
(events/recorder.py) in a session of its own. It reads the run's events back from the store as
they are committed (polling: 20 ms after news, backing off to 250 ms), and runs every hook that
subscribes to each one on a thread of its own (at most MAX_RUNNING at once), each bounded by
its hook's timeout. Every execution is a `hook_runs` row: `running` when it starts, then its
status, duration, error and log output.

One dispatcher per run: it holds `locks/RUN_ID.hooks.lock` while it lives (a second one,
started by a worker process of the run, leaves at once). It stops reading once the run is over: its row is no longer `running`, or its process died
(its lock, store/runs.py, can be taken). One last read takes what was committed before that.
Then it waits for the executions still running, each to its timeout, and exits. So the run
never waits for its hooks, and a `kill -9` of the run loses no hook of a stored event.
An execution stuck in a long C call past its timeout (plus GRACE_S) is recorded as a timeout
and abandoned; the process's exit ends it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import threading
import time

from sloth_runner import paths
from sloth_runner.events import TypeMatcher
from sloth_runner.events.hooks import HookHost, Result, Stopper, run_hook
from sloth_runner.events.recorder import dispatcher_lock
from sloth_runner.store import Store
from sloth_runner.store.events import (
    applicable_hooks,
    events_after,
    hook_run_finished,
    hook_run_started,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_RUNNING = 8
GRACE_S = 2.0
_FAST, _SLOW = 0.02, 0.25


class Execution:
    """One hook running for one event, on its own thread."""

    def __init__(self, pool: Pool, hook: dict[str, Any], event: dict[str, Any]) -> None:
        self.pool = pool
        self.hook = hook
        self.event = event
        self.stopper = Stopper()
        self.row = hook_run_started(pool.host.store, hook["name"], event, time.time())
        self.started = time.monotonic()
        self.deadline = self.started + float(hook["timeout_s"])
        self.lock = threading.Lock()
        self.settled = False  # its row has its final status (or is being given it)
        self.thread = threading.Thread(target=self._run, name=f"hook-{hook['name']}",
                                       daemon=True)

    def _run(self) -> None:
        result = run_hook(self.pool.host, self.hook, self.event, self.deadline, self.stopper,
                          started=self.started)
        self.settle(result)

    def settle(self, result: Result) -> None:
        with self.lock:
            if self.settled:
                return
            self.settled = True
        try:
            hook_run_finished(self.pool.host.store, self.row, result.status, result.duration_s,
                              result.error, result.output)
        except Exception:  # the store is gone: nothing else could record it either
            pass


class Pool:
    def __init__(self, host: HookHost, limit: int = MAX_RUNNING) -> None:
        self.host = host
        self.limit = limit
        self.waiting: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.running: list[Execution] = []

    def submit(self, hook: dict[str, Any], event: dict[str, Any]) -> None:
        self.waiting.append((hook, event))
        self._start_more()

    def _start_more(self) -> None:
        while self.waiting and len(self.running) < self.limit:
            hook, event = self.waiting.pop(0)
            execution = Execution(self, hook, event)
            self.running.append(execution)
            execution.thread.start()

    def poll(self) -> None:
        """Forget finished executions; stop those past their timeout; give up on those that
        do not stop (a long C call) GRACE_S later, recording them as timed out."""
        now = time.monotonic()
        for ex in list(self.running):
            if not ex.thread.is_alive():
                self.running.remove(ex)
            elif now >= ex.deadline and not ex.stopper.stopped:
                ex.stopper.stop()
            elif now >= ex.deadline + GRACE_S:
                ex.settle(Result("timeout", f"timed out after {ex.hook['timeout_s']:g}s (and "
                                 "did not stop: abandoned)", "", now - ex.started))
                self.running.remove(ex)
        self._start_more()

    def busy(self) -> bool:
        return bool(self.waiting or self.running)


def run_over(store: Store, run_id: str) -> bool:
    """The run has ended, or its process has died (its lock is free)."""
    rows = store.query("SELECT status FROM runs WHERE id = ?", (run_id,))
    if not rows or rows[0][0] != "running":
        return True
    try:
        fd = os.open(paths.lock_file(run_id), os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its process holds it: alive
    finally:
        os.close(fd)
    return True


def dispatch(run_id: str, stack: str | None, store: Store) -> None:
    """Run the hooks of `run_id`'s events until the run is over and they have finished."""
    hooks = [(h, TypeMatcher(h["event_types"])) for h in applicable_hooks(store, stack)]
    if not hooks:
        return
    pool = Pool(HookHost(store))
    last, pause = 0, _FAST
    while True:
        over = run_over(store, run_id)  # first: the read below then has all it committed
        events = events_after(store, run_id, last)
        for event in events:
            last = event["id"]
            for hook, wants in hooks:
                if wants(event["type"]):
                    pool.submit(hook, event)
        pool.poll()
        if over:
            break
        pause = _FAST if events else min(_SLOW, pause * 2)
        time.sleep(pause)
    while pool.busy():
        pool.poll()
        time.sleep(_FAST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sloth_runner.events.dispatcher")
    parser.add_argument("run_id")
    parser.add_argument("--stack")
    args = parser.parse_args(argv)
    # The run's terminal and its Ctrl-C are not ours: the hooks of an interrupted run still run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    lock = dispatcher_lock(args.run_id)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # the run's dispatcher runs already (started by another of its processes)
    store = Store()
    try:
        dispatch(args.run_id, args.stack, store)
    finally:
        store.close()
        try:
            os.unlink(lock)  # the run is over: nothing will start another dispatcher for it
        except FileNotFoundError:
            pass
        os.close(fd)
    return 0


if __name__ == "__main__":
    code = main()
    os._exit(code)  # threads of abandoned executions must not keep the process alive
