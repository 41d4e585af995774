"""Persistent key/value state shared by runs (`state.get/set/...` in Lua, `sloth-runner state`).

Values are stored as JSON so they keep their types: integers stay integers, tables stay tables.
"""

from __future__ import annotations

import json
import time

from sloth_runner.store.db import Store

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


class StateStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str, default: Any = None) -> Any:
        rows = self.store.query("SELECT value_json FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set(self, key: str, value: Any) -> None:
        if value is None:
            self.delete(key)
            return
        encoded = json.dumps(value, separators=(",", ":"))
        with self.store.transaction() as c:
            c.execute("INSERT INTO state (key, value_json, updated_at) VALUES (?, ?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET "
                      "value_json = excluded.value_json, updated_at = excluded.updated_at",
                      (key, encoded, time.time()))

    def delete(self, key: str) -> bool:
        with self.store.transaction() as c:
            return c.execute("DELETE FROM state WHERE key = ?", (key,)).rowcount > 0

    def increment(self, key: str, by: int | float = 1) -> int | float:
        """Atomic add: read and write in one transaction, so concurrent runs never lose a count."""
        with self.store.transaction() as c:
            row = c.execute("SELECT value_json FROM state WHERE key = ?", (key,)).fetchone()
            current = json.loads(row[0]) if row else 0
            if not isinstance(current, int | float) or isinstance(current, bool):
                raise TypeError(f"state '{key}' holds a {type(current).__name__}, not a number")
            value = current + by
            c.execute("INSERT INTO state (key, value_json, updated_at) VALUES (?, ?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET "
                      "value_json = excluded.value_json, updated_at = excluded.updated_at",
                      (key, json.dumps(value), time.time()))
        return value

    def keys(self, prefix: str = "") -> list[str]:
        rows = self.store.query("SELECT key FROM state WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
                                (_like_prefix(prefix),))
        return [r[0] for r in rows]

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        rows = self.store.query("SELECT key, value_json FROM state WHERE key LIKE ? ESCAPE '\\' "
                                "ORDER BY key", (_like_prefix(prefix),))
        return [(r[0], json.loads(r[1])) for r in rows]


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
