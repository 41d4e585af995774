"""What a value is called in a message to the user: the words of the Lua they write.

Lua values reach the services as Python ones (a Lua number arrives as an int), so "got int" or
"holds a str" would name a type the workflow's author never wrote.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NAMES = {bool: "boolean", int: "number", float: "number", str: "string", bytes: "string",
          type(None): "nil", dict: "table", list: "table", tuple: "table"}


def kind(value: Any) -> str:
    """Lua's type name for a plain Python value ("number", "string", "table", ...)."""
    return _NAMES.get(type(value)) or type(value).__name__
