"""A small OpenAI-compatible server for tests, with scripted faults.

It listens on 127.0.0.1 on a free port, answers chat and completions (plain and streamed), and
plays a script of actions, one per request, then "ok" forever:

    ok                      a normal answer ("reply text" is configurable)
    status:429:2            HTTP 429 with Retry-After: 2 (other statuses likewise; no header
                            when the third part is missing)
    error:401:SOME TEXT     HTTP 401 whose JSON error message is SOME TEXT
    slow:3                  wait 3 s before answering (for client timeouts)
    drip:0.5                a normal answer (plain or streamed), its body sent one byte every
                            0.5 s: every read is quick, the whole answer is not
    drip_headers:0.5        the status line and headers sent one byte every 0.5 s
    cut                     a stream that stops after two chunks, without finish_reason
    drop                    close the connection without answering
    malformed               HTTP 200 with a body that is not JSON
    text:SOME TEXT          answer with this text

`GET …/models` lists `models` (as a compatible server does; counted in `model_lists`, not in
`requests`). Every other request is recorded (path, headers, JSON body). Threads are daemons, each socket has a
timeout, and `stop()` shuts it down: nothing outlives the test.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up first (timeout tests): expected here
        super().handle_error(request, client_address)


class FaultServer:
    def __init__(self, reply: str = "reply text") -> None:
        self.reply = reply
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.models: list[str] = ["gpt-4o-mini"]  # what GET /v1/models lists
        self.model_lists = 0
        self._lock = threading.Lock()
        handler = _make_handler(self)
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def play(self, *actions: str) -> None:
        with self._lock:
            self.script = list(actions)
            self.requests.clear()

    def next_action(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else "ok"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _make_handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body stall 40 ms on delayed ACKs
        timeout = 10

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            if not self.path.rstrip("/").endswith("/models"):
                self.send_error(404)
                return
            server.model_lists += 1
            body = json.dumps({"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                for m in server.models]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append({"path": self.path, "headers": headers, "body": body,
                                    "at": time.monotonic(), "peer": self.client_address})
            action = server.next_action()
            kind, _, arg = action.partition(":")
            self.drip = 0.0
            if kind == "status":
                code, _, retry_after = arg.partition(":")
                payload = json.dumps({"error": {"message": f"scripted {code}", "type": "test"}})
                self.send_response(int(code))
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self._send_body(payload.encode(), "application/json")
                return
            if kind == "error":
                code, _, message = arg.partition(":")
                payload = json.dumps({"error": {"message": message, "type": "test"}})
                self.send_response(int(code))
                self._send_body(payload.encode(), "application/json")
                return
            if kind == "slow":
                time.sleep(float(arg))
            self.drip = float(arg) if kind in ("drip", "drip_headers") else 0.0
            if kind == "drip_headers":
                self._drip_headers(body, server.reply)
                return
            if kind == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if kind == "malformed":
                self._send_body(b"{this is not json", "application/json", 200)
                return
            text = arg if kind == "text" else server.reply
            if body.get("stream"):
                self._stream(body, text, cut=(kind == "cut"))
            else:
                self._send_body(json.dumps(_answer(self.path, body, text)).encode(),
                                "application/json", 200)

        def _send_body(self, data: bytes, ctype: str, status: int | None = None):
            if status is not None:
                self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self._write(data)

        def _write(self, data: bytes):
            """All at once, or one byte every `self.drip` seconds (the handler ends as soon as
            the client hangs up: the next write fails)."""
            if not self.drip:
                self.wfile.write(data)
                return
            self.wfile.flush()
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(self.drip)

        def _drip_headers(self, body: dict, text: str):
            data = json.dumps(_answer(self.path, body, text)).encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nX-Padding: {'p' * 200}\r\n\r\n").encode()
            self.close_connection = True
            self._write(head)
            self.drip = 0.0
            self._write(data)

        def _stream(self, body: dict, text: str, cut: bool):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            words = text.split(" ")
            pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
            chat = self.path.endswith("/chat/completions")
            for i, piece in enumerate(pieces):
                if cut and i == 2:
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                last = i == len(pieces) - 1
                if chat:
                    choice = {"index": 0, "delta": {"content": piece},
                              "finish_reason": "stop" if last else None}
                    obj = "chat.completion.chunk"
                else:
                    choice = {"index": 0, "text": piece, "finish_reason": "stop" if last else None}
                    obj = "text_completion"
                chunk = {"id": "x", "object": obj, "created": 0, "model": body.get("model"),
                         "choices": [choice]}
                self._write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self._write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def _answer(path: str, body: dict, text: str) -> dict:
    prompt_tokens, completion_tokens = 11, len(text.split())
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": "stop"}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [
                {"token": w, "logprob": -0.1, "bytes": None, "top_logprobs": []}
                for w in text.split()]}
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                "choices": [choice], "usage": usage}
    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {"id": "x", "object": "text_completion", "created": 0, "model": body.get("model"),
            "choices": [choice], "usage": usage}
