"""Process trees: find every descendant of a process and kill them all, escapees included.

A command that daemonises (`setsid`, a double fork) leaves its process group and, once its
parent exits, would be re-parented to init and forgotten. Worker processes are therefore
*subreapers* (PR_SET_CHILD_SUBREAPER): orphans below them are re-parented to them, stay in
their tree, and die with it. Killing freezes the tree first (SIGSTOP), so nothing can fork
while it is being killed, then SIGKILLs it, and repeats until nothing is left.
"""

from __future__ import annotations

import os
import signal

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    import ctypes  # only worker processes call this, once

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl failed")


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of init."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Receive `sig` when the parent (thread) that forked this process dies."""
    _prctl(_PR_SET_PDEATHSIG, int(sig))


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, read from /proc (one pass)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree = children_map()
    found: list[int] = []
    stack = list(tree.get(pid, ()))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, ()))
    return found


def kill_tree(pid: int, include_root: bool = True, rounds: int = 5) -> None:
    """SIGKILL every descendant of `pid` (and `pid` itself with `include_root`).

    Everything is stopped first and the tree re-read until no new process appears, so a process
    that forks (or is re-parented here) while we work is caught too; then all die at once.
    """
    stopped: list[int] = []
    if include_root:
        _signal(pid, signal.SIGSTOP)
    seen: set[int] = set()
    for _ in range(rounds):
        fresh = [p for p in descendants(pid) if p not in seen]
        if not fresh:
            break
        for victim in fresh:
            _signal(victim, signal.SIGSTOP)
        seen.update(fresh)
        stopped.extend(fresh)
    for victim in stopped + ([pid] if include_root else []):
        _signal(victim, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
