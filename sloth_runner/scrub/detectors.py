"""The built-in detectors: what a secret or a piece of PII looks like.

Each detector has a name, a compiled Python `re` pattern, and optionally:
  - `group`: the capture group holding the secret itself (the rest is context kept visible,
    e.g. the `password=` in front of a password);
  - `anchors` or `prefilters`: cheap-to-find text that tells where the pattern is worth
    running (a substring search is far faster than any regex pass: that is how scrubbing
    stays fast);
  - `check`: a function the matched value must pass (Luhn for card numbers, a real parse and
    a plausibility test for IPv6, an entropy threshold for unlabelled high-entropy strings).

Patterns are written to be linear: no nested quantifiers, bounded repetitions where a lazy
match spans text (PEM blocks), so adversarial input cannot cause catastrophic backtracking.
"""

from __future__ import annotations

import math
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# A value never to be treated as a secret: placeholders (ours and common ones), variables.
PLACEHOLDER = re.compile(
    r"^(?:\[REDACTED[^\]]*\]|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|<[^>]*>|\*{3,}|x{3,}|X{3,}|"
    r"\{\{[^}]*\}\}|%\([^)]*\)s|null|none|nil|true|false|changeme-not-set|redacted|REDACTED|"
    r"example|\.\.\.|-+)$")

# auth_token and session_key are found through "token" and "key"; "auth" alone is common in logs
ANCHORS = ("pass", "pwd", "secret", "token", "key", "credential")
SECRET_WORDS = (r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
                r"|secret[_-]?key|private[_-]?key|client[_-]?secret|auth[_-]?token|credentials?"
                r"|session[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key")


def luhn_ok(digits: str) -> bool:
    total, odd = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if odd:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        odd = not odd
    return total % 10 == 0


