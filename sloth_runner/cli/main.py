"""Entry point: parse arguments, dispatch to a command, and map errors to exit codes.

Exit codes: 0 all tasks succeeded, 1 a task failed, 2 the workflow file could not be loaded,
3 usage or configuration error, 130 interrupted. Tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from sloth_runner import __version__
from sloth_runner.errors import ScriptExit, SlothError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


class _Formatter(argparse.HelpFormatter):
    """argparse asks `shutil` for the terminal width (4 ms of imports) on every start; ask os."""

    def __init__(self, prog: str) -> None:
        try:
            width = os.get_terminal_size().columns
        except OSError:
            width = int(os.environ.get("COLUMNS", "100"))
        super().__init__(prog, width=max(40, width - 2))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our UsageError (exit 3), not SystemExit(2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


COMMANDS = ("run", "list", "history", "analyze", "state", "ai", "hook", "events", "tune",
            "agent", "ui", "server", "schedule")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that command's (argparse set-up is ~2 ms a sub-parser)."""
    import importlib

    parser = _Parser(prog="sloth-runner", description="Run Lua workflows as parallel DAGs.")
    parser.add_argument("--version", action="version", version=f"sloth-runner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"sloth_runner.cli.{'listing' if name == 'list' else name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        first = args_list[0] if args_list else None
        parser = build_parser(first if first in COMMANDS else None)
        args = parser.parse_args(args_list)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 3
        return int(args.handler(args) or 0)
    except ScriptExit as exc:  # the script asked for this exit code: nothing to add
        return exc.exit_code
    except SlothError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `history | head`: the reader has all it wanted
        from sloth_runner.reporting import silence_stdout

        silence_stdout()
        return 0
    except Exception as exc:  # a bug of ours: say so, briefly, unless debugging
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
