"""A tiny OTLP/HTTP trace receiver for tests: POST /v1/traces, protobuf decoded.

It listens on 127.0.0.1 on a free port and keeps every span it is sent as a plain dict, and
the headers of each request. `mode` "hang" holds requests unanswered until `stop()` (a
collector that accepts and never answers). Threads are daemons and `stop()` shuts it down.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client gave up (hang mode): expected


class OTLPReceiver:
    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.headers: list[dict] = []
        self.mode = "ok"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def received(self, request: ExportTraceServiceRequest, headers: dict) -> None:
        with self._lock:
            self.headers.append(headers)
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append({
                            "name": span.name, "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex() or None,
                            "kind": span.kind, "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano, "status": span.status.code,
                            "status_message": span.status.message,
                            "attributes": attributes(span.attributes), "resource": resource,
                            "scope": ss.scope.name})

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def attributes(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


def _value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def _handler(receiver: OTLPReceiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if receiver.mode == "hang":
                receiver._stopping.wait(30)
                return
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            encoding = (self.headers.get("content-encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.received(request, {k.lower(): v for k, v in self.headers.items()})
            data = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
