"""Reading the dashboard's SVG back in tests: parse it (it must be well-formed XML) and find the
marks by class, as a browser test would select them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
COORDS = ("x", "y", "x1", "y1", "x2", "y2", "width", "height", "cx", "cy", "r", "d", "viewBox")


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def classes(el: ET.Element) -> list[str]:
    return (el.get("class") or "").split()


def marks(root: ET.Element, cls: str, tag: str = "*") -> list[ET.Element]:
    """Every element (of `tag`, by local name) whose class list has `cls`."""
    return [el for el in root.iter() if cls in classes(el)
            and (tag == "*" or el.tag == f"{NS}{tag}")]


def child(el: ET.Element, tag: str) -> ET.Element:
    found = el.find(f"{NS}{tag}")
    assert found is not None, f"no <{tag}> in {el.attrib}"
    return found


def title(el: ET.Element) -> str:
    return child(el, "title").text or ""


def rect_box(el: ET.Element) -> tuple[float, float, float, float]:
    """x, y, width, height of the mark's own <rect>."""
    r = el if el.tag == f"{NS}rect" else child(el, "rect")
    return (float(r.get("x", 0)), float(r.get("y", 0)), float(r.get("width", 0)),
            float(r.get("height", 0)))


def path_points(d: str) -> list[tuple[float, float]]:
    """Every x,y pair in a path's data (end points and control points alike)."""
    return [(float(a), float(b)) for a, b in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def tick_values(root: ET.Element, axis_cls: str | None = None) -> list[float]:
    scope = marks(root, axis_cls)[0] if axis_cls else root
    return [float(t.get("data-value", "nan")) for t in marks(scope, "tick", "text")]


def assert_safe(svg: str) -> None:
    """No script, no style (CSP), nothing fetched, coordinates rounded to one decimal."""
    root = parse(svg)
    for el in root.iter():
        assert el.tag not in (f"{NS}script", f"{NS}style", f"{NS}image", f"{NS}foreignObject")
        assert "style" not in el.attrib
        for key in COORDS:
            if key in el.attrib:
                assert not re.search(r"\d\.\d\d", el.attrib[key]), (key, el.attrib[key])
    assert "url(" not in svg
    assert svg.count("http") == svg.count('xmlns="http://www.w3.org/2000/svg"') + \
        svg.count('href="http')
