"""YAML text → plain data plus the line and column of every key and value.

PyYAML's composer gives node marks; we build the data ourselves so that every path
(``("steps", 2, "script", "bash")``) keeps its position, duplicate keys are errors rather than silent
overwrites, and dates stay strings (the data must stay JSON-compatible).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from autopilot_provider.definitions.errors import Diagnostic

try:  # libyaml is much faster and keeps marks too
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - libyaml ships with PyYAML wheels
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path_ = tuple[Any, ...]


class _Constructor(yaml.constructor.SafeConstructor):
    """Safe constructor that leaves timestamps as strings."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)


@dataclass
class Located:
    """Parsed YAML with positions (1-based line and column)."""

    path: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    block_scalars: set[Path_] = field(default_factory=set)

    def position(self, loc: Path_, *, key: bool = False) -> tuple[int, int]:
        """Best position for ``loc``: the key itself, its value, or the nearest ancestor."""
        loc = tuple(loc)
        while True:
            table = (self.keys, self.values) if key else (self.values, self.keys)
            for positions in table:
                if loc in positions:
                    return positions[loc]
            if not loc:
                return (1, 1)
            loc = loc[:-1]
            key = False

    def text_position(self, loc: Path_, line_in_text: int) -> tuple[int, int]:
        """Position of a line inside a string value (templates report lines relative to themselves)."""
        line, col = self.position(loc)
        if loc in self.block_scalars:
            return line + line_in_text, 1
        return (line, col) if line_in_text <= 1 else (line + line_in_text - 1, 1)

    def diagnostic(self, loc: Path_, message: str, *, key: bool = False) -> Diagnostic:
        line, col = self.position(loc, key=key)
        return Diagnostic(self.path, line, col, message)


class YamlError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse(text: str, path: str) -> Located:
    """Parse one YAML document; raise :class:`YamlError` with its position on any problem."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlError(Diagnostic(path, line, col, f"YAML syntax error: {problem}")) from None
    except yaml.YAMLError as exc:
        raise YamlError(Diagnostic(path, 1, 1, f"YAML error: {exc}")) from None
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        raise YamlError(Diagnostic(path, 1, 1, "the file is empty: expected a definition"))
    if len(nodes) > 1:
        line, col = _mark(nodes[1])
        raise YamlError(Diagnostic(path, line, col, "one definition per file: a second YAML document starts here"))
    located = Located(path=path, data=None)
    constructor = _Constructor()
    located.data = _build(nodes[0], (), located, constructor)
    return located


def _build(node: yaml.Node, loc: Path_, located: Located, constructor: _Constructor) -> Any:
    located.values[loc] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                line, col = _mark(key_node)
                raise YamlError(Diagnostic(located.path, line, col, "mapping keys must be scalars"))
            if key in result:
                line, col = _mark(key_node)
                first = located.keys[loc + (key,)]
                raise YamlError(
                    Diagnostic(located.path, line, col, f"duplicate key '{key}' (first defined at line {first[0]})")
                )
            located.keys[loc + (key,)] = _mark(key_node)
            result[key] = _build(value_node, loc + (key,), located, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), located, constructor) for i, item in enumerate(node.value)]
    if getattr(node, "style", None) in ("|", ">"):
        located.block_scalars.add(loc)
    return constructor.construct_object(node, deep=True)


def quick_header(text: str) -> tuple[str | None, str | None]:
    """(kind, id) of a definition without building positions, or (None, None) if unreadable."""
    try:
        data = yaml.load(text, Loader=_QuickLoader)
    except yaml.YAMLError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    kind, ident = data.get("kind"), data.get("id")
    return (kind if isinstance(kind, str) else None, ident if isinstance(ident, str) else None)


class _QuickLoader(_Loader):  # type: ignore[misc,valid-type]
    pass


_QuickLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)
