"""Parsing that does bounded work, whoever wrote the text.

YAML aliases let a few hundred bytes stand for gigabytes ("billion laughs": each level repeats the
previous one ten times), a recursive alias makes a cycle that every recursive walk follows forever,
and deep nesting exhausts Python's stack. Every YAML text the project reads (definitions, OpenAPI
documents on import and in the cache) goes through :func:`check_yaml` before it is composed, and its
nesting is checked as it is built; JSON text goes through :func:`load_json`. A refusal is a
:class:`LimitError` with the 1-based line and column of the offending alias or node.

The limits count what the text *expands to*, not what it says:

* at most :data:`MAX_ALIASES` alias uses (``*name``) per document;
* at most :data:`MAX_ALIAS_NODES` nodes added by aliases (an alias of a 10-node list adds 10, an
  alias of a list holding aliases adds what they expand to), so expansion stays linear in the text;
* a recursive alias (one used inside the node it names) is refused;
* nesting at most ``max_depth`` collections deep, counting what aliases bring in
  (:data:`MAX_DEPTH` for definitions, :data:`MAX_DOCUMENT_DEPTH` for OpenAPI documents).

Texts without both ``&`` and ``*`` cannot hold an alias, so they skip the event scan: the common case
costs one substring search.

Regular expressions that authors choose (form ``pattern``s) run on RE2 (:func:`compile_pattern`),
whose matching time is linear in the text; Python's ``re`` backtracks, and ``^(a+)+$`` against 30
``a``s and a ``b`` would take minutes. A pattern RE2 cannot run (backreferences, lookaround) is a
:class:`PatternError` that says why.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import re2
import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
)

#: alias uses (``*name``) allowed in one YAML document
MAX_ALIASES = 100
#: nodes that aliases may add to one YAML document (their expanded size, summed)
MAX_ALIAS_NODES = 100_000
#: collections nested in a definition (the deepest shipped definition uses 9)
MAX_DEPTH = 64
#: collections nested in an OpenAPI document (inline schemas nest deeper than definitions)
MAX_DOCUMENT_DEPTH = 128


@dataclass
class LimitError(Exception):
    """A text that would cost unbounded work; ``line`` and ``column`` are 1-based (1, 1 when unknown)."""

    message: str
    line: int = 1
    column: int = 1
    #: JSON pointer of the offending node, when found in built data rather than in the text
    pointer: str = ""

    def __str__(self) -> str:
        return self.message


def _error(message: str, mark: Any) -> LimitError:
    if mark is None:
        return LimitError(message)
    return LimitError(message, mark.line + 1, mark.column + 1)


def may_have_aliases(text: str) -> bool:
    """False when ``text`` certainly holds no alias (an alias needs an ``&anchor`` and a ``*``)."""
    return "&" in text and "*" in text


def check_yaml(text: str, loader: type, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`LimitError` if ``text``'s aliases or nesting exceed the limits (see the module).

    Only the aliases are checked unless the text may hold some; nesting without aliases is checked
    by :func:`depth_problem` on the built data (or by the caller while it builds). Syntax errors are
    left to the loader that composes the text afterwards.
    """
    if not may_have_aliases(text):
        return
    parser = loader(text)
    try:
        _scan(parser, max_depth)
    except yaml.YAMLError:
        return  # the composer reports it, with its own position
    finally:
        parser.dispose()


