"""Reporters turn run events into output: plain text (pipes, CI logs), rich (a terminal), JSON.

They are peers behind one Listener interface; `make_reporter` picks one. rich is imported only by
the terminal reporter, so piped and JSON runs never pay for it.
"""

from __future__ import annotations

import sys

from sloth_runner.engine.events import Listener

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import TextIO


def make_reporter(output: str, *, debug: bool = False, stream: TextIO | None = None) -> Listener:
    stream = stream or sys.stdout
    if output == "json":
        from sloth_runner.reporting.plain import LogOnlyReporter

        return LogOnlyReporter(sys.stderr, debug=debug)
    if stream.isatty():
        from sloth_runner.reporting.live import LiveReporter

        return LiveReporter(debug=debug)
    from sloth_runner.reporting.plain import PlainReporter

    return PlainReporter(stream, debug=debug)


def silence_stdout() -> None:
    """stdout is a closed pipe: point it at /dev/null, so that later writes, and the flush at
    exit, go nowhere instead of failing again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
