"""One error tree for the whole package; the CLI maps it to exit codes in one place.

    SlothError                      anything sloth-runner reports without a traceback
    ├── ScriptExit                  the file called os.exit(n) while loading (exit n)
    ├── UsageError                  bad command line (exit 3)
    ├── ConfigError                 a bad setting; names the field (exit 3)
    ├── LoadError                   the workflow file cannot be turned into workflows (exit 2)
    │   ├── LuaScriptError          syntax or runtime error while loading, with file:line
    │   ├── DefinitionError         a DSL misuse found after loading (duplicate task, bad field)
    │   └── DependencyError         unknown dependency or cycle; names the tasks
    ├── StoreError                  the SQLite store cannot be opened or written
    ├── WorkerLost                  a worker process died before answering (a task *error*)
    ├── ExecError                   a process could not be started (not: it exited non-zero)
    ├── IntegrationError            git, a health check, an alert webhook or AWS failed; says which
    └── AIError                     an AI call failed; names provider and model
        ├── AIProviderError         the provider answered with an error status (has .status)
        ├── AIConnectionError       no usable answer: refused, dropped, timed out, malformed
        └── AIBudgetExceeded        the call would pass the configured budget (not sent)

A task that runs and says "no" is not an exception at all: it is a `failed` result, and the
run's exit code (1) comes from the results, not from this tree.
"""

from __future__ import annotations


class SlothError(Exception):
    """Root of every error sloth-runner reports to a user."""

    exit_code = 1


class ScriptExit(SlothError):
    """The workflow file called os.exit(code) at top level: the run ends with that code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the workflow file called os.exit({code})")
        self.exit_code = code


class UsageError(SlothError):
    exit_code = 3


class ConfigError(SlothError):
    exit_code = 3

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.detail = problem


class LoadError(SlothError):
    exit_code = 2


class LuaScriptError(LoadError):
    """A Lua error raised while loading a file; the message starts with file:line."""


class DefinitionError(LoadError):
    pass


class DependencyError(LoadError):
    pass


class StoreError(SlothError):
    pass


class WorkerLost(SlothError):
    """A worker process died before answering: killed, crashed, or out of memory."""


class ExecError(SlothError):
    pass


class IntegrationError(SlothError):
    pass


class AIError(SlothError):
    """Every AI failure names the provider and model; never the API key."""

    def __init__(self, provider: str, model: str | None, message: str,
                 status: int | None = None, retry_after: float | None = None) -> None:
        where = f"{provider}" + (f" model {model}" if model else "")
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"AI call to {where} failed{code}: {message}")
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return False


class AIProviderError(AIError):
    @property
    def retryable(self) -> bool:
        return self.status in (408, 409, 429) or (self.status or 0) >= 500


class AIConnectionError(AIError):
    @property
    def retryable(self) -> bool:
        return True


class AIBudgetExceeded(AIError):
    pass


def user_message(exc: BaseException) -> str:
    """How an exception reads in a task error: our own and the usual OS/value errors speak for
    themselves; anything else is named, because it is probably a bug."""
    if isinstance(exc, KeyError):
        return f"no such key {exc}"
    if isinstance(exc, SlothError | ValueError | TypeError | OSError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def is_internal(exc: BaseException) -> bool:
    """Whether an exception means "could not run" (the store failed, a worker died, a bug of
    ours) rather than "the task's request was wrong" (bad arguments, a failed command)."""
    if isinstance(exc, StoreError | WorkerLost):
        return True
    return not isinstance(exc, SlothError | ValueError | TypeError | KeyError | OSError)
