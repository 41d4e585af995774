"""Parse human sizes ("512MB", "1.5GiB", "64k", 1048576) into bytes, for `:memory_limit()`."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024 ** 2, "mb": 1000 ** 2,
          "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
          "t": 1024 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_size(value: object) -> int:
    """Bytes; raise ValueError with a readable reason for anything else or for zero."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if not match or match.group(2) not in _UNITS:
            raise ValueError(f"bad size {value!r} (use e.g. \"512MB\", \"1GiB\", \"64k\")")
        number, unit = float(match.group(1)), match.group(2)
    else:
        raise ValueError(f"expected a size like \"512MB\", got {type(value).__name__}")
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size must be larger than 0, got {value!r}")
    return size
