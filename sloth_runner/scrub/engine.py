"""Find secrets and PII in text and replace them with typed, stable placeholders.

`[REDACTED:aws_access_key:1]`: the type tells a model what was there, the number keeps two
different secrets apart, and the same secret always gets the same placeholder within one
Scrubber (one per run), so a model can still reason about "the same key in both places".
`restore` puts the values back, for local use of a model's answer.

Scrubbing is idempotent: placeholders never match a detector.

SCRUB FIRST, CUT AFTER: a text cut before it is scrubbed can end in half a secret that no
detector recognises any more (a private key without its END line, 22 of an API key's 32
characters). Whoever shortens a text scrubs it whole first, then cuts it with `clip`, which
never cuts a placeholder in half either. `stream()` scrubs text that arrives in pieces.
"""

from __future__ import annotations

import bisect
import re
import string
import threading

from sloth_runner.scrub.detectors import DETECTORS, NAMES, Detector
from sloth_runner.scrub.fastfind import PREFILTER_REACH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from sloth_runner.scrub.stream import StreamScrubber

_UNSET: Any = object()
PLACEHOLDER_RE = re.compile(r"\[REDACTED:[a-z0-9_]+:\d+\]")
# A placeholder or a mask (`mask` leaves `[REDACTED:type]`, without a number), for `clip`
_ANY_PLACEHOLDER = re.compile(r"\[REDACTED[^\]\s]{0,60}\]")
# User patterns (remove_patterns) run under this bound per text: one that backtracks fails
# with PatternTimeout instead of holding a task for seconds or minutes.
PATTERN_TIMEOUT_S = 1.0
_DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")
# str.lower() can change the length of a string (e.g. "İ"); positions must stay aligned
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_IDENT_TAIL = re.compile(r"[A-Za-z0-9_.-]{0,40}\Z")
_IDENT_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
# Anchors denser than one per this many characters (adversarial input) make one match per hit
# dearer than a regex pass over merged windows.
DENSE_ANCHOR_SPACING = 16


class Finding:
    """A secret's type and where it was: text[start:end] (0-based, end exclusive)."""

    __slots__ = ("type", "start", "end")

    def __init__(self, type: str, start: int, end: int) -> None:
        self.type, self.start, self.end = type, start, end

    def __repr__(self) -> str:
        return f"Finding({self.type!r}, {self.start}, {self.end})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Finding) and (self.type, self.start, self.end) == \
            (other.type, other.start, other.end)

    __hash__ = None  # type: ignore[assignment]


def select(detectors: str | Iterable[str]) -> list[Detector]:
    if detectors == "all":
        return list(DETECTORS)
    if isinstance(detectors, str):
        detectors = [detectors]
    wanted = list(detectors)
    unknown = [d for d in wanted if d not in NAMES]
    if unknown:
        raise ValueError(f"unknown detector '{unknown[0]}' (detectors: {', '.join(NAMES)})")
    return [d for d in DETECTORS if d.name in wanted]


class PatternTimeout(ValueError):
    """A user pattern ran past PATTERN_TIMEOUT_S on one text (it backtracks); names the pattern."""

    def __init__(self, pattern: str, size: int, seconds: float = PATTERN_TIMEOUT_S) -> None:
        super().__init__(f"remove_patterns: pattern {pattern!r} ran longer than {seconds:g}s on "
                         f"a {size}-character text and was stopped (it backtracks: avoid nested "
                         "or overlapping repetition such as (a+)+ or (a|aa)+)")
        self.pattern = pattern


def compile_patterns(patterns: Iterable[str]) -> list[Any]:
    """User patterns, compiled with the `regex` module (Python `re` syntax), so that matching
    them can be bounded in time (`PATTERN_TIMEOUT_S`); a bad one is a clear ValueError."""
    compiled = []
    for p in patterns:
        if not isinstance(p, str) or not p:
            raise ValueError(f"remove_patterns entries must be non-empty strings, got {p!r}")
        import regex  # ~7 ms: only for user patterns

        try:
            compiled.append(regex.compile(p))
        except regex.error as exc:
            raise ValueError(f"bad pattern {p!r}: {exc} (patterns use Python's re syntax)") \
                from exc
    return compiled


