"""Where a run's spans go: OTLP over HTTP, configured the standard way, and never in the way.

- The exporter is opentelemetry-exporter-otlp-proto-http's, built without arguments, so it
  reads the standard variables itself: `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, `…HEADERS`,
  `…TIMEOUT`, `…COMPRESSION`, `…CERTIFICATE`. The resource reads `OTEL_SERVICE_NAME` and
  `OTEL_RESOURCE_ATTRIBUTES`; without a service name it is `sloth-runner`.
- `Guarded` stands between the batch processor and that exporter: an exception is a failed
  export (the processor would log it with a traceback), spans sent and lost are counted, and
  once the run has given up on the collector the remaining batches fail at once.
- The SDK reports export problems through `logging`. With no handler configured, Python would
  print them on stderr (several lines a retry), so a NullHandler sits on the `opentelemetry`
  logger, and while a run is being traced a handler keeps the last problem for its one warning
  line. A program that configures logging still gets the records (they propagate).
- The last flush is bounded: `OTEL_BSP_EXPORT_TIMEOUT` ms if set, else `FLUSH_TIMEOUT_S`
  (3 s, not the SDK's 30 s: a dead collector must not hold a finished run).
"""

from __future__ import annotations

import logging
import os
import re
import threading

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

SERVICE_NAME = "sloth-runner"
FLUSH_TIMEOUT_S = 3.0
_LOGGER = "opentelemetry"
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")
_HTTP = re.compile(r"code: (\d{3}), reason: ([^\n]*)")
_USERINFO = re.compile(r"//[^/@]*@")
_UNREACHABLE = re.compile(r"Failed to establish a new connection|Connection refused|"
                          r"Name or service not known|No route to host")

logging.getLogger(_LOGGER).addHandler(logging.NullHandler())  # no "last resort" stderr lines


def new_exporter() -> SpanExporter:
    """The OTLP/HTTP exporter, configured by the OTEL_* variables (tests replace this)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def endpoint(environ: Mapping[str, str] = os.environ) -> str:
    """Where spans go, as the exporter resolves it, with any password in it masked."""
    url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not url:
        url = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/") + "/v1/traces"
    return _USERINFO.sub("//***@", url)


def protocol_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """A word about `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` asking for what is not sent."""
    asked = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
             or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").strip().lower()
    if asked in ("", "http/protobuf"):
        return None
    return (f"tracing: OTLP protocol '{asked}' is not supported, spans are sent as "
            "http/protobuf (point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port, "
            "usually 4318)")


def resource() -> Resource:
    from opentelemetry.sdk.resources import Resource

    from sloth_runner import __version__

    found = Resource.create({"service.version": __version__})
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": SERVICE_NAME}))
    return found


def flush_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds the end of a run waits for its last spans to be sent."""
    try:
        return max(0.1, float(environ["OTEL_BSP_EXPORT_TIMEOUT"]) / 1000)
    except (KeyError, ValueError):
        return FLUSH_TIMEOUT_S


class Guarded(SpanExporter):
    """An exporter that never raises, counts what it delivered, and can be cut off."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.sent = 0
        self.lost = 0
        self.problem: str | None = None  # why the first export failed, if one did
        self._cut = False
        self._shut = False
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._cut:
            result = SpanExportResult.FAILURE
        else:
            try:
                result = self.inner.export(spans)
            except Exception as exc:  # noqa: BLE001 (a trace is never worth a failed run)
                self.problem = self.problem or f"{type(exc).__name__}: {exc}"
                result = SpanExportResult.FAILURE
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.sent += len(spans)
            else:
                self.lost += len(spans)
        return result

    def cut(self) -> None:
        """Give up: batches still queued fail at once, and the exporter's retries stop."""
        self._cut = True
        self.shutdown()

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        try:
            self.inner.shutdown()
        except Exception:  # noqa: BLE001, S110 (nothing is left to send)
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Problems(logging.Handler):
    """Keeps the first export problem the SDK logs, in a few words (`short`), and sets
    `unreachable` when nothing answers at the endpoint (refused, unknown host): retrying for
    seconds at the end of a run would not help, so the run stops waiting at once."""

    def __init__(self, unreachable: threading.Event) -> None:
        super().__init__(logging.WARNING)
        self.first: str | None = None
        self.unreachable = unreachable

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a malformed record says nothing useful)
            return
        if self.first is None:
            self.first = short(message)
        if _UNREACHABLE.search(message):
            self.unreachable.set()

    def attach(self) -> Problems:
        logging.getLogger(_LOGGER).addHandler(self)
        return self

    def detach(self) -> None:
        logging.getLogger(_LOGGER).removeHandler(self)


def short(message: str) -> str:
    """"Connection refused", "HTTP 404 Not Found", or the message's first 160 characters."""
    found = _ERRNO.search(message)
    if found:
        return found.group(1).strip()
    found = _HTTP.search(message)
    if found:
        return f"HTTP {found.group(1)} {found.group(2).strip()}".strip()
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return first if len(first) <= 160 else first[:157] + "..."
