"""SQLite persistence: one database file, WAL, ordered migrations; history, state, AI usage."""

from sloth_runner.store.db import Store

__all__ = ["Store"]