def card_ok(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    n = len(digits)
    if not luhn_ok(digits):
        return False
    if digits[0] == "4":
        return n in (13, 16, 19)
    if digits[:2] in ("34", "37"):
        return n == 15
    if 51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720:
        return n == 16
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return n in (16, 19)
    if 3528 <= int(digits[:4]) <= 3589:  # JCB
        return n in (16, 19)
    return False


def ipv6_ok(value: str) -> bool:
    if value.count(":") < 2 or len(value) < 6 or not ipv6_plausible(value):
        return False
    try:
        import ipaddress  # only when something looks like an IPv6 address

        addr = ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return not (addr.is_unspecified or addr.is_loopback)


def ipv6_plausible(value: str) -> bool:
    """Whether a string that parses as IPv6 reads like an address rather than words or numbers
    with colons. Hex letters spell English ("Face::add", "de::ad", "Cafe::Bed" in code and
    prose) and short numbers make times and ratios ("10::20", "12:30:45:12:30:45:12:30"). A
    real address has a digit (fe80::1, 2001:db8::), writes each group in one case, and is not
    made only of one- or two-digit numbers."""
    groups = [g for g in value.split("%", 1)[0].split(":") if g]
    if not any(c.isdigit() for g in groups for c in g):
        return False
    if any(g != g.lower() and g != g.upper() for g in groups):
        return False
    return not all(g.isdigit() and len(g) <= 2 for g in groups)


def ipv4_ok(value: str) -> bool:
    return value not in ("0.0.0.0", "127.0.0.1", "255.255.255.255")


def entropy(value: str) -> float:
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def high_entropy_ok(value: str) -> bool:
    # 3.5 bits a character needs at least 12 distinct characters: a cheap test first
    if len(set(value)) < 12 or value.isdigit():
        return False
    if PLACEHOLDER.match(value):
        return False
    if value.isalpha():  # random letters only: many capitals, unlike CamelCaseWords
        upper = sum(c.isupper() for c in value) / len(value)
        return len(value) >= 24 and 0.25 <= upper <= 0.75 and entropy(value) >= 4.2
    return any(c.isdigit() for c in value) and entropy(value) >= 3.5


def assignment_ok(value: str) -> bool:
    return len(value) >= 4 and not PLACEHOLDER.match(value) and not value.startswith("[REDACTED")


class Detector:
    """A named pattern and how to find the few places worth running it (see module docstring).

    A detector with neither anchors nor prefilters would be run over the whole text; a whole-
    text regex pass costs ~20 ns a character here, `str.find` ~1 ns, so every built-in one has
    one or the other.
    """

    __slots__ = ("name", "_source", "_flags", "_pattern", "group", "check", "anchors", "window",
                 "_prefilter_sources", "_prefilters", "anchor_on", "start_at")

    def __init__(self, name: str, pattern: str, *, group: int = 0,
                 check: Callable[[str], bool] | None = None, flags: int = 0,
                 anchors: tuple[str, ...] = (), window: tuple[int, int] = (64, 640),
                 prefilter: str | tuple[str, ...] = (), anchor_on: str = "lower",
                 start_at: str | None = None) -> None:
        self.name = name
        # Compiled on first use: ~30 patterns cost a run several milliseconds to compile, and
        # most texts never reach most detectors (their anchors are not there).
        self._source, self._flags = pattern, flags
        self._pattern: re.Pattern[str] | None = None
        self.group = group
        self.check = check
        # Lower-case substrings; the pattern runs at or around their occurrences only.
        self.anchors = anchors
        self.window = window  # characters searched before and after an anchor or prefilter hit
        # Cheap patterns, each led by a literal (fast to search for), whose hits widened by
        # `window` are the only places the real pattern runs.
        self._prefilter_sources = (prefilter,) if isinstance(prefilter, str) else prefilter
        self._prefilters: tuple[re.Pattern[str], ...] | None = None
        # "lower": anchors and prefilters see the ASCII-lower-cased text; "digits": the text
        # with every digit mapped to "0" (so "0" * 13 finds a run of 13 digits).
        self.anchor_on = anchor_on
        # With anchors: "identifier" runs `pattern.match` at the start of the identifier around
        # each anchor, "anchor" at the anchor itself; None searches windows around anchors.
        self.start_at = start_at

    @property
    def pattern(self) -> re.Pattern[str]:
        if self._pattern is None:
            self._pattern = re.compile(self._source, self._flags)
        return self._pattern

    @property
    def prefilters(self) -> tuple[re.Pattern[str], ...]:
        if self._prefilters is None:
            self._prefilters = tuple(re.compile(p) for p in self._prefilter_sources)
        return self._prefilters


B64 = r"A-Za-z0-9+/"
AT = "anchor"  # the pattern starts with its anchor: match right there
DETECTORS: list[Detector] = [
    Detector("private_key",
             r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY((?: BLOCK)?)-----"
             r"[\s\S]{1,16384}?-----END \1PRIVATE KEY\2-----",
             anchors=("-----begin ",), start_at=AT),
    Detector("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
             anchors=("akia", "asia", "abia", "acca"), start_at=AT),
    Detector("aws_secret_key",
             r"(?i)aws[\w.-]{0,30}(?:secret|sk)[\w.-]{0,20}[\"']?\s*[:=]\s*[\"']?"
             rf"([{B64}]{{40}})(?![{B64}])", group=1, anchors=("aws",), start_at=AT),
    Detector("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
             anchors=("gh", "github_pat_"), start_at=AT),
    Detector("gitlab_token", r"\bgl(?:pat|dt|rt|ptt|cbt|imt|soat|ft)-[A-Za-z0-9_-]{20,}",
             anchors=("gl",), start_at=AT),
    Detector("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/"
                              r"[A-Za-z0-9/_-]{8,}", anchors=("https://hooks.slack.com/",),
             start_at=AT),
    Detector("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}", anchors=("xox",), start_at=AT),
    Detector("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
             anchors=("sk_", "rk_"), start_at=AT),
    Detector("anthropic_key", r"\bsk-ant-[a-z]{3,6}\d{2}-[A-Za-z0-9_-]{20,}",
             anchors=("sk-ant-",), start_at=AT),
    Detector("openai_key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}",
             anchors=("sk-",), start_at=AT),
    Detector("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}", anchors=("aiza",), start_at=AT),
    Detector("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", anchors=("npm_",), start_at=AT),
    Detector("gcp_private_key_id", r"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"", group=1,
             anchors=('"private_key_id"',), start_at=AT),
    Detector("azure_storage_key", rf"(?i)AccountKey=([{B64}]{{20,}}=*)", group=1,
             anchors=("accountkey=",), start_at=AT),
    Detector("azure_sas_signature", r"(?i)\bsig=([A-Za-z0-9%+/]{20,}=*)", group=1,
             anchors=("sig=",), start_at=AT),
    Detector("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
             anchors=("eyj",), start_at=AT),
    Detector("url_credentials", r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^:/\s@\"']{0,128}:"
                                r"([^@/\s\"']{1,256})@", group=1, anchors=("://",),
             window=(24, 420)),
    Detector("authorization", r"(?i)\b(?:authorization|proxy-authorization)\s*[:=]\s*[\"']?"
                              r"(?:bearer|basic|token|bot|digest)\s+([A-Za-z0-9._~+/=:-]{8,})",
             group=1, anchors=("authorization",), start_at=AT),
    Detector("bearer_token", r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)", group=1,
             anchors=("bearer",), start_at=AT),
    Detector("secret_flag",
             rf"(?i)(?<![\w-])--?(?:[a-z0-9]+-){{0,3}}(?:{SECRET_WORDS})(?:=|\s+)[\"']?"
             r"([^\s\"']{4,512})", group=1, check=assignment_ok,
             anchors=ANCHORS, start_at="identifier"),
    # PWD=/srv/app and OLDPWD=~ are the shell's directories (in any `env` output), not secrets
    Detector("secret_assignment",
             rf"(?i)(?<![A-Za-z0-9])(?!(?:old)?pwd[\"']?\s*[:=]\s*[\"']?[/~])"
             rf"(?:[A-Za-z0-9_.-]{{0,40}}?(?:{SECRET_WORDS}))"
             r"[\"']?(?:\s*[:=]\s*|\s+(?=[\"']))[\"']?([^\s\"',;&<>]{1,512})",
             group=1, check=assignment_ok, anchors=ANCHORS, start_at="identifier"),
    Detector("high_entropy",
             r"(?i)\b(?:key|secret|token|credential|signature|auth|passphrase)[\w-]{0,20}"
             r"[\"']?(?:\s*[:=]\s*|\s+(?:is|was)\s+|\s+)[\"']?"
             rf"([{B64}_-]{{20,200}}=*)(?![{B64}_=-])", group=1,
             check=high_entropy_ok,
             anchors=("key", "secret", "token", "credential", "signature", "auth", "passphrase"),
             start_at=AT),
    Detector("email", r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
                      r"\.[A-Za-z]{2,24}\b", anchors=("@",), window=(66, 260)),
    Detector("ipv4", r"(?<![\w.])(?<!version )(?<!version=)(?<!version: )(?:"
                     r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                     r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)",
             prefilter=r"0\.0{1,3}\.0{1,3}\.0", anchor_on="digits", window=(4, 4),
             check=ipv4_ok),
    Detector("ipv6", r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:)"
                     r"(?:%[A-Za-z0-9]+)?(?![\w:.])", check=ipv6_ok, anchors=("::",),
             window=(40, 40)),
    Detector("ipv6", r"(?<![\w:.])[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}(?![\w:.])",
             prefilter=r":[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:", anchor_on="lower",
             window=(5, 30), check=ipv6_ok),
    Detector("credit_card", r"(?<![\d.-])(?:\d[ -]?){12,18}\d(?![\d.-]|-\d)", check=card_ok,
             prefilter=("0" * 13, "0000 0000 0000 ", "0000-0000-0000-", "0000 000000 0000"),
             anchor_on="digits", window=(8, 12)),
]

NAMES = tuple(dict.fromkeys(d.name for d in DETECTORS))
