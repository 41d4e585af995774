"""What was true around a run and each attempt, recorded so that the history can explain
failures: the host's load and free memory when an attempt started, the git commit of the
workflow's folder and how many files it changed, a fingerprint of the parameters, and each
error reduced to its template.

All of it is cheap on the run path, which a no-op run pays for:
- the load and free memory are read from the kernel (getloadavg, /proc/meminfo) at most once
  a second, so a 10,000-task run reads them a few times, not 10,000;
- the commit and changed files come from git on a background thread started with the run
  (its answer is only needed when the run's row is finished), and only when the folder is in
  a git work tree: finding that out is a few stat calls.
"""

from __future__ import annotations

import json
import os
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SAMPLE_EVERY_S = 1.0
GIT_TIMEOUT_S = 5.0


class HostSampler:
    """(load average over 1 minute, free memory in MiB), sampled at most once a second."""

    def __init__(self) -> None:
        self._at = -SAMPLE_EVERY_S
        self._value: tuple[float | None, int | None] = (None, None)
        self._lock = threading.Lock()

    def sample(self) -> tuple[float | None, int | None]:
        now = time.monotonic()
        if now - self._at < SAMPLE_EVERY_S:
            return self._value
        with self._lock:
            if now - self._at >= SAMPLE_EVERY_S:
                self._value = (_load_1m(), _free_mb())
                self._at = now
        return self._value


def _load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _free_mb() -> int | None:
    """MemAvailable: what a new process could get without swapping (not MemFree)."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class Workspace:
    """The git commit of a folder and the number of files changed since the commit before it
    (the last commit's changes plus what is not committed yet), found on a thread."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._result: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        if _in_git_work_tree(folder):
            self._thread = threading.Thread(target=self._find, name="sloth-git-context",
                                            daemon=True)
            self._thread.start()

    def result(self, wait_s: float = GIT_TIMEOUT_S) -> dict[str, Any]:
        """{"git_commit", "changed_files"} as far as known; {} outside a git work tree."""
        if self._thread is not None:
            self._thread.join(wait_s)
        return dict(self._result)

    def _find(self) -> None:
        commit = _git(self.folder, "rev-parse", "HEAD")
        if not commit:
            return
        self._result["git_commit"] = commit.strip()
        changed = _git(self.folder, "diff", "--name-only", "HEAD~1")
        if changed is None:  # the first commit has no parent: count what is not committed
            changed = _git(self.folder, "diff", "--name-only", "HEAD")
        if changed is not None:
            self._result["changed_files"] = len([n for n in changed.splitlines() if n])


def _in_git_work_tree(folder: str) -> bool:
    path = os.path.abspath(folder)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def _git(folder: str, *args: str) -> str | None:
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def params_hash(params: dict[str, Any]) -> str:
    """Equal parameters, equal hash (key order aside): "did this run differ in its inputs?".
    FNV-1a over the canonical JSON: a fingerprint, not a secret (importing hashlib would cost
    every run a few milliseconds for a few hundred bytes)."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# -- error templates ---------------------------------------------------------------------------
# "connection reset by peer on 10.0.0.5:5432" and "... on 10.0.0.7:5433" are one error. What
# varies between occurrences (addresses, numbers, ids, paths, quoted values) is masked, most
# specific first so that an IP is not three numbers and a path keeps no digits. Compiled on
# the first failure: a run where everything succeeds never pays for them.
_MASK_SOURCES = [
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "<ip>"),
    (r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?", "<time>"),
    (r"\[REDACTED:[a-z0-9_]+(?::\d+)?\]", "<secret>"),
    (r"(?<![\w.])(?:/[\w.@%+=-]+)+/?", "<path>"),
    (r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b", "<hex>"),
    (r"0x[0-9a-f]+", "<hex>"),
    (r"(?<![\w<])\d+(?:\.\d+)?(?![\w>])", "<n>"),
    (r"'[^'\n]{1,200}'", "'<s>'"),
    (r'"[^"\n]{1,200}"', '"<s>"'),
]
_compiled: list[tuple[Any, str]] = []
TEMPLATE_CHARS = 300


def failure_text(error: str | None, message: str | None, exit_code: int | None,
                 outputs: Any) -> str | None:
    """What a failed attempt said, for its template: its error, else its message or exit
    code with the last line its command wrote to stderr ("exit code 1" alone says nothing)."""
    if error:
        return error
    said = message or (f"exit code {exit_code}" if exit_code else None)
    stderr = outputs.get("stderr") if isinstance(outputs, dict) else None
    if isinstance(stderr, str) and stderr.strip():
        last = stderr.strip().splitlines()[-1].strip()
        said = f"{said}: {last}" if said else last
    return said


def error_template(error: str | None) -> str | None:
    """The error's first line with what varies masked: errors that differ only in numbers,
    ids, paths, addresses or quoted values share a template."""
    if not error or not error.strip():
        return None
    import re

    if not _compiled:
        _compiled.extend((re.compile(p, re.IGNORECASE), m) for p, m in _MASK_SOURCES)
    line = error.strip().splitlines()[0]
    # "/path/to/file.lua:12: message": the position is part of the cause, the folder is not
    position = re.match(r"^(?:[^\s:]*/)?([^/\s:]+\.(?:lua|sloth):\d+): ", line)
    head, rest = (position.group(1) + ": ", line[position.end():]) if position else ("", line)
    for pattern, replacement in _compiled:
        rest = pattern.sub(replacement, rest)
    return (head + " ".join(rest.split()))[:TEMPLATE_CHARS]
