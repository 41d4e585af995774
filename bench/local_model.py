"""Shared set-up for the benchmarks that run the bundled local model through AIService."""

from __future__ import annotations

import argparse
import os
import tempfile


def setup(doc: str, default_rounds: int) -> tuple[argparse.Namespace, object]:
    """(parsed --rounds, an AIService on the local provider with a throw-away history)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=default_rounds)
    args = parser.parse_args()
    os.environ["SLOTH_RUNNER_HOME"] = tempfile.mkdtemp()
    from sloth_runner.ai.client import AIService

    service = AIService(environ={})
    service.configure({"provider": "local", "retry_attempts": 0})
    service.complete("hello")  # load the model outside the measurement
    return args, service
