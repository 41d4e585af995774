"""HTTP requests and downloads for workflows (the `http` / `net` Lua modules).

The standard library's urllib, imported on the first request: a run that never asks for a URL
does not pay for it, and nothing is added to the dependencies. Redirects are followed (without
the Authorization and Cookie headers when they lead to another host); proxies come from the
usual environment variables.

A status is an answer, not an error: 404 comes back with `ok = false`. Errors are for requests
that got no answer (refused, timed out, a broken TLS handshake) or a body past the size cap. A
URL is a secret as often as not (tokens in paths and query strings, `user:password@`), so a
message names the method and the host, never the URL; credentials in the URL become a Basic
Authorization header instead of going on the wire as part of it.

`retries` repeats a request that got no answer or answered 408, 429, 500, 502, 503 or 504,
after an exponential pause (honouring a short Retry-After). `timeout` bounds each attempt as a
whole, not each read, and the task's deadline bounds everything.
"""

from __future__ import annotations

import os
import threading
import time

from sloth_runner.errors import IntegrationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.services.process import Cancellable

DEFAULT_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 64 << 20  # kept in memory for a response; http.download has no cap
RETRY_STATUSES = frozenset((408, 429, 500, 502, 503, 504))
MAX_RETRY_PAUSE_S = 30.0
_CHUNK = 64 * 1024
_counter = iter(range(1 << 62))


