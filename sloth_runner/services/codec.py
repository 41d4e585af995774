"""JSON and YAML encoding for the `json` and `yaml` modules. PyYAML is imported on first use."""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


def json_encode(value: Any, pretty: bool = False) -> str:
    # Sorted keys: Lua tables have no order, and the same data should always read the same.
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str,
                      sort_keys=True)


def json_decode(text: str) -> Any:
    if not isinstance(text, str):
        raise TypeError(f"json.decode expects a string, got {type(text).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def yaml_encode(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def yaml_decode(text: str) -> Any:
    import yaml

    if not isinstance(text, str):
        raise TypeError(f"yaml.decode expects a string, got {type(text).__name__}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc
