"""Read-side of history for `sloth-runner tune`: the runs of one workflow file, their attempts.

A run records the file path as it was given on the command line (`runs.file`), relative or
absolute. A path is matched to the file being tuned by what it resolves to: an absolute path
(and a relative one, resolved against the current directory) naming the same file. A relative
path recorded from another directory cannot be resolved; such runs of a file with the same
name are counted, so the command can say why they are not used.
"""

from __future__ import annotations

import os

from sloth_runner.store.db import Store

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

_CHUNK = 500  # run ids per query: far below SQLite's limit on bound parameters


def runs_of_file(store: Store, path: str, since: float) -> tuple[list[dict[str, Any]], int]:
    """(the runs of `path` started since `since`, oldest first; how many runs of a file with
    the same name could not be matched because they recorded a path relative to another
    directory)."""
    target = os.path.realpath(path)
    rows = []
    for base in sorted({os.path.basename(path), os.path.basename(target)}):  # via a symlink
        pattern = "%/" + base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows += store.query("SELECT id, file, started_at, ended_at, status FROM runs"
                            " WHERE started_at >= ? AND (file = ? OR file LIKE ? ESCAPE '\\')",
                            (since, base, pattern))
    rows.sort(key=lambda row: row["started_at"])
    matched, unresolved = [], 0
    for row in rows:
        recorded = row["file"]
        if os.path.realpath(recorded) == target:
            matched.append(dict(row))
        elif not os.path.isabs(recorded):
            unresolved += 1
    return matched, unresolved


def attempts_of_runs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every attempt that ran (attempt > 0) in those runs, in the order they started."""
    out: list[dict[str, Any]] = []
    for i in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[i:i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = store.query("SELECT run_id, workflow, task, attempt, final, status, started_at,"
                           " ended_at, duration_s, exit_code, error, cpu_s, max_rss_kb"
                           f" FROM attempts WHERE run_id IN ({marks}) AND attempt > 0",
                           tuple(chunk))
        out.extend(dict(r) for r in rows)
    out.sort(key=lambda r: (r["started_at"], r["attempt"]))
    return out
