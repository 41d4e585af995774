"""A run's timeline as SVG: one lane per host or agent, one bar per attempt.

Every attempt is a bar of its own, so a retried task shows each try where and when it ran. Tasks
run in parallel on one host, so a lane is split into as many rows as its busiest moment needs
(greedy interval packing, in pixels so that even the minimum-width bars of instant attempts never
cover one another). The time axis counts from the run's first start, in the unit its span calls
for (ms, s, min, h, days); the absolute start is written above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from sloth_runner.ui.svg_axes import duration_label, duration_ticks
from sloth_runner.ui.svg_common import (
    AXIS,
    GRID,
    MUTED,
    TEXT,
    attrs,
    empty_svg,
    esc,
    finite,
    fit,
    num,
    slug,
    status_fill,
    status_text,
    svg_open,
)

LABEL_W = 150.0   # lane names
AXIS_H = 40.0     # caption and tick labels above the lanes
ROW_H, BAR_H = 24.0, 18.0
LANE_PAD = 4.0
MIN_BAR_W = 3.0   # an attempt that took no measurable time stays visible
RIGHT = 24.0      # room for the last tick label


def _pack(bars: list[dict[str, Any]]) -> int:
    """Give each bar (sorted by x) the first row free at its left edge; return the row count."""
    ends: list[float] = []
    for bar in bars:
        row = next((r for r, end in enumerate(ends) if end <= bar["x"] + 0.01), len(ends))
        if row == len(ends):
            ends.append(0.0)
        ends[row] = bar["x"] + bar["w"]
        bar["row"] = row
    return max(1, len(ends))


def _bar(bar: dict[str, Any], top: float, lane: str, tz: tzinfo | None) -> str:
    status, task, attempt = bar["status"], bar["task"], bar["attempt"]
    y = top + LANE_PAD + bar["row"] * ROW_H + (ROW_H - BAR_H) / 2
    when = datetime.fromtimestamp(bar["start"], tz).strftime("%Y-%m-%d %H:%M:%S")
    took = "still running" if bar["open"] else duration_label(bar["end"] - bar["start"])
    title = f"{task} \u2014 attempt {attempt} on {lane}\n{status}, {took}\nstarted {when}"
    label = fit(task if attempt in (1, "1") else f"{task} #{attempt}", bar["w"] - 6)
    text = ""
    if label and label != "\u2026":
        text = (f'<text x="{num(bar["x"] + 3)}" y="{num(y + BAR_H / 2 + 4)}"'
                f' fill="{status_text(status)}">{esc(label)}</text>')
    data = {"class": f"bar status-{slug(status)}", "data-task": task, "data-attempt": attempt,
            "data-lane": lane, "data-status": status, "data-start": f"{bar['start']:.3f}",
            "data-end": None if bar["open"] else f"{bar['end']:.3f}"}
    return (f"<g{attrs(data)}><title>{esc(title)}</title>"
            f'<rect x="{num(bar["x"])}" y="{num(y)}" width="{num(bar["w"])}"'
            f' height="{num(BAR_H)}" rx="3" fill="{status_fill(status)}"/>{text}</g>')


def gantt_svg(bars: Iterable[Mapping[str, Any]], lanes: Sequence[str], *, width: float = 900.0,
              now: float | None = None, tz: tzinfo | None = None) -> str:
    """Attempts as bars: each a mapping with task, attempt, lane, start and end (epoch seconds;
    end None while running: drawn up to `now`, or to the latest time known) and status. Lanes
    are drawn in the order given; a lane only bars name is added after them. Times in tooltips
    are in `tz` (None: this machine's zone)."""
    items: list[dict[str, Any]] = []
    for raw in bars:
        start = finite(raw.get("start"))
        if start is None:
            continue
        end = finite(raw.get("end"))
        items.append({"task": str(raw.get("task", "?")), "attempt": raw.get("attempt", 1),
                      "lane": str(raw.get("lane") or "local"), "status": str(raw.get("status") or
                                                                              "unknown"),
                      "start": start, "end": end, "open": end is None})
    if not items:
        return empty_svg("gantt", "no attempts")
    t0 = min(b["start"] for b in items)
    t1 = max(max(b["start"], b["end"] or b["start"]) for b in items)
    if now is not None and any(b["open"] for b in items):
        t1 = max(t1, now)
    for b in items:
        if b["open"]:
            b["end"] = t1
        b["end"] = max(b["end"], b["start"])
    plot_x = LABEL_W + 8
    plot_w = max(100.0, width - plot_x - RIGHT)
    ticks = duration_ticks(t1 - t0, max(2, int(plot_w // 80)))
    scale = plot_w / ticks[-1][0]
    for b in items:
        b["x"] = plot_x + (b["start"] - t0) * scale
        b["w"] = max(MIN_BAR_W, (b["end"] - b["start"]) * scale)
    order = list(dict.fromkeys([str(name) for name in lanes] + [b["lane"] for b in items]))
    by_lane: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for b in sorted(items, key=lambda b: (b["x"], b["w"])):
        by_lane[b["lane"]].append(b)
    rows = {name: _pack(by_lane[name]) for name in order}
    height = AXIS_H + sum(rows[n] * ROW_H + 2 * LANE_PAD for n in order) + 8
    started = datetime.fromtimestamp(t0, tz).strftime("%Y-%m-%d %H:%M:%S")
    out = [svg_open(width, height, "gantt",
                    f"timeline: {len(items)} attempts on {len(order)} lanes"),
           f'<text class="caption" x="{num(plot_x)}" y="14" fill="{MUTED}">'
           f"time since {esc(started)}</text>", '<g class="axis">']
    for t, label in ticks:
        x = plot_x + t * scale
        out.append(f'<line x1="{num(x)}" y1="{num(AXIS_H - 4)}" x2="{num(x)}"'
                   f' y2="{num(height - 8)}" stroke="{GRID}"/>'
                   f'<text class="tick" x="{num(x)}" y="{num(AXIS_H - 10)}" text-anchor="middle"'
                   f' fill="{MUTED}" data-value="{num(t)}">{esc(label)}</text>')
    out.append("</g>")
    top = AXIS_H
    for i, name in enumerate(order):
        h = rows[name] * ROW_H + 2 * LANE_PAD
        out.append(f'<g{attrs({"class": "lane", "data-lane": name, "data-rows": rows[name]})}>'
                   f'<rect class="lane-bg" x="0" y="{num(top)}" width="{num(width)}"'
                   f' height="{num(h)}" fill="{"#f3f4f6" if i % 2 == 0 else "#ffffff"}"'
                   f' fill-opacity="0.5" stroke="{AXIS}" stroke-width="0.3"/>'
                   f'<text class="lane-label" x="8" y="{num(top + h / 2 + 4)}" fill="{TEXT}">'
                   f"<title>{esc(name)}</title>{esc(fit(name, LABEL_W - 12))}</text>")
        out.extend(_bar(b, top, name, tz) for b in by_lane[name])
        out.append("</g>")
        top += h
    out.append("</svg>")
    return "".join(out)
