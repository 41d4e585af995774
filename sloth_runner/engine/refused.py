"""An action that cannot run here, and says why when its task runs (not when the file loads:
`list --sandbox` must still show the task)."""

from __future__ import annotations

from sloth_runner.engine.model import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Refused:
    """The sandbox does not allow it, or it belongs on an agent: it fails, or with `errored`
    ends as an error (nothing a retry could change), saying why."""

    __slots__ = ("error", "errored")

    def __init__(self, error: str, *, errored: bool = False) -> None:
        self.error = error
        self.errored = errored

    def __call__(self, ctx: Any) -> Outcome:
        return Outcome(False, error=self.error, errored=self.errored)
