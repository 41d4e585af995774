"""AI errors that carry more than the classes in sloth_runner/errors.py, as subclasses of them
(so `except AIProviderError` and friends still catch them, and the CLI maps them the same way):

    AIProviderError
    └── AIStatusError       an error status; the provider's own words (`detail`) kept apart
    AIConnectionError
    ├── AIStreamBroken      a stream broke off; `partial` says whether text had been delivered
    └── AITimeout           the attempt ran past `timeout` (retried)
        └── AIDeadline      ... or past the caller's deadline, a task's timeout (not retried)

The provider's words may quote a secret (a key it rejects), so the client scrubs `detail` whole
and only then cuts it (`publish`): SCRUB FIRST, CUT AFTER.
"""

from __future__ import annotations

from sloth_runner.errors import AIConnectionError, AIError, AIProviderError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

DETAIL_LIMIT = 300  # characters of a provider's own error text kept (after scrubbing)
MESSAGE_LIMIT = 1000  # characters of any AI error message (after scrubbing)


class AIStatusError(AIProviderError):
    def __init__(self, provider: str, model: str | None, detail: str, advice: str,
                 status: int, retry_after: float | None = None) -> None:
        self.detail = detail
        self.advice = advice
        super().__init__(provider, model, self._explain(detail), status=status,
                         retry_after=retry_after)

    def _explain(self, detail: str) -> str:
        text = detail.strip()
        return f"{text}; {self.advice}" if text and self.advice else (text or self.advice or
                                                                       "error")

    def publish(self, scrub: Callable[[str], str]) -> None:
        """Scrub the provider's words whole, then cut them; our advice stays whole."""
        from sloth_runner.scrub import clip

        self.detail = clip(scrub(self.detail.strip()), DETAIL_LIMIT)
        head = str(AIError(self.provider, self.model, "", self.status))
        self.args = (head + self._explain(self.detail),)


class AIStreamBroken(AIConnectionError):
    def __init__(self, provider: str, model: str | None, message: str, *,
                 partial: bool) -> None:
        super().__init__(provider, model, message)
        self.partial = partial  # text already reached the caller: a retry would repeat it

    @property
    def retryable(self) -> bool:
        return not self.partial


class AITimeout(AIConnectionError):
    """Recorded with status "timeout" in the call log; retried unless text was delivered."""

    def __init__(self, provider: str, model: str | None, message: str, *,
                 partial: bool = False) -> None:
        super().__init__(provider, model, message)
        self.partial = partial

    @property
    def retryable(self) -> bool:
        return not self.partial


class AIDeadline(AITimeout):
    @property
    def retryable(self) -> bool:
        return False


def publish(exc: AIError, scrub: Callable[[str], str]) -> None:
    """Make `exc` safe to show and store: its causes' messages (a --debug traceback prints
    them) and its own scrubbed whole, then cut."""
    from sloth_runner.scrub import clip

    scrub_chain(exc, scrub)
    if isinstance(exc, AIStatusError):
        exc.publish(scrub)
    else:
        exc.args = (clip(scrub(str(exc)), MESSAGE_LIMIT),)


def scrub_chain(exc: BaseException | None, scrub: Callable[[str], str]) -> None:
    """Scrub the messages of `exc` and of the exceptions that caused it, in place: a foreign
    library's error can quote what it was given (a key it rejected, a line of a config file).
    An exception whose message is not made from its args (PyYAML's quote the document) and
    still shows a secret is cut off the chain, with everything behind it."""
    parent: BaseException | None = None
    seen = 0
    while exc is not None and seen < 8:
        exc.args = tuple(scrub(a) if isinstance(a, str) else a for a in exc.args)
        message = getattr(exc, "message", None)
        if isinstance(message, str):  # the OpenAI SDK's errors keep their text here too
            try:
                setattr(exc, "message", scrub(message))  # noqa: B010 (a foreign class)
            except AttributeError:
                pass
        text = str(exc)
        if parent is not None and scrub(text) != text:
            parent.__cause__ = None
            parent.__context__ = None
            parent.__suppress_context__ = True
            return
        parent, exc = exc, exc.__cause__ or exc.__context__
        seen += 1
