import pytest

from sloth_runner.engine.runner import run_workflows


@pytest.fixture
def run_lua(workflow_file, load):
    """Load Lua source, run all its workflows; returns ({task: TaskResult}, Recorder)."""

    def _run(source: str, params: dict | None = None, max_parallel: int | None = None):
        loaded, recorder = load(workflow_file(source))
        result = run_workflows(loaded.workflows, params=params or {}, listener=recorder,
                               max_parallel=max_parallel)
        tasks = {t.name: t for wf in result.workflows for t in wf.tasks}
        return tasks, recorder

    return _run
