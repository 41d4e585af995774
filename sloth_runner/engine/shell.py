"""A task or condition given as a shell string: run it through the exec service, off-thread."""

from __future__ import annotations

from collections.abc import Generator

from sloth_runner.engine.model import Blocking, Outcome, Request, TaskContext
from sloth_runner.services import process

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any


class ShellAction:
    """Success iff the command exits 0; its result fields become the task's outputs."""

    __slots__ = ("command", "spool", "memory_limit", "base_env")

    def __init__(self, command: str, spool: str | None = None,
                 memory_limit: int | None = None,
                 base_env: dict[str, str] | None = None) -> None:
        self.command, self.spool, self.memory_limit = command, spool, memory_limit
        self.base_env = base_env  # the whole environment, when not this process's (sandbox)

    def __call__(self, ctx: TaskContext) -> Generator[Request, Any, Outcome]:
        cmd, spool, limit, base = self.command, self.spool, self.memory_limit, self.base_env
        result: process.ExecResult = yield Blocking(
            lambda: process.run(cmd, deadline=ctx.deadline, env=ctx.env, cwd=ctx.workdir,
                                cancel=ctx.cancel, spool=spool, memory_limit=limit,
                                base_env=base, user=ctx.user))
        ctx.usage.add(result.cpu_s, result.max_rss_kb)
        # Only the code: a line cut out of stderr here could be part of a secret that is only
        # recognisable whole (a key block); reporters show the output's tail once scrubbed.
        message = "" if result.success else f"exit code {result.exit_code}"
        return Outcome(result.success, message, result.as_dict(), exit_code=result.exit_code)
