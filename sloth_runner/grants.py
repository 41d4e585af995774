"""What a workflow may do: everything, or under `--sandbox` only what `--allow` grants.

    exec   start processes (exec.run, io.popen, os.execute, shell-string commands and
           conditions, git)
    fs     write files outside the task's workdir (reading is always allowed), and use Lua's
           own `io` library and os.remove/rename/tmpname
    net    reach the network (alert webhooks, AWS, AI providers over HTTP, health URLs)
    env    read environment variables beyond a harmless allow-list (SAFE_ENV), and pass the
           whole environment to processes

The checks live in the module adapters (lua/), where a call names what it needs; this class
only answers and words the refusal, so every refusal reads the same way and names its grant.
"""

from __future__ import annotations

import os

from sloth_runner.errors import SlothError

KINDS = ("exec", "fs", "net", "env")
# Variables a sandboxed workflow may read: they describe the machine, not its secrets.
SAFE_ENV = frozenset(("HOME", "USER", "LOGNAME", "PATH", "LANG", "LANGUAGE", "LC_ALL",
                      "LC_CTYPE", "TERM", "TZ", "TMPDIR", "PWD", "SHELL", "HOSTNAME"))


class NotGranted(SlothError):
    """A sandboxed workflow tried something its grants do not cover."""


class Grants:
    __slots__ = ("sandbox", "allowed")

    def __init__(self, sandbox: bool = False, allowed: tuple[str, ...] | frozenset[str] = ()
                 ) -> None:
        self.sandbox = sandbox
        self.allowed = frozenset(allowed) if sandbox else frozenset(KINDS)

    def allows(self, kind: str) -> bool:
        return kind in self.allowed

    def refusal(self, kind: str, what: str) -> str | None:
        """The refusal of `what` (None when granted), worded for the user: what was refused
        and the `--allow` that grants it."""
        if kind in self.allowed:
            return None
        return f"{what} is not allowed in the sandbox (run with --allow {kind} to grant it)"

    def require(self, kind: str, what: str) -> None:
        message = self.refusal(kind, what)
        if message is not None:
            raise NotGranted(message)

    def process_env(self) -> dict[str, str] | None:
        """The environment a process a workflow starts builds on (its task's :env{} and the
        call's env are added to it), or None when it may inherit this process's whole
        environment (env granted, or no sandbox): the SAFE_ENV variables that are set."""
        if "env" in self.allowed:
            return None
        return {name: value for name, value in os.environ.items() if name in SAFE_ENV}

    def describe(self) -> str:
        """For history: '' without the sandbox, else 'sandbox' plus the grants."""
        if not self.sandbox:
            return ""
        return "sandbox" + ("+" + ",".join(sorted(self.allowed)) if self.allowed else "")
