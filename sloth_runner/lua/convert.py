"""Lua <-> Python value conversion, shared by every module adapter.

A Lua table whose keys are exactly 1..n becomes a list; any other table a dict with string keys.
Functions and other userdata cannot leave Lua and are shown as placeholders.
"""

from __future__ import annotations

from lupa import lua54

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

lua_type = lua54.lua_type
MAX_DEPTH = 64


def type_name(value: Any) -> str:
    """Lua's name for the type of any value a Lua call can pass: a Lua object's own, or the
    Lua name of the Python value lupa turned it into (a number arrives as an int)."""
    from sloth_runner.kinds import kind

    return lua_type(value) or kind(value)


def to_python(value: Any, _depth: int = 0) -> Any:
    kind = lua_type(value)
    if kind is None:
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value
    if kind != "table":
        return f"<{kind}>"
    if _depth > MAX_DEPTH:
        raise ValueError("table nested too deeply (does it contain itself?)")
    items = list(value.items())
    if items and all(type(k) is int for k, _ in items):
        keys = sorted(k for k, _ in items)
        if keys[0] == 1 and keys[-1] == len(keys):
            return [to_python(v, _depth + 1) for _, v in sorted(items, key=lambda kv: kv[0])]
    return {_key(k): to_python(v, _depth + 1) for k, v in items}


def _key(k: Any) -> str:
    if isinstance(k, bytes):
        return k.decode("utf-8", "replace")
    if isinstance(k, float) and k.is_integer():
        return str(int(k))
    return str(k)


def to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return runtime.table_from(_plain(value), recursive=True)
    return _text(value)


def _plain(value: Any) -> Any:
    """lupa's recursive table_from handles dicts and lists; tuples become lists first, and a
    string holding bytes that were not UTF-8 (a command-line argument, decoded by Python with
    surrogate escapes) becomes those very bytes, as Lua strings are."""
    if isinstance(value, dict):
        return {_text(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _text(value)


def _text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
    return value
