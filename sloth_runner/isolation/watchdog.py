"""The last line of defence against a main thread that cannot answer a signal.

Python runs signal handlers on the main thread, between bytecodes. Lua code in the middle of
one long C call (a backtracking `string.find`, `table.move` over billions of slots) never
returns to Python, so Ctrl-C or SIGTERM would wait for it. The C-level handler still writes the
signal number to the wake-up fd (`signal.set_wakeup_fd`), and lupa releases the GIL while Lua
runs, so this thread sees the signal at once. If the Python handler has not run within a grace
period, the thread stops the run itself: `emergency(signum)` kills what the run started,
records it as interrupted, and the process exits with 130.
"""

from __future__ import annotations

import os
import signal
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

GRACE_S = 2.0
WATCHED = frozenset((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))


class Watchdog:
    def __init__(self, emergency: Callable[[int], None], grace: float = GRACE_S) -> None:
        self.emergency = emergency
        self.grace = grace
        self.received = 0
        self.handled = 0
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._previous = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="sloth-watchdog", daemon=True)
        self._thread.start()

    def acknowledge(self) -> None:
        """Called by the Python-level handler: the main thread is answering."""
        self.handled += 1

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._r, 64)
            except OSError:
                return
            if not data or 0 in data:  # closed, or close() wrote its stop byte (no signal is 0)
                return
            ours = sum(1 for signum in data if signum in WATCHED)
            if not ours:  # another handler's signal (SIGUSR1, SIGWINCH...): not an interruption
                continue
            self.received += ours
            target, until = self.received, time.monotonic() + self.grace
            while self.handled < target:
                if time.monotonic() >= until:
                    self.emergency(next(s for s in reversed(data) if s in WATCHED))
                    return
                time.sleep(0.02)

    def close(self) -> None:
        try:
            signal.set_wakeup_fd(self._previous)
        except (ValueError, OSError):  # not the main thread, or the old fd is gone
            signal.set_wakeup_fd(-1)
        try:  # end-of-file is not enough: forked workers hold the write end too
            os.write(self._w, b"\0")
        except OSError:
            pass
        self._thread.join(1.0)
        os.close(self._w)
        if not self._thread.is_alive():  # never pull an fd from under a blocked read
            os.close(self._r)
