import io
import re

from rich.console import Console

from sloth_runner.engine.model import AttemptRecord, Task, TaskResult, Workflow, WorkflowResult
from sloth_runner.reporting.live import LiveReporter
from sloth_runner.reporting.plain import PlainReporter


def _events(reporter):
    wf = Workflow("deploy", (Task("build", None), Task("ship", None, ("build",))),
                  description="ship it")
    reporter.workflow_started(wf)
    reporter.task_started("deploy", "build", 1)
    reporter.attempt_finished(AttemptRecord("deploy", "build", 1, "failed", 0, 1, error="flaky",
                                            final=False))
    reporter.log("info", "building", "deploy", "build")
    reporter.log("debug", "hidden unless --debug", "deploy", "build")
    results = [TaskResult("build", "success", 2, 1.5, "done"),
               TaskResult("ship", "failed", 1, 0.2, error="exit code 3: denied")]
    for r in results:
        reporter.task_finished("deploy", r)
    reporter.workflow_finished(WorkflowResult("deploy", "failed", results, 1.7))


def test_live_reporter_renders_progress_and_summary_table():
    out = io.StringIO()
    reporter = LiveReporter()
    reporter.console = Console(file=out, force_terminal=True, width=100, highlight=False)
    _events(reporter)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert "▶ deploy" in text and "↻ build" in text and "[build] INFO: building" in text
    assert "✓" in text and "✗" in text and "exit code 3: denied" in text
    assert "hidden unless" not in text
    assert "deploy: failed" in text and "1 success, 1 failed" in text


def test_plain_reporter_lines():
    out = io.StringIO()
    _events(PlainReporter(out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "== workflow deploy (2 tasks)"
    assert "   retry build: attempt 1 failed: flaky" in lines
    assert "   ok      build (1.50s, 2 attempts): done" in lines
    assert "   FAILED  ship (0.20s): exit code 3: denied" in lines
    assert lines[-1] == "== deploy: failed (1 success, 1 failed) in 1.70s"
