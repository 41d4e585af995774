"""Terminal output with rich: a live panel of running tasks, then a summary table."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sloth_runner.engine.events import Listener
from sloth_runner.engine.model import (
    ERROR,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    UP_TO_DATE,
    AttemptRecord,
    TaskResult,
    Workflow,
    WorkflowResult,
)
from sloth_runner.reporting.plain import failure_details, format_log, summary_counts

STYLES = {SUCCESS: ("✓", "green"), FAILED: ("✗", "red"), TIMEOUT: ("⏱", "red"),
          SKIPPED: ("-", "yellow"), ERROR: ("!", "red"), INTERRUPTED: ("■", "yellow"),
          UP_TO_DATE: ("=", "green")}


class LiveReporter(Listener):
    def __init__(self, debug: bool = False) -> None:
        self.console = Console(highlight=False)
        self.debug = debug
        self.running: dict[str, tuple[float, int]] = {}
        self.done = 0
        self.total = 0
        self.live: Live | None = None
        self.streams: dict[str, str] = {}

    def workflow_started(self, workflow: Workflow) -> None:
        self.total, self.done, self.running = len(workflow.tasks), 0, {}
        self.console.print(f"[bold]▶ {workflow.name}[/] [dim]{workflow.description}[/]")
        self.live = Live(self._panel(), console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._panel)
        self.live.start()

    def task_started(self, workflow: str, task: str, attempt: int) -> None:
        self.running[task] = (time.monotonic(), attempt)

    def attempt_finished(self, record: AttemptRecord) -> None:
        if not record.final and record.status != SUCCESS:
            self.console.print(f"  [yellow]↻ {record.task}[/] attempt {record.attempt} "
                               f"{record.status}: {record.error or record.message}")

    def task_finished(self, workflow: str, result: TaskResult) -> None:
        self.running.pop(result.name, None)
        self.done += 1
        mark, colour = STYLES.get(result.status, ("?", "white"))
        line = Text(f"  {mark} ", style=colour)
        line.append(result.name, style="bold")
        if result.status != SKIPPED:
            line.append(f"  {result.duration_s:.2f}s", style="dim")
        detail = result.error if result.status != SUCCESS and result.error else result.message
        if detail and detail.strip():
            line.append(f"  {detail.strip().splitlines()[0]}", style=colour if result.status != SUCCESS else "dim")
        self.console.print(line)
        for extra in failure_details(result, self.debug):
            self.console.print(Text("      " + extra, style="dim"))

    def close(self) -> None:
        if self.live is not None:  # transient: the panel and its spinner line are erased
            self.live.stop()
            self.live = None

    def workflow_finished(self, result: WorkflowResult) -> None:
        self.close()
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("task", "status", "attempts", "duration"):
            table.add_column(col)
        for t in result.tasks:
            _, colour = STYLES.get(t.status, ("?", "white"))
            table.add_row(t.name, Text(t.status, style=colour), str(t.attempts),
                          f"{t.duration_s:.2f}s" if t.status != SKIPPED else "")
        self.console.print(table)
        colour = "green" if result.status == "success" else "red"
        self.console.print(f"[{colour}]{result.name}: {result.status}[/] ({summary_counts(result)}) "
                           f"in {result.duration_s:.2f}s" + (f": {result.error}" if result.error else ""))

    def log(self, level: str, message: str, workflow: str | None, task: str | None) -> None:
        if level == "debug" and not self.debug:
            return
        style = {"warn": "yellow", "error": "red", "debug": "dim"}.get(level, "")
        self.console.print(Text(format_log(level, message, task), style=style))

    def stream(self, workflow: str | None, task: str | None, text: str | None) -> None:
        """Tokens grow in the live panel as they come; the whole text stays once complete."""
        key = task or ""
        if text is None:
            done = self.streams.pop(key, "")
            line = Text(f"[{task}] " if task else "", style="dim")
            line.append(done.strip())
            self.console.print(line)
            return
        self.streams[key] = self.streams.get(key, "") + text

    def _panel(self) -> Text:
        now = time.monotonic()
        text = Text(f"  {self.done}/{self.total} done", style="dim")
        for name, (since, attempt) in list(self.running.items())[:10]:
            extra = f" (attempt {attempt})" if attempt > 1 else ""
            text.append(f"\n  ⠿ {name} {now - since:.1f}s{extra}", style="cyan")
            streamed = " ".join(self.streams.get(name, "").split())
            if streamed:
                text.append(f"  {streamed[-70:]}", style="dim")
        return text
