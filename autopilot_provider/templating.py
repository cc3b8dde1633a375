"""Sandboxed Jinja for user-authored text: templates, shell templates and decision expressions.

User text is data, never code: templates and expressions render in Jinja's SandboxedEnvironment
(no attribute access to internals, no unsafe callables). In shell templates every ``{{ value }}`` is
shell-quoted, so a form value ``x; touch /tmp/pwned`` stays one harmless word.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

SCOPE_NAMES = ("form", "steps", "run", "resources", "contacts", "inputs")


def _tojson(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _make_env(**kwargs: Any) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, **kwargs)
    env.filters["tojson"] = _tojson
    env.filters["shell_quote"] = lambda v: shlex.quote(str(v))
    return env


def _shell_finalize(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = _tojson(value)
    elif isinstance(value, bool):
        value = "true" if value else "false"
    return shlex.quote("" if value is None else str(value))


TEXT = _make_env()
SHELL = _make_env(finalize=_shell_finalize)


@lru_cache(maxsize=2048)
def _compile(env_name: str, source: str):
    env = SHELL if env_name == "shell" else TEXT
    return env.from_string(source)


def render(source: str, scope: Mapping[str, Any], *, shell: bool = False) -> str:
    """Render a template string with ``scope``. Undefined names raise instead of vanishing."""
    if "{" not in source:
        return source
    return _compile("shell" if shell else "text", source).render(**scope)


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like value. A string that is exactly one ``{{ expr }}``
    keeps the expression's type (a number stays a number, a list stays a list)."""
    if isinstance(value, str):
        expr = _single_expression(value)
        if expr is not None:
            return evaluate(expr, scope)
        return render(value, scope)
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    return value


def _single_expression(value: str) -> str | None:
    stripped = value.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        return stripped[2:-2].strip()
    return None


@lru_cache(maxsize=2048)
def _compile_expression(source: str):
    return TEXT.compile_expression(source, undefined_to_none=False)


def evaluate(expression: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate a decision expression in the sandbox."""
    return _compile_expression(expression)(**scope)


# ---------------------------------------------------------------------------------------------
# Static analysis for validation (no rendering)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A use of ``scope.name`` (e.g. ``form.hostname``) found in a template; line is 1-based."""

    scope: str
    name: str | None
    line: int


def check_template(source: str, *, expression: bool = False) -> tuple[str | None, int, list[Reference], set[str]]:
    """Parse user text. Returns (syntax error or None, error line, references, undeclared names)."""
    text = "{{ " + source + " }}" if expression else source
    try:
        tree = TEXT.parse(text)
    except TemplateSyntaxError as exc:
        return exc.message or str(exc), exc.lineno or 1, [], set()
    from jinja2 import meta

    undeclared = meta.find_undeclared_variables(tree) - set(TEXT.globals)
    return None, 1, list(_references(tree)), undeclared


def _references(tree: nodes.Node) -> Iterator[Reference]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Name):
            continue
        base = node.node
        if not isinstance(base, nodes.Name) or base.ctx != "load":
            continue
        if isinstance(node, nodes.Getattr):
            yield Reference(base.name, node.attr, node.lineno)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield Reference(base.name, node.arg.value, node.lineno)
