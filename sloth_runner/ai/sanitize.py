"""The one scrubbing hook every prompt, message and stored text goes through.

This is the basic version: a handful of high-confidence detectors, user patterns, and exact
known secrets (the configured API key). Placeholders are typed (`[REDACTED:aws_access_key]`) so a
model can still reason about what was there.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

DETECTORS: list[tuple[str, re.Pattern[str]]] = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("url_credentials", re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")),
    ("authorization", re.compile(r"(?i)(?<=authorization:)\s*(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]+")),
    ("secret_assignment", re.compile(
        r"(?i)(?<![A-Za-z0-9])((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
        r"private[_-]?key|client[_-]?secret)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{3,})")),
]


def scrub(text: str, known_secrets: Iterable[str] = (), patterns: Iterable[re.Pattern[str]] = ()
          ) -> str:
    if not text:
        return text
    for secret in known_secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[REDACTED:api_key]")
    for name, pattern in DETECTORS:
        if name == "secret_assignment":
            text = pattern.sub(lambda m: m.group(1) + "[REDACTED:secret]", text)
        else:
            text = pattern.sub(f"[REDACTED:{name}]", text)
    for pattern in patterns:
        text = pattern.sub("[REDACTED]", text)
    return text


def compile_patterns(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """User patterns are Python `re` regular expressions; a bad one is a clear ValueError."""
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise ValueError(f"bad pattern {p!r}: {exc}") from None
    return compiled
