"""`event`: Lua's way to dispatch events (event.dispatch(type, data)); filled in with hooks."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sloth_runner.lua.runtime import LuaRuntime
    from sloth_runner.lua.services import Services


def install_event_module(rt: LuaRuntime, services: Services) -> None:
    return None
