"""Line and bar charts as SVG for the analytics and spend views (durations over time with their
anomalies, failure rates, failures by host or hour, cost and tokens per day or model).

Small on purpose: nice ticks (svg_axes), a legend, a tooltip on every mark and classes a page
stylesheet can colour; no interaction that would need a script. Missing values (None, NaN) are
gaps, never zeros, so a day with no data does not read as a day with no cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from sloth_runner.ui.svg_axes import nice_ticks, number_labels, time_ticks
from sloth_runner.ui.svg_common import (
    AXIS,
    GRID,
    MUTED,
    PALETTE,
    TEXT,
    attrs,
    empty_svg,
    esc,
    finite,
    fit,
    num,
    slug,
    svg_open,
    text_width,
)

LEFT, RIGHT, BOTTOM = 64.0, 20.0, 34.0
LEGEND_ROW = 18.0
MAX_POINT_MARKS = 200  # points drawn as circles (with tooltips) up to this many in all


def value_text(v: float) -> str:
    """A value for a tooltip: up to 4 significant digits, no exponent for everyday sizes."""
    if v == 0:
        return "0"
    if 1e-4 <= abs(v) < 1e9:
        text = f"{v:.4f}" if abs(v) < 1 else f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text
    return f"{v:.3g}"


def _legend(names: Sequence[str], width: float) -> tuple[str, float]:
    """Swatches and names, flowing into rows; returns the markup and its height."""
    if len(names) < 2:
        return "", 8.0
    out, x, y = ['<g class="legend">'], LEFT, 14.0
    for i, name in enumerate(names):
        label = fit(name, 180)
        w = 18 + text_width(label) + 16
        if x + w > width - RIGHT and x > LEFT:
            x, y = LEFT, y + LEGEND_ROW
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<g{attrs({"class": f"legend-item series-{i}", "data-series": name})}>'
                   f"<title>{esc(name)}</title>"
                   f'<rect x="{num(x)}" y="{num(y - 9)}" width="12" height="10" rx="2"'
                   f' fill="{colour}"/><text x="{num(x + 16)}" y="{num(y)}" fill="{TEXT}">'
                   f"{esc(label)}</text></g>")
        x += w
    out.append("</g>")
    return "".join(out), y + 12


def _y_axis(ticks: list[float], top: float, bottom: float, width: float, y_label: str) -> str:
    lo, hi = ticks[0], ticks[-1]
    out = ['<g class="axis y-axis">']
    for t, label in zip(ticks, number_labels(ticks), strict=True):
        y = bottom - (t - lo) / (hi - lo) * (bottom - top)
        out.append(f'<line x1="{num(LEFT)}" y1="{num(y)}" x2="{num(width - RIGHT)}" y2="{num(y)}"'
                   f' stroke="{AXIS if t == 0 else GRID}"/>'
                   f'<text class="tick" x="{num(LEFT - 6)}" y="{num(y + 4)}" text-anchor="end"'
                   f' fill="{MUTED}" data-value="{esc(repr(t))}">{esc(label)}</text>')
    mid = (top + bottom) / 2
    out.append(f'<text class="axis-label" x="14" y="{num(mid)}" text-anchor="middle"'
               f' transform="rotate(-90 14 {num(mid)})" fill="{MUTED}">'
               f"{esc(fit(y_label, bottom - top))}</text></g>")
    return "".join(out)


def _marks(marks: Iterable[Any]) -> list[dict[str, Any]]:
    """(x, y), (x, y, label) or {x, y, label, series}: the ones with finite x and y."""
    out = []
    for m in marks:
        if isinstance(m, Mapping):
            x, y = finite(m.get("x")), finite(m.get("y"))
            label, series = m.get("label", m.get("title")), m.get("series")
        else:
            x, y = finite(m[0]), finite(m[1])
            label, series = (m[2] if len(m) > 2 else None), None
        if x is not None and y is not None:
            out.append({"x": x, "y": y, "label": label, "series": series})
    return out


def line_chart_svg(series: Mapping[str, Sequence[tuple[float, float | None]]], *, y_label: str,
                   x_is_time: bool = True, marks: Iterable[Any] | None = None,
                   x_label: str | None = None, width: float = 900.0, height: float = 300.0,
                   tz: tzinfo | None = None) -> str:
    """Named series of (x, y) points, sorted by x; a y of None or NaN breaks the line. With
    `x_is_time`, x is epoch seconds shown as clock or calendar times in `tz` (None: this
    machine's zone). `marks` are points to highlight (anomalies), circled, with their label."""
    lines: dict[str, list[tuple[float, float | None]]] = {}
    for name, points in series.items():
        pts = [(x, finite(y)) for x, y in ((finite(p[0]), p[1]) for p in points) if x is not None]
        lines[str(name)] = sorted(pts, key=lambda p: p[0])
    highlights = _marks(marks or ())
    xs = [x for pts in lines.values() for x, y in pts if y is not None]
    ys = [y for pts in lines.values() for _, y in pts if y is not None]
    xs += [m["x"] for m in highlights]
    ys += [m["y"] for m in highlights]
    if not xs:
        return empty_svg("line", "no data")
    legend, top = _legend(list(lines), width)
    top += 8
    bottom = height - BOTTOM - (16 if x_label else 0)
    yt = nice_ticks(min(0.0, min(ys)), max(0.0, max(ys)) if max(ys) != 0 or min(ys) != 0 else 1.0,
                    max(2, int((bottom - top) // 45)))
    plot_w = width - LEFT - RIGHT
    count = max(2, int(plot_w // 110))
    if x_is_time:
        xticks = time_ticks(min(xs), max(xs), count, tz)
        x_lo, x_hi = min(xs), max(xs)
        if x_hi - x_lo < 1e-6:
            x_lo, x_hi = x_lo - 1800, x_hi + 1800
    else:
        nt = nice_ticks(min(xs), max(xs), count)
        xticks = list(zip(nt, number_labels(nt), strict=True))
        x_lo, x_hi = nt[0], nt[-1]

    def sx(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return bottom - (y - yt[0]) / (yt[-1] - yt[0]) * (bottom - top)

    def x_text(x: float) -> str:
        if x_is_time:
            return datetime.fromtimestamp(x, tz).strftime("%Y-%m-%d %H:%M:%S")
        return value_text(x)

    out = [svg_open(width, height, "line", f"line chart of {y_label}"), legend,
           _y_axis(yt, top, bottom, width, y_label), '<g class="axis x-axis">']
    for x, label in xticks:
        out.append(f'<line x1="{num(sx(x))}" y1="{num(bottom)}" x2="{num(sx(x))}"'
                   f' y2="{num(bottom + 4)}" stroke="{AXIS}"/>'
                   f'<text class="tick" x="{num(sx(x))}" y="{num(bottom + 17)}"'
                   f' text-anchor="middle" fill="{MUTED}" data-value="{esc(repr(x))}">'
                   f"{esc(label)}</text>")
    if x_label:
        out.append(f'<text class="axis-label" x="{num(LEFT + plot_w / 2)}" y="{num(height - 6)}"'
                   f' text-anchor="middle" fill="{MUTED}">{esc(x_label)}</text>')
    out.append("</g>")
    dots = sum(len(pts) for pts in lines.values()) <= MAX_POINT_MARKS
    for i, (name, pts) in enumerate(lines.items()):
        colour = PALETTE[i % len(PALETTE)]
        d, pen = [], "M"
        for x, y in pts:
            if y is None:
                pen = "M"
                continue
            d.append(f"{pen}{num(sx(x))},{num(sy(y))}")
            pen = "L"
        out.append(f'<g{attrs({"class": f"series series-{i}", "data-series": name})}>'
                   f"<title>{esc(name)}</title>"
                   f'<path class="line" d="{" ".join(d)}" fill="none" stroke="{colour}"'
                   f' stroke-width="1.8" stroke-linejoin="round"/>')
        if dots:
            for x, y in pts:
                if y is not None:
                    out.append(f'<circle class="point" cx="{num(sx(x))}" cy="{num(sy(y))}" r="2.5"'
                               f' fill="{colour}"><title>{esc(name)}: {esc(value_text(y))}'
                               f" at {esc(x_text(x))}</title></circle>")
        out.append("</g>")
    for m in highlights:
        label = m["label"] if m["label"] is not None else f"{value_text(m['y'])} at {x_text(m['x'])}"
        data = {"class": "anomaly", "cx": sx(m["x"]), "cy": sy(m["y"]), "r": "6",
                "data-x": repr(m["x"]), "data-y": repr(m["y"]), "data-series": m["series"]}
        out.append(f'<circle{attrs(data)} fill="none" stroke="#dc2626" stroke-width="2">'
                   f"<title>{esc(label)}</title></circle>")
    out.append("</svg>")
    return "".join(out)


def bar_chart_svg(categories: Sequence[Any], values: Sequence[float | None] | None, *,
                  y_label: str, stacked: Mapping[str, Sequence[float | None]] | None = None,
                  width: float = 900.0, height: float = 260.0) -> str:
    """One `g.bar` per category. Plain: `values[i]` (None or NaN: no bar, negative: below the
    zero line). Stacked: the series of `stacked` piled up in order (`values` is not drawn;
    negative parts count as zero), each part a `rect.segment` of its own."""
    names = [str(c) for c in categories]
    if not names:
        return empty_svg("bar", "no data")
    n = len(names)
    if stacked:
        layers = {str(k): [max(0.0, finite(v) or 0.0) for v in list(vs)[:n]] + [0.0] * (n - len(vs))
                  for k, vs in stacked.items()}
        totals: list[float | None] = [sum(layer[i] for layer in layers.values()) for i in range(n)]
    else:
        layers = {}
        given = list(values or [])[:n]
        totals = [finite(v) for v in given] + [None] * (n - len(given))
    present = [t for t in totals if t is not None]
    legend, top = _legend(list(layers), width)
    top += 8
    bottom = height - BOTTOM
    lo, hi = min([0.0, *present]), max([0.0, *present])
    yt = nice_ticks(lo, hi if hi > lo else lo + 1.0, max(2, int((bottom - top) // 45)))
    plot_w = width - LEFT - RIGHT
    band = plot_w / n
    bar_w = min(64.0, max(1.0, band * 0.72))

    def sy(y: float) -> float:
        return bottom - (y - yt[0]) / (yt[-1] - yt[0]) * (bottom - top)

    out = [svg_open(width, height, "bar", f"bar chart of {y_label}"), legend,
           _y_axis(yt, top, bottom, width, y_label), '<g class="axis x-axis">']
    label_w = min(96.0, max(text_width(name) for name in names))
    every = max(1, int(-(-n * (label_w + 8) // plot_w)))
    for i, name in enumerate(names):
        if i % every == 0:
            out.append(f'<text class="tick" x="{num(LEFT + band * (i + 0.5))}"'
                       f' y="{num(bottom + 16)}" text-anchor="middle" fill="{MUTED}">'
                       f"{esc(fit(name, max(band * every - 4, 12)))}</text>")
    out.append('</g><g class="bars">')
    zero = sy(0.0)
    for i, name in enumerate(names):
        x = LEFT + band * i + (band - bar_w) / 2
        total = totals[i]
        data = {"class": "bar", "data-category": name,
                "data-value": repr(total) if total is not None else ""}
        if not layers:
            title = f"{name}: {value_text(total) if total is not None else 'no data'} {y_label}"
            rect = ""
            if total is not None:
                y1, y2 = sorted((zero, sy(total)))
                rect = (f'<rect x="{num(x)}" y="{num(y1)}" width="{num(bar_w)}"'
                        f' height="{num(y2 - y1)}" fill="{PALETTE[0]}"/>')
            out.append(f"<g{attrs(data)}><title>{esc(title)}</title>{rect}</g>")
            continue
        parts, base = [], 0.0
        for j, (series, layer) in enumerate(layers.items()):
            v = layer[i]
            y1, y2 = sy(base + v), sy(base)
            base += v
            seg = {"class": f"segment series-{j} series-{slug(series)}", "data-series": series,
                   "data-value": repr(v)}
            parts.append(f'<rect{attrs(seg)} x="{num(x)}" y="{num(y1)}" width="{num(bar_w)}"'
                         f' height="{num(y2 - y1)}" fill="{PALETTE[j % len(PALETTE)]}">'
                         f"<title>{esc(series)}: {esc(value_text(v))} {esc(y_label)}</title></rect>")
        detail = ", ".join(f"{s}: {value_text(layer[i])}" for s, layer in layers.items())
        title = f"{name}: {value_text(base)} {y_label} ({detail})"
        out.append(f"<g{attrs(data)}><title>{esc(title)}</title>{''.join(parts)}</g>")
    out.append("</g></svg>")
    return "".join(out)
