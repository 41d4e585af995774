"""Up-to-date checks: a task with `:inputs()`/`:outputs()` whose files are unchanged since its
last success (and whose shell command is the same) is not run again; `--force` runs it anyway.

Hashes are of content (services/fingerprint.py) and are kept in the run's store per task of
this file. The engine calls `up_to_date` before a task and `remember` after its success.
"""

from __future__ import annotations

import os

from sloth_runner.services import fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sloth_runner.engine.model import Task, TaskContext
    from sloth_runner.running import Run


class Freshness:
    def __init__(self, run: Run, force: bool = False) -> None:
        self.run = run
        self.force = force
        self.file = os.path.realpath(run.path)
        self.cwd = os.getcwd()

    def _key(self, task: Task, ctx: TaskContext) -> str:
        return f"{self.file}\0{ctx.workflow}\0{task.name}"

    def _now(self, task: Task) -> tuple[dict, dict | None] | None:
        base = os.path.join(self.cwd, task.workdir) if task.workdir else self.cwd
        inputs = fingerprint.snapshot(task.inputs, base) if task.inputs else {}
        if inputs is None:
            return None
        outputs = fingerprint.snapshot(task.outputs, base) if task.outputs else {}
        return {"command": task.fingerprint, "files": inputs}, outputs

    def up_to_date(self, task: Task, ctx: TaskContext) -> bool:
        if self.force:
            return False
        from sloth_runner.store.fingerprints import FingerprintStore

        stored = FingerprintStore(self.run.store).get(self._key(task, ctx))
        if stored is None:
            return False
        now = self._now(task)
        return now is not None and now[1] is not None and list(stored) == list(now)

    def remember(self, task: Task, ctx: TaskContext) -> None:
        from sloth_runner.store.fingerprints import FingerprintStore

        now = self._now(task)
        if now is None or now[1] is None:  # an input or an output is missing: never up to date
            return
        FingerprintStore(self.run.store).put(self._key(task, ctx), now[0], now[1])