def clip(text: str, limit: int, marker: str = "…") -> str:
    """`text` cut to `limit` characters (then `marker`), never inside a placeholder. Cut only
    what was scrubbed whole: SCRUB FIRST, CUT AFTER."""
    if len(text) <= limit:
        return text
    cut = limit
    for m in _ANY_PLACEHOLDER.finditer(text, max(0, limit - 70), limit + 70):
        if m.start() < limit < m.end():
            cut = m.start()
            break
    return text[:cut] + marker


# Personal data is found by its shape wherever it is; only credentials need remembering, and
# an address is too common a substring to look for bare.
NOT_REMEMBERED = frozenset({"email", "ipv4", "ipv6", "credit_card", "custom"})
REMEMBER_MIN, REMEMBER_MAX = 8, 256  # a short value would match inside ordinary words


class Scrubber:
    def __init__(self, detectors: str | Iterable[str] = "all", allow: Iterable[str] = (),
                 replacement: str | None = None, patterns: Iterable[str] = (),
                 known: Iterable[str] = ()) -> None:
        self.detectors = select(detectors)
        self.allow = {a for a in allow if a}
        self.replacement = replacement
        self.patterns = compile_patterns(patterns)
        self.known = sorted({k for k in known if k and len(k) >= 6}, key=len, reverse=True)
        self._finder: Any = _UNSET
        self._placeholders: dict[str, str] = {}
        self._values: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        # Credentials this run has already redacted, looked for everywhere from then on: a
        # password found by its `password=` context in a log line is also the bare value of
        # `{pw = ...}` in a task's outputs, where nothing around it says so.
        self._remembered: dict[str, str] = {}  # value -> the type it was found as

    def derive(self, detectors: str | Iterable[str] = "all", allow: Iterable[str] = (),
               replacement: str | None = None, patterns: Iterable[str] = ()) -> Scrubber:
        """A scrubber with other options that shares this one's placeholders (same run)."""
        other = Scrubber(detectors, allow, replacement, patterns, self.known)
        other._placeholders, other._values = self._placeholders, self._values
        other._counts, other._lock = self._counts, self._lock
        other._remembered = self._remembered
        return other

    def add_known(self, secret: str | None) -> None:
        if secret and len(secret) >= 6 and secret not in self.known:
            with self._lock:  # two threads adding two keys: neither is lost
                self.known = sorted({*self.known, secret}, key=len, reverse=True)

    # -- scanning --------------------------------------------------------------------------
    def scan(self, text: str) -> list[Finding]:
        candidates: list[tuple[int, int, int, str]] = []  # (rank, start, end, type)
        if "[REDACTED" in text:  # placeholders already there are protected: idempotence
            for m in PLACEHOLDER_RE.finditer(text):
                candidates.append((-1, m.start(), m.end(), ""))
        # Values known to be secret come first, whole, whatever a detector makes of them
        # (the AI's key, credential-named environment variables, what was redacted before).
        known = False
        for secret, kind in (*((k, "api_key") for k in self.known),
                             *list(self._remembered.items())):
            start = text.find(secret)
            while start != -1:
                candidates.append((0, start, start + len(secret), kind))
                known = True
                start = text.find(secret, start + len(secret))
        for pattern in self.patterns:
            try:
                for m in pattern.finditer(text, timeout=PATTERN_TIMEOUT_S):
                    if m.end() > m.start():
                        candidates.append((1, m.start(), m.end(), "custom"))
            except TimeoutError as exc:
                raise PatternTimeout(pattern.pattern, len(text)) from exc
        views: dict[str, str] = {"text": text}
        positions_cache: dict[tuple[str, str], list[int]] = {}
        size = len(text)
        limit = 1000 + size // DENSE_ANCHOR_SPACING
        hits = self._fast_hits(text, limit) if size > 4096 else None
        for rank, det in enumerate(self.detectors, start=2):
            if det.anchors or det.prefilters:
                positions: list[int] = []
                if hits is not None:
                    for anchor in det.anchors:
                        positions.extend(hits.anchors.get(anchor, ()))
                    positions.sort()
                    view = text
                else:
                    view = views.get(det.anchor_on)  # type: ignore[assignment]
                    if view is None:
                        table = _DIGITS_TO_ZERO if det.anchor_on == "digits" else _ASCII_LOWER
                        view = views[det.anchor_on] = text.translate(table)
                    for anchor in det.anchors:  # cached per anchor: detectors share them
                        key = (det.anchor_on, anchor)
                        found = positions_cache.get(key)
                        if found is None:
                            found = positions_cache[key] = _positions(view, (anchor,), limit)
                        positions.extend(found)
                    positions.sort()
                if det.start_at is not None and len(positions) <= limit:
                    starts = (_starts_of_identifiers(text, positions)
                              if det.start_at == "identifier" else positions)
                    match = det.pattern.match
                    matched = [m for m in (match(text, p) for p in starts) if m is not None]
                    self._collect(det, rank, matched, text, candidates)
                    continue
                before, after = det.window
                if det.prefilters and hits is not None:
                    reach = PREFILTER_REACH + before
                    windows = _merge([(max(0, end - reach), min(size, end + after))
                                      for end in hits.prefilters.get(rank - 2, ())])
                elif det.prefilters:  # or anchors too dense to match one by one
                    windows = _merge([(max(0, m.start() - before), min(size, m.end() + after))
                                      for pre in det.prefilters for m in pre.finditer(view)])
                elif hits is not None:
                    windows = _merge([(max(0, p - before), min(size, p + after))
                                      for p in positions])
                else:
                    windows = _windows(view, det.anchors, det.window, size)
                matches = [m for ws, we in windows for m in det.pattern.finditer(text, ws, we)]
                self._collect(det, rank, matches, text, candidates)
                continue
            self._collect(det, rank, det.pattern.finditer(text), text, candidates)
        if known:
            _name_known(candidates)
        return _resolve(candidates)

    def _fast_hits(self, text: str, limit: int) -> Any:
        if self._finder is _UNSET:
            from sloth_runner.scrub.fastfind import make_finder

            self._finder = make_finder(self.detectors)
        return self._finder.find(text, limit) if self._finder is not None else None

    def _collect(self, det: Detector, rank: int, matches: Iterable[re.Match[str]], text: str,
                 candidates: list[tuple[int, int, int, str]]) -> None:
        group, check, allow, name = det.group, det.check, self.allow, det.name
        for m in matches:
            start, end = m.span(group)
            if start >= end:
                continue
            value = text[start:end]
            if value in allow or (check is not None and not check(value)):
                continue
            if "[REDACTED" in value:
                continue
            candidates.append((rank, start, end, name))

    def scrub(self, text: str) -> tuple[str, list[Finding]]:
        if not text:
            return text, []
        findings = self.scan(text)
        if not findings:
            return text, findings
        parts: list[str] = []
        last = 0
        for f in findings:
            parts.append(text[last:f.start])
            parts.append(self._placeholder(f.type, text[f.start:f.end]))
            last = f.end
        parts.append(text[last:])
        return "".join(parts), findings

    def mask(self, text: str) -> str:
        """Scrubbed for keeping beyond the run (the response cache): what is found becomes
        `[REDACTED:type]`, without a number, and is not remembered, because another run's
        `restore` must not put one of its own values there. Placeholders already in the text
        (this run's, from the prompt) stay as they are: they mean the same in any run."""
        findings = self.scan(text) if text else []
        if not findings:
            return text
        parts: list[str] = []
        last = 0
        for f in findings:
            parts.append(text[last:f.start])
            parts.append(f"[REDACTED:{f.type}]")
            last = f.end
        parts.append(text[last:])
        return "".join(parts)

    def stream(self) -> StreamScrubber:
        """A scrubber for text that arrives in pieces (streamed tokens); see scrub/stream.py."""
        from sloth_runner.scrub.stream import StreamScrubber

        return StreamScrubber(self)

    def _placeholder(self, kind: str, value: str) -> str:
        with self._lock:
            found = self._placeholders.get(value)
            if found is None:
                n = self._counts.get(kind, 0) + 1
                self._counts[kind] = n
                found = f"[REDACTED:{kind}:{n}]"
                self._placeholders[value] = found
                self._values[found] = value
                if (kind not in NOT_REMEMBERED and len(value) >= REMEMBER_MIN
                        and len(self._remembered) < REMEMBER_MAX):
                    self._remembered[value] = kind
        if self.replacement is not None:
            number = found.rsplit(":", 1)[1][:-1]
            return self.replacement.replace("{type}", kind).replace("{n}", number)
        return found

    def restore(self, text: str) -> str:
        """Put original values back where this run's placeholders appear."""
        if "[REDACTED:" not in text:
            return text
        return PLACEHOLDER_RE.sub(lambda m: self._values.get(m.group(0), m.group(0)), text)


