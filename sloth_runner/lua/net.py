"""`http` (also `net`): HTTP requests and downloads for workflows; the work is in
services/http.py, which imports urllib on the first request.

    http.get/head/delete(url [, options])      http.post/put/patch(url [, options])
    http.request{method, url, ...}             http.download(url, path [, options])
    options: {headers, body, json, query, timeout, retries, retry_delay}

Every call is a blocking op: inside a task it yields, so other tasks (and goroutines) go on. A
response is {status, reason, headers, body, json, ok, duration, attempts}, plus the Go
module's names `status_code` and `success`. The Go module's shapes are accepted too:
`http.get(url, headers)`, `http.post(url, body [, headers])`, and `net.http_get(url)` /
`net.http_post(url, body [, headers])` returning body, status, headers, err.

Under --sandbox every request needs `net`; a download also needs `fs` when its file is
outside the task's workdir.
"""

from __future__ import annotations

import os

from sloth_runner.durations import parse_duration
from sloth_runner.lua.convert import lua_type, to_python
from sloth_runner.lua.runtime import BlockingOp, LuaRuntime
from sloth_runner.services import codec, files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.engine.model import TaskContext
    from sloth_runner.lua.services import Services

OPTIONS = {"headers", "body", "json", "query", "timeout", "retries", "retry_delay"}
WITH_BODY = ("POST", "PUT", "PATCH")


