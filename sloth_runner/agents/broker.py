"""Which broker agents and controllers talk through, and whether it is safe to.

The URL comes from `--broker`, else `SLOTH_BROKER_URL`, else `broker:` in
`<home>/agents.yaml`. Only Redis is supported (`redis://`, `rediss://` for TLS). Whoever can
write to the broker can run code on every agent, so a broker that is not on this machine must
have a password, unless the user says `--insecure`. A URL is never shown with its password.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from sloth_runner.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BROKER_ENV = "SLOTH_BROKER_URL"
SCHEMES = ("redis", "rediss")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def resolve(given: str | None = None, *, insecure: bool = False) -> str:
    """The broker URL to use, checked; ConfigError naming where it came from otherwise."""
    source = "--broker"
    url = given
    if not url:
        url, source = os.environ.get(BROKER_ENV), BROKER_ENV
    if not url:
        url, source = _from_config_file(), "broker in agents.yaml"
    if not url:
        raise ConfigError("broker", "no broker: pass --broker redis://HOST:6379/0, set "
                          f"{BROKER_ENV}, or put `broker: redis://…` in agents.yaml in the "
                          "sloth-runner home (agents and delegated tasks need Redis)")
    check(url, source, insecure=insecure)
    return url


def check(url: str, source: str = "broker", *, insecure: bool = False) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError as exc:
        raise ConfigError(source, f"not a broker URL ({mask(url)}): {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(source, f"{mask(url)}: only Redis brokers are supported "
                          "(redis://, or rediss:// for TLS)")
    if not host:
        raise ConfigError(source, f"{mask(url)}: no host")
    if host not in LOOPBACK and not parts.password and not insecure:
        raise ConfigError(source, f"{mask(url)} has no password, and whoever can write to the "
                          "broker can run code on every agent: use "
                          "redis://:PASSWORD@HOST:6379/0 (rediss:// for TLS), or --insecure on "
                          "a network you trust")


def mask(url: str) -> str:
    """The URL with its password (and a user's token) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    if parts.password is None and parts.username is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" if parts.password is not None else f"***@{host}"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _from_config_file() -> str | None:
    from sloth_runner import paths

    path = os.path.join(paths.home(), "agents.yaml")
    if not os.path.exists(path):
        return None
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            doc: Any = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}", f"cannot read it: {exc}") from None
    value = doc.get("broker") if isinstance(doc, dict) else None
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: broker", "must be a URL string")
    return value
