"""Helpers shared by command modules: output flags, params, opening the store."""

from __future__ import annotations

import argparse
import json
import math
import sys

from sloth_runner.errors import UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="output format (default: text)")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def print_json(document: Any) -> None:
    """Print `document` as strict JSON (RFC 8259), whatever it holds.

    JSON has no NaN or Infinity, and Python's `json` would print them as bare words that other
    parsers reject, so non-finite floats, nested anywhere, are printed as null (and as the
    strings "NaN", "Infinity", "-Infinity" where they are mapping keys). Values JSON cannot
    hold otherwise are printed as their `str()`.
    """
    try:
        text = json.dumps(document, indent=2, default=str, allow_nan=False)
    except ValueError as exc:  # a non-finite float somewhere: the rare case pays for the copy
        if "float" not in str(exc):
            raise
        text = json.dumps(_finite(document), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (keys: by their JSON names)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_finite_key(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _finite_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return "NaN" if key != key else ("Infinity" if key > 0 else "-Infinity")
    return key


def add_values(p: Any) -> None:
    p.add_argument("-v", "--values", metavar="FILE", action="append",
                   help="YAML file of values: the Lua global `values`, also in params "
                   "(repeatable; later files win)")


def read_values(paths: list[str] | None) -> dict[str, Any] | None:
    """The --values files merged (later files win, key by key at the top level); None when
    none was given, which is not the same as an empty file for `${values.x}` messages."""
    if not paths:
        return None
    from sloth_runner.values import read_values_file

    values: dict[str, Any] = {}
    for path in paths:
        values.update(read_values_file(path))
    return values


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def warn(messages: list[str]) -> None:
    """Warnings about the file itself (not output of the run): on stderr, in every mode."""
    for message in messages:
        sys.stderr.write(f"warning: {message}\n")


def open_store() -> Any:
    from sloth_runner.store import Store

    return Store()
