"""Alerts from a workflow: to a chat webhook when one is configured, else to the run's output.

The payload is `{"text": ...}`, which Slack, Mattermost, Rocket.Chat and most chat webhooks
accept. A webhook URL is itself a secret (anyone holding it can post), so errors name only its
host. A failed delivery raises: an alert that silently went nowhere is worse than a failed task.
"""

from __future__ import annotations

import os

from sloth_runner.errors import IntegrationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WEBHOOK_ENV = "SLOTH_ALERT_WEBHOOK"
# An alert's severity -> the level of the run-log line that shows it when no webhook is set.
SEVERITY_LEVELS = {"info": "info", "warning": "warn", "warn": "warn", "error": "error",
                   "critical": "error"}


def log_level_for(severity: str) -> str:
    """The log level (info, warn, error) for an alert severity; ValueError for unknown ones."""
    level = SEVERITY_LEVELS.get(severity.lower()) if isinstance(severity, str) else None
    if level is None:
        allowed = ", ".join(SEVERITY_LEVELS)
        raise ValueError(f"notifications.send_alert: unknown severity {severity!r} "
                         f"(allowed: {allowed})")
    return level


def webhook_from_env() -> str | None:
    return os.environ.get(WEBHOOK_ENV) or None


def post_alert(webhook: str, text: str, timeout: float = 10.0) -> dict[str, Any]:
    """POST {"text": text} to `webhook`; {sent, channel, http_status} or IntegrationError."""
    if not webhook.startswith(("http://", "https://")):
        raise IntegrationError(f"notifications: the alert webhook must be an http(s) URL "
                               f"(set {WEBHOOK_ENV} or pass webhook = ...)")
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    try:
        host = urlsplit(webhook).hostname or "?"
    except ValueError:
        host = "?"
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(webhook, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            code = response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        raise IntegrationError(f"notifications: the alert webhook at {host} answered HTTP "
                               f"{exc.code}; the alert was not delivered") from exc
    except ValueError:  # its message quotes the URL, which is a secret: the cause stays out
        raise IntegrationError("notifications: the alert webhook URL is not valid; the alert "
                               "was not delivered") from None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise IntegrationError(f"notifications: cannot reach the alert webhook at {host}: "
                               f"{reason}; the alert was not delivered") from exc
    return {"sent": True, "channel": "webhook", "http_status": code, "destination": host}
