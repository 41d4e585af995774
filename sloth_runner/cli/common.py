"""Helpers shared by command modules: output flags, params, opening the store."""

from __future__ import annotations

import argparse
import json
import sys

from sloth_runner.errors import ConfigError, UsageError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="output format (default: text)")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def parse_params(pairs: list[str] | None, values_file: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if values_file:
        from sloth_runner.services.codec import yaml_decode

        try:
            with open(values_file, encoding="utf-8") as fh:
                loaded = yaml_decode(fh.read())
        except OSError as exc:
            raise UsageError(f"--values {values_file}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"--values {values_file}", str(exc)) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"--values {values_file}", "must contain a mapping of names to values")
        params.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def open_store() -> Any:
    from sloth_runner.store import Store

    return Store()
