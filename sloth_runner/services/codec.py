"""JSON and YAML encoding for the `json` and `yaml` modules. PyYAML is imported on first use.

YAML decoding is bounded, because a YAML document is a graph, not a tree: aliases let a few
hundred bytes describe a billion nodes ("billion laughs"), which PyYAML builds as shared objects
but every consumer (Lua tables, JSON, the store) expands. A document is refused when its aliases
would add more than `MAX_ALIAS_NODES` nodes, when an alias refers to a node that contains it, or
when it nests deeper than `MAX_DEPTH` (what a Lua table may hold: lua/convert.py's MAX_DEPTH).
The checks run while PyYAML composes the document, so a bad one is refused as soon as it is seen.
"""

from __future__ import annotations

import json

from sloth_runner.kinds import kind

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 64  # nested mappings/sequences; the same limit as lua/convert.py
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to a document, all aliases together
_loader: Any = None  # the bounded YAML loader class, built on first use (PyYAML is imported late)


def json_encode(value: Any, pretty: bool = False) -> str:
    # Sorted keys: Lua tables have no order, and the same data should always read the same.
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str,
                      sort_keys=True)


def json_decode(text: str) -> Any:
    if not isinstance(text, str):
        raise TypeError(f"json.decode expects a string, got {kind(text)}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def yaml_encode(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def yaml_decode(text: str) -> Any:
    """One YAML document -> Python values; ValueError for invalid or unbounded documents."""
    if not isinstance(text, str):
        raise TypeError(f"yaml.decode expects a string, got {kind(text)}")
    import yaml

    try:
        return yaml.load(text, Loader=_bounded_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc


def _bounded_loader() -> Any:
    global _loader
    if _loader is None:
        _loader = _make_bounded_loader()
    return _loader


def _make_bounded_loader() -> Any:
    import yaml

    collection_start = (yaml.SequenceStartEvent, yaml.MappingStartEvent)

    class BoundedLoader(yaml.SafeLoader):
        """SafeLoader that counts, while composing, what the document would expand to.

        Each open node has a counter of the nodes below it (aliases counted at full size), so a
        node's expanded size is known when it closes; anchored nodes remember theirs.
        """

        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self.open_counts: list[int] = []
            self.anchor_sizes: dict[int, int] = {}  # id(anchored node) -> expanded size
            self.alias_nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                node = self.anchors.get(event.anchor)
                if node is not None:  # else PyYAML reports the undefined alias
                    size = self.anchor_sizes.get(id(node))
                    if size is None:
                        raise ValueError(f"invalid YAML: alias *{event.anchor} {_at(event)} "
                                         f"refers to a node that contains it (a recursive "
                                         f"structure cannot be decoded)")
                    self.alias_nodes += size
                    if self.alias_nodes > MAX_ALIAS_NODES:
                        raise ValueError(f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} "
                                         f"nodes (limit reached at alias *{event.anchor} "
                                         f"{_at(event)}); refusing a document that would blow "
                                         f"up in memory")
                    if self.open_counts:
                        self.open_counts[-1] += size
                return super().compose_node(parent, index)
            if len(self.open_counts) >= MAX_DEPTH and isinstance(event, collection_start):
                raise ValueError(f"YAML nested deeper than {MAX_DEPTH} levels {_at(event)}")
            self.open_counts.append(0)
            try:
                node = super().compose_node(parent, index)
            finally:
                below = self.open_counts.pop()
            if event.anchor is not None:
                self.anchor_sizes[id(node)] = below + 1
            if self.open_counts:
                self.open_counts[-1] += below + 1
            return node

        def compose_document(self) -> Any:
            node = super().compose_document()
            self.anchor_sizes.clear()  # anchors are per document; ids may be reused
            return node

    return BoundedLoader


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"at line {mark.line + 1} column {mark.column + 1}"
