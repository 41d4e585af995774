"""The dashboard's drawings, made on the server as SVG strings: no script, font or URL to fetch,
so pages stay fast, work offline and pass a strict CSP.

One import for the views; the drawing lives in svg_dag (task graph), svg_gantt (timeline),
svg_charts (line and bar charts), with svg_axes (ticks) and svg_common (escaping, colours).
"""

from __future__ import annotations

from sloth_runner.ui.svg_axes import duration_ticks, nice_ticks, time_ticks
from sloth_runner.ui.svg_charts import bar_chart_svg, line_chart_svg
from sloth_runner.ui.svg_dag import dag_layout, dag_svg
from sloth_runner.ui.svg_gantt import gantt_svg

__all__ = ["bar_chart_svg", "dag_layout", "dag_svg", "duration_ticks", "gantt_svg",
           "line_chart_svg", "nice_ticks", "time_ticks"]
