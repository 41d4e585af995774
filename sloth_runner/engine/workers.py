"""A minimal pool of daemon threads for `Blocking` requests.

Not `concurrent.futures`: importing it pulls in `logging` (~9 ms of every start-up), and its
non-daemon workers make the interpreter wait at exit for a job the scheduler already abandoned
after a timeout. Threads are started on demand, so a run that never blocks starts none.
"""

from __future__ import annotations

import threading
from _queue import SimpleQueue  # not `queue`: ~1 ms to import
from collections.abc import Callable

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


class WorkerPool:
    def __init__(self, max_workers: int, name: str = "sloth-io") -> None:
        self.max_workers = max_workers
        self.name = name
        self._jobs: SimpleQueue = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._idle == 0 and len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1
        self._jobs.put((fn, args))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args = job
            fn(*args)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Let idle workers exit; a worker still busy with an abandoned job ends with it."""
        for _ in self._threads:
            self._jobs.put(None)