def install_net(rt: LuaRuntime, services: Services) -> Any:
    grants = services.grants

    def prepare(ctx: TaskContext | None, method: str, url: Any, options: Any,
                name: str) -> Callable[[], Any]:
        from sloth_runner.services import http

        opts = _options(name, options)
        full = _url(name, url, opts.get("query"))
        target = http.Target(full)
        grants.require("net", f"{name} to {target.host}")
        body = _body(name, opts)
        exchange = _exchange_options(name, opts, ctx)
        return lambda: http.request(method, full, body=body, **exchange)

    def verb(method: str) -> Any:
        name = f"http.{method.lower()}"

        def prepare_verb(ctx: TaskContext | None, url: Any = None, second: Any = None,
                         third: Any = None) -> Callable[[], Any]:
            if isinstance(second, str) and method in WITH_BODY:  # Go: post(url, body, headers)
                options = {"body": second}
                if third is not None:
                    extra = _options(name, third)
                    options.update(extra)
                return prepare(ctx, method, url, options, name)
            return prepare(ctx, method, url, second, name)

        return rt.blocking(name, BlockingOp(prepare_verb, finish))

    def prepare_request(ctx: TaskContext | None, first: Any = None, url: Any = None,
                        options: Any = None) -> Callable[[], Any]:
        if lua_type(first) == "table":  # http.request{method = "GET", url = ..., ...}
            spec = to_python(first)
            spec = spec if isinstance(spec, dict) else {}
            method = str(spec.pop("method", "GET"))
            target = spec.pop("url", None)
            return prepare(ctx, method.upper(), target, spec, "http.request")
        if not isinstance(first, str):
            raise TypeError("http.request expects {method = ..., url = ...} or (method, url "
                            "[, options])")
        return prepare(ctx, first.upper(), url, options, "http.request")

    def prepare_download(ctx: TaskContext | None, url: Any = None, path: Any = None,
                         options: Any = None) -> Callable[[], Any]:
        from sloth_runner.services import http

        name = "http.download"
        opts = _options(name, options)
        full = _url(name, url, opts.get("query"))
        target = http.Target(full)
        grants.require("net", f"{name} from {target.host}")
        if not isinstance(path, str) or not path:
            raise TypeError("http.download(url, path): path must be a non-empty string")
        where = path
        if ctx is not None and ctx.workdir and not os.path.isabs(path):
            where = os.path.join(ctx.workdir, path)
        if not grants.allows("fs"):
            root = ctx.workdir if ctx is not None and ctx.workdir else os.getcwd()
            real = files.target(where, True)
            if not files.within(real, root):
                grants.require("fs", f"{name} to {real} (outside the workdir "
                                     f"{os.path.realpath(root)})")
        exchange = _exchange_options(name, opts, ctx)
        return lambda: http.download(full, where, **exchange)

    def finish(ctx: TaskContext | None, answer: dict[str, Any]) -> Any:
        answer["status_code"] = answer["status"]
        answer["success"] = answer["ok"]
        return rt.table(answer)

    members = {method.lower(): verb(method)
               for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")}
    members["request"] = rt.blocking("http.request", BlockingOp(prepare_request, finish))
    members["download"] = rt.blocking("http.download", BlockingOp(prepare_download, finish))
    http_table = rt.install("http", members)
    net_table = rt.install("net", {**members, **_go_shapes(rt, http_table)})
    return http_table, net_table


_GO_SHAPES = r"""
local http = ...
local pcall, type = pcall, type
local shapes = {}
-- The Go module's net.http_get/http_post: body, status, headers, err (no error raised).
function shapes.http_get(url)
    local ok, r = pcall(http.get, url)
    if not ok then return nil, 0, nil, r end
    return r.body, r.status, r.headers, nil
end
function shapes.http_post(url, body, headers)
    local ok, r = pcall(http.post, url, {body = body, headers = headers})
    if not ok then return nil, 0, nil, r end
    return r.body, r.status, r.headers, nil
end
return shapes
"""


def _go_shapes(rt: LuaRuntime, http_table: Any) -> dict[str, Any]:
    shapes = rt.lua.execute(_GO_SHAPES, http_table, name="=net")
    return {"http_get": shapes.http_get, "http_post": shapes.http_post}


def _options(name: str, options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    value = to_python(options) if lua_type(options) is not None else options
    if value == []:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name}: options must be a table like {{headers = {{...}}, "
                        "timeout = 10}")
    unknown = set(value) - OPTIONS
    if unknown:
        # The Go module's http.get(url, headers): a table of plain strings is headers.
        if not set(value) & OPTIONS and all(isinstance(v, str) for v in value.values()):
            return {"headers": value}
        raise ValueError(f"{name}: unknown option '{sorted(unknown)[0]}' (options: "
                         f"{', '.join(sorted(OPTIONS))})")
    return value


def _url(name: str, url: Any, query: Any) -> str:
    if not isinstance(url, str) or not url:
        raise TypeError(f"{name} expects a URL string")
    if not query:
        return url
    if not isinstance(query, dict):
        raise TypeError(f"{name}: query must be a table of name = value")
    from urllib.parse import urlencode

    pairs = [(str(k), v if isinstance(v, str) else codec.json_encode(v) if
              isinstance(v, dict | list) else _scalar(v)) for k, v in sorted(query.items())]
    return url + ("&" if "?" in url else "?") + urlencode(pairs)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _body(name: str, opts: dict[str, Any]) -> bytes | None:
    if "json" in opts and "body" in opts:
        raise ValueError(f"{name}: give body or json, not both")
    if "json" in opts:
        return codec.json_encode(opts["json"]).encode()
    body = opts.get("body")
    if body is None:
        return None
    if isinstance(body, dict | list):  # as the Go module does: a table body is sent as JSON
        return codec.json_encode(body).encode()
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    return _scalar(body).encode()


def _exchange_options(name: str, opts: dict[str, Any], ctx: TaskContext | None
                      ) -> dict[str, Any]:
    """What every request and download takes: headers, timeout, retries (and their delay),
    and the task's deadline and cancel token."""
    retries = opts.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"{name}: retries must be a whole number >= 0")
    delay = _seconds(name, "retry_delay", opts.get("retry_delay"))
    return {"headers": _header_table(name, opts.get("headers")),
            "timeout": _seconds(name, "timeout", opts.get("timeout")), "retries": retries,
            "retry_delay": 0.5 if delay is None else delay,
            "deadline": ctx.deadline if ctx else None, "cancel": ctx.cancel if ctx else None}


def _header_table(name: str, headers: Any) -> dict[str, str] | None:
    if headers is None or headers == []:
        return None
    if not isinstance(headers, dict):
        raise TypeError(f"{name}: headers must be a table of name = value")
    return {str(k): _scalar(v) for k, v in headers.items()}


def _seconds(name: str, what: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {what}: {exc}") from None
