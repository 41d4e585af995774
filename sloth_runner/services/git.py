"""Read-only questions to git (diffs, changed files, branch, commit) for workflows that review
or test what changed.

It runs the `git` command rather than a library (plumbing commands, whose output is stable and
which never fall back to comparing plain files outside a repository): the user's git, config and credentials apply,
and nothing heavy is imported. A failure says which git command failed and git's own words,
with a hint for the common CI case of a shallow clone that lacks the commit asked for.
"""

from __future__ import annotations

from sloth_runner.errors import ExecError, IntegrationError
from sloth_runner.services import process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_BASE = "HEAD~1"
DEFAULT_HEAD = "HEAD"


def git(args: list[str], cwd: str | None = None, deadline: float | None = None,
        what: str | None = None, run: Callable[..., process.ExecResult] = process.run) -> str:
    """stdout of `git args...`; an IntegrationError naming `what` (the command as a user would
    type it) and git's own message if it fails."""
    what = what or "git " + " ".join(args)
    argv = ["git", "--no-pager", *args]
    try:
        result = run(argv, cwd=cwd, deadline=deadline, env={"GIT_TERMINAL_PROMPT": "0"})
    except ExecError as exc:
        raise IntegrationError(f"git is not available: {exc}") from exc
    if result.timed_out:
        raise IntegrationError(f"{what} timed out")
    if result.exit_code != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        message = said[-1] if said else f"exit code {result.exit_code}"
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
