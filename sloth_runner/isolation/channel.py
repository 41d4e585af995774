"""Messages between sloth-runner and its worker processes: JSON lines over a UNIX socket.

Every message is one JSON object on one line with a version (`v`) and an operation (`op`), and
is checked on arrival, so a worker from another version, or a stray writer, is rejected with a
clear error instead of being misread. The same shape serves remote agents later.

    parent -> zygote   spawn
    zygote -> parent   spawned {pid}, with the worker's socket (SCM_RIGHTS)
    parent -> worker   run {id, workflow, task, kind, attempt, deps, deadline, workdir, env, ...}
                       reply {id, ok, value | error}      (answer to a call)
                       progress {id, item}                 (streamed part of a call's answer)
    worker -> parent   log {level, message} | stream {text} | call {id, service, method, args}
                       done {id, outcome}                  (id: the run request's)
"""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
_MAX_LINE = 256 << 20  # a message past this is a bug or an attack, not data


class ProtocolError(Exception):
    """A message that is not ours: wrong version, not JSON, no operation."""


class Channel:
    """One end of a socket pair, speaking versioned JSON lines. Not thread-safe: one user."""

    __slots__ = ("sock", "_buf", "at_eof")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""
        self.at_eof = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, op: str, **fields: Any) -> None:
        fields["v"] = VERSION
        fields["op"] = op
        self.sock.sendall(encode(fields))

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None once the other end has closed."""
        while True:
            line, sep, rest = self._buf.partition(b"\n")
            if sep:
                self._buf = rest
                return decode(line)
            if len(self._buf) > _MAX_LINE:
                raise ProtocolError("message too long")
            try:
                chunk = self.sock.recv(1 << 16)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                return None
            self._buf += chunk

    def buffered(self) -> bool:
        """Whether a whole message has already arrived (then do not wait for the socket)."""
        return b"\n" in self._buf

    def poll_message(self) -> dict[str, Any] | None:
        """The next message if one has arrived, without waiting; None otherwise (then
        `at_eof` says whether the other end has closed). For callers that poll the socket."""
        while True:
            line, sep, rest = self._buf.partition(b"\n")
            if sep:
                self._buf = rest
                return decode(line)
            if self.at_eof:
                return None
            try:
                chunk = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.at_eof = True
                return None
            self._buf += chunk

    def close(self) -> None:
        self.sock.close()


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not a JSON message: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("a message needs an 'op'")
    if message.get("v") != VERSION:
        raise ProtocolError(f"message version {message.get('v')!r}, expected {VERSION}")
    return message
