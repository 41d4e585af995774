"""The timeline SVG (sloth_runner/ui/svg_gantt.py): a lane per host or agent, a bar per attempt,
retries as bars of their own, parallel attempts never hiding one another, a readable time axis."""

from __future__ import annotations

from datetime import UTC

from sloth_runner.ui.svg import gantt_svg
from sloth_runner.ui.svg_gantt import MIN_BAR_W
from tests.ui.svg_helpers import NS, classes, marks, parse, rect_box, tick_values, title

T = 1_780_000_000.0


def bar(task, attempt, lane, start, end, status="success"):
    return {"task": task, "attempt": attempt, "lane": lane, "start": T + start,
            "end": None if end is None else T + end, "status": status}


RUN = [bar("checkout", 1, "build-01", 0, 2),
       bar("fetch", 1, "build-01", 2, 10, "failed"),
       bar("fetch", 2, "build-01", 12, 20, "failed"),
       bar("fetch", 3, "agent-2", 22, 30),
       bar("test", 1, "agent-2", 30, 95)]


def test_one_bar_per_attempt_in_its_own_lane():
    root = parse(gantt_svg(RUN, ["build-01", "agent-2"]))
    lanes = marks(root, "lane", "g")
    assert [lane.get("data-lane") for lane in lanes] == ["build-01", "agent-2"]
    seen = []
    for lane in lanes:
        bg = next(r for r in lane.iter(f"{NS}rect") if "lane-bg" in classes(r))
        _, top, _, height = rect_box(bg)
        for b in marks(lane, "bar", "g"):
            assert b.get("data-lane") == lane.get("data-lane")
            _, y, _, h = rect_box(b)
            assert top <= y and y + h <= top + height
            seen.append((b.get("data-task"), b.get("data-attempt"), b.get("data-lane")))
    assert sorted(seen) == sorted((b["task"], str(b["attempt"]), b["lane"]) for b in RUN)
    assert len(marks(root, "bar", "g")) == len(RUN)


def test_retries_are_separate_bars_in_time_order_with_their_status():
    root = parse(gantt_svg(RUN, ["build-01", "agent-2"]))
    fetch = sorted((b for b in marks(root, "bar", "g") if b.get("data-task") == "fetch"),
                   key=lambda b: int(b.get("data-attempt", 0)))
    assert [b.get("data-attempt") for b in fetch] == ["1", "2", "3"]
    assert [b.get("data-status") for b in fetch] == ["failed", "failed", "success"]
    assert "status-failed" in classes(fetch[0]) and "status-success" in classes(fetch[2])
    xs = [rect_box(b)[0] for b in fetch]
    assert xs[0] < xs[1] < xs[2]
    assert "attempt 2 on build-01" in title(fetch[1])
    # widths follow durations: 8 s vs 65 s
    test = next(b for b in marks(root, "bar", "g") if b.get("data-task") == "test")
    assert abs(rect_box(test)[2] / rect_box(fetch[0])[2] - 65 / 8) < 0.1


def test_parallel_attempts_in_one_lane_get_rows_of_their_own():
    bars = [bar("a", 1, "h", 0, 10), bar("b", 1, "h", 5, 15), bar("c", 1, "h", 10, 20)]
    root = parse(gantt_svg(bars, ["h"]))
    (lane,) = marks(root, "lane", "g")
    assert lane.get("data-rows") == "2"
    y = {b.get("data-task"): rect_box(b)[1] for b in marks(root, "bar", "g")}
    assert y["a"] != y["b"]  # overlap in time: apart
    assert y["a"] == y["c"]  # c starts when a ends: the same row


def test_instant_attempts_have_a_visible_width_and_do_not_cover_each_other():
    bars = [bar("x", 1, "h", 0, 0, "skipped"), bar("y", 1, "h", 0, 0, "up_to_date"),
            bar("z", 1, "h", 0, 3600)]
    root = parse(gantt_svg(bars, ["h"]))
    boxes = {b.get("data-task"): rect_box(b) for b in marks(root, "bar", "g")}
    assert boxes["x"][2] >= MIN_BAR_W and boxes["y"][2] >= MIN_BAR_W
    assert len({box[1] for box in boxes.values()}) == 3


def test_a_running_attempt_reaches_now_and_has_no_end():
    bars = [bar("done", 1, "h", 0, 10), bar("going", 1, "h", 10, None, "running")]
    root = parse(gantt_svg(bars, ["h"], now=T + 40))
    going = next(b for b in marks(root, "bar", "g") if b.get("data-task") == "going")
    done = next(b for b in marks(root, "bar", "g") if b.get("data-task") == "done")
    assert going.get("data-end") is None and float(done.get("data-end", 0)) == T + 10
    assert abs(rect_box(going)[2] / rect_box(done)[2] - 3) < 0.05
    assert "still running" in title(going)


def test_lanes_keep_their_order_idle_ones_stay_and_unlisted_ones_are_added():
    bars = [bar("a", 1, "zeta", 0, 1), bar("b", 1, "surprise", 0, 1), bar("c", 1, None, 0, 1)]
    root = parse(gantt_svg(bars, ["zeta", "idle", "alpha"]))
    assert [lane.get("data-lane") for lane in marks(root, "lane", "g")] == \
        ["zeta", "idle", "alpha", "surprise", "local"]


def test_time_axis_ticks_increase_cover_the_run_and_use_the_span_s_unit():
    for span, unit in ((0.4, "ms"), (40, "s"), (95, "m"), (5 * 3600, "h"), (4 * 86400, "d")):
        root = parse(gantt_svg([bar("a", 1, "h", 0, span)], ["h"]))
        values = tick_values(root)
        assert values[0] == 0 and values[-1] >= span
        assert all(a < b for a, b in zip(values, values[1:], strict=False))
        steps = {round(b - a, 6) for a, b in zip(values, values[1:], strict=False)}
        assert len(steps) == 1
        labels = [t.text or "" for t in marks(root, "tick", "text")][1:]
        assert all(label[-1] in "smhd" for label in labels)
        assert any(label.endswith(unit) for label in labels), (span, labels)
        assert all(not label.endswith("ms") for label in labels) or unit == "ms"


def test_names_escaped_and_tooltips_name_task_attempt_lane_status_and_time():
    name, lane = 'deploy <"prod"> & co', "host<1>"
    root = parse(gantt_svg([bar(name, 2, lane, 0, 61.5, "failed")], [lane], tz=UTC))
    (b,) = marks(root, "bar", "g")
    assert b.get("data-task") == name and b.get("data-lane") == lane
    assert title(b) == (f"{name} \u2014 attempt 2 on {lane}\nfailed, 1m2s\n"
                        "started 2026-05-28 20:26:40")
    assert lane in "".join(marks(root, "lane-label", "text")[0].itertext())


def test_no_attempts_gives_a_small_message():
    for bars in ([], [{"task": "a", "attempt": 1, "lane": "h", "start": None, "end": None,
                       "status": "pending"}]):
        root = parse(gantt_svg(bars, ["h"]))
        assert marks(root, "bar") == []
        assert "no attempts" in "".join(root.itertext())
        assert float(root.get("width", 0)) <= 400
