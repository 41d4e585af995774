"""The task graph SVG (sloth_runner/ui/svg_dag.py), read back as XML the way a browser test
selects it: one node per task with its status, one edge per dependency, dependencies to the
left of what needs them, crossings reduced, names escaped, cycles and big graphs survived."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.ui.svg import bar_chart_svg, dag_layout, dag_svg, gantt_svg, line_chart_svg
from sloth_runner.ui.svg_dag import NODE_H, NODE_W
from tests.ui.svg_helpers import (
    NS,
    assert_safe,
    classes,
    marks,
    parse,
    path_points,
    rect_box,
    title,
)

CI = ["checkout", "deps", "lint", "unit", "image", "integration", "push", "notify"]
CI_EDGES = [("checkout", "deps"), ("checkout", "lint"), ("deps", "unit"), ("deps", "image"),
            ("unit", "integration"), ("image", "integration"), ("integration", "push"),
            ("lint", "push"), ("push", "notify"), ("checkout", "notify")]


def nodes_by_task(svg: str) -> dict[str, tuple[float, float, float, float]]:
    root = parse(svg)
    found = {n.get("data-task", ""): rect_box(n) for n in marks(root, "node", "g")}
    assert len(found) == len(marks(root, "node", "g")), "one node per task"
    return found


def random_dag(n: int, seed: int, fan: int = 3) -> tuple[list[str], list[tuple[str, str]]]:
    rnd = random.Random(seed)
    names = [f"task-{i}" for i in range(n)]
    edges = [(names[rnd.randrange(i)], names[i]) for i in range(1, n)
             for _ in range(rnd.randint(0, fan))]
    rnd.shuffle(names)  # the order given must not matter to the layering
    return names, edges


def test_one_node_per_task_with_its_status_class():
    statuses = {"checkout": "success", "deps": "success", "lint": "failed", "unit": "running",
                "image": "skipped", "integration": "not_run", "push": "up_to_date"}
    root = parse(dag_svg(CI, CI_EDGES, statuses))
    nodes = marks(root, "node", "g")
    assert sorted(n.get("data-task") for n in nodes) == sorted(CI)
    for n in nodes:
        status = statuses.get(n.get("data-task", ""), "pending")  # notify: no status yet
        assert n.get("data-status") == status
        assert f"status-{status}" in classes(n)
        assert status in title(n)
        assert n.find(f"{NS}text") is not None


def test_status_classes_are_safe_class_names():
    root = parse(dag_svg(["a"], [], {"a": "Weird Status!"}))
    (node,) = marks(root, "node", "g")
    assert classes(node) == ["node", "status-weird-status"]
    assert node.get("data-status") == "Weird Status!"


def test_one_edge_per_dependency_duplicates_self_loops_and_unknown_tasks_left_out():
    edges = [*CI_EDGES, ("deps", "unit"), ("lint", "lint"), ("ghost", "push"), ("push", "ghost")]
    root = parse(dag_svg(CI, edges, {}))
    drawn = [(e.get("data-from"), e.get("data-to")) for e in marks(root, "edge", "g")]
    assert sorted(drawn) == sorted(CI_EDGES)
    for e in marks(root, "edge", "g"):
        assert title(e) == f"{e.get('data-from')} \u2192 {e.get('data-to')}"
        assert len(e.findall(f"{NS}path")) == 2  # the line and its arrowhead


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 10_000), fan=st.integers(0, 4))
def test_every_dependency_is_drawn_left_of_the_task_that_needs_it(n, seed, fan):
    names, edges = random_dag(n, seed, fan)
    svg = dag_svg(names, edges, {})
    boxes = nodes_by_task(svg)
    assert len(boxes) == n
    for dep, task in set(edges):
        assert boxes[task][0] >= boxes[dep][0] + NODE_W + 20, (dep, task)
    # no two nodes overlap
    spots = sorted(boxes.values())
    for (x1, y1, _, _), (x2, y2, _, _) in zip(spots, spots[1:], strict=False):
        assert x1 != x2 or y2 >= y1 + NODE_H


def test_layer_is_the_longest_path_from_a_root():
    layout = dag_layout(CI, CI_EDGES)
    layer = dict(zip(layout.names, layout.layer, strict=False))
    assert layer == {"checkout": 0, "deps": 1, "lint": 1, "unit": 2, "image": 2,
                     "integration": 3, "push": 4, "notify": 5}
    boxes = nodes_by_task(dag_svg(CI, CI_EDGES, {}))
    assert boxes["unit"][0] == boxes["image"][0]  # same layer, same column
    assert boxes["notify"][0] > boxes["push"][0]   # pushed right by its longest path


def test_barycenter_sweeps_uncross_edges():
    # Given in an order that crosses: x above y, p above q, but x -> q and y -> p.
    svg = dag_svg(["x", "y", "p", "q"], [("x", "q"), ("y", "p")], {})
    boxes = nodes_by_task(svg)
    assert boxes["x"][1] < boxes["y"][1]
    assert boxes["q"][1] < boxes["p"][1]
    assert dag_layout(["x", "y", "p", "q"], [("x", "q"), ("y", "p")]).crossings == 0


def test_sweeps_reduce_crossings_on_a_shuffled_ladder():
    # Two ten-step chains, the second layer given in reverse: ordered, nothing crosses.
    left = [f"a{i}" for i in range(10)]
    right = [f"b{i}" for i in range(10)]
    edges = [(a, b) for a, b in zip(left, reversed(right), strict=True)]
    layout = dag_layout(left + right, edges)
    assert layout.crossings == 0
    boxes = nodes_by_task(dag_svg(left + right, edges, {}))
    for a, b in edges:
        assert boxes[a][1] == boxes[b][1]  # straight across


def test_long_edges_pass_between_the_nodes_of_the_layers_they_cross():
    tasks = ["a", "b", "c", "d", "b2", "c2"]
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("a", "b2"), ("b2", "c2")]
    root = parse(dag_svg(tasks, edges, {}))
    boxes = {n.get("data-task"): rect_box(n) for n in marks(root, "node", "g")}
    (long,) = [e for e in marks(root, "edge", "g") if (e.get("data-from"), e.get("data-to"))
               == ("a", "d")]
    points = path_points(long.findall(f"{NS}path")[0].get("d", ""))
    assert len(points) >= 10  # through two waypoints: several segments, not one curve
    for name in ("b", "c", "b2", "c2"):
        x, y, w, h = boxes[name]
        for px, py in points:
            assert not (x < px < x + w and y < py < y + h), (name, px, py)


def test_names_are_escaped_everywhere():
    name = 'build <&"quoted\'> \x00 task'
    svg = dag_svg([name, "next"], [(name, "next")], {name: "failed"}, {name: "/runs/1?a=1&b=<2>"})
    assert "<&" not in svg and "\x00" not in svg
    root = parse(svg)
    node = next(n for n in marks(root, "node", "g") if n.get("data-task") != "next")
    assert node.get("data-task") == name.replace("\x00", "\ufffd")
    assert title(node).startswith(name.replace("\x00", "\ufffd"))
    (edge,) = marks(root, "edge", "g")
    assert edge.get("data-from") == node.get("data-task")
    (link,) = root.iter(f"{NS}a")
    assert link.get("href") == "/runs/1?a=1&b=<2>"


def test_long_names_are_cut_with_an_ellipsis_and_kept_whole_in_the_tooltip():
    name = "build-the-container-image-for-every-architecture-we-ship"
    root = parse(dag_svg([name, "short"], [], {}))
    node = next(n for n in marks(root, "node", "g") if n.get("data-task") == name)
    text = node.find(f"{NS}text")
    assert text is not None and text.text
    assert text.text.endswith("\u2026") and len(text.text) < len(name)
    assert name.startswith(text.text[:-1])
    assert title(node).startswith(name)
    short = next(n for n in marks(root, "node", "g") if n.get("data-task") == "short")
    assert short.find(f"{NS}text").text == "short"  # type: ignore[union-attr]


def test_links_wrap_the_linked_nodes_and_unsafe_ones_are_dropped():
    links = {"checkout": "/runs/7/attempts/1", "lint": "https://ci.example/lint",
             "deps": "javascript:alert(1)", "unit": "data:text/html,x"}
    root = parse(dag_svg(CI, CI_EDGES, {}, links))
    wrapped = {a.get("href"): [n.get("data-task") for n in marks(a, "node", "g")]
               for a in root.iter(f"{NS}a")}
    assert wrapped == {"/runs/7/attempts/1": ["checkout"], "https://ci.example/lint": ["lint"]}


def test_a_cycle_does_not_hang_and_its_closing_edge_is_drawn_apart():
    tasks = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
    root = parse(dag_svg(tasks, edges, {}))
    assert len(marks(root, "node", "g")) == 4
    drawn = marks(root, "edge", "g")
    assert sorted((e.get("data-from"), e.get("data-to")) for e in drawn) == sorted(edges)
    back = [e for e in drawn if "back" in classes(e)]
    assert [(e.get("data-from"), e.get("data-to")) for e in back] == [("c", "a")]
    boxes = nodes_by_task(dag_svg(tasks, edges, {}))
    assert boxes["a"][0] < boxes["b"][0] < boxes["c"][0] < boxes["d"][0]


def test_dense_graph_with_many_cycles_still_lays_out_forward_edges_left_to_right():
    rnd = random.Random(5)
    names = [f"n{i}" for i in range(120)]
    edges = [(rnd.choice(names), rnd.choice(names)) for _ in range(600)]
    layout = dag_layout(names, edges)
    layer = layout.layer
    assert all(layer[u] < layer[v] for u, v in layout.edges)
    assert layout.back  # there were cycles to break
    root = parse(dag_svg(names, edges, {}))
    drawn = {(e.get("data-from"), e.get("data-to")) for e in marks(root, "edge", "g")}
    assert drawn == {(a, b) for a, b in edges if a != b}


def test_a_single_task_no_edges_and_no_tasks():
    root = parse(dag_svg(["only"], [], {"only": "success"}))
    assert [n.get("data-task") for n in marks(root, "node", "g")] == ["only"]
    assert marks(root, "edge", "g") == []
    root = parse(dag_svg(["a", "b", "c"], [], {}))
    assert len({rect_box(n)[0] for n in marks(root, "node", "g")}) == 1  # one layer
    root = parse(dag_svg([], [], {}))
    assert marks(root, "node") == [] and "no tasks" in "".join(root.itertext())


def test_300_tasks_render_and_fit_the_viewbox():
    names, edges = random_dag(300, seed=11)
    svg = dag_svg(names, edges, {n: "success" for n in names[::2]})
    root = parse(svg)
    assert len(marks(root, "node", "g")) == 300
    assert len(marks(root, "edge", "g")) == len(set(edges))
    _, _, vw, vh = (float(v) for v in root.get("viewBox", "").split())
    assert float(root.get("width", 0)) == vw
    for n in marks(root, "node", "g"):
        x, y, w, h = rect_box(n)
        assert 0 <= x and x + w <= vw and 0 <= y and y + h <= vh


def test_a_wide_layer_wraps_into_columns_instead_of_one_endless_column():
    children = [f"shard-{i}" for i in range(300)]
    edges = [("split", c) for c in children] + [(c, "merge") for c in children]
    boxes = nodes_by_task(dag_svg(["split", *children, "merge"], edges, {}))
    columns = {boxes[c][0] for c in children}
    assert len(columns) > 1
    height = max(y + h for _, y, _, h in boxes.values())
    assert height < 300 * NODE_H  # far shorter than one column of 300
    assert min(columns) > boxes["split"][0] + NODE_W
    assert boxes["merge"][0] > max(columns) + NODE_W


def test_many_long_edges_beyond_the_waypoint_budget_are_drawn_direct():
    names = [f"c{i}" for i in range(400)]
    edges = [(names[i], names[i + 1]) for i in range(399)] + \
        [(names[0], names[i]) for i in range(2, 400)]
    root = parse(dag_svg(names, edges, {}))
    assert len(marks(root, "edge", "g")) == len(edges)
    assert len(dag_layout(names, edges).layer) == 400  # no waypoints were made


def test_drawings_are_safe_to_inline():
    t = 1_780_000_000.0
    for svg in (dag_svg(CI, CI_EDGES, {"lint": "failed"}, {"lint": "/t/lint"}),
                dag_svg(["a", "b"], [("a", "b"), ("b", "a")], {}),
                gantt_svg([{"task": "a", "attempt": 1, "lane": "h", "start": t, "end": t + 1.234,
                            "status": "success"}], ["h"]),
                line_chart_svg({"s": [(t, 1.23456), (t + 60, 2.5)]}, y_label="s",
                               marks=[(t, 1.23456, "odd")]),
                bar_chart_svg(["a", "b"], [1.333, 2.0], y_label="n"),
                bar_chart_svg(["a"], None, y_label="n", stacked={"x": [1.1], "y": [2.2]})):
        assert_safe(svg)
