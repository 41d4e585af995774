"""An attempt's deadline for HTTP providers: `timeout` bounds the whole attempt, not each read.

httpx's timeouts bound each network operation: a server sending one byte every 0.5 s never
trips a 2 s read timeout, and held a call for 40 s. So the OpenAI SDK gets an HTTP client whose
connection pool does its socket I/O through `_Backend` here: every connect, read, write and TLS
handshake gets at most the time left before the attempt's deadline, and fails at once when none
is left, for headers, bodies and streamed chunks alike. The deadline is per thread
(`attempt_deadline`), because the SDK's synchronous client does all its I/O on the calling
thread, so one pooled client serves every concurrent call.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

_local = threading.local()
_client: Any = None
_client_lock = threading.Lock()


@contextmanager
def attempt_deadline(deadline: float | None) -> Iterator[None]:
    """Bound this thread's HTTP I/O by `deadline` (a time.monotonic() value) inside the block."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


def _capped(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


def http_client() -> Any:
    """The process's one HTTP client for OpenAI-compatible providers (pooled connections),
    with the SDK's defaults and its environment proxy settings, I/O bounded as above."""
    global _client
    with _client_lock:
        if _client is None:
            import openai

            class DeadlineHttpClient(openai.DefaultHttpxClient):
                def _init_transport(self, *args: Any, **kwargs: Any) -> Any:
                    return _bounded(super()._init_transport(*args, **kwargs))

                def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> Any:
                    return _bounded(super()._init_proxy_transport(*args, **kwargs))

            _client = DeadlineHttpClient()
        return _client


def _bounded(transport: Any) -> Any:
    """Route the transport's connection pool through `_Backend` (tests/ai/test_timeouts.py
    fails if a new httpx release moves these attributes)."""
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if pool is not None and inner is not None:
        import importlib

        core = importlib.import_module(type(pool).__module__.split(".")[0])  # httpcore(2)
        pool._network_backend = _backend_class(core)(inner)
    return transport


_classes: dict[str, Any] = {}


def _backend_class(core: Any) -> Any:
    """A network backend for this httpcore module that caps every operation's timeout."""
    found = _classes.get(core.__name__)
    if found is not None:
        return found

    class _Stream(core.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return bytes(self._inner.read(max_bytes, _capped(timeout, core.ReadTimeout)))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _capped(timeout, core.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            return _Stream(self._inner.start_tls(ssl_context, server_hostname,
                                                 _capped(timeout, core.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class _Backend(core.NetworkBackend):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: Any = None) -> Any:
            return _Stream(self._inner.connect_tcp(host, port,
                                                   _capped(timeout, core.ConnectTimeout),
                                                   local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Any = None) -> Any:
            return _Stream(self._inner.connect_unix_socket(
                path, _capped(timeout, core.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    _classes[core.__name__] = _Backend
    return _Backend
