"""services/http.py against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sloth_runner.engine.model import CancelToken
from sloth_runner.errors import IntegrationError
from sloth_runner.services import http


class Server:
    """Answers by path: `routes[path](request) -> (status, headers, body)`; every request is
    recorded as {method, path, headers, body}. A route may wait (a slow upstream)."""

    def __init__(self) -> None:
        self.routes: dict[str, object] = {}
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                request = {"method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": body}
                server.requests.append(request)
                server.counts[path] = server.counts.get(path, 0) + 1
                route = server.routes.get(path)
                status, headers, data = route(request) if route else (404, {}, b"no route")
                if isinstance(data, str):
                    data = data.encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def json_route(value, status=200):
    return lambda request: (status, {"Content-Type": "application/json"}, json.dumps(value))


def echo(request):
    return 200, {"Content-Type": "application/json"}, json.dumps({
        "method": request["method"], "path": request["path"],
        "headers": request["headers"], "body": request["body"].decode("utf-8", "replace")})


def flaky(failures: int, status: int = 503):
    seen = [0]

    def route(request):
        seen[0] += 1
        if seen[0] <= failures:
            return status, {"Retry-After": "0"}, "busy"
        return 200, {}, "fine"

    return route


def slow(seconds: float):
    def route(request):
        time.sleep(seconds)  # the upstream's latency, which the test measures around
        return 200, {}, "slow"

    return route


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_json_answer_comes_back_parsed_with_status_headers_and_timing(server):
    server.routes["/v1/items"] = json_route({"items": [1, 2], "ok": True})
    answer = http.request("GET", server.url("/v1/items?page=2"))
    assert answer["status"] == 200 and answer["ok"] is True
    assert answer["json"] == {"items": [1, 2], "ok": True}
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["duration"] > 0 and answer["attempts"] == 1
    assert server.requests[0]["path"] == "/v1/items?page=2"


def test_a_body_is_sent_with_a_fitting_content_type_and_headers(server):
    server.routes["/echo"] = echo
    sent = http.request("POST", server.url("/echo"), body=b'{"a": 1}',
                        headers={"X-Trace": "abc"})["json"]
    assert sent["method"] == "POST" and sent["body"] == '{"a": 1}'
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["headers"]["x-trace"] == "abc"
    text = http.request("PUT", server.url("/echo"), body=b"plain words")["json"]
    assert text["headers"]["content-type"].startswith("text/plain")


def test_a_status_is_an_answer_not_an_error(server):
    server.routes["/missing"] = lambda r: (404, {}, "nope")
    answer = http.request("GET", server.url("/missing"))
    assert answer["status"] == 404 and answer["ok"] is False and answer["body"] == b"nope"
    assert "json" not in answer


def test_retries_repeat_on_busy_answers_and_give_up_after_the_count(server):
    server.routes["/flaky"] = flaky(2)
    answer = http.request("GET", server.url("/flaky"), retries=3, retry_delay=0.01)
    assert answer["status"] == 200 and answer["attempts"] == 3 and answer["body"] == b"fine"
    server.routes["/down"] = flaky(10)
    answer = http.request("GET", server.url("/down"), retries=1, retry_delay=0.01)
    assert answer["status"] == 503 and answer["attempts"] == 2
    assert server.counts["/down"] == 2
    server.routes["/bad"] = flaky(10, status=400)  # a client error is not retried
    assert http.request("GET", server.url("/bad"), retries=3, retry_delay=0.01)["attempts"] == 1


def test_no_answer_is_an_error_naming_the_host_never_the_url_or_credentials():
    port = closed_port()
    url = f"http://deploy:s3cr3t-pw@127.0.0.1:{port}/hooks/T000/secret-path?token=abc123"
    with pytest.raises(IntegrationError) as caught:
        http.request("GET", url, retries=1, retry_delay=0.01)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "refused" in message
    for secret in ("s3cr3t-pw", "secret-path", "abc123", "deploy"):
        assert secret not in message


def test_credentials_in_the_url_become_basic_auth(server):
    server.routes["/private"] = echo
    answer = http.request("GET", f"http://ci:p%40ss@127.0.0.1:{server.port}/private")
    headers = answer["json"]["headers"]
    assert headers["authorization"] == "Basic " + base64.b64encode(b"ci:p@ss").decode()
    assert answer["json"]["path"] == "/private"


def test_redirects_are_followed_but_credentials_stay_with_their_host(server):
    other = Server()
    try:
        other.routes["/landing"] = echo
        server.routes["/same"] = lambda r: (302, {"Location": "/echo"}, "")
        server.routes["/echo"] = echo
        server.routes["/away"] = lambda r: (302, {"Location": other.url("/landing")}, "")
        same = http.request("GET", server.url("/same"), headers={"Authorization": "Bearer t1"})
        assert same["json"]["headers"]["authorization"] == "Bearer t1"
        away = http.request("GET", server.url("/away"), headers={"Authorization": "Bearer t1"})
        assert away["status"] == 200 and "authorization" not in away["json"]["headers"]
    finally:
        other.stop()


def test_a_timeout_bounds_the_attempt(server):
    server.routes["/slow"] = slow(1.0)
    started = time.monotonic()
    with pytest.raises(IntegrationError, match=r"GET 127\.0\.0\.1:\d+ failed: timed out"):
        http.request("GET", server.url("/slow"), timeout=0.2)
    assert time.monotonic() - started < 0.9


def test_a_deadline_bounds_retries(server):
    server.routes["/down"] = flaky(100)
    deadline = time.monotonic() + 0.3
    with pytest.raises(IntegrationError, match="no time left for retry"):
        http.request("GET", server.url("/down"), retries=10, retry_delay=0.5, deadline=deadline)


def test_cancelling_stops_a_retry_wait(server):
    server.routes["/down"] = flaky(100)
    cancel = CancelToken()
    threading.Timer(0.1, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(IntegrationError, match="cancelled"):
        http.request("GET", server.url("/down"), retries=5, retry_delay=5, cancel=cancel)
    assert time.monotonic() - started < 3


def test_a_header_with_a_line_break_is_refused_without_showing_its_value():
    with pytest.raises(IntegrationError) as caught:
        http.request("GET", "http://127.0.0.1:1/", headers={"X-Token": "abc\r\nInjected: 1"})
    assert "X-Token" in str(caught.value) and "abc" not in str(caught.value)


def test_bad_urls_are_refused_without_echoing_them():
    for url in ("ftp://h/x", "not a url", "http:///nohost", "http://h:99999999/x"):
        with pytest.raises(IntegrationError) as caught:
            http.request("GET", url)
        assert url not in str(caught.value)


def test_an_answer_larger_than_the_cap_is_an_error(server):
    server.routes["/big"] = lambda r: (200, {}, b"x" * 5000)
    with pytest.raises(IntegrationError, match="use http.download"):
        http.request("GET", server.url("/big"), max_body=1000)


def test_download_writes_the_whole_file_or_nothing(server, tmp_path):
    payload = bytes(range(256)) * 1000
    server.routes["/file.bin"] = lambda r: (200, {"Content-Type": "application/octet-stream"},
                                            payload)
    target = tmp_path / "sub" / "file.bin"
    answer = http.download(server.url("/file.bin"), str(target))
    assert target.read_bytes() == payload
    assert answer["bytes"] == len(payload) and answer["path"] == str(target)
    server.routes["/gone"] = lambda r: (404, {}, "not here")
    with pytest.raises(IntegrationError, match=r"HTTP 404 .*nothing was written"):
        http.download(server.url("/gone"), str(tmp_path / "gone.bin"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # no partial file left
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["file.bin"]


def test_download_retries_a_busy_server(server, tmp_path):
    server.routes["/later"] = flaky(1)
    answer = http.download(server.url("/later"), str(tmp_path / "f"), retries=2,
                           retry_delay=0.01)
    assert answer["attempts"] == 2 and (tmp_path / "f").read_bytes() == b"fine"
