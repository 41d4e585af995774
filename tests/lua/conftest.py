import pytest


@pytest.fixture
def run_lua(workflow_file, load):
    """Load Lua source, run all its workflows; returns ({task: TaskResult}, Recorder)."""

    def _run(source: str, params: dict | None = None, max_parallel: int | None = None, **kw):
        run, recorder = load(workflow_file(source), params=params or {}, **kw)
        result = run.execute(max_parallel=max_parallel)
        tasks = {t.name: t for wf in result.workflows for t in wf.tasks}
        return tasks, recorder

    return _run