def _scan(parser: Any, max_depth: int) -> None:
    """Walk the events once, sizing each anchored node as expanded: (nodes, height in collections)."""
    anchors: dict[str, tuple[int, int]] = {}
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []  # per open collection: [anchor, nodes, height of its children]
    aliases = 0
    added = 0

    def place(nodes: int, height: int, event: Any) -> None:
        if len(stack) + height > max_depth:
            raise _error(f"nesting deeper than {max_depth} levels (through an alias)", event.start_mark)
        if stack:
            top = stack[-1]
            top[1] += nodes
            top[2] = max(top[2], height)

    while parser.check_event():
        event = parser.get_event()
        if isinstance(event, DocumentStartEvent):
            anchors.clear()
            aliases = added = 0
        elif isinstance(event, AliasEvent):
            aliases += 1
            if event.anchor in open_anchors:
                raise _error(f"recursive alias '*{event.anchor}' (used inside the node it names)", event.start_mark)
            if aliases > MAX_ALIASES:
                raise _error(f"more than {MAX_ALIASES} aliases in one document", event.start_mark)
            nodes, height = anchors.get(event.anchor, (1, 0))
            added += nodes
            if added > MAX_ALIAS_NODES:
                raise _error(
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes ('*{event.anchor}' is {nodes} nodes)",
                    event.start_mark,
                )
            place(nodes, height, event)
        elif isinstance(event, ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
            place(1, 0, event)
        elif isinstance(event, CollectionStartEvent):
            if len(stack) + 1 > max_depth:
                raise _error(f"nesting deeper than {max_depth} levels", event.start_mark)
            stack.append([event.anchor, 1, 0])
            if event.anchor is not None:
                open_anchors.add(event.anchor)
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            anchor, nodes, height = stack.pop()
            if anchor is not None:
                open_anchors.discard(anchor)
                anchors[anchor] = (nodes, height + 1)
            place(nodes, height + 1, event)


def load_yaml(text: str, loader: type, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """The data of the one YAML document in ``text``, read with ``loader`` (a safe loader class), after
    :func:`check_yaml`; nesting deeper than ``max_depth`` is a :class:`LimitError` too."""
    check_yaml(text, loader, max_depth=max_depth)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - callers pass safe loaders
    except RecursionError:  # the pure-Python composer recurses per level
        raise LimitError(f"nesting deeper than {max_depth} levels") from None
    _check_depth(data, max_depth)
    return data


def load_json(text: str | bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """``json.loads`` with nesting at most ``max_depth`` deep (:class:`LimitError` otherwise, never a
    RecursionError). Raises ``ValueError`` for text that is not JSON."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise LimitError(f"nesting deeper than {max_depth} levels") from None
    _check_depth(data, max_depth)
    return data


def depth_problem(data: Any, max_depth: int) -> tuple[Any, ...] | None:
    """The path of the first collection nested deeper than ``max_depth`` in ``data`` (dicts and
    lists; a cycle counts as too deep), or None. Iterative: any depth is safe to check."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            children: Any = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        else:
            continue
        if len(path) >= max_depth:
            return path
        for key, child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, path + (key,)))
    return None


def _check_depth(data: Any, max_depth: int) -> None:
    path = depth_problem(data, max_depth)
    if path is not None:
        where = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)
        raise LimitError(f"nesting deeper than {max_depth} levels", pointer=where)


#: longest regular expression an author may write
MAX_PATTERN = 1000

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported to its author, not logged by RE2


class PatternError(ValueError):
    """A regular expression that RE2 cannot run; the message says why."""


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (matching in time linear in the text), or :class:`PatternError`."""
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"the regular expression is longer than {MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        problem = exc.args[0] if exc.args else str(exc)
        if isinstance(problem, bytes):
            problem = problem.decode("utf-8", "replace")
        raise PatternError(_explain(str(problem))) from None


def _explain(problem: str) -> str:
    why = f"the linear-time regex engine (RE2) cannot run it: {problem}"
    if "\\" in problem and any(f"\\{d}" in problem for d in "123456789"):
        return f"{why} (backreferences need backtracking, which can take exponential time)"
    if any(op in problem for op in ("(?=", "(?!", "(?<")):
        return f"{why} (lookahead and lookbehind need backtracking, which can take exponential time)"
    return why


def _search(pattern: str, text: str) -> bool | None:
    """Whether RE2 finds ``pattern`` in ``text``; None when RE2 cannot run the pattern."""
    try:
        return compile_pattern(pattern).search(text) is not None
    except PatternError:
        return None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    if _search(pattern, instance) is False:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Any:
    from jsonschema._utils import extras_msg
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = {k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)}
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        if patterns:
            joined = ", ".join(repr(each) for each in sorted(extras))
            verb = "does" if len(extras) == 1 else "do"
            shown = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {shown}")
        else:
            names, verb = extras_msg(sorted(extras, key=str))
            yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")


@functools.cache
def linear_time(validator_class: type) -> type:
    """``validator_class`` (a jsonschema validator) with ``pattern``, ``patternProperties`` and
    ``additionalProperties`` matched by RE2 instead of Python's backtracking ``re``. A pattern RE2
    cannot run (lookaround in an imported OpenAPI document) is not checked and matches no property
    name; form patterns never get here (definitions with such patterns are refused)."""
    from jsonschema.validators import extend

    return extend(
        validator_class,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
