"""Sandboxed Jinja for user-authored text: templates, environment values and decision expressions.

User text is data, never code: templates and expressions render in Jinja's SandboxedEnvironment
(no attribute access to internals, no unsafe callables). Script bodies are never templated: values
reach a script as environment variables (``render_env_value``), which no shell parses.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

SCOPE_NAMES = ("form", "steps", "run", "resources", "contacts", "inputs")


def _tojson(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _make_env(**kwargs: Any) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, **kwargs)
    env.filters["tojson"] = _tojson
    env.filters["shell_quote"] = lambda v: shlex.quote(str(v))
    return env


def _data_finalize(value: Any) -> str:
    """Values as a program reads them: lists and mappings as JSON, booleans as true/false, None as ""."""
    if isinstance(value, (dict, list)):
        return _tojson(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


TEXT = _make_env()
DATA = _make_env(finalize=_data_finalize)


@lru_cache(maxsize=2048)
def _compile(env_name: str, source: str):
    env = DATA if env_name == "data" else TEXT
    return env.from_string(source)


def render(source: str, scope: Mapping[str, Any]) -> str:
    """Render a template string with ``scope``. Undefined names raise instead of vanishing."""
    if "{" not in source:
        return source
    return _compile("text", source).render(**scope)


def render_env_value(source: str, scope: Mapping[str, Any]) -> str:
    """Render the value of a script's environment variable: the text as data (lists and mappings as
    JSON, booleans as true/false), with no quoting, since no shell ever parses it."""
    if "{" not in source:
        return source
    return _compile("data", source).render(**scope)


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


# ---------------------------------------------------------------------------------------------
# Slack text: values are escaped for Slack's mrkdwn (a form value cannot ping @channel)
# ---------------------------------------------------------------------------------------------


def slack_escape(value: Any) -> str:
    """Escape ``&``, ``<`` and ``>`` the way Slack asks (so ``<!channel>`` stays text)."""
    if isinstance(value, (dict, list)):
        value = _tojson(value)
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SLACK = _make_env(finalize=slack_escape)


@lru_cache(maxsize=1024)
def _compile_slack(source: str):
    return SLACK.from_string(source)


def render_slack(source: str, scope: Mapping[str, Any]) -> str:
    """Render an inline template for a Slack message: every ``{{ value }}`` is Slack-escaped."""
    if "{" not in source:
        return source
    return _compile_slack(source).render(**scope)


# ---------------------------------------------------------------------------------------------
# File templates under definitions/templates/ (notification mails and messages)
# ---------------------------------------------------------------------------------------------

#: The folder under the definitions folder that holds file templates.
TEMPLATES_DIR = "templates"
#: Parts of a message, and the file name infix of each: NAME.html.j2, NAME.txt.j2, ...
TEMPLATE_PARTS = {"subject": "subject", "text": "txt", "html": "html", "slack": "slack"}
_INFIXES = {infix: part for part, infix in TEMPLATE_PARTS.items()} | {"text": "text"}
#: Which environment renders each part: html autoescapes, slack escapes for Slack, the rest is text.
_PART_FLAVOR = {"subject": "text", "text": "text", "html": "html", "slack": "slack"}


class TemplateFileError(ValueError):
    """A file template cannot be found, read safely or rendered."""


def template_path(root: Path, name: str) -> Path:
    """The file ``name`` under ``root`` (the templates folder). Refuses absolute names, ``..`` and
    anything (symbolic links included) that resolves outside ``root``."""
    from pathlib import PurePosixPath

    if not name or "\\" in name or "\x00" in name:
        raise TemplateFileError(f"invalid template name {name!r}")
    pure = PurePosixPath(name)
    if pure.is_absolute() or any(part in ("..", "") or part.startswith(".") for part in pure.parts):
        raise TemplateFileError(
            f"template {name!r} is outside {TEMPLATES_DIR}/: template names are relative to "
            f"definitions/{TEMPLATES_DIR}/ and may not use '..', absolute paths or hidden files"
        )
    root = root.resolve()
    path = (root / pure).resolve()
    if not path.is_relative_to(root):
        raise TemplateFileError(f"template {name!r} resolves outside definitions/{TEMPLATES_DIR}/")
    return path


class _TemplatesLoader(BaseLoader):
    """Jinja loader confined to one folder: ``{% include %}``, ``{% extends %}`` and ``{% import %}``
    see only files under definitions/templates/."""

    has_source_access = True

    def __init__(self, root: Path):
        self.root = root.resolve()

    def get_source(self, environment: Any, template: str):
        from jinja2 import TemplateNotFound

        path = template_path(self.root, template)
        if not path.is_file():
            raise TemplateNotFound(template)
        mtime = path.stat().st_mtime_ns
        source = path.read_text(encoding="utf-8")
        return source, str(path), lambda: path.is_file() and path.stat().st_mtime_ns == mtime


@lru_cache(maxsize=64)
def _file_envs(root: str) -> dict[str, ImmutableSandboxedEnvironment]:
    loader = _TemplatesLoader(Path(root))
    return {
        "text": _make_env(loader=loader),
        "html": _make_env(loader=loader, autoescape=True),
        "slack": _make_env(loader=loader, finalize=slack_escape),
    }


def templates_root(definitions: str | Path) -> Path:
    return Path(definitions).resolve() / TEMPLATES_DIR


class FileTemplate:
    """A message template under ``definitions/templates/``, made of parts ``subject``, ``text``,
    ``html`` and ``slack``. For ``template: NAME``:

    * ``NAME.subject.j2``, ``NAME.txt.j2``, ``NAME.html.j2``, ``NAME.slack.j2`` — one file per part,
      each rendered whole (it may ``{% extends %}`` a layout in templates/);
    * ``NAME.j2`` — one file whose blocks ``{% block subject %}``, ``text``, ``html``, ``slack`` are
      the parts a separate file does not give (text outside those blocks is ignored).

    ``NAME`` may also be given with a suffix (``request_received.html.j2``): it names the same set.
    HTML parts are autoescaped, Slack parts Slack-escaped; everything renders in the sandbox.
    """

    def __init__(self, definitions: str | Path, name: str):
        self.name = name
        self.root = templates_root(definitions)
        template_path(self.root, name)  # refuses escapes before looking at the disk
        base = name[:-3] if name.endswith(".j2") else name
        stem, _, infix = base.rpartition(".")
        if stem and infix in _INFIXES:
            base = stem
        self.base = base
        #: part → (file name relative to templates/, block name or None for the whole file)
        self.parts: dict[str, tuple[str, str | None]] = {}
        for part, infix in TEMPLATE_PARTS.items():
            for candidate in (f"{base}.{infix}.j2", *((f"{base}.text.j2",) if part == "text" else ())):
                if template_path(self.root, candidate).is_file():
                    self.parts[part] = (candidate, None)
                    break
        single = f"{base}.j2"
        if template_path(self.root, single).is_file():
            blocks = self._blocks(single)
            for part in TEMPLATE_PARTS:
                if part in blocks:
                    self.parts.setdefault(part, (single, part))
        if not self.parts:
            raise TemplateFileError(
                f"template {name!r} not found: expected definitions/{TEMPLATES_DIR}/{base}.html.j2, "
                f"{base}.txt.j2 (one file per part) or {base}.j2 (with blocks subject, text, html, slack)"
            )

    def _env(self, flavor: str) -> ImmutableSandboxedEnvironment:
        return _file_envs(str(self.root))[flavor]

    def _blocks(self, file: str) -> set[str]:
        env = self._env("text")
        try:
            source, _, _ = env.loader.get_source(env, file)  # type: ignore[union-attr]
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateFileError(f"{TEMPLATES_DIR}/{file}:{exc.lineno}: invalid template: {exc.message}") from None
        return {node.name for node in tree.find_all(nodes.Block)}

    def files(self) -> list[str]:
        return sorted({file for file, _ in self.parts.values()})

    def render(self, part: str, scope: Mapping[str, Any], *, flavor: str | None = None) -> str | None:
        """Render one part (None when the template has no such part). ``flavor`` overrides the
        escaping: ``slack`` renders a text part for Slack."""
        if part not in self.parts:
            return None
        file, block = self.parts[part]
        env = self._env(flavor or _PART_FLAVOR[part])
        from jinja2 import TemplateError as JinjaTemplateError

        try:
            template = env.get_template(file)
            if block is None:
                return template.render(**scope)
            context = template.new_context(dict(scope))
            return env.concat(template.blocks[block](context))  # type: ignore[attr-defined]
        except TemplateFileError:
            raise
        except JinjaTemplateError as exc:
            where = f"{TEMPLATES_DIR}/{getattr(exc, 'name', None) or file}"
            line = getattr(exc, "lineno", None)
            kind = type(exc).__name__
            raise TemplateFileError(
                f"{where}{f':{line}' if line else ''}: {kind}: {exc.message or exc}"  # type: ignore[attr-defined]
            ) from None

    def check(self, names: Mapping[str, set[str] | None]) -> list[str]:
        """Static problems, without rendering: syntax errors, names that are not in ``names``
        (scope name → known keys, or None for any key), includes of missing or outside files."""
        problems: list[str] = []
        env = self._env("text")
        from jinja2 import meta

        for file in self.files():
            label = f"{TEMPLATES_DIR}/{file}"
            try:
                source, _, _ = env.loader.get_source(env, file)  # type: ignore[union-attr]
                tree = env.parse(source)
            except TemplateSyntaxError as exc:
                problems.append(f"{label}:{exc.lineno}: invalid template: {exc.message}")
                continue
            for other in meta.find_referenced_templates(tree):
                if other is None:
                    continue
                try:
                    if not template_path(self.root, other).is_file():
                        problems.append(f"{label}: includes {other!r}, which is not in {TEMPLATES_DIR}/")
                except TemplateFileError as exc:
                    problems.append(f"{label}: {exc}")
            undeclared = meta.find_undeclared_variables(tree) - set(env.globals)
            for unknown in sorted(undeclared - set(names)):
                problems.append(f"{label}: unknown name '{unknown}'; known names: {', '.join(names)}")
            seen: set[tuple[str, str]] = set()
            for ref in sorted(_references(tree), key=lambda r: r.line):
                known = names.get(ref.scope)
                if ref.scope in names and known is not None and ref.name is not None and ref.name not in known:
                    if (ref.scope, ref.name) in seen:
                        continue
                    seen.add((ref.scope, ref.name))
                    from autopilot_provider.definitions.validate import suggest

                    what = {"form": "form field", "steps": "step", "inputs": "input"}.get(ref.scope, ref.scope)
                    problems.append(f"{label}:{ref.line}: unknown {what} '{ref.name}'{suggest(ref.name, known)}")
        return problems


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML part (for mail clients that show text only)."""
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        BREAKS = {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}

        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.out: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag in ("style", "script", "head", "title"):
                self.skip += 1
            elif tag in self.BREAKS:
                self.out.append("\n")
            if tag == "li":
                self.out.append("- ")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("style", "script", "head", "title"):
                self.skip = max(0, self.skip - 1)
            elif tag in self.BREAKS:
                self.out.append("\n")

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.out.append(" ".join(data.split()) if data.strip() else (" " if data else ""))

    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def text_to_html(text: str) -> str:
    """An HTML part for a text-only message (escaped, line breaks kept)."""
    import html

    return (
        '<!DOCTYPE html>\n<html><body><div style="white-space: pre-wrap; font-family: sans-serif">'
        f"{html.escape(text)}</div></body></html>\n"
    )
