"""YAML text → plain data plus the line and column of every key and value.

PyYAML's composer gives node marks; we build the data ourselves so that every path
(``("steps", 2, "script", "bash")``) keeps its position, duplicate keys are errors rather than silent
overwrites, and dates stay strings (the data must stay JSON-compatible).

Positions are looked up only for a definition that has problems, so they are found on first use
(by composing the text again) rather than recorded for every file while parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from autopilot_provider.definitions.bounded import MAX_DEPTH, LimitError, check_yaml, load_yaml
from autopilot_provider.definitions.errors import Diagnostic

try:  # libyaml is much faster and keeps marks too
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - libyaml ships with PyYAML wheels
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader, resolving the implicit type (bool, int, null, ...) of each plain scalar once
    per distinct text: the composer asks for every scalar, and definitions repeat the same keys and
    words over and over. The answers are the resolver's own: the memo holds only while no path
    resolvers are set and the implicit resolvers are those it was filled with."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._plain_tags = None if self.yaml_path_resolvers else _plain_tags(type(self))

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tags = self._plain_tags
        if tags is None or kind is not ScalarNode or not implicit[0]:
            return super().resolve(kind, value, implicit)
        tag = tags.get(value)
        if tag is None:
            if len(tags) >= 65536:
                tags.clear()
            tag = tags[value] = super().resolve(kind, value, implicit)
        return tag


#: loader class → (its implicit resolvers, plain scalar text → tag)
_PLAIN_TAGS: dict[type, tuple[tuple[Any, ...], dict[str, str]]] = {}


def _plain_tags(loader: type) -> dict[str, str]:
    """The memo of plain scalars' tags for ``loader`` (a new one when its resolvers changed)."""
    resolvers = tuple((first, tuple(entries)) for first, entries in loader.yaml_implicit_resolvers.items())  # type: ignore[attr-defined]
    found = _PLAIN_TAGS.get(loader)
    if found is None or found[0] != resolvers:
        found = _PLAIN_TAGS[loader] = (resolvers, {})
    return found[1]


Path_ = tuple[Any, ...]
#: (value positions, key positions, paths of block scalars)
_Tables = tuple[dict[Path_, tuple[int, int]], dict[Path_, tuple[int, int]], set[Path_]]
_STR_TAG = "tag:yaml.org,2002:str"


