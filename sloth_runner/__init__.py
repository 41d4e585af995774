"""sloth-runner: Lua-scripted workflows on a parallel DAG engine, with run history.

The public Python API is small on purpose: load a workflow file, run it, read history.
Heavy modules (rich, the AI stack) are imported lazily so `sloth-runner` starts fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
