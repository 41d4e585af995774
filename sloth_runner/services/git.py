"""git for workflows: questions (diffs, changed files, branch, commit) for workflows that review
or test what changed, and the usual operations on a working copy (clone, checkout, pull, add,
commit, tag, push, status).

It runs the `git` command rather than a library (plumbing commands, whose output is stable and
which never fall back to comparing plain files outside a repository): the user's git, config and credentials apply,
and nothing heavy is imported. A failure says which git command failed and git's own words,
with a hint for the common CI case of a shallow clone that lacks the commit asked for.

A remote URL may carry credentials (`https://user:token@host/...`): messages show it without
them, and so does the `url` of a cloned repository.
"""

from __future__ import annotations

import os
import re

from sloth_runner.errors import ExecError, IntegrationError
from sloth_runner.services import process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_BASE = "HEAD~1"
DEFAULT_HEAD = "HEAD"


def git(args: list[str], cwd: str | None = None, deadline: float | None = None,
        what: str | None = None, run: Callable[..., process.ExecResult] = process.run,
        cancel: Any = None) -> str:
    """stdout of `git args...`; an IntegrationError naming `what` (the command as a user would
    type it) and git's own message if it fails."""
    what = what or "git " + " ".join(args)
    argv = ["git", "--no-pager", *args]
    options: dict[str, Any] = {"cwd": cwd, "deadline": deadline,
                               "env": {"GIT_TERMINAL_PROMPT": "0"}}
    if cancel is not None:
        options["cancel"] = cancel
    try:
        result = run(argv, **options)
    except ExecError as exc:
        raise IntegrationError(f"git is not available: {redact(str(exc))}") from exc
    if result.timed_out:
        raise IntegrationError(f"{what} timed out")
    if result.exit_code != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        message = redact(said[-1]) if said else f"exit code {result.exit_code}"
        hint = ""
        if "unknown revision" in message or "bad revision" in message or "bad object" in message:
            hint = (" (a shallow clone lacks older commits: fetch more history, e.g. "
                    "`git fetch --deepen=1`, or name commits that exist)")
        raise IntegrationError(f"{what} failed: {message}{hint}")
    return result.stdout


def diff(base: str = DEFAULT_BASE, head: str = DEFAULT_HEAD, cwd: str | None = None,
         deadline: float | None = None) -> str:
    """The unified diff from `base` to `head`."""
    return git(["diff-tree", "-p", "-r", "-M", "--no-ext-diff", _rev(base), _rev(head), "--"],
               cwd, deadline, what=f"git diff {base} {head}")


def changed_files(base: str = DEFAULT_BASE, head: str = DEFAULT_HEAD, cwd: str | None = None,
                  deadline: float | None = None) -> list[str]:
    """Paths changed from `base` to `head`, in git's order (renames count as their new path)."""
    out = git(["diff-tree", "-r", "-M", "--name-only", "--no-commit-id", _rev(base), _rev(head),
               "--"], cwd, deadline, what=f"git diff --name-only {base} {head}")
    return [line for line in out.splitlines() if line]


def current_branch(cwd: str | None = None, deadline: float | None = None) -> str:
    """The checked-out branch, or "HEAD" when detached (as in most CI checkouts)."""
    return git(["rev-parse", "--abbrev-ref", "HEAD"], cwd, deadline).strip()


def head_commit(cwd: str | None = None, deadline: float | None = None) -> str:
    return git(["rev-parse", "HEAD"], cwd, deadline).strip()


def _rev(value: str) -> str:
    if not isinstance(value, str) or not value or value.startswith("-"):
        raise IntegrationError(f"git: {value!r} is not a revision (name a commit, branch or tag)")
    return value