class _Constructor(yaml.constructor.SafeConstructor):
    """Safe constructor that leaves timestamps as strings."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)


@dataclass
class Located:
    """Parsed YAML with positions (1-based line and column).

    ``text`` is the YAML the data came from; without it (data from elsewhere) every position is
    (1, 1). The position tables are built from it on first use."""

    path: str
    data: Any
    text: str | None = field(default=None, repr=False, compare=False)
    _tables: _Tables | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def values(self) -> dict[Path_, tuple[int, int]]:
        return self._positions()[0]

    @property
    def keys(self) -> dict[Path_, tuple[int, int]]:
        return self._positions()[1]

    @property
    def block_scalars(self) -> set[Path_]:
        return self._positions()[2]

    def _positions(self) -> _Tables:
        if self._tables is None:
            tables: _Tables = ({}, {}, set())
            if self.text is not None:
                # the same text composes to the same nodes: the positions the data was built from
                _record(_compose(self.text, self.path), (), tables, _Constructor())
            self._tables = tables
        return self._tables

    def position(self, loc: Path_, *, key: bool = False) -> tuple[int, int]:
        """Best position for ``loc``: the key itself, its value, or the nearest ancestor."""
        loc = tuple(loc)
        values, keys, _ = self._positions()
        while True:
            table = (keys, values) if key else (values, keys)
            for positions in table:
                if loc in positions:
                    return positions[loc]
            if not loc:
                return (1, 1)
            loc = loc[:-1]
            key = False

    def text_position(self, loc: Path_, line_in_text: int, column_in_text: int | None = None) -> tuple[int, int]:
        """Position of a line (and, given ``column_in_text``, of a character on it; both 1-based) inside a
        string value (templates report lines relative to themselves)."""
        line, col = self.position(loc)
        if loc in self.block_scalars:
            line += line_in_text
            return line, self._block_column(loc, line, line_in_text, column_in_text)
        if line_in_text > 1:
            return line + line_in_text - 1, 1
        if column_in_text is not None and self.text is not None:
            lines = self.text.splitlines()
            quoted = line <= len(lines) and lines[line - 1][col - 1 : col] in ("'", '"')
            col += column_in_text - 1 + quoted
        return line, col

    def _block_column(self, loc: Path_, line: int, line_in_text: int, column_in_text: int | None) -> int:
        """The file column of a character of a literal block scalar's line: the block's indentation
        plus its column in the text (1 when the file line does not hold the text line as written)."""
        if column_in_text is None or self.text is None:
            return 1
        value: Any = self.data
        for part in loc:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return 1
        lines, text_lines = self.text.splitlines(), str(value).splitlines()
        if not (line <= len(lines) and 1 <= line_in_text <= len(text_lines)):
            return 1
        file_line, text_line = lines[line - 1], text_lines[line_in_text - 1]
        if not file_line.endswith(text_line):
            return 1
        return len(file_line) - len(text_line) + column_in_text

    def diagnostic(self, loc: Path_, message: str, *, key: bool = False) -> Diagnostic:
        line, col = self.position(loc, key=key)
        return Diagnostic(self.path, line, col, message)


class YamlError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _compose(text: str, path: str) -> yaml.Node:
    """The one document's root node; raise :class:`YamlError` with its position on any problem,
    including aliases and nesting beyond the limits of :mod:`autopilot_provider.definitions.bounded`."""
    try:
        check_yaml(text, _Loader)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except LimitError as exc:
        raise YamlError(Diagnostic(path, exc.line, exc.column, f"YAML: {exc.message}")) from None
    except RecursionError:  # the pure-Python composer recurses per level (libyaml stops at 1000)
        raise YamlError(Diagnostic(path, 1, 1, f"YAML: nesting deeper than {MAX_DEPTH} levels")) from None
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
    return nodes[0]


def parse(text: str, path: str) -> Located:
    """Parse one YAML document; raise :class:`YamlError` with its position on any problem."""
    root = _compose(text, path)
    try:
        data = _build(root, path, _Constructor())
    except yaml.MarkedYAMLError as exc:  # a tag with no safe constructor, a bad !!binary ...
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(Diagnostic(path, line, col, f"YAML: {exc.problem or exc.context or exc}")) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # e.g. `!!float x`, `!!int 1e999`
        raise YamlError(Diagnostic(path, 1, 1, f"YAML: {exc}")) from None
    return Located(path=path, data=data, text=text)


def _scalar(node: yaml.Node, constructor: _Constructor) -> Any:
    # a plain string is the node's value (what SafeConstructor.construct_yaml_str returns) — most
    # scalars are, and the constructor's generic dispatch costs more than the rest of the parse
    if type(node) is ScalarNode and node.tag == _STR_TAG:
        return node.value
    value = constructor.construct_object(node, deep=True)
    if isinstance(value, bytes):  # !!binary: the data must stay JSON-compatible
        raise yaml.constructor.ConstructorError(
            None, None, "binary values (!!binary) are not supported: use text", node.start_mark
        )
    return value


def _key(key_node: yaml.Node, path: str, constructor: _Constructor) -> Any:
    key = _scalar(key_node, constructor)
    if not isinstance(key, (str, int, float, bool)) and key is not None:
        line, col = _mark(key_node)
        raise YamlError(Diagnostic(path, line, col, "mapping keys must be scalars"))
    return key


def _build(node: yaml.Node, path: str, constructor: _Constructor, depth: int = 1) -> Any:
    """The data of ``node``: duplicate and non-scalar keys are errors, merge keys (<<) apply, and
    collections nest at most MAX_DEPTH deep (``depth`` is ``node``'s)."""
    if isinstance(node, (MappingNode, SequenceNode)) and depth > MAX_DEPTH:
        line, col = _mark(node)
        raise YamlError(Diagnostic(path, line, col, f"YAML: nesting deeper than {MAX_DEPTH} levels"))
    if isinstance(node, MappingNode):
        constructor.flatten_mapping(node)  # merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _key(key_node, path, constructor)
            if key in result:
                line, col = _mark(key_node)
                first = next(_mark(k) for k, _ in node.value if _key(k, path, constructor) == key)
                raise YamlError(
                    Diagnostic(path, line, col, f"duplicate key '{key}' (first defined at line {first[0]})")
                )
            result[key] = _build(value_node, path, constructor, depth + 1)
        return result
    if isinstance(node, SequenceNode):
        return [_build(item, path, constructor, depth + 1) for item in node.value]
    return _scalar(node, constructor)


def _record(node: yaml.Node, loc: Path_, tables: _Tables, constructor: _Constructor) -> None:
    """The positions of every value and key under ``node`` (of data that ``_build`` built from it)."""
    values, keys, block_scalars = tables
    values[loc] = _mark(node)
    if isinstance(node, MappingNode):
        constructor.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = _scalar(key_node, constructor)
            keys[loc + (key,)] = _mark(key_node)
            _record(value_node, loc + (key,), tables, constructor)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, loc + (i,), tables, constructor)
    elif getattr(node, "style", None) in ("|", ">"):
        block_scalars.add(loc)


def quick_header(text: str) -> tuple[str | None, str | None]:
    """(kind, id) of a definition without building positions, or (None, None) if unreadable."""
    try:
        data = load_yaml(text, _QuickLoader, max_depth=MAX_DEPTH)
    except (yaml.YAMLError, LimitError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    kind, ident = data.get("kind"), data.get("id")
    return (kind if isinstance(kind, str) else None, ident if isinstance(ident, str) else None)


class _QuickLoader(_Loader):  # type: ignore[misc,valid-type]
    pass


_QuickLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)
