"""The dashboard's pages: each reads the store through query functions (store/dashboard.py,
store/queries.py, the analytics package) and renders a template; charts and the DAG are SVG
made here, on the server (ui/svg*.py), so pages work offline and without a build step."""

from __future__ import annotations

import os
import shlex
import time

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from sloth_runner.store import dashboard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

TAIL_CHARS = 64 * 1024  # of an output, shown in the page; the whole is a download


def _ago(ts: Any) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.2f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _money(value: Any) -> str:
    if value is None:
        return "unknown"
    v = float(value)
    return "$0" if v == 0 else f"${v:.4f}" if v < 1 else f"${v:.2f}"


def _zoned(ts: Any, zone: str) -> str:
    """A schedule's time on its own wall clock (its zone), not the server's."""
    from sloth_runner.schedules.cron import format_time

    return str(format_time(ts, zone))


FILTERS = {"when": _ago, "duration": _duration, "money": _money, "zoned": _zoned}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def settings(request: Request) -> Any:
    return request.app.state.settings


# -- runs -----------------------------------------------------------------------------------------
def runs(request: Request) -> Response:
    """Newest first, filtered by the query string; `?rows=1` gives only the table's rows (the
    page swaps them in when the live feed says something changed)."""
    from sloth_runner.durations import parse_duration

    q = request.query_params
    since = None
    if q.get("since"):
        try:
            since = time.time() - parse_duration(q["since"])
        except ValueError as exc:
            return render(request, "error.html", 400, title="Bad filter",
                          message=f"since: {exc}")
    store = settings(request).store
    before = _page_mark(q.get("before", ""))
    found = dashboard.runs_page(store, status=q.get("status") or None,
                                workflow=q.get("workflow") or None, file=q.get("file") or None,
                                since=since, host=q.get("host") or None,
                                has_ai=q.get("ai") == "1", before=before)
    context: dict[str, Any] = {"runs": found, "filters": dict(q), "choices": dashboard.filter_choices(store),
               "next_before": f"{found[-1]['started_at']!r}_{found[-1]['id']}"
               if len(found) == dashboard.PAGE else None}
    return render(request, "runs_rows.html" if q.get("rows") else "runs.html", **context)


def _page_mark(text: str) -> tuple[float, str] | None:
    """`before=STARTED_ID` of the runs view's "older" link (None when absent or malformed)."""
    started, _, run_id = text.partition("_")
    try:
        return (float(started), run_id) if run_id else None
    except ValueError:
        return None


def run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    detail = dashboard.run_detail(settings(request).store, run_id)
    if detail is None:
        return render(request, "error.html", 404, title="No such run",
                      message=f"There is no run {run_id} in this home's history.")
    from sloth_runner.ui import graphs

    return render(request, "run.html", run=detail, dag=graphs.dag(request, detail),
                  timeline=graphs.timeline(detail), command=rerun_command(detail))


def rerun_command(run: dict[str, Any]) -> str:
    """The command that runs it again the same way (params carry its values too)."""
    parts = ["sloth-runner", "run", "-f", run["file"]]
    parts += [w for w in (run.get("workflows") or "").split(",") if w]
    for key, value in sorted((run.get("params") or {}).items()):
        if key not in ("task_name", "workflow_name"):
            parts += ["--param", f"{key}={value}"]
    if run.get("stack"):
        parts.insert(4, run["stack"])
    return " ".join(shlex.quote(str(p)) for p in parts)


def attempt(request: Request) -> Response:
    run_id, attempt_id = request.path_params["run_id"], request.path_params["attempt_id"]
    found = dashboard.attempt_detail(settings(request).store, run_id, attempt_id)
    if found is None:
        return render(request, "error.html", 404, title="No such attempt",
                      message=f"Run {run_id} has no attempt {attempt_id}.")
    outputs = found["outputs"] if isinstance(found["outputs"], dict) else {}
    streams = []
    for name in ("stdout", "stderr"):
        text = outputs.get(name)
        if isinstance(text, str) and text:
            spooled = _spool_file(outputs.get(f"{name}_path"))
            size = os.path.getsize(spooled) if spooled else len(text.encode())
            streams.append({"name": name, "tail": text[-TAIL_CHARS:], "size": size,
                            "cut": spooled is not None or len(text) > TAIL_CHARS})
    rest = {k: v for k, v in outputs.items()
            if k not in ("stdout", "stderr", "stdout_path", "stderr_path")}
    return render(request, "attempt.html", a=found, run_id=run_id, streams=streams,
                  outputs=rest)


