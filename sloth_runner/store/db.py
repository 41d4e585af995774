"""The one Store: opens the database, migrates it, and hands out a connection.

WAL lets `history` read while a run writes; `synchronous=NORMAL` keeps commits cheap while a crash
still loses nothing that was committed before it. Every migration runs in its own transaction
and is recorded by name, so a half-applied upgrade cannot exist.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable

from sloth_runner import paths
from sloth_runner.errors import StoreError
from sloth_runner.store.migrations import MIGRATIONS

_BUSY_TIMEOUT = 10.0


def _retry_when_busy(step: Callable[[], object]) -> object:
    """Run one start-up step, retrying while another process holds the database.

    SQLite's busy timeout does not cover every case: when several processes open a brand-new
    database at once, switching it to WAL needs an exclusive lock, and a connection that already
    holds a shared lock gets SQLITE_BUSY at once (waiting could deadlock). Trying again after a
    short pause is the documented remedy; the loop gives up after the same 10 s as the timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT
    pause = 0.005
    while True:
        try:
            return step()
        except (sqlite3.OperationalError, StoreError) as exc:
            cause = exc.__cause__ if isinstance(exc, StoreError) else exc
            busy = isinstance(cause, sqlite3.OperationalError) and (
                "locked" in str(cause) or "busy" in str(cause))
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class Store:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = os.fspath(path) if path is not None else paths.db_path()
        # One connection, shared by the scheduler thread and worker threads (AI call logs):
        # sqlite3 leaves serialising a shared connection to us.
        self._lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                        timeout=_BUSY_TIMEOUT)
            _retry_when_busy(lambda: self.conn.execute("PRAGMA journal_mode=WAL"))
            self.conn.execute("PRAGMA synchronous=NORMAL")
            _retry_when_busy(self._migrate)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open history database {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        c = self.conn
        with self.transaction():
            c.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        done = {row[0] for row in c.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                # Re-check under the write lock: another process opening the same new
                # database may have applied it between our read and now.
                if c.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))

    def transaction(self) -> _Transaction:
        """`with store.transaction() as c:` one BEGIN IMMEDIATE ... COMMIT (or ROLLBACK)."""
        return _Transaction(self)

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cur = self.conn.execute(sql, args)
                cur.row_factory = sqlite3.Row
                return cur.fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"history database {self.path}: {exc}") from exc

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM migrations ORDER BY rowid")]

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    """A context manager class, not @contextmanager: contextlib costs every run ~0.4 ms."""

    __slots__ = ("store",)

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        store._lock.acquire()
        try:
            store.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            store._lock.release()
            raise StoreError(f"history database {store.path}: {exc}") from exc
        except BaseException:
            store._lock.release()
            raise
        return store.conn

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        store = self.store
        try:
            store.conn.execute("ROLLBACK" if kind is not None else "COMMIT")
        except sqlite3.Error as error:
            if kind is None:
                raise StoreError(f"history database {store.path}: {error}") from error
        finally:
            store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"history database {store.path}: {exc}") from exc