# -- a working copy ---------------------------------------------------------------------------
_USERINFO = r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]+@"  # compiled on first use (re's cache)


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it removed (user:token@)."""
    return re.sub(_USERINFO, r"\1", text)


def is_repo(path: str, deadline: float | None = None) -> bool:
    """Whether `path` is the top of a git working copy (not merely inside one)."""
    if not os.path.isdir(path):
        return False
    try:
        top = git(["rev-parse", "--show-toplevel"], path, deadline).strip()
    except IntegrationError:
        return False
    return os.path.realpath(top) == os.path.realpath(path)


def clone(url: str, dest: str, *, branch: str | None = None, depth: int | None = None,
          clean: bool = False, deadline: float | None = None, cancel: Any = None
          ) -> dict[str, Any]:
    """Clone `url` into `dest` (made absolute). Like the Go module, a `dest` that already is a
    repository is left as it is (`exists` true), unless `clean` asks to clone it afresh; an
    existing non-empty directory that is not one is an error."""
    shown = redact(url)
    if not isinstance(url, str) or not url or url.startswith("-"):
        raise IntegrationError("git clone: the URL must be a string (not an option)")
    target = os.path.abspath(dest)
    if os.path.lexists(target):
        if not os.path.isdir(target):
            raise IntegrationError(f"git clone {shown}: {target} exists and is not a directory")
        if not clean and is_repo(target, deadline):
            return {"path": target, "url": shown, "exists": True, "cloned": False}
        if clean:
            import shutil

            shutil.rmtree(target)
        elif os.listdir(target):
            raise IntegrationError(f"git clone {shown}: {target} exists and is not a git "
                                   "repository (empty it, or pass clean = true)")
    args = ["clone", "--quiet"]
    if branch:
        args += ["--branch", _rev(branch)]
    if depth:
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise IntegrationError("git clone: depth must be a whole number >= 1")
        args += ["--depth", str(depth)]
    git([*args, "--", url, target], None, deadline, what=f"git clone {shown}", cancel=cancel)
    return {"path": target, "url": shown, "exists": False, "cloned": True}


def open_repo(path: str, deadline: float | None = None) -> dict[str, Any]:
    """An existing working copy, described as clone() describes one."""
    target = os.path.abspath(path)
    if not is_repo(target, deadline):
        raise IntegrationError(f"git: {target} is not a git repository")
    try:
        url = redact(git(["config", "--get", "remote.origin.url"], target, deadline).strip())
    except IntegrationError:
        url = ""
    return {"path": target, "url": url, "exists": True, "cloned": False}


def checkout(path: str, ref: str, *, create: bool = False, deadline: float | None = None
             ) -> dict[str, Any]:
    """Check out a branch, tag or commit (`create`: a new branch there, `git checkout -b`)."""
    args = ["checkout", "--quiet"] + (["-b"] if create else []) + [_rev(ref)]
    if not create:
        args.append("--")  # a ref, never a path
    out = git(args, path, deadline, what=f"git checkout {ref}")
    return _done(path, out, deadline)


def pull(path: str, remote: str | None = None, branch: str | None = None, *,
         deadline: float | None = None, cancel: Any = None) -> dict[str, Any]:
    args = ["pull", "--quiet"] + _remote(remote, branch)
    out = git(args, path, deadline, what="git pull", cancel=cancel)
    return _done(path, out, deadline)


def push(path: str, remote: str | None = None, branch: str | None = None, *,
         follow_tags: bool = False, deadline: float | None = None, cancel: Any = None
         ) -> dict[str, Any]:
    args = ["push", "--quiet"] + (["--follow-tags"] if follow_tags else [])
    args += _remote(remote or ("origin" if branch else None), branch)
    out = git(args, path, deadline, what="git push", cancel=cancel)
    return _done(path, out, deadline)


def add(path: str, pattern: str = ".", deadline: float | None = None) -> dict[str, Any]:
    out = git(["add", "--", pattern], path, deadline, what=f"git add {pattern}")
    return _done(path, out, deadline)


def commit(path: str, message: str, *, all_changes: bool = False,
           deadline: float | None = None) -> dict[str, Any]:
    if not isinstance(message, str) or not message.strip():
        raise IntegrationError("git commit needs a message")
    args = ["commit", "--quiet"] + (["--all"] if all_changes else []) + ["-m", message]
    out = git(args, path, deadline, what="git commit")
    return _done(path, out, deadline)


def tag(path: str, name: str, message: str | None = None, deadline: float | None = None
        ) -> dict[str, Any]:
    args = ["tag"] + (["-a", "-m", message] if message else []) + [_rev(name)]
    out = git(args, path, deadline, what=f"git tag {name}")
    return _done(path, out, deadline)


def status(path: str, deadline: float | None = None) -> dict[str, Any]:
    """{clean, files = {"M app.py", "?? new.txt", ...}, branch}: `git status --porcelain`."""
    out = git(["status", "--porcelain", "--untracked-files=all"], path, deadline,
              what="git status")
    changed = [line for line in out.splitlines() if line.strip()]
    return {"clean": not changed, "files": changed, "branch": current_branch(path, deadline)}


def _done(path: str, out: str, deadline: float | None) -> dict[str, Any]:
    return {"success": True, "stdout": out, "stderr": "", "head": head_commit(path, deadline),
            "path": os.path.abspath(path)}


def _remote(remote: str | None, branch: str | None) -> list[str]:
    out = []
    for value in (remote, branch):
        if value is None:
            break
        if not isinstance(value, str) or not value or value.startswith("-"):
            raise IntegrationError(f"git: {value!r} is not a remote or branch name")
        out.append(value)
    return out
