"""What the dashboard draws, from what the store holds: a run's DAG and timeline, the
analytics plots and the spend charts. Plain data in, SVG strings out (ui/svg*.py draws)."""

from __future__ import annotations

import time
from collections import defaultdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from starlette.requests import Request

TREND_TASKS = 6  # duration plots: the tasks with the most runs


def dag(request: Request, run: dict[str, Any]) -> str:
    """One node per task, coloured by its final status (running / pending while the run is
    on), one edge per dependency; a node links to the task's last attempt."""
    from sloth_runner.ui.svg import dag_svg

    graph = run.get("graph") or {}
    several = len({a["workflow"] for a in run["attempts"]} |
                  {t.get("workflow") for t in graph.get("tasks") or [] if t.get("workflow")}) > 1

    def node(workflow: str | None, task: str) -> str:  # tasks of two workflows may share names
        return f"{workflow}/{task}" if several and workflow else task

    names: list[str] = []
    edges: list[tuple[str, str]] = []
    for t in graph.get("tasks") or []:
        names.append(node(t.get("workflow"), t["name"]))
        edges += [(node(t.get("workflow"), dep), node(t.get("workflow"), t["name"]))
                  for dep in t.get("depends_on") or []]
    for a in run["attempts"]:
        if node(a["workflow"], a["task"]) not in names:
            names.append(node(a["workflow"], a["task"]))
    statuses: dict[str, str] = {}
    links: dict[str, str] = {}
    for a in run["attempts"]:  # in the order they ended: the last one wins
        key = node(a["workflow"], a["task"])
        statuses[key] = a["status"] if a["final"] else "running"
        links[key] = str(request.url_for("attempt", run_id=run["id"], attempt_id=a["id"]))
    open_run = run["status"] == "running"
    for name in names:
        statuses.setdefault(name, "pending" if open_run else "not_run")
    return str(dag_svg(names, edges, statuses, links))


def timeline(run: dict[str, Any]) -> str:
    """A lane per host or agent, a bar per attempt (retries are bars of their own)."""
    from sloth_runner.ui.svg import gantt_svg

    lanes: list[str] = []
    bars = []
    for a in sorted(run["attempts"], key=lambda a: a["started_at"]):
        lane = a["host"] or run.get("host") or "this host"
        if lane not in lanes:
            lanes.append(lane)
        bars.append({"task": a["task"], "attempt": a["attempt"], "lane": lane,
                     "start": a["started_at"], "end": a["ended_at"], "status": a["status"]})
    return str(gantt_svg(bars, lanes, now=time.time()))


def analytics(store: Any, since: str) -> dict[str, Any]:
    """The patterns `analyze` finds (with their evidence) and the plots: duration over time
    per task with its anomalies marked, failure rate per day, failures by host and by hour,
    how retried tasks ended. Raises ValueError for a bad `since`."""
    from sloth_runner.analytics import patterns
    from sloth_runner.durations import parse_duration
    from sloth_runner.store import queries
    from sloth_runner.ui.svg import bar_chart_svg, line_chart_svg

    window = parse_duration(since)
    records = queries.attempts_since(store, time.time() - window)
    found = patterns.analyze(records, heals=queries.heals_since(store, time.time() - window)) \
        if records else []
    finals = [r for r in records if r["final"]]
    by_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in finals:
        if r["status"] == "success":
            by_task[r["task"]].append((r["started_at"], r["duration_s"]))
    busiest = sorted(by_task, key=lambda t: -len(by_task[t]))[:TREND_TASKS]
    anomalies = [(p["task"], p["evidence"]["value"], p["run_id"]) for p in found
                 if p["type"] == "anomalies" and p.get("metric") == "duration_s"]
    starts = {(r["task"], r["run_id"]): r["started_at"] for r in finals}
    marks = [{"x": starts[(t, run)], "y": v, "label": f"{t}: {v:.2f}s (run {str(run)[:12]})"}
             for t, v, run in anomalies if (t, run) in starts]
    durations = line_chart_svg({t: by_task[t] for t in busiest}, y_label="seconds",
                               marks=marks)
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    hosts: dict[str, int] = defaultdict(int)
    hours = [0] * 24
    for r in finals:
        day = time.strftime("%Y-%m-%d", time.localtime(r["started_at"]))
        days[day][1] += 1
        if r["status"] not in ("success", "skipped", "up_to_date"):
            days[day][0] += 1
            hosts[r["host"] or "?"] += 1
            hours[time.localtime(r["started_at"]).tm_hour] += 1
    ordered = sorted(days)
    rate = line_chart_svg({"failure rate": [
        (time.mktime(time.strptime(d, "%Y-%m-%d")), days[d][0] / days[d][1]) for d in ordered]},
        y_label="share of tasks failed")
    by_host = bar_chart_svg(sorted(hosts), [hosts[h] for h in sorted(hosts)],
                            y_label="failures")
    by_hour = bar_chart_svg([f"{h:02}" for h in range(24)], hours, y_label="failures")
    retried: dict[str, int] = defaultdict(int)
    for r in finals:
        if r["attempt"] > 1:
            retried["succeeded after retries" if r["status"] == "success"
                    else "failed after retries"] += 1
    retries = bar_chart_svg(list(retried), list(retried.values()), y_label="tasks")
    return {"patterns": found, "attempts": len(records), "durations": durations, "rate": rate,
            "by_host": by_host, "by_hour": by_hour, "retries": retries}


def spend(store: Any, daily_budget: float | None) -> dict[str, Any]:
    """AI cost and tokens per day (against the daily budget given to `ui --daily-budget`),
    per model and per workflow, over the last 30 days."""
    from sloth_runner.store import dashboard
    from sloth_runner.ui.svg import bar_chart_svg, line_chart_svg

    data = dashboard.spend(store)
    days = [d["day"] for d in data["per_day"]]
    cost = bar_chart_svg(days, [d["cost"] or 0.0 for d in data["per_day"]], y_label="USD")
    if daily_budget is not None and days:  # the budget as a line over the same days
        xs = [time.mktime(time.strptime(d, "%Y-%m-%d")) for d in days]
        cost = line_chart_svg({"cost": list(zip(xs, [d["cost"] or 0.0 for d in data["per_day"]],
                                                strict=True)),
                               "daily budget": [(x, daily_budget) for x in xs]},
                              y_label="USD")
    tokens = bar_chart_svg(days, [d["tokens"] or 0 for d in data["per_day"]], y_label="tokens")
    over = [d["day"] for d in data["per_day"]
            if daily_budget is not None and (d["cost"] or 0) > daily_budget]
    return {**data, "cost_chart": cost, "tokens_chart": tokens, "daily_budget": daily_budget,
            "over_budget": over}


def schedules(settings: Any) -> dict[str, Any]:
    """The schedules with their last run and next run times (in their own zones)."""
    try:
        from sloth_runner.schedules import ScheduleService
    except ImportError as exc:  # croniter: the `ui` extra
        return {"schedules": [], "problem": f"schedules need {exc.name}: "
                                           "pip install 'sloth-runner[ui]'"}
    service = settings.schedules or ScheduleService(settings.store)
    return {"schedules": service.schedules(count=3), "problem": None}