def output(request: Request) -> Response:
    """A stream's whole text as a download: from the run's spool file (scrubbed as it is
    read, in pieces: a large output is never held whole) or, when it was short, the history."""
    run_id, attempt_id = request.path_params["run_id"], request.path_params["attempt_id"]
    stream = request.path_params["stream"]
    found = dashboard.attempt_detail(settings(request).store, run_id, attempt_id)
    if found is None or stream not in ("stdout", "stderr"):
        return render(request, "error.html", 404, title="Not found",
                      message=f"Nothing at {request.url.path}.")
    outputs = found["outputs"] if isinstance(found["outputs"], dict) else {}
    from urllib.parse import quote

    name = f"{run_id}-{found['task']}-{stream}.txt"
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    headers = {"Content-Disposition":
               f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"}
    spooled = _spool_file(outputs.get(f"{stream}_path"))
    if spooled is None:
        return Response(str(outputs.get(stream) or ""), media_type="text/plain; charset=utf-8",
                        headers=headers)
    return StreamingResponse(_scrubbed_chunks(spooled), media_type="text/plain; charset=utf-8",
                             headers=headers)


def _spool_file(path: Any) -> str | None:
    """`path` if it is a file inside this home's spool: nothing else is ever served."""
    from sloth_runner import paths

    if not isinstance(path, str):
        return None
    root = os.path.realpath(os.path.dirname(paths.spool_dir("x")))
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
        return None
    return real


def _scrubbed_chunks(path: str) -> Iterator[bytes]:
    from sloth_runner.scrub import Scrubber

    stream = Scrubber().stream()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), ""):
            yield stream.feed(chunk).encode()
    yield stream.flush().encode()


# -- AI, analytics, spend -------------------------------------------------------------------------
def ai(request: Request) -> Response:
    return render(request, "ai.html", calls=dashboard.ai_calls(settings(request).store))


def analytics(request: Request) -> Response:
    from sloth_runner.ui import graphs

    since = request.query_params.get("since") or "30d"
    try:
        view = graphs.analytics(settings(request).store, since)
    except ValueError as exc:
        return render(request, "error.html", 400, title="Bad filter", message=f"since: {exc}")
    return render(request, "analytics.html", since=since, **view)


def spend(request: Request) -> Response:
    from sloth_runner.ui import graphs

    return render(request, "spend.html", **graphs.spend(settings(request).store,
                                                        settings(request).daily_budget))


def agents(request: Request) -> Response:
    """The agents' registry, when a broker is configured (else how to get one)."""
    problem, found = None, []
    try:
        from sloth_runner.agents.broker import mask, resolve
        from sloth_runner.agents.registry import agents as read

        url = resolve(None)
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=3)
        try:
            found = read(client)
        except Exception as exc:  # noqa: BLE001 (shown, with the broker masked)
            problem = f"the broker {mask(url)} is unreachable ({exc.__class__.__name__})"
    except ImportError:
        problem = "agents are not installed here: pip install 'sloth-runner[agents]'"
    except Exception as exc:  # noqa: BLE001 (no broker configured: say how)
        problem = str(exc)
    return render(request, "agents.html", agents=found, problem=problem)


def schedules(request: Request) -> Response:
    from sloth_runner.ui import graphs

    return render(request, "schedules.html", **graphs.schedules(settings(request)))


# -- errors ---------------------------------------------------------------------------------------
async def not_found(request: Request, exc: Any) -> Response:
    return render(request, "error.html", 404, title="Not found",
                  message=f"Nothing at {request.url.path}.")


async def server_error(request: Request, exc: Any) -> Response:
    return HTMLResponse("<h1>500</h1><p>The dashboard failed on this page; the server's log "
                        "says why.</p>", status_code=500)
