"""Line and bar charts (sloth_runner/ui/svg_charts.py) and the ticks of every axis
(sloth_runner/ui/svg_axes.py): nice, increasing, covering the data, in units people count in."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.ui.svg import (
    bar_chart_svg,
    duration_ticks,
    line_chart_svg,
    nice_ticks,
    time_ticks,
)
from sloth_runner.ui.svg_axes import DURATION_STEPS, number_labels
from tests.ui.svg_helpers import (
    NS,
    classes,
    marks,
    parse,
    path_points,
    rect_box,
    tick_values,
    title,
)

T = 1_780_000_000.0
DAY = 86400.0


def is_nice(step: float, rel: float = 1e-9) -> bool:
    """1, 2 or 5 times a power of ten, give or take `rel` (relative)."""
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    return any(abs(mantissa - m) <= m * rel for m in (1, 2, 5, 10))


@settings(max_examples=300, deadline=None)
@given(lo=st.floats(-1e9, 1e9), width=st.floats(1e-6, 1e9), count=st.integers(2, 12))
def test_nice_ticks_are_evenly_spaced_nice_and_cover_the_range(lo, width, count):
    hi = lo + width
    if hi - lo < abs(lo) * 1e-9:  # below float resolution at this magnitude
        return
    ticks = nice_ticks(lo, hi, count)
    assert 2 <= len(ticks) <= count + 3
    step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    noise = 8 * math.ulp(max(abs(lo), abs(hi)))  # what floats can tell apart at this size
    assert ticks[0] <= lo + 1e-9 * step and ticks[-1] >= hi - 1e-9 * step
    assert is_nice(step, max(1e-9, noise / step)), (ticks, step)
    for a, b in zip(ticks, ticks[1:], strict=False):
        assert b > a and abs((b - a) - step) <= max(noise, 1e-9 * step)
    labels = number_labels(ticks)
    assert len(set(labels)) == len(labels), labels


def test_nice_ticks_examples_and_degenerate_ranges():
    assert nice_ticks(0, 7.3) == [0, 2, 4, 6, 8]
    assert nice_ticks(0, 0.47, 5) == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert nice_ticks(3, 3)[0] < 3 < nice_ticks(3, 3)[-1]
    assert nice_ticks(0, 0) == [-1, 0, 1] or nice_ticks(0, 0)[0] < 0 < nice_ticks(0, 0)[-1]
    assert number_labels([0, 5000, 10000, 15000]) == ["0", "5k", "10k", "15k"]
    assert number_labels([0, 0.05, 0.1]) == ["0", "0.05", "0.10"]
    with pytest.raises(ValueError):
        nice_ticks(0, math.inf)


def test_duration_ticks_pick_a_step_and_unit_from_the_span():
    cases = {0.3: "50ms", 1.4: "0.2s", 40: "5s", 95: "15s", 700: "2m", 5 * 3600: "1h",
             100_000: "6h", 10 * DAY: "2d"}
    for span, second in cases.items():
        ticks = duration_ticks(span)
        assert ticks[0] == (0.0, "0") and ticks[-1][0] >= span
        assert ticks[1][1] == second, (span, ticks)
        assert ticks[1][0] in DURATION_STEPS
        assert len(ticks) <= 9
    assert [label for _, label in duration_ticks(95)][4:] == ["1m", "1m15s", "1m30s", "1m45s"]


@settings(max_examples=200, deadline=None)
@given(lo=st.floats(1e9, 2e9), span=st.floats(0.5, 5e8), count=st.integers(3, 10))
def test_time_ticks_increase_fall_within_the_span_and_are_labelled(lo, span, count):
    ticks = time_ticks(lo, lo + span, count, UTC)
    values = [t for t, _ in ticks]
    assert values and all(a < b for a, b in zip(values, values[1:], strict=False))
    assert all(lo - 1 <= t <= lo + span + 1 for t in values)
    assert len(ticks) <= count + 2
    assert all(label for _, label in ticks)


def test_time_ticks_fall_on_round_clock_and_calendar_times():
    for t, _ in time_ticks(T, T + 6 * 3600, 8, UTC):  # whole hours
        assert t % 3600 == 0
    ticks = time_ticks(T, T + 5 * DAY, 8, UTC)  # local midnights
    assert all(t % DAY == 0 for t, _ in ticks) and ticks[0][1] == "May 29"
    ticks = time_ticks(T, T + 60 * DAY, 8, UTC)  # Mondays
    assert all(datetime.fromtimestamp(t, UTC).weekday() == 0 for t, _ in ticks)
    ticks = time_ticks(T, T + 700 * DAY, 8, UTC)  # first of a month
    assert all(datetime.fromtimestamp(t, UTC).day == 1 for t, _ in ticks)
    assert ticks[0][1] == "Jul 2026"
    ticks = time_ticks(T, T + 36 * 3600, 8, UTC)  # the date where the day changes
    assert [label for _, label in ticks if " " in label] == ["May 29 00:00", "May 30 00:00"]


def series_points(root):
    return {s.get("data-series"): marks(s, "point", "circle") for s in marks(root, "series", "g")}


def test_line_chart_draws_each_series_with_its_points_legend_and_anomalies():
    slow = (T + 3 * DAY, 95.0)
    data = {"build": [(T + i * DAY, 30.0 + i) for i in range(6)],
            "test <&>": [(T + i * DAY, 60.0) for i in range(6)]}
    data["build"][3] = slow
    svg = line_chart_svg(data, y_label="seconds", marks=[{"x": slow[0], "y": slow[1],
                                                         "label": "build took 95s"}], tz=UTC)
    root = parse(svg)
    points = series_points(root)
    assert list(points) == ["build", "test <&>"] and all(len(p) == 6 for p in points.values())
    assert [i.get("data-series") for i in marks(root, "legend-item", "g")] == list(data)
    (anomaly,) = marks(root, "anomaly", "circle")
    assert title(anomaly) == "build took 95s"
    peak = max(points["build"], key=lambda c: -float(c.get("cy", 0)))  # highest on screen
    assert (anomaly.get("cx"), anomaly.get("cy")) == (peak.get("cx"), peak.get("cy"))
    assert "test <&>: 60" in title(points["test <&>"][0])
    ys = tick_values(root, "y-axis")
    assert ys[0] == 0 and ys[-1] >= 95 and is_nice(ys[1] - ys[0])
    xs = tick_values(root, "x-axis")
    assert all(a < b for a, b in zip(xs, xs[1:], strict=False))


def test_line_points_sorted_by_x_and_a_missing_value_breaks_the_line():
    points = [(5, 5.0), (2, 2.0), (1, 1.0), (3, None), (4, 4.0), (6, math.nan), (7, 7.0),
              (8, 8.0)]
    root = parse(line_chart_svg({"s": points}, y_label="v", x_is_time=False))
    (line,) = marks(root, "line", "path")
    d = line.get("d", "")
    assert [part.count("L") for part in d.split("M")[1:]] == [1, 1, 1]  # 1-2 | 4-5 | 7-8
    cx = [float(c.get("cx", 0)) for c in marks(root, "point", "circle")]
    assert cx == sorted(cx) and len(cx) == 6
    line_x = [x for x, _ in path_points(d)]
    assert line_x == sorted(line_x) and line_x == cx


def test_numeric_x_axis_gets_nice_ticks_and_marks_may_be_tuples():
    root = parse(line_chart_svg({"a": [(0, 1.0), (37, 2.0)]}, y_label="n", x_is_time=False,
                                marks=[(37, 2.0, "last"), (10, 1.5)]))
    xs = tick_values(root, "x-axis")
    assert xs[0] == 0 and xs[-1] >= 37 and is_nice(xs[1] - xs[0])
    anomalies = marks(root, "anomaly", "circle")
    assert [title(a) for a in anomalies][0] == "last" and len(anomalies) == 2


def test_line_chart_with_nothing_to_draw():
    for series in ({}, {"a": []}, {"a": [(T, None)]}):
        root = parse(line_chart_svg(series, y_label="s"))
        assert marks(root, "series") == [] and "no data" in "".join(root.itertext())
    root = parse(line_chart_svg({"a": [(T, 0.0)]}, y_label="s"))  # one point, all zero
    assert len(marks(root, "point", "circle")) == 1


def bars_of(root):
    return {b.get("data-category"): b for b in marks(root, "bar", "g")}


def test_bar_chart_one_bar_per_category_heights_follow_values():
    hours = [f"{h:02}" for h in range(24)]
    values = [float(h % 5) for h in range(24)]
    root = parse(bar_chart_svg(hours, values, y_label="failures"))
    bars = bars_of(root)
    assert list(bars) == hours
    assert rect_box(bars["04"])[3] == pytest.approx(4 * rect_box(bars["01"])[3], abs=0.3)
    assert bars["00"].get("data-value") == "0.0" and rect_box(bars["00"])[3] == 0
    assert title(bars["03"]) == "03: 3 failures"
    xs = [rect_box(b)[0] for b in bars.values()]
    assert xs == sorted(xs)
    ys = tick_values(root, "y-axis")
    assert ys[0] == 0 and ys[-1] >= 4 and is_nice(ys[1] - ys[0])


def test_bar_chart_missing_and_negative_values():
    root = parse(bar_chart_svg(["a", "b", "c"], [2.0, None, -1.0], y_label="n"))
    bars = bars_of(root)
    assert bars["b"].find(f"{NS}rect") is None and bars["b"].get("data-value") == ""
    zero = next(t for t in marks(root, "tick", "text") if float(t.get("data-value", 1)) == 0)
    zero_y = float(zero.get("y", 0)) - 4
    _, ya, _, ha = rect_box(bars["a"])
    _, yc, _, hc = rect_box(bars["c"])
    assert ya + ha == pytest.approx(zero_y, abs=0.2) and yc == pytest.approx(zero_y, abs=0.2)
    assert ha == pytest.approx(2 * hc, abs=0.3)


def test_stacked_bars_pile_the_series_up():
    days = ["05-01", "05-02", "05-03"]
    stacked = {"gpt-4o": [1.0, 0.0, 2.0], "small <model>": [0.5, 0.25]}  # short: padded with 0
    root = parse(bar_chart_svg(days, None, y_label="USD", stacked=stacked))
    bars = bars_of(root)
    assert list(bars) == days
    first = bars["05-01"]
    segs = marks(first, "segment", "rect")
    assert [s.get("data-series") for s in segs] == list(stacked)
    assert float(first.get("data-value", 0)) == 1.5
    (_, y0, _, h0), (_, y1, _, h1) = rect_box(segs[0]), rect_box(segs[1])
    assert h0 == pytest.approx(2 * h1, abs=0.3)
    assert y1 + h1 == pytest.approx(y0, abs=0.2)  # the second sits on the first
    assert "series-0" in classes(segs[0]) and "series-1" in classes(segs[1])
    assert title(segs[1]) == "small <model>: 0.5 USD"
    assert "(gpt-4o: 1, small <model>: 0.5)" in title(first)
    assert bars["05-03"].get("data-value") == "2.0"
    assert [i.get("data-series") for i in marks(root, "legend-item", "g")] == list(stacked)


def test_crowded_category_labels_are_thinned_but_every_bar_is_drawn():
    days = [f"2026-05-{d:02}" for d in range(1, 31)] + [f"2026-06-{d:02}" for d in range(1, 31)]
    root = parse(bar_chart_svg(days, [1.0] * 60, y_label="USD"))
    assert len(bars_of(root)) == 60
    labels = [t for t in marks(root, "tick", "text") if t.get("data-value") is None]
    assert 3 <= len(labels) < 60


def test_bar_chart_with_nothing_to_draw():
    for args in (([], []), ([], None)):
        root = parse(bar_chart_svg(*args, y_label="n"))
        assert marks(root, "bar") == [] and "no data" in "".join(root.itertext())
    root = parse(bar_chart_svg(["a", "b"], [0, 0], y_label="n"))  # all zero: still a chart
    assert len(bars_of(root)) == 2
    root = parse(bar_chart_svg(["a"], [], y_label="n", stacked={}))
    assert list(bars_of(root)) == ["a"]
