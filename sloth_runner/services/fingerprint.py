"""Content hashes of the files a task reads and writes, for up-to-date checks (as make and doit
do, but by content, not by modification time: a `git checkout` that touches a file without
changing it does not force a rebuild)."""

from __future__ import annotations

import hashlib
import os


def snapshot(patterns: tuple[str, ...] | list[str], cwd: str | None = None
             ) -> dict[str, str] | None:
    """{path: sha256} of every file the patterns match (globs, `**` included; a directory stands
    for every file below it), relative to `cwd`. None when a pattern matches nothing: a task
    whose inputs or outputs are missing is never up to date."""
    import glob

    base = cwd or os.getcwd()
    found: dict[str, str] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, root_dir=base, recursive=True)) \
            if not os.path.isabs(pattern) else sorted(glob.glob(pattern, recursive=True))
        files: list[str] = []
        for match in matches:
            full = os.path.join(base, match)
            if os.path.isdir(full):
                for root, _, names in os.walk(full):
                    files.extend(os.path.relpath(os.path.join(root, n), base) for n in names)
            elif os.path.isfile(full):
                files.append(match)
        if not files:
            return None
        for path in files:
            found[path] = _digest(os.path.join(base, path))
    return found


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
