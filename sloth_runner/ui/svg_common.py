"""What every SVG the dashboard draws shares: escaping, number formatting, text fitting, colours.

The SVGs are inlined into pages served with a strict CSP (no inline style, no inline script), so
they carry no `<style>` and no `style=""`: default colours are presentation attributes, which a page
stylesheet overrides through the classes (`.node.status-failed rect { fill: … }`). Every text a user
or a task supplied goes through `esc`, which also drops the characters XML cannot hold, so one odd
task name can neither break the page's markup nor inject into it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping

FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"  # local fonts only, never fetched
FONT_SIZE = 12.0
CHAR_W = 6.8  # average advance of a narrow character at FONT_SIZE, for fitting text
TEXT = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
AXIS = "#9ca3af"

# Default fills by status; a page stylesheet may override them through `status-<name>` classes.
STATUS_FILL = {
    "success": "#16a34a", "up_to_date": "#86efac", "failed": "#dc2626", "error": "#b91c1c",
    "timeout": "#ea580c", "interrupted": "#a855f7", "cancelled": "#a855f7",
    "stopped": "#a855f7", "lost": "#7c2d12", "running": "#2563eb", "pending": "#d1d5db",
    "skipped": "#9ca3af", "not_run": "#e5e7eb",
}
OTHER_FILL = "#94a3b8"
# Statuses drawn with dark text on them (light fills).
LIGHT_FILLS = frozenset(("up_to_date", "pending", "not_run"))
# Series colours (line and stacked bar charts), colour-blind friendly (Okabe-Ito, reordered).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442",
           "#000000")

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_CLASS = re.compile(r"[^a-z0-9_-]+")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
_ESCAPE_RE = re.compile("[&<>\"']")


def esc(value: object) -> str:
    """Escape text for both XML content and double- or single-quoted attribute values."""
    text = _NOT_XML.sub("\ufffd", str(value))
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)


def num(value: float) -> str:
    """A coordinate rounded to one decimal, with no trailing ".0" and no "-0"."""
    text = f"{value:.1f}"  # the hot path of a big graph: string work only
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text in ("-0", "nan", "inf", "-inf") else text


def slug(value: object) -> str:
    """A CSS class fragment from free text: `status-<slug>`, `series-<slug>`."""
    return _NOT_CLASS.sub("-", str(value).lower()).strip("-") or "unknown"


def status_fill(status: str) -> str:
    return STATUS_FILL.get(status, OTHER_FILL)


def status_text(status: str) -> str:
    """Label colour on a bar or node of this status (readable on its default fill)."""
    return TEXT if status in LIGHT_FILLS or status not in STATUS_FILL else "#ffffff"


def attrs(values: Mapping[str, object | None]) -> str:
    """` key="value"` pairs, escaped; None values are left out, floats are rounded."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        text = num(value) if isinstance(value, float) else esc(value)
        parts.append(f' {key}="{text}"')
    return "".join(parts)


def char_width(ch: str) -> float:
    """Rough advance of one character: wide (CJK) ones count double, combining ones nothing."""
    if unicodedata.combining(ch):
        return 0.0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2 * CHAR_W
    return CHAR_W


def text_width(text: str, size: float = FONT_SIZE) -> float:
    return sum(char_width(ch) for ch in text) * size / FONT_SIZE


def fit(text: str, width: float, size: float = FONT_SIZE) -> str:
    """The text cut to fit `width` pixels, ending in an ellipsis when cut ("" if nothing fits)."""
    text = str(text)
    if text_width(text, size) <= width:
        return text
    room = width - text_width("…", size)
    used = 0.0
    out = []
    for ch in text:
        used += char_width(ch) * size / FONT_SIZE
        if used > room:
            break
        out.append(ch)
    return "".join(out) + "…" if out else ""


def safe_href(href: object) -> str | None:
    """A link target the page may carry: relative, or http(s). Anything else (javascript:,
    data:, …) is dropped rather than escaped, since escaping does not make it harmless."""
    text = str(href).strip()
    head = re.split(r"[/?#]", text, maxsplit=1)[0]
    if ":" in head and head.split(":", 1)[0].lower() not in ("http", "https"):
        return None
    return text or None


def svg_open(width: float, height: float, kind: str, label: str) -> str:
    """The root element: a viewBox so a page can scale it, and its natural size as default."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="sr-svg sr-{kind}" role="img"'
            f' viewBox="0 0 {num(width)} {num(height)}" width="{num(width)}"'
            f' height="{num(height)}" font-family="{esc(FONT)}" font-size="{num(FONT_SIZE)}"'
            f' aria-label="{esc(label)}">')


def empty_svg(kind: str, message: str, width: float = 300.0, height: float = 60.0) -> str:
    """A small placeholder with a message, for a chart with nothing to draw."""
    return (svg_open(width, height, kind, message)
            + f'<text class="empty" x="{num(width / 2)}" y="{num(height / 2 + 4)}"'
              f' text-anchor="middle" fill="{MUTED}">{esc(message)}</text></svg>')


def finite(value: object) -> float | None:
    """A finite float from a number, or None (None, NaN, infinities, booleans, non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None
