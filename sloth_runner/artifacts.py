"""Artifacts: files a task leaves for the tasks after it (`:artifacts({"app.tar.gz"})`), which
a task that `:consumes({"app.tar.gz"})` finds in its own workdir before it runs.

They go through a folder of the run (in its spool folder), so a consumer gets the producer's
file as it was when the producer succeeded, whatever happened to the producer's workdir since.
As in the Go sloth-runner, an artifact is known by its file name (`dist/app.tar.gz` is
consumed as `app.tar.gz`); two artifacts of the same name: the later one wins.
"""

from __future__ import annotations

import glob
import os
import shutil

from sloth_runner.errors import ExecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sloth_runner.engine.model import Task, TaskContext


class Artifacts:
    def __init__(self, root: str) -> None:
        self.root = root

    def collect(self, task: Task, ctx: TaskContext) -> None:
        """After `task` succeeded: copy what it declared, relative to its workdir."""
        base = ctx.workdir or os.getcwd()
        for pattern in task.artifacts:
            found = glob.glob(pattern, root_dir=base, recursive=True)
            if not found:
                raise ExecError(f"task '{task.name}' declares the artifact '{pattern}', but no "
                                f"such file is in {base}")
            for relative in found:
                name = os.path.basename(relative.rstrip(os.sep))
                _copy(os.path.join(base, relative), os.path.join(self.root, name))

    def provide(self, task: Task, ctx: TaskContext) -> None:
        """Before `task` runs: copy what it consumes into its workdir."""
        base = ctx.workdir or os.getcwd()
        for pattern in task.consumes:
            found = glob.glob(pattern, root_dir=self.root, recursive=True) \
                if os.path.isdir(self.root) else []
            if not found:
                raise ExecError(f"task '{task.name}' consumes the artifact '{pattern}', which no "
                                "task before it has left (declare it with :artifacts)")
            for relative in found:
                _copy(os.path.join(self.root, relative), os.path.join(base, relative))


def _copy(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
