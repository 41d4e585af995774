"""The dashboard's actions: re-run a run, re-run its failed tasks, cancel a running run, start
a schedule now. Each is a POST (CSRF-checked in app.Guard) that starts or signals a
`sloth-runner` process, waits briefly for the result to show in the store, and sends the
browser to it (a page says what happened when it cannot)."""

from __future__ import annotations

import hmac
import json
import os
import signal
import subprocess
import sys
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sloth_runner.store import dashboard

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

APPEAR_WITHIN_S = 10.0
FINISHED_OK = ("success", "up_to_date")  # anything else (skipped too) runs again


async def _checked(request: Request) -> Response | None:
    from urllib.parse import parse_qs

    # the forms are urlencoded and tiny: parsed here (Starlette's parser needs another package)
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    given = (form.get("csrf") or [""])[0]
    if not hmac.compare_digest(given.encode(), request.app.state.settings.csrf().encode()):
        return _page(request, 403, "Refused", "This action's form is stale or came from "
                     "elsewhere (CSRF token mismatch): reload the page and try again.")
    return None


def _page(request: Request, status: int, title: str, message: str) -> Response:
    from sloth_runner.ui.pages import render

    return render(request, "error.html", status, title=title, message=message)


async def rerun(request: Request) -> Response:
    return await _again(request, failed_only=False)


async def retry_failed(request: Request) -> Response:
    return await _again(request, failed_only=True)


async def _again(request: Request, failed_only: bool) -> Response:
    import anyio

    refusal = await _checked(request)
    if refusal is not None:
        return refusal
    store = request.app.state.settings.store
    run = await anyio.to_thread.run_sync(dashboard.run_detail, store, request.path_params["run_id"])
    if run is None:
        return _page(request, 404, "No such run", "There is nothing to run again.")
    args = ["run", "-f", run["file"], "--yes"]
    if run.get("stack"):  # Go's stack positional, first: its stack-scoped hooks fire again
        args.append(run["stack"])
    args += [w for w in (run.get("workflows") or "").split(",") if w]
    grants = run.get("grants") or ""
    if grants.startswith("sandbox"):  # as sandboxed as it was
        args.append("--sandbox")
        if "+" in grants:
            args += ["--allow", grants.split("+", 1)[1]]
    params = {k: v for k, v in run["params"].items() if k not in ("task_name", "workflow_name")}
    if "[REDACTED" in json.dumps(params):
        return _page(request, 409, "Not from here", "This run's parameters held secrets, which "
                     "the history keeps only redacted: run it again from the command line.")
    if params:  # as a values file: tables, numbers and booleans keep their types
        args += ["-v", _params_file(params)]
    if failed_only:
        failed = [t["task"] for t in run["tasks"] if t["status"] not in FINISHED_OK]
        if not failed:
            return _page(request, 409, "Nothing failed", "Every task of this run succeeded.")
        for name in failed:
            args += ["--task", name]
    if not os.path.isfile(run["file"]):
        return _page(request, 409, "File gone", f"{run['file']} no longer exists.")
    new_id = await anyio.to_thread.run_sync(start_run, store, args,
                                            os.path.dirname(run["file"]))
    if new_id is None:
        return _page(request, 500, "Not started", "The run did not show up in the history "
                     f"within {APPEAR_WITHIN_S:g} s; the server's log folder says why.")
    return RedirectResponse(str(request.url_for("run", run_id=new_id)), status_code=303)


def _params_file(params: dict[str, Any]) -> str:
    """The run's parameters in a file of the home's logs folder (JSON is YAML)."""
    from sloth_runner import paths

    folder = os.path.join(paths.home(), "logs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"ui-params-{time.time_ns()}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(params, fh)
    return path


def start_run(store: Any, args: list[str], cwd: str | None = None) -> str | None:
    """`sloth-runner ARGS` in a session of its own (it outlives the page and the dashboard),
    in the file's folder (relative paths in it mean what they meant), its output in the home's
    logs; the new run's id once it is in the store."""
    from sloth_runner import paths

    logs = os.path.join(paths.home(), "logs")
    os.makedirs(logs, exist_ok=True)
    with open(os.path.join(logs, f"ui-{int(time.time())}-{os.getpid()}.log"), "ab") as log:
        package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [package, os.environ.get("PYTHONPATH")]))}
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "sloth_runner", *args],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, cwd=cwd or None, env=env)
    _reap_later(proc)
    deadline = time.monotonic() + APPEAR_WITHIN_S
    while time.monotonic() < deadline:
        found = dashboard.run_started_by(store, proc.pid, since=started - 1)
        if found:
            return found
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    import threading

    threading.Thread(target=proc.wait, daemon=True, name="sloth-ui-reaper").start()


async def cancel(request: Request) -> Response:
    """Ctrl-C for a running run: SIGINT to its process, if that process is still the run's."""
    refusal = await _checked(request)
    if refusal is not None:
        return refusal
    store = request.app.state.settings.store
    run_id = request.path_params["run_id"]
    run = dashboard.run_detail(store, run_id)
    if run is None:
        return _page(request, 404, "No such run", "There is nothing to cancel.")
    if run["status"] != "running" or not run.get("pid") or not _still_running(run):
        return _page(request, 409, "Not running", f"Run {run_id} is not running "
                     f"(status: {run['status']}).")
    os.kill(int(run["pid"]), signal.SIGINT)
    return RedirectResponse(str(request.url_for("run", run_id=run_id)), status_code=303)


def _still_running(run: dict[str, Any]) -> bool:
    """The run's process still holds its run lock on this host (a pid alone may have been
    reused, even by another sloth-runner)."""
    from sloth_runner.store.runs import HOST, run_lock_held

    return run.get("host") in (None, HOST) and run_lock_held(run["id"])


async def run_schedule(request: Request) -> Response:
    refusal = await _checked(request)
    if refusal is not None:
        return refusal
    service = request.app.state.settings.schedules
    name = request.path_params["name"]
    try:
        from sloth_runner.schedules import trigger_now
    except ImportError:
        return _page(request, 404, "No schedules", "Schedules are not available here.")
    import anyio

    try:
        run_id = await anyio.to_thread.run_sync(trigger_now, request.app.state.settings.store,
                                                name) if service is None else \
            await anyio.to_thread.run_sync(service.trigger_now, name)
    except Exception as exc:  # noqa: BLE001 (an unknown schedule, a file gone: said)
        return _page(request, 409, "Not started", str(exc))
    if not run_id:
        return RedirectResponse(str(request.url_for("schedules")), status_code=303)
    return RedirectResponse(str(request.url_for("run", run_id=run_id)), status_code=303)