class Target:
    """A URL split into what may be shown (method and host) and what goes on the wire."""

    __slots__ = ("url", "host", "auth", "secrets")

    def __init__(self, url: str) -> None:
        from urllib.parse import unquote, urlsplit, urlunsplit

        if not isinstance(url, str) or not url:
            raise IntegrationError("http: a URL must be a non-empty string")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise IntegrationError("http: not a valid URL (its text is not shown: it may hold "
                                   "a secret)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise IntegrationError("http: only http:// and https:// URLs with a host are "
                                   "supported")
        self.host = parts.hostname + (f":{port}" if port else "")
        self.secrets = [s for s in (url, parts.query, parts.password, parts.path) if s and
                        len(s) > 1]
        self.auth: str | None = None
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, netloc = netloc.rsplit("@", 1)
            user, _, password = userinfo.partition(":")
            import base64

            pair = f"{unquote(user)}:{unquote(password)}".encode()
            self.auth = "Basic " + base64.b64encode(pair).decode()
        self.url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))

    def hide(self, text: str) -> str:
        """`text` without the URL or any secret part of it (an exception's message)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "[hidden]")
        return text


def request(method: str, url: str, *, headers: dict[str, str] | None = None,
            body: bytes | None = None, timeout: float | None = None, retries: int = 0,
            retry_delay: float = 0.5, deadline: float | None = None,
            cancel: Cancellable | None = None, max_body: int = MAX_BODY_BYTES
            ) -> dict[str, Any]:
    """One HTTP exchange (with retries); the answer as a dict: status, reason, headers (names
    lower-cased), body (bytes), json (when the answer is JSON), ok (2xx), duration,
    attempts."""
    target = Target(url)
    method = method.upper()
    sent = _headers(headers, target)
    if body is not None and not any(k.lower() == "content-type" for k in sent):
        sent["Content-Type"] = _content_type(body)
    per_try = _timeout(timeout)

    def attempt() -> dict[str, Any]:
        return _exchange(method, target, sent, body, _end(per_try, deadline), max_body, None)

    return _retrying(attempt, f"{method} {target.host}", retries, retry_delay, deadline,
                     cancel)


def download(url: str, path: str, *, headers: dict[str, str] | None = None,
             timeout: float | None = None, retries: int = 0, retry_delay: float = 0.5,
             deadline: float | None = None, cancel: Cancellable | None = None
             ) -> dict[str, Any]:
    """GET `url` into the file `path`, all or nothing: the body goes to a temporary file next
    to it, renamed into place once complete and only after a 2xx answer."""
    target = Target(url)
    sent = _headers(headers, target)
    per_try = _timeout(timeout)
    final = os.path.abspath(path)
    directory = os.path.dirname(final)
    os.makedirs(directory, exist_ok=True)
    written = [0]

    def attempt() -> dict[str, Any]:
        partial = os.path.join(directory, f".{os.path.basename(final)}.part-{os.getpid()}-"
                                          f"{next(_counter)}")
        written[0] = 0
        try:
            with open(partial, "wb") as fh:
                def sink(chunk: bytes) -> None:
                    fh.write(chunk)
                    written[0] += len(chunk)

                answer = _exchange("GET", target, sent, None, _end(per_try, deadline),
                                   MAX_BODY_BYTES, sink)
            if answer["ok"]:
                os.replace(partial, final)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return answer

    answer = _retrying(attempt, f"GET {target.host}", retries, retry_delay, deadline, cancel)
    if not answer["ok"]:
        why = f"HTTP {answer['status']} {answer.get('reason') or ''}".rstrip()
        raise IntegrationError(f"download from {target.host} failed: {why}; nothing was "
                               "written")
    return {"ok": True, "status": answer["status"], "path": final, "bytes": written[0],
            "duration": answer["duration"], "attempts": answer["attempts"],
            "headers": answer["headers"]}


def _retrying(attempt: Any, what: str, retries: int, retry_delay: float,
              deadline: float | None, cancel: Cancellable | None) -> dict[str, Any]:
    started = time.monotonic()
    stop = threading.Event()
    unregister = cancel.on_cancel(stop.set) if cancel is not None else None
    try:
        tries = 0
        while True:
            tries += 1
            try:
                answer = attempt()
            except IntegrationError as exc:
                if tries > retries or stop.is_set() or _past(deadline):
                    raise
                pause = _pause(retry_delay, tries, None)
                reason = str(exc)
            else:
                if answer["status"] not in RETRY_STATUSES or tries > retries:
                    answer["duration"] = round(time.monotonic() - started, 6)
                    answer["attempts"] = tries
                    return answer
                pause = _pause(retry_delay, tries, answer["headers"].get("retry-after"))
                reason = f"{what} answered {answer['status']}"
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise IntegrationError(f"{reason} (no time left for retry {tries})")
            if stop.wait(pause):
                raise IntegrationError(f"{what}: cancelled")
    finally:
        if unregister is not None:
            unregister()


def _timeout(timeout: float | None) -> float:
    per_try = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
    if per_try <= 0:
        raise IntegrationError("http: timeout must be more than 0 seconds")
    return per_try


def _end(per_try: float, deadline: float | None) -> float:
    end = time.monotonic() + per_try
    return end if deadline is None else min(end, deadline)


def _exchange(method: str, target: Target, headers: dict[str, str], body: bytes | None,
              end: float, max_body: int, sink: Any) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    left = end - time.monotonic()
    if left <= 0:
        raise IntegrationError(f"{method} {target.host} timed out")
    req = urllib.request.Request(target.url, data=body, headers=headers, method=method)
    try:
        try:
            response = _opener().open(req, timeout=left)
        except urllib.error.HTTPError as answer:  # a status is an answer, not an error
            response = answer
        with response:
            status = int(response.status if response.status is not None else response.code)
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > end:
                    raise TimeoutError("timed out")
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if sink is not None and 200 <= status < 300:
                    sink(chunk)
                    continue
                if size > max_body:
                    raise IntegrationError(
                        f"{method} {target.host}: the answer is larger than "
                        f"{max_body >> 20} MiB (use http.download to save it to a file)")
                chunks.append(chunk)
            reason = str(response.reason or "")
            answer_headers = _answer_headers(response.headers)
    except IntegrationError:
        raise
    except Exception as exc:  # no answer: refused, reset, timed out, TLS, a bad URL
        raise IntegrationError(f"{method} {target.host} failed: "
                               f"{target.hide(_reason(exc))}") from None
    data = b"".join(chunks)
    out: dict[str, Any] = {"status": status, "reason": reason, "headers": answer_headers,
                           "body": data, "ok": 200 <= status < 300}
    if "json" in answer_headers.get("content-type", "") and data.strip():
        import json

        try:
            out["json"] = json.loads(data)
        except ValueError:
            pass
    return out


_OPENER: list[Any] = []


def _opener() -> Any:
    """One opener per process: redirects drop credentials when they change host."""
    if not _OPENER:
        import urllib.request
        from urllib.parse import urlsplit

        class Redirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                                 newurl: str) -> Any:
                new = super().redirect_request(req, fp, code, msg, headers, newurl)
                if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
                    for name in ("Authorization", "Cookie"):
                        new.headers.pop(name, None)
                        new.unredirected_hdrs.pop(name, None)
                return new

        _OPENER.append(urllib.request.build_opener(Redirects()))
    return _OPENER[0]


def _headers(given: dict[str, str] | None, target: Target) -> dict[str, str]:
    out: dict[str, str] = {"User-Agent": "sloth-runner", "Accept-Encoding": "identity"}
    for name, value in (given or {}).items():
        name, value = str(name), str(value)
        if not name or any(c in name for c in "\r\n:") or "\r" in value or "\n" in value:
            # the value is not shown: headers carry tokens
            raise IntegrationError(f"http: header {name.strip()!r} has a line break or a "
                                   "colon in its name, or a line break in its value")
        out[name] = value
    if target.auth and not any(k.lower() == "authorization" for k in out):
        out["Authorization"] = target.auth
    return out


def _content_type(body: bytes) -> str:
    import json

    try:
        json.loads(body)
        return "application/json"
    except ValueError:
        return "text/plain; charset=utf-8"


def _answer_headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _reason(exc: BaseException) -> str:
    reason: Any = getattr(exc, "reason", None) or exc
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror).lower()
    text = str(reason) or type(reason).__name__
    return text[:300]


def _pause(base: float, attempt: int, retry_after: str | None) -> float:
    pause = min(MAX_RETRY_PAUSE_S, max(0.0, base) * (2 ** (attempt - 1)))
    if retry_after:
        try:
            pause = max(pause, min(float(retry_after), 2 * MAX_RETRY_PAUSE_S))
        except ValueError:
            pass
    return pause


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
