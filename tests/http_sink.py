"""A tiny HTTP server for tests of webhooks and health checks, on 127.0.0.1 only.

Each path answers with the status set in `statuses` (default 200); every request is recorded
with its method, path, headers and body. Daemon threads, socket timeouts and `stop()` keep it
from outliving the test.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpSink:
    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.requests: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                sink.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers), "body": body})
                status = sink.statuses.get(self.path.split("?")[0], 200)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
