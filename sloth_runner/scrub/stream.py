"""Scrubbing text that arrives in pieces (a model's streamed tokens), without ever showing a
secret, even one split over many pieces.

    s = scrubber.stream()
    for token in tokens:
        show(s.feed(token))     # only what is safe to show now
    show(s.flush())             # the rest, at the end of the stream

What `feed` returns is final: the concatenated output equals `scrubber.scrub(whole_text)[0]`.
It holds back the shortest tail that could still turn into (or change) a secret:

- text that is a *partial match* of a detector (or of a user pattern, or a prefix of a known
  secret): `regex`'s `partial=True` says whether more text could complete a match there. That
  is usually the last word (it could be the start of an e-mail address or a key), and after
  a label such as `password=` everything up to the end of the value;
- a match that reaches the end of the text, because one more character can extend it or undo
  it (a trailing `\\b` or `(?!...)`);
- and never half a finding.

So plain prose is held back by one word, and the hold-back is at most the longest thing a
detector can match: a private key block is held from its BEGIN line until its END line (up to
the detector's 16 KiB bound), a `password=` value up to its 512-character bound. Matching
is linear (every detector is), and each `feed` looks at the held-back text plus
`CONTEXT_CHARS` already shown (for look-behinds and labels), so its cost does not grow with
the length of the stream.
"""

from __future__ import annotations

from sloth_runner.scrub.engine import PATTERN_TIMEOUT_S, PLACEHOLDER_RE, PatternTimeout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.scrub.engine import Scrubber

# Already shown text kept for matching: look-behinds, word boundaries, the label before a
# value. Longer than any detector's context (the longest, secret_assignment, is ~600).
CONTEXT_CHARS = 1024
_compiled: dict[int, Any] = {}


def _partial_pattern(pattern: Any) -> Any:
    """The `regex` twin of a detector's `re` pattern (same syntax), for partial matching."""
    found = _compiled.get(id(pattern))
    if found is None:
        import regex  # ~7 ms, on the first streamed scrub only

        flags = pattern.flags & (regex.I | regex.M | regex.S | regex.X)
        found = _compiled[id(pattern)] = regex.compile(pattern.pattern, flags)
    return found


class StreamScrubber:
    """See the module docstring. Not thread-safe: one per stream."""

    def __init__(self, scrubber: Scrubber) -> None:
        self.scrubber = scrubber
        self._text = ""  # CONTEXT_CHARS already shown, then what is held back
        self._shown = 0  # index in _text where the held-back part starts
        self._patterns: list[Any] | None = None

    @property
    def held(self) -> str:
        """What is held back right now."""
        return self._text[self._shown:]

    def feed(self, piece: str) -> str:
        if not piece:
            return ""
        self._text += piece
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, scrubbed: call once, when the stream ends."""
        return self._release(final=True)

    # -- internals ------------------------------------------------------------------------
    def _release(self, final: bool) -> str:
        text, shown = self._text, self._shown
        if shown >= len(text):
            return ""
        findings = self.scrubber.scan(text)
        cut = len(text) if final else self._safe_end(text, shown, findings)
        for f in reversed(findings):  # never half a finding
            if f.start < cut < f.end:
                cut = f.start
        cut = max(cut, shown)
        parts: list[str] = []
        pos = shown
        for f in findings:
            if f.end <= shown:
                continue
            if f.start >= cut:
                break
            # A finding that starts in text already shown would need a match longer than
            # anything held back; hide at least the rest of it.
            parts.append(text[pos:max(pos, f.start)])
            parts.append(self.scrubber._placeholder(f.type, text[f.start:f.end]))
            pos = f.end
        parts.append(text[pos:cut])
        cut = max(cut, pos)
        drop = max(0, cut - CONTEXT_CHARS)
        self._text = text[drop:]
        self._shown = cut - drop
        return "".join(parts)

    def _safe_end(self, text: str, shown: int, findings: list[Any]) -> int:
        """The earliest place from which more text could still make or change a finding."""
        end = len(text)
        cut = end
        for f in findings:
            if f.end >= end:  # may grow, or be undone by the next character
                cut = min(cut, f.start)
        for pattern in self._partial_patterns():
            try:
                for m in pattern.finditer(text, shown, partial=True,
                                          timeout=PATTERN_TIMEOUT_S):
                    if m.end() == end and m.start() < end:
                        cut = min(cut, m.start())
                        break
            except TimeoutError as exc:
                raise PatternTimeout(pattern.pattern, len(text)) from exc
        for secret in self.scrubber.known:  # the end of the text may start a known secret
            for n in range(min(len(secret) - 1, end - shown), 0, -1):
                if text.endswith(secret[:n]):
                    cut = min(cut, end - n)
                    break
        return cut

    def _partial_patterns(self) -> list[Any]:
        if self._patterns is None:
            s = self.scrubber
            self._patterns = ([_partial_pattern(PLACEHOLDER_RE)]
                              + [_partial_pattern(d.pattern) for d in s.detectors]
                              + list(s.patterns))  # user patterns are `regex` already
        return self._patterns
