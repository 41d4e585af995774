"""Validate and slice task graphs: unknown dependencies, cycles (reported in order), subsets."""

from __future__ import annotations

from collections.abc import Iterable

from sloth_runner.engine.model import Task, Workflow
from sloth_runner.errors import DefinitionError, DependencyError


def validate(workflow: Workflow) -> None:
    """Raise DependencyError for unknown dependencies or cycles, DefinitionError for duplicates."""
    by_name: dict[str, Task] = {}
    for task in workflow.tasks:
        if task.name in by_name:
            first = by_name[task.name]
            raise DefinitionError(
                f"{task.location}: workflow '{workflow.name}' defines task '{task.name}' twice"
                f" (first at {first.location})"
            )
        by_name[task.name] = task
    for task in workflow.tasks:
        for dep in task.depends_on:
            if dep not in by_name:
                hint = _closest(dep, by_name)
                raise DependencyError(
                    f"{task.location}: task '{task.name}' depends on unknown task '{dep}'"
                    f" in workflow '{workflow.name}'" + (f" (did you mean '{hint}'?)" if hint else "")
                )
    cycle = find_cycle({t.name: t.depends_on for t in workflow.tasks})
    if cycle:
        where = by_name[cycle[0]].location
        raise DependencyError(f"{where}: dependency cycle: {' -> '.join(cycle)}")


def find_cycle(graph: dict[str, Iterable[str]]) -> list[str] | None:
    """Return one cycle as [a, b, ..., a] following depends_on edges, or None. Iterative DFS."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for root in graph:
        if colour[root] != WHITE:
            continue
        path: list[str] = [root]
        iters = [iter(graph[root])]
        colour[root] = GREY
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                iters.pop()
                continue
            if nxt not in colour:
                continue
            if colour[nxt] == GREY:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                iters.append(iter(graph[nxt]))
    return None


def select(workflow: Workflow, targets: Iterable[str]) -> Workflow:
    """The workflow reduced to `targets` and everything they transitively depend on."""
    by_name = {t.name: t for t in workflow.tasks}
    wanted: set[str] = set()
    stack = list(targets)
    while stack:
        name = stack.pop()
        if name in wanted:
            continue
        if name not in by_name:
            raise DependencyError(f"workflow '{workflow.name}' has no task '{name}'")
        wanted.add(name)
        stack.extend(by_name[name].depends_on)
    tasks = tuple(t for t in workflow.tasks if t.name in wanted)
    return workflow.with_tasks(tasks)


def select_tasks(workflows: list[Workflow], names: list[str]) -> list[Workflow]:
    """The workflows that hold any of `names`, each reduced to those tasks and their
    dependencies (`run --task`). A name found in no workflow is a usage error."""
    from sloth_runner.errors import UsageError

    chosen = []
    found: set[str] = set()
    for wf in workflows:
        here = [n for n in names if any(t.name == n for t in wf.tasks)]
        if here:
            chosen.append(select(wf, here))
            found.update(here)
    missing = [n for n in names if n not in found]
    if missing:
        raise UsageError(f"--task: no task named '{missing[0]}' in the selected workflows")
    return chosen


def levels(workflow: Workflow) -> list[list[str]]:
    """Tasks grouped by the earliest wave they could run in (for --dry-run and `list`)."""
    depth: dict[str, int] = {}
    by_name = {t.name: t for t in workflow.tasks}

    def level(name: str) -> int:
        stack = [name]
        while stack:
            cur = stack[-1]
            pending = [d for d in by_name[cur].depends_on if d not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[cur] = 1 + max((depth[d] for d in by_name[cur].depends_on), default=-1)
        return depth[name]

    out: list[list[str]] = []
    for task in workflow.tasks:
        lv = level(task.name)
        while len(out) <= lv:
            out.append([])
        out[lv].append(task.name)
    return out


def _closest(name: str, names: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.7)
    return found[0] if found else None
