"""The dashboard's ASGI application: routes, the page template environment, and the security
every response gets (docs/ARCHITECTURE.md, "Dashboard").

Imported only by `sloth-runner ui`/`server` (Starlette, Jinja2 and uvicorn are the `ui` extra).

Security, decided once here rather than in each view:
- Bound to 127.0.0.1 by default. On any other address a token is required: `?token=…` once
  (then an HttpOnly, SameSite=Strict cookie) or `Authorization: Bearer …`.
- Every POST (actions) carries a CSRF token derived from a per-process secret, and a foreign
  Origin is refused.
- CSP allows only this origin's scripts and styles (no inline script), frames are denied,
  content types are never sniffed. Pages show only scrubbed text: what runs stored.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN_COOKIE = "sloth_token"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # not no-referrer: with it Chromium sends `Origin: null` on the actions' POSTs
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Settings:
    """What one dashboard process serves, and how."""

    def __init__(self, *, token: str | None = None, read_only: bool = False,
                 store_path: str | None = None, schedules: Any = None,
                 daily_budget: float | None = None) -> None:
        self.token = token
        self.daily_budget = daily_budget  # drawn on the spend page
        self.read_only = read_only
        self.store_path = store_path
        self.schedules = schedules  # the server's schedule service, when it runs one
        self.csrf_secret = secrets.token_bytes(32)
        # set when the server is asked to stop: live streams end themselves, at once
        self.stopping = threading.Event()
        self._store: Any = None

    @property
    def store(self) -> Any:
        """One connection for the process (the store serialises its use across threads)."""
        if self._store is None:
            from sloth_runner.store import Store

            self._store = Store(self.store_path)
        return self._store

    def csrf(self) -> str:
        return hmac.new(self.csrf_secret, b"sloth-ui-actions", "sha256").hexdigest()


class Guard(BaseHTTPMiddleware):
    """The token (when one is set), CSRF on POST, and the security headers."""

    def __init__(self, app: Any, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            response = refusal
        else:
            token = self.settings.token
            given = request.query_params.get("token")
            if token and given and _same(given, token):
                # first use: from now on a cookie, and the token leaves the address bar
                clean = request.url.remove_query_params("token")
                response = RedirectResponse(str(clean), status_code=303)
                response.set_cookie(_cookie(request), token, httponly=True, samesite="strict")
            else:
                response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _refusal(self, request: Request) -> Response | None:
        token = self.settings.token
        if not token and (request.url.hostname or "") not in LOOPBACK_NAMES:
            # without a token only this machine's names: another name pointing here (DNS
            # rebinding) would let a web page read the dashboard and post its forms
            return PlainTextResponse("421: this dashboard answers to 127.0.0.1 and localhost "
                                     "only (start it with --host and a token to serve others)",
                                     status_code=421)
        if token and not request.url.path.startswith("/static/"):
            offered = [request.cookies.get(_cookie(request)), request.query_params.get("token"),
                       request.headers.get("authorization", "").removeprefix("Bearer ").strip()]
            if not any(o and _same(o, token) for o in offered):
                return PlainTextResponse("401: this dashboard needs its token: open the address "
                                         "`sloth-runner ui` printed (…?token=…)", status_code=401)
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
                return PlainTextResponse("403: a request from another site", status_code=403)
            if self.settings.read_only:
                return PlainTextResponse("403: this dashboard is read-only", status_code=403)
        return None


def _cookie(request: Request) -> str:
    """Per port: two dashboards on one host (cookies ignore ports) keep their own tokens."""
    return f"{TOKEN_COOKIE}_{request.url.port or 80}"


def make_app(settings: Settings | None = None) -> Starlette:
    from sloth_runner.ui import actions, live, pages

    settings = settings or Settings()
    templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
    templates.env.globals["csrf"] = settings.csrf
    templates.env.globals["read_only"] = settings.read_only
    templates.env.filters.update(pages.FILTERS)
    routes = [
        Route("/", pages.runs, name="runs"),
        Route("/runs/{run_id}", pages.run, name="run"),
        Route("/runs/{run_id}/attempts/{attempt_id:int}", pages.attempt, name="attempt"),
        Route("/runs/{run_id}/attempts/{attempt_id:int}/{stream}.txt", pages.output,
              name="output"),
        Route("/ai", pages.ai, name="ai"),
        Route("/analytics", pages.analytics, name="analytics"),
        Route("/spend", pages.spend, name="spend"),
        Route("/agents", pages.agents, name="agents"),
        Route("/schedules", pages.schedules, name="schedules"),
        Route("/live", live.events, name="live"),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/runs/{run_id}/rerun", actions.rerun, methods=["POST"], name="rerun"),
        Route("/runs/{run_id}/retry", actions.retry_failed, methods=["POST"], name="retry"),
        Route("/runs/{run_id}/cancel", actions.cancel, methods=["POST"], name="cancel"),
        Route("/schedules/{name}/run", actions.run_schedule, methods=["POST"],
              name="run_schedule"),
        Mount("/static", app=StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, settings=settings)],
                    exception_handlers={404: pages.not_found, 500: pages.server_error})
    app.state.settings = settings
    app.state.templates = templates
    return app
