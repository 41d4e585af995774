"""What a workflow may do: everything, or under `--sandbox` only what `--allow` grants.

    exec   start processes (exec.run, io.popen, shell-string commands and conditions, git)
    fs     write files outside the task's workdir (reading is always allowed)
    net    reach the network (http, alert webhooks, AWS, AI providers over HTTP, health URLs)
    env    read environment variables beyond a harmless allow-list, and pass the whole
           environment to processes

The checks live in the module adapters (lua/), where a call names what it needs; this class
only answers and words the refusal.
"""

from __future__ import annotations

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

    def require(self, kind: str, what: str) -> None:
        if kind not in self.allowed:
            raise NotGranted(f"{what} is not allowed in the sandbox (run with --allow {kind} "
                             f"to grant it)")

    def describe(self) -> str:
        """For history: '' without the sandbox, else 'sandbox' plus the grants."""
        if not self.sandbox:
            return ""
        return "sandbox" + ("+" + ",".join(sorted(self.allowed)) if self.allowed else "")
