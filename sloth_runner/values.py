"""Values files (`--values FILE.yaml`): a YAML mapping of names to values, checked once here
for the CLI and the Python API alike (alias bombs and deep nesting are refused by the codec)."""

from __future__ import annotations

from sloth_runner.errors import ConfigError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def read_values_file(path: str) -> dict[str, Any]:
    from sloth_runner.services.codec import yaml_decode

    try:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml_decode(fh.read())
    except OSError as exc:
        raise UsageError(f"--values {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # includes a file that is not UTF-8
        raise ConfigError(f"--values {path}", str(exc)) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--values {path}", "must contain a mapping of names to values")
    return loaded
