"""Persistent key/value state shared by runs (`state.get/set/...` in Lua, `sloth-runner state`).

Values are stored as JSON so they keep their types: integers stay integers, tables stay tables.
A key may expire (`ttl`): an expired key is absent for every reader (get, exists, keys, the
CLI) from that moment on; its row is removed by the next write. Read-modify-write operations
(increment, compare_swap) run in one IMMEDIATE transaction, so concurrent runs never lose an
update. `NamedLock` is a lock across processes sharing a home: flock on a file, which the kernel
releases when its holder dies, however it dies.
"""

from __future__ import annotations

import json
import os
import time

from sloth_runner.kinds import kind
from sloth_runner.store.db import Store

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_UPSERT = ("INSERT INTO state (key, value_json, updated_at, expires_at) VALUES (?, ?, ?, ?) "
           "ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json, "
           "updated_at = excluded.updated_at, expires_at = excluded.expires_at")


class StateStore:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock  # wall time: an expiry is a moment other processes agree on

    def get(self, key: str, default: Any = None) -> Any:
        rows = self.store.query(f"SELECT value_json FROM state WHERE key = ? AND {_LIVE}",
                                (key, self.clock()))
        return json.loads(rows[0][0]) if rows else default

    def exists(self, key: str) -> bool:
        return bool(self.store.query(f"SELECT 1 FROM state WHERE key = ? AND {_LIVE}",
                                     (key, self.clock())))

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` (None deletes the key); with `ttl`, the key expires that many seconds
        from now. A set without ttl makes the key permanent again."""
        if value is None:
            self.delete(key)
            return
        _check_ttl(ttl)
        encoded = json.dumps(value, separators=(",", ":"))
        now = self.clock()
        with self.store.transaction() as c:
            c.execute(_UPSERT, (key, encoded, now, now + ttl if ttl is not None else None))
            c.execute("DELETE FROM state WHERE expires_at <= ?", (now,))

    def delete(self, key: str) -> bool:
        """Remove `key`; False when there was no (unexpired) value."""
        with self.store.transaction() as c:
            row = c.execute(f"SELECT 1 FROM state WHERE key = ? AND {_LIVE}",
                            (key, self.clock())).fetchone()
            c.execute("DELETE FROM state WHERE key = ?", (key,))
        return row is not None

    def increment(self, key: str, by: int | float = 1) -> int | float:
        """Atomic add: read and write in one transaction, so concurrent runs never lose a count.
        An unexpired TTL is kept; an expired key counts from 0, without one."""
        now = self.clock()
        with self.store.transaction() as c:
            row = c.execute(f"SELECT value_json, expires_at FROM state WHERE key = ? AND {_LIVE}",
                            (key, now)).fetchone()
            current = json.loads(row[0]) if row else 0
            if not isinstance(current, int | float) or isinstance(current, bool):
                raise TypeError(f"state '{key}' holds a {kind(current)}, not a number")
            value = current + by
            c.execute(_UPSERT, (key, json.dumps(value), now, row[1] if row else None))
        return value

    def compare_swap(self, key: str, expected: Any, new: Any, ttl: float | None = None) -> bool:
        """Atomically replace the value of `key` by `new` if it is `expected` now (None: if the
        key is absent); `new` None deletes it. True if swapped. Like set, the new value keeps
        no earlier TTL (pass `ttl` for one)."""
        _check_ttl(ttl)
        now = self.clock()
        with self.store.transaction() as c:
            row = c.execute(f"SELECT value_json FROM state WHERE key = ? AND {_LIVE}",
                            (key, now)).fetchone()
            current = json.loads(row[0]) if row else None
            if not _same(current, expected):
                return False
            if new is None:
                c.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                c.execute(_UPSERT, (key, json.dumps(new, separators=(",", ":")), now,
                                    now + ttl if ttl is not None else None))
        return True

    def ttl(self, key: str) -> float:
        """Seconds before `key` expires; -1 if it never does, -2 if it does not exist (as the
        Go module's get_ttl)."""
        now = self.clock()
        rows = self.store.query(f"SELECT expires_at FROM state WHERE key = ? AND {_LIVE}",
                                (key, now))
        if not rows:
            return -2
        return -1 if rows[0][0] is None else max(0.0, rows[0][0] - now)

    def expire(self, key: str, ttl: float | None) -> bool:
        """Give an existing key a TTL (None: make it permanent); False if it does not exist."""
        _check_ttl(ttl)
        now = self.clock()
        with self.store.transaction() as c:
            changed = c.execute(f"UPDATE state SET expires_at = ? WHERE key = ? AND {_LIVE}",
                                (now + ttl if ttl is not None else None, key, now)).rowcount
        return changed > 0

    def keys(self, prefix: str = "") -> list[str]:
        rows = self.store.query(f"SELECT key FROM state WHERE key LIKE ? ESCAPE '\\' AND {_LIVE} "
                                "ORDER BY key", (_like_prefix(prefix), self.clock()))
        return [r[0] for r in rows]

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        rows = self.store.query(f"SELECT key, value_json FROM state WHERE key LIKE ? ESCAPE '\\' "
                                f"AND {_LIVE} ORDER BY key", (_like_prefix(prefix), self.clock()))
        return [(r[0], json.loads(r[1])) for r in rows]


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)
                            or not ttl > 0):
        raise ValueError(f"a TTL is a number of seconds > 0, got {ttl!r}")


def _same(current: Any, expected: Any) -> bool:
    """Equal as JSON values: 1 == 1.0, but true is not 1 and a string is not a number."""
    if isinstance(current, bool) or isinstance(expected, bool):
        return type(current) is type(expected) and current == expected
    if isinstance(current, dict | list) or isinstance(expected, dict | list):
        return json.dumps(current, sort_keys=True) == json.dumps(expected, sort_keys=True)
    return bool(current == expected)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class LockTimeout(TimeoutError):
    """A named lock stayed held by someone else for the whole wait."""


class NamedLock:
    """An exclusive lock named by a string, shared by every process on the same home.

    flock on `<home>/locks/state/<name>.lock`: the kernel releases it when the holding file
    descriptor closes, so a holder that dies (kill -9 included) never leaves it stuck. Each
    acquisition opens its own descriptor, so two holders in one process exclude each other too.
    Lock files stay (removing one while another process waits on it would split the lock).
    """

    def __init__(self, name: str, directory: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a lock name is a non-empty string")
        if directory is None:
            from sloth_runner import paths

            directory = os.path.join(paths.home(), "locks", "state")
        os.makedirs(directory, exist_ok=True)
        self.name = name
        self.path = os.path.join(directory, _file_name(name) + ".lock")
        self._fd: int | None = None

    def acquire(self, timeout: float | None = None, deadline: float | None = None,
                stopped: Callable[[], bool] | None = None) -> None:
        """Wait for the lock: up to `timeout` seconds (None: no limit), never past the absolute
        `deadline` (time.monotonic), and not once `stopped()` says so. Raises LockTimeout."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        end = time.monotonic() + timeout if timeout is not None else None
        if deadline is not None:
            end = deadline if end is None else min(end, deadline)
        pause = 0.001
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._fd = fd
                    return
                except BlockingIOError:
                    pass
                now = time.monotonic()
                if (end is not None and now >= end) or (stopped is not None and stopped()):
                    held = f"{timeout:g} s" if timeout is not None else "the time left"
                    raise LockTimeout(f"lock '{self.name}' is held elsewhere; gave up after "
                                      f"{held}")
                # flock has no timed wait: poll, quickly at first, then every 50 ms at most
                time.sleep(min(pause, end - now) if end is not None else pause)
                pause = min(pause * 2, 0.05)
        except BaseException:
            if self._fd is None:
                os.close(fd)
            raise

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None


def _file_name(name: str) -> str:
    """A file name for any lock name: safe characters kept, others as %XX (no '/', no '..')."""
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    out = "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in name)
    if len(out) > 200:  # keep it a legal file name, and distinct
        import hashlib

        out = out[:150] + "-" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return out
