import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloth_runner.engine import dag
from sloth_runner.engine.model import Outcome, Task, Workflow
from sloth_runner.errors import DefinitionError, DependencyError


def ok(ctx):
    return Outcome(True)


def wf(edges: dict[str, tuple[str, ...]]) -> Workflow:
    return Workflow("w", tuple(Task(n, ok, deps, location=f"f.lua:{i + 1}")
                               for i, (n, deps) in enumerate(edges.items())))


def test_unknown_dependency_names_both_tasks_and_suggests():
    with pytest.raises(DependencyError) as err:
        dag.validate(wf({"build": (), "test": ("biuld",)}))
    assert "f.lua:2" in str(err.value)
    assert "'test' depends on unknown task 'biuld'" in str(err.value)
    assert "did you mean 'build'" in str(err.value)


def test_cycle_is_reported_in_order():
    with pytest.raises(DependencyError) as err:
        dag.validate(wf({"a": ("c",), "b": ("a",), "c": ("b",), "d": ()}))
    message = str(err.value)
    assert "dependency cycle" in message
    cycle = message.split("dependency cycle: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    # each step follows a real depends_on edge
    edges = {"a": ("c",), "b": ("a",), "c": ("b",)}
    for here, there in zip(cycle, cycle[1:], strict=False):
        assert there in edges[here]


def test_self_dependency_is_a_cycle():
    with pytest.raises(DependencyError, match="a -> a"):
        dag.validate(wf({"a": ("a",)}))


def test_duplicate_task_names():
    w = Workflow("w", (Task("a", ok, location="f.lua:1"), Task("a", ok, location="f.lua:5")))
    with pytest.raises(DefinitionError, match="f.lua:5.*'a' twice.*f.lua:1"):
        dag.validate(w)


def test_select_keeps_targets_and_their_dependencies():
    w = wf({"a": (), "b": ("a",), "c": ("b",), "d": ()})
    assert [t.name for t in dag.select(w, ["c"]).tasks] == ["a", "b", "c"]
    with pytest.raises(DependencyError, match="no task 'zzz'"):
        dag.select(w, ["zzz"])


def test_levels():
    w = wf({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()})
    assert dag.levels(w) == [["a", "e"], ["b", "c"], ["d"]]


@st.composite
def random_graph(draw):
    n = draw(st.integers(1, 25))
    names = [f"t{i}" for i in range(n)]
    graph = {}
    for _i, name in enumerate(names):
        graph[name] = tuple(draw(st.lists(st.sampled_from(names), max_size=4, unique=True)))
    return graph


def _has_cycle(graph):
    state = {}

    def visit(node):
        if state.get(node) == 1:
            return True
        if state.get(node) == 2:
            return False
        state[node] = 1
        if any(visit(d) for d in graph[node]):
            return True
        state[node] = 2
        return False

    return any(visit(n) for n in graph)


@settings(max_examples=300, deadline=None)
@given(random_graph())
def test_find_cycle_agrees_with_reference(graph):
    cycle = dag.find_cycle(graph)
    assert (cycle is not None) == _has_cycle(graph)
    if cycle:
        assert cycle[0] == cycle[-1]
        for here, there in zip(cycle, cycle[1:], strict=False):
            assert there in graph[here]
