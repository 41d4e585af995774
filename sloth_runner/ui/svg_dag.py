"""A run's task graph as SVG, laid out on the server so the page needs no script or library.

Sugiyama-style, left to right: a task's column (layer) is the longest path to it from a root, so
every dependency is drawn to the left of the tasks that need it; an edge spanning several layers is
routed through invisible waypoints (one per layer crossed, within a budget), and a few barycenter
sweeps order each layer to reduce crossings, keeping the order with the fewest. A layer with more
tasks than fit in a column wraps into several columns, so a 1,000-task run grows wider (the SVG has
a viewBox; the page scrolls or scales it) instead of becoming one unreadable 40,000-pixel column.

The engine rejects cycles, but the drawing must never hang on bad data: a depth-first search sets
aside the edges that close a cycle; they are drawn (class `back`) but play no part in the layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sloth_runner.ui.svg_common import (
    AXIS,
    attrs,
    empty_svg,
    esc,
    fit,
    num,
    safe_href,
    slug,
    status_fill,
    status_text,
    svg_open,
)

NODE_W, NODE_H = 160.0, 28.0
ROW = 40.0         # a task's slot in a column
WAYPOINT_ROW = 14.0  # a long edge's slot in a column it crosses
LAYER_GAP = 64.0   # between layers, where the edges run
WRAP_GAP = 24.0    # between the columns of one wrapped layer
MAX_ROWS = 24      # slots per column before a layer wraps
MARGIN = 12.0
SWEEPS = 4         # down-and-up barycenter passes
WAYPOINT_BUDGET = 4  # waypoints per task at most; beyond, long edges are drawn direct


@dataclass
class DagLayout:
    """Where everything goes. Items 0..len(names)-1 are tasks; higher ones are waypoints."""

    names: list[str]
    edges: list[tuple[int, int]]            # forward edges (task indices), drawn left to right
    back: list[tuple[int, int]]             # edges closing a cycle: drawn, not laid out
    layer: list[int]                        # of every item
    chains: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # edge -> waypoints
    order: list[list[int]] = field(default_factory=list)  # items of each layer, top to bottom
    x: list[float] = field(default_factory=list)  # left side of every item
    y: list[float] = field(default_factory=list)  # top of every item
    width: float = 0.0
    height: float = 0.0
    crossings: int = 0


def _back_edges(n: int, succ: list[list[int]]) -> set[tuple[int, int]]:
    """Edges into a task still on the depth-first stack (iterative: no recursion limit)."""
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    back: set[tuple[int, int]] = set()
    for root in range(n):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if state[nxt] == 1:
                    back.add((node, nxt))
                elif state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, iter(succ[nxt])))
                    break
            else:
                state[node] = 2
                stack.pop()
    return back


def _layers(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Longest path from a root, in topological (Kahn) order."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for u, v in edges:
        succ[u].append(v)
        indeg[v] += 1
    layer = [0] * n
    ready = [i for i in range(n) if indeg[i] == 0]
    while ready:
        u = ready.pop()
        for v in succ[u]:
            layer[v] = max(layer[v], layer[u] + 1)
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    return layer


def _crossings(order: list[list[int]], down: list[list[int]], pos: list[int]) -> int:
    """Crossings between adjacent layers (Barth, Juenger, Mutzel: inversions via a Fenwick tree)."""
    total = 0
    for upper in order[:-1]:
        pairs = sorted((pos[u], pos[v]) for u in upper for v in down[u])
        if len(pairs) < 2:
            continue
        size = max(p for _, p in pairs) + 1
        tree = [0] * (size + 1)
        for seen, (_, p) in enumerate(pairs):
            i, below = p + 1, 0
            while i > 0:
                below += tree[i]
                i -= i & -i
            total += seen - below
            i = p + 1
            while i <= size:
                tree[i] += 1
                i += i & -i
    return total


def _order(layout: DagLayout, up: list[list[int]], down: list[list[int]]) -> None:
    """Barycenter sweeps, down then up; keeps the order with the fewest crossings."""
    order = layout.order
    pos = [0] * len(layout.layer)
    rel = [0.0] * len(layout.layer)  # position in its layer, 0..1: layers differ in length

    def place() -> None:
        for items in order:
            for i, item in enumerate(items):
                pos[item] = i
                rel[item] = (i + 0.5) / len(items)

    def sweep(layers: Iterable[int], nbrs: list[list[int]]) -> None:
        for li in layers:
            items = order[li]
            keys = {item: (sum(rel[o] for o in nbrs[item]) / len(nbrs[item]) if nbrs[item]
                           else rel[item]) for item in items}
            items.sort(key=keys.__getitem__)
            for i, item in enumerate(items):
                pos[item] = i
                rel[item] = (i + 0.5) / len(items)

    place()
    best = [list(items) for items in order]
    fewest = _crossings(order, down, pos)
    for _ in range(SWEEPS):
        if fewest == 0:
            break
        sweep(range(1, len(order)), up)
        sweep(range(len(order) - 2, -1, -1), down)
        count = _crossings(order, down, pos)
        if count < fewest:
            fewest, best = count, [list(items) for items in order]
    layout.order, layout.crossings = best, fewest


def _column_height(layout: DagLayout, n: int, tallest: float) -> float:
    """The height at which layers wrap: a screenful, or more for big graphs, so that the
    drawing stays about twice as wide as tall instead of becoming a long strip."""
    slots = [sum(ROW if item < n else WAYPOINT_ROW for item in items) for items in layout.order]
    while True:
        width = sum(math.ceil(h / tallest) * (NODE_W + WRAP_GAP) + LAYER_GAP for h in slots)
        if width <= 2.5 * tallest or tallest >= max(slots, default=0):
            return tallest
        tallest *= 1.25


def _place(layout: DagLayout, n: int) -> None:
    """Coordinates: layers as columns left to right, wrapped when tall, centred vertically."""
    total = len(layout.layer)
    layout.x, layout.y = [0.0] * total, [0.0] * total
    column = _column_height(layout, n, MAX_ROWS * ROW)
    heights = []
    x = MARGIN
    for items in layout.order:
        slots = [ROW if item < n else WAYPOINT_ROW for item in items]
        wraps = max(1, math.ceil(sum(slots) / column))
        # Round robin, each column a little lower than the last: the top-to-bottom order of
        # the layer survives the wrapping, so edges stay short.
        tops = [col * ROW / wraps for col in range(wraps)]
        for i, item in enumerate(items):
            col = i % wraps
            layout.x[item] = x + col * (NODE_W + WRAP_GAP)
            layout.y[item] = tops[col]
            tops[col] += slots[i]
        heights.append(max(tops))
        x += wraps * NODE_W + (wraps - 1) * WRAP_GAP + LAYER_GAP
    tallest = max(heights, default=ROW)
    for items, h in zip(layout.order, heights, strict=True):
        shift = MARGIN + (tallest - h) / 2
        for item in items:
            layout.y[item] += shift
    layout.width = x - LAYER_GAP + MARGIN
    layout.height = tallest + 2 * MARGIN + (40 if layout.back else 0)  # room for cycle arcs


def dag_layout(tasks: Iterable[str], edges: Iterable[tuple[str, str]]) -> DagLayout:
    """Lay out tasks and (dependency, dependent) edges; unknown names, self-loops and
    duplicates among the edges are left out."""
    names = list(dict.fromkeys(str(t) for t in tasks))
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    pairs: list[tuple[int, int]] = []
    for a, b in edges:
        u, v = index.get(str(a)), index.get(str(b))
        if u is not None and v is not None and u != v:
            pairs.append((u, v))
    pairs = list(dict.fromkeys(pairs))
    succ: list[list[int]] = [[] for _ in range(n)]
    for u, v in pairs:
        succ[u].append(v)
    back = _back_edges(n, succ)
    forward = [e for e in pairs if e not in back]
    layout = DagLayout(names=names, edges=forward, back=[e for e in pairs if e in back],
                       layer=_layers(n, forward))
    up: list[list[int]] = [[] for _ in range(n)]
    down: list[list[int]] = [[] for _ in range(n)]
    needed = sum(layout.layer[v] - layout.layer[u] - 1 for u, v in forward)
    for u, v in forward:
        prev = u
        if needed <= WAYPOINT_BUDGET * n:
            chain = []
            for li in range(layout.layer[u] + 1, layout.layer[v]):
                item = len(layout.layer)
                layout.layer.append(li)
                up.append([prev])
                down.append([])
                down[prev].append(item)
                chain.append(item)
                prev = item
            layout.chains[(u, v)] = chain
        down[prev].append(v)
        up[v].append(prev)
    layout.order = [[] for _ in range(max(layout.layer, default=-1) + 1)]
    for item, li in enumerate(layout.layer):
        layout.order[li].append(item)
    _order(layout, up, down)
    _place(layout, n)
    return layout


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x2 - x1) / 2
    return f"C{num(x1 + mid)},{num(y1)} {num(x2 - mid)},{num(y2)} {num(x2)},{num(y2)}"


def _edge(layout: DagLayout, u: int, v: int, back: bool) -> str:
    name_u, name_v = layout.names[u], layout.names[v]
    x, y = layout.x, layout.y
    if back:  # under both boxes, arcing below
        x1, y1 = x[u] + NODE_W / 2, y[u] + NODE_H
        x2, y2 = x[v] + NODE_W / 2, y[v] + NODE_H
        drop = max(y1, y2) + 30
        d = f"M{num(x1)},{num(y1)} C{num(x1)},{num(drop)} {num(x2)},{num(drop)} {num(x2)},{num(y2)}"
        tip = f"M{num(x2)},{num(y2)} l-4,7 l8,0 Z"
    else:
        mid = NODE_H / 2
        d = f"M{num(x[u] + NODE_W)},{num(y[u] + mid)}"
        px, py = x[u] + NODE_W, y[u] + mid
        for item in layout.chains.get((u, v), ()):
            wy = y[item] + WAYPOINT_ROW / 2
            d += " " + _curve(px, py, x[item], wy) + f" L{num(x[item] + NODE_W)},{num(wy)}"
            px, py = x[item] + NODE_W, wy
        ex, ey = x[v] - 6, y[v] + mid
        d += " " + _curve(px, py, ex, ey)
        tip = f"M{num(x[v])},{num(ey)} l-7,-4 l0,8 Z"
    kind = "edge back" if back else "edge"
    return (f'<g{attrs({"class": kind, "data-from": name_u, "data-to": name_v})}>'
            f"<title>{esc(name_u)} \u2192 {esc(name_v)}{' (cycle)' if back else ''}</title>"
            f'<path d="{d}" fill="none" stroke="{AXIS}" stroke-width="1.3"/>'
            f'<path class="arrow" d="{tip}" fill="{AXIS}"/></g>')


def _node(layout: DagLayout, i: int, status: str, href: str | None) -> str:
    name = layout.names[i]
    x, y = layout.x[i], layout.y[i]
    label = fit(name, NODE_W - 16)
    node = (f'<g{attrs({"class": f"node status-{slug(status)}", "data-task": name, "data-status": status, "data-layer": layout.layer[i]})}>'
            f"<title>{esc(name)} \u2014 {esc(status)}</title>"
            f'<rect x="{num(x)}" y="{num(y)}" width="{num(NODE_W)}" height="{num(NODE_H)}"'
            f' rx="6" fill="{status_fill(status)}" stroke="#374151" stroke-width="0.6"/>'
            f'<text x="{num(x + NODE_W / 2)}" y="{num(y + NODE_H / 2 + 4)}" text-anchor="middle"'
            f' fill="{status_text(status)}">{esc(label)}</text></g>')
    return f'<a{attrs({"href": href, "class": "node-link"})}>{node}</a>' if href else node


def dag_svg(tasks: Iterable[str], edges: Iterable[tuple[str, str]], statuses: Mapping[str, str],
            links: Mapping[str, str] | None = None) -> str:
    """The task graph: one `g.node` per task (coloured by `statuses`, "pending" when missing;
    wrapped in a link when `links` has the task) and one `g.edge` per (dependency, dependent)
    edge between known tasks."""
    layout = dag_layout(tasks, edges)
    if not layout.names:
        return empty_svg("dag", "no tasks")
    links = links or {}
    out = [svg_open(layout.width, layout.height, "dag",
                    f"task graph: {len(layout.names)} tasks, "
                    f"{len(layout.edges) + len(layout.back)} dependencies")]
    out.append('<g class="edges">')
    out.extend(_edge(layout, u, v, False) for u, v in layout.edges)
    out.extend(_edge(layout, u, v, True) for u, v in layout.back)
    out.append('</g><g class="nodes">')
    for i, name in enumerate(layout.names):
        href = safe_href(links[name]) if name in links else None
        out.append(_node(layout, i, str(statuses.get(name, "pending")), href))
    out.append("</g></svg>")
    return "".join(out)
