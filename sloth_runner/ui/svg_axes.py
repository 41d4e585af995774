"""Axis ticks a reader can use: "nice" numbers (1, 2 or 5 times a power of ten), durations in the
unit the span calls for (ms, s, min, h, days), and clock or calendar times aligned to what people
count in (whole minutes, hours, local midnights, Mondays, the first of a month).

Pure functions, separate from the drawing, so that the tests can hold them to these promises
directly (ticks increase, steps are nice, the data lies within the outer ticks).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, tzinfo

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Steps for durations and clock times, in seconds (below a day); longer spans count days.
CLOCK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
DURATION_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, *CLOCK_STEPS,
                  86400, 172800, 604800, 1209600)
DAY = 86400.0


def nice_step(span: float, count: int) -> float:
    """The smallest step of 1, 2 or 5 times a power of ten that cuts `span` into at most
    `count` parts."""
    if not (math.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive finite number, got {span!r}")
    raw = span / max(1, count)
    exp = math.floor(math.log10(raw))
    frac = raw / 10.0 ** exp
    for nice in (1, 2, 5, 10):
        if frac <= nice * (1 + 1e-9):
            return nice * 10.0 ** exp
    return 10.0 ** (exp + 1)  # pragma: no cover - frac is below 10 by construction


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Evenly spaced nice ticks, the first at or below `lo`, the last at or above `hi`."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"bounds must be finite, got {lo!r}, {hi!r}")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, count)
    digits = max(0, -math.floor(math.log10(step)))
    first, last = math.floor(lo / step + 1e-10), math.ceil(hi / step - 1e-10)
    return [round(i * step, digits) + 0.0 for i in range(first, last + 1)]


def number_labels(ticks: list[float]) -> list[str]:
    """Tick labels with as many decimals as the step needs; big numbers as 12k, 3.5M, 2G."""
    if not ticks:
        return []
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(ticks[0]) or 1.0
    top = max(abs(t) for t in ticks)
    div, suffix = 1.0, ""
    for threshold, d, s in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if top >= threshold:
            div, suffix = d, s
            break
    scaled = step / div
    decimals = max(0, -math.floor(math.log10(scaled) + 1e-9)) if scaled > 0 else 0
    return [f"{t / div:.{decimals}f}{suffix}" if t else "0" for t in ticks]


def duration_label(seconds: float, *, ms: bool | None = None) -> str:
    """"250ms", "1.5s", "45s", "1m30s", "2h", "1d12h": the two largest units that are not zero.
    `ms`: True for milliseconds whatever the value, False for never, None for below a second."""
    if seconds == 0:
        return "0"
    sign = "-" if seconds < 0 else ""
    v = abs(seconds)
    if ms or ms is None and v < 0.9995:
        millis = v * 1000
        return f"{sign}{millis:.3g}ms" if millis < 999.5 else f"{sign}{millis:.0f}ms"
    if v < 59.95:
        return f"{sign}{v:.3g}s"
    total = round(v)
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        q, total = divmod(total, size)
        if q:
            parts.append(f"{q}{unit}")
    return sign + "".join(parts[:2])


def duration_ticks(span: float, count: int = 8) -> list[tuple[float, str]]:
    """Ticks from 0 to at least `span` seconds, labelled in the unit the span calls for (all in
    ms below a second)."""
    span = max(float(span), 0.001)
    step = next((s for s in DURATION_STEPS if span / s <= count), None)
    if step is None:  # longer than `count` fortnights: whole days, nicely
        step = nice_step(span / DAY, count) * DAY
    n = math.ceil(span / step - 1e-9)
    ticks = [round(i * step, 6) + 0.0 for i in range(n + 1)]
    in_ms = ticks[-1] < 1
    return [(t, duration_label(t, ms=in_ms)) for t in ticks]


def _local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)


def _midnight(d: date, tz: tzinfo | None) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


def _calendar_ticks(lo: float, hi: float, count: int, tz: tzinfo | None) -> list[float]:
    """Ticks of a day or longer: local midnights every n days, Mondays, month or year starts."""
    first, last = _local(lo, tz).date(), _local(hi, tz).date()
    days = (last - first).days + 1
    for n in (1, 2, 7, 14):
        if days / n <= count:
            start = first - timedelta(days=first.weekday() if n >= 7 else 0)
            dates = [start + timedelta(days=i * n) for i in range(days // n + 2)]
            break
    else:
        months = (last.year - first.year) * 12 + last.month - first.month + 1
        step = next((m for m in (1, 2, 3, 6, 12) if months / m <= count), None)
        if step is None:
            step = 12 * int(nice_step((months / 12) or 1, count))
        index = first.year * 12 + first.month - 1
        index -= index % step
        dates = [date((index + i * step) // 12, (index + i * step) % 12 + 1, 1)
                 for i in range(months // step + 2)]
    stamps = [_midnight(d, tz) for d in dates]
    return [t for t in stamps if lo - 1 <= t <= hi + 1] or stamps[:1]


def _calendar_label(ts: float, step_days: float, tz: tzinfo | None) -> str:
    d = _local(ts, tz)
    if step_days >= 360:
        return str(d.year)
    if step_days >= 28:
        return f"{MONTHS[d.month - 1]} {d.year}"
    return f"{MONTHS[d.month - 1]} {d.day}"


def time_ticks(lo: float, hi: float, count: int = 8,
               tz: tzinfo | None = None) -> list[tuple[float, str]]:
    """Ticks between epoch seconds `lo` and `hi`, labelled as clock or calendar times in `tz`
    (None: this machine's local zone); at most about `count` of them, all within the span."""
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo < 1e-6:
        lo, hi = lo - 1800, hi + 1800
    span = hi - lo
    if span / CLOCK_STEPS[-1] > count:  # days and more
        ticks = _calendar_ticks(lo, hi, count, tz)
        step_days = (ticks[1] - ticks[0]) / DAY if len(ticks) > 1 else 1.0
        return [(t, _calendar_label(t, step_days, tz)) for t in ticks]
    if span < count:  # under a few seconds: nice fractions of a second
        return [(t, _local(t, tz).strftime("%H:%M:%S.%f")[:-3])
                for t in nice_ticks(lo, hi, count) if lo <= t <= hi]
    step = next(s for s in CLOCK_STEPS if span / s <= count)
    offset = _local(lo, tz).utcoffset() or timedelta(0)
    off = offset.total_seconds()
    first = math.ceil((lo + off) / step) * step - off
    ticks = []
    t = first
    while t <= hi + 1e-6:
        ticks.append(t)
        t += step
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    out = []
    day = None
    for t in ticks:
        d = _local(t, tz)
        label = d.strftime(fmt)
        if span >= DAY / 2 and d.date() != day:  # the date where it changes
            label = f"{MONTHS[d.month - 1]} {d.day} {label}"
        day = d.date()
        out.append((t, label))
    return out
