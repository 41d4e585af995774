"""`analyze --html FILE`: the dashboard's analytics view as one self-contained file (styles
inline, charts as inline SVG, no script), to attach to a ticket or mail."""

from __future__ import annotations

import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))  # (not ui.app: no Starlette needed)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_report(store: Any, since: str, path: str) -> int:
    """Write the report; returns how many patterns it holds. Raises ValueError (bad `since`)
    and OSError (the file cannot be written)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from sloth_runner.ui import graphs

    view = graphs.analytics(store, since)
    env = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                      autoescape=select_autoescape(["html"]))
    with open(os.path.join(HERE, "static", "app.css"), encoding="utf-8") as fh:
        css = fh.read()
    html = env.get_template("report.html").render(
        css=css, since=since, made=time.strftime("%Y-%m-%d %H:%M:%S"), **view)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(html)
    os.replace(tmp, path)
    return len(view["patterns"])
