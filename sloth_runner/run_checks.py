"""The optional parts of a run's scheduling, made only for runs whose tasks use them: the
up-to-date checks (hashing costs an import other runs need not pay) and artifact hand-over."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.engine.model import Workflow


def freshness_for(run: Any, workflows: list[Workflow], force: bool) -> Any:
    """Up-to-date checks, for runs that have tasks with inputs or outputs."""
    if not any(t.inputs or t.outputs for wf in workflows for t in wf.tasks):
        return None
    from sloth_runner.freshness import Freshness

    return Freshness(run, force=force)


def artifacts_for(spool: str, workflows: list[Workflow]) -> Any:
    """Artifact hand-over, for runs that have tasks with artifacts or consumes."""
    if not any(t.artifacts or t.consumes for wf in workflows for t in wf.tasks):
        return None
    from sloth_runner.artifacts import Artifacts

    return Artifacts(os.path.join(spool, "artifacts"))
