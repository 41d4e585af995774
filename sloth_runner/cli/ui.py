"""`sloth-runner ui` (the web dashboard) and `sloth-runner server` (the dashboard and the
schedules, in one long-running process). Starlette, Jinja2 and uvicorn are imported here only
(the `ui` extra)."""

from __future__ import annotations

import argparse

from sloth_runner.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOOPBACK = ("127.0.0.1", "localhost", "::1")
UI_INSTALL = "pip install 'sloth-runner[ui]'"


HELP = {"ui": "the web dashboard: runs, DAG, timeline, outputs, AI calls, analytics, spend, "
              "agents",
        "server": "the dashboard and the schedules together, for a host that runs nightly jobs"}


def register(sub: Any, name: str = "ui") -> None:
    p = sub.add_parser(name, help=HELP[name])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--open", action="store_true", help="open it in the browser")
    p.add_argument("--token", help="the token browsers must present (default on a non-loopback "
                                   "address: one made and printed once)")
    p.add_argument("--read-only", action="store_true",
                   help="no actions (re-run, retry, cancel, run a schedule now)")
    p.add_argument("--daily-budget", type=float, metavar="USD",
                   help="draw AI spend against this daily budget")
    p.set_defaults(handler=handle, with_schedules=name == "server")


def handle(args: argparse.Namespace) -> int:
    import secrets

    try:
        import uvicorn

        from sloth_runner.ui.app import Settings, make_app
    except ImportError as exc:
        raise UsageError(f"the dashboard needs {exc.name}: {UI_INSTALL}") from None
    if not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535")
    token = args.token
    if args.host not in LOOPBACK and not token:
        token = secrets.token_urlsafe(24)
    _check_free(args.host, args.port)
    service = _schedules() if args.with_schedules else None
    settings = Settings(token=token, read_only=args.read_only, schedules=service,
                        daily_budget=args.daily_budget)
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown_host}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"dashboard: {url}" + ("  (the token is shown once; keep the address)"
                                 if token and not args.token else ""), flush=True)
    if args.read_only:
        print("read-only: actions are hidden", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    stop = None
    if service is not None:
        import threading

        stop = threading.Event()
        threading.Thread(target=service.run_forever, args=(stop,), daemon=True,
                         name="sloth-schedules").start()
        print("schedules: due runs start from this process", flush=True)
    try:
        class Server(uvicorn.Server):  # type: ignore[misc]
            def handle_exit(self, sig: int, frame: Any) -> None:
                settings.stopping.set()  # open pages' live streams end now, not cancelled
                super().handle_exit(sig, frame)

        config = uvicorn.Config(make_app(settings), host=args.host, port=args.port,
                                log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        Server(config).run()
    finally:
        if stop is not None:
            stop.set()
    return 0


def _check_free(host: str, port: int) -> None:
    """A clear error now rather than uvicorn's log line after start-up."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): another "
                             "program has it, or the address is not this host's; choose "
                             "another with --port/--host") from None


def _schedules() -> Any:
    """The schedule service of this home (sloth_runner/schedules)."""
    try:
        from sloth_runner.schedules import ScheduleService
    except ImportError as exc:
        raise UsageError(f"schedules need {exc.name}: {UI_INSTALL}") from None
    return ScheduleService()