def _positions(view: str, anchors: tuple[str, ...], limit: int) -> list[int]:
    """Every position of every anchor, sorted; stops early once past `limit`."""
    found: list[int] = []
    for anchor in anchors:
        pos = view.find(anchor)
        while pos != -1 and len(found) <= limit:
            found.append(pos)
            pos = view.find(anchor, pos + 1)
    found.sort()
    return found


def _starts_of_identifiers(text: str, positions: list[int]) -> list[int]:
    """Where the identifier around each anchor begins (DB_PASSWORD: at D), once each."""
    starts: list[int] = []
    seen: set[int] = set()
    for pos in positions:
        if pos == 0 or text[pos - 1] not in _IDENT_CHARS:
            start = pos  # the anchor already starts its identifier
        else:
            m = _IDENT_TAIL.search(text, max(0, pos - 40), pos)
            start = m.start() if m else pos
        if start not in seen:
            seen.add(start)
            starts.append(start)
    return starts


def _windows(lower: str, anchors: tuple[str, ...], window: tuple[int, int], size: int
             ) -> list[tuple[int, int]]:
    """Merged [start, end) ranges around every occurrence of any anchor."""
    before, after = window
    spans = []
    for anchor in anchors:
        pos = lower.find(anchor)
        while pos != -1:
            spans.append((max(0, pos - before), min(size, pos + len(anchor) + after)))
            pos = lower.find(anchor, pos + 1)
    return _merge(spans)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if not spans:
        return spans
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            if end > last_end:
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged


def _name_known(candidates: list[tuple[int, int, int, str]]) -> None:
    """A known value a detector also found, exactly: it takes the detector's type (a GitHub
    token from the environment is a `github_token`, not an `api_key`)."""
    typed: dict[tuple[int, int], tuple[int, str]] = {}
    for rank, start, end, kind in candidates:  # the strongest detector names it
        if rank > 0 and typed.get((start, end), (rank + 1,))[0] > rank:
            typed[(start, end)] = (rank, kind)
    for i, (rank, start, end, _kind) in enumerate(candidates):
        if rank == 0 and (start, end) in typed:
            candidates[i] = (0, start, end, typed[(start, end)][1])


def _resolve(candidates: list[tuple[int, int, int, str]]) -> list[Finding]:
    """Keep non-overlapping findings, stronger detectors first, longer first among equals."""
    if not candidates:
        return []
    candidates.sort(key=lambda c: (c[0], c[1] - c[2], c[1]))
    starts: list[int] = []
    kept: list[tuple[int, int, str]] = []
    for _, start, end, kind in candidates:
        i = bisect.bisect_right(starts, start)
        if i > 0 and kept[i - 1][1] > start:
            continue
        if i < len(kept) and kept[i][0] < end:
            continue
        starts.insert(i, start)
        kept.insert(i, (start, end, kind))
    return [Finding(kind, start, end) for start, end, kind in kept if kind]
