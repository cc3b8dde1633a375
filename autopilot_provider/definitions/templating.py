"""Sandboxed Jinja for user-authored text: templates, environment values and decision expressions.

User text is data, never code: templates and expressions render in Jinja's SandboxedEnvironment
(no attribute access to internals, no unsafe callables). Script bodies are never templated: values
reach a script as environment variables (``render_env_value``), which no shell parses.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import re
import shlex
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.meta import TrackingCodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from autopilot_provider.definitions.errors import suggest

# ---------------------------------------------------------------------------------------------
# Bounded work: what one template or expression may cost
# ---------------------------------------------------------------------------------------------

#: longest template text (a definition's string, or a file under templates/)
MAX_TEMPLATE_CHARS = 100_000
#: longest expression (a decision case, an output, a `{{ … }}`)
MAX_EXPRESSION_CHARS = 4_000
#: deepest nesting of a template's syntax tree (parentheses, brackets, operators, blocks)
MAX_NESTING = 48
#: largest string, list or mapping an operator, filter or method may build while rendering
MAX_SIZE = 1_000_000
#: largest rendered text
MAX_OUTPUT = 10_000_000
#: largest integer ``**`` may compute, in bits (2 ** 4096 has 1234 digits)
MAX_INT_BITS = 4096
#: widths and counts that string methods, filters and ``%`` formats may ask for
MAX_WIDTH = 10_000
#: numbers all the ``range()``s of one rendering may produce together
MAX_RANGE_TOTAL = 1_000_000


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) else 0


def _checked(value: Any) -> Any:
    if _size(value) > MAX_SIZE:
        raise SecurityError(f"the value would have more than {MAX_SIZE} characters or items")
    return value


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if left.bit_length() * right > MAX_INT_BITS:
            raise SecurityError(f"the power would have more than {MAX_INT_BITS} bits")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"the product would have more than {MAX_INT_BITS} bits")
    else:
        _check_repeat(left, right)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(times, int) and not isinstance(times, bool) and _size(seq):
            if _size(seq) * times > MAX_SIZE:
                raise SecurityError(f"the repetition would have more than {MAX_SIZE} characters or items")


_FORMAT_NUMBER = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(text: Any) -> None:
    """A ``%`` format's widths and precisions (``'%0999999999d'`` would build a gigabyte)."""
    if not isinstance(text, str) or "%" not in text:
        return
    for match in _FORMAT_NUMBER.finditer(text):
        for number in match.groups():
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise SecurityError(f"format widths above {MAX_WIDTH} (and '*') are not allowed")


def _check_format_spec(text: Any) -> None:
    """A ``str.format`` template's widths (``'{:>999999999}'``); nested fields (``{:{}}``) are refused."""
    if not isinstance(text, str):
        return
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # the call itself reports it
    for _, _name, spec, _ in fields:
        if spec and ("{" in spec or any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec))):
            raise SecurityError(f"format widths above {MAX_WIDTH} (and nested fields) are not allowed")


def _check_numbers(args: tuple, kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_WIDTH:
            raise SecurityError(f"widths and counts above {MAX_WIDTH} are not allowed")


#: str methods whose result grows with a number argument
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


def _check_call(obj: Any, args: tuple, kwargs: Mapping[str, Any]) -> None:
    method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if isinstance(owner, str):
        if name in _WIDTH_METHODS:
            _check_numbers(args, kwargs)
        elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            _check_replace(owner, args[0], args[1])
        elif name in ("format", "format_map"):
            _check_format_spec(owner)
        elif name == "join" and args:
            _check_join(owner, args[0])
    elif isinstance(owner, string.Formatter) and args:  # the sandbox's str.format stand-in
        _check_format_spec(args[0])


def _check_replace(text: str, old: str, new: str) -> None:
    grows = len(new) - len(old)
    if grows > 0 and len(text) + (text.count(old) if old else len(text) + 1) * grows > MAX_SIZE:
        raise SecurityError(f"the replacement would have more than {MAX_SIZE} characters")


def _check_join(separator: Any, items: Any) -> None:
    """The joined text's length, from the separator and the items' own lengths, before joining."""
    count = _size(items)
    if count > MAX_SIZE:
        raise SecurityError(f"the joined text would have more than {MAX_SIZE} characters")
    total = _size(separator) * max(count - 1, 0)
    for item in items if isinstance(items, (list, tuple, dict)) else ():
        # a container's text is at least as long as its item count; numbers are capped in size
        total += (
            len(item)
            if isinstance(item, str)
            else max(_size(item), len(str(item)) if isinstance(item, int | float) else 1)
        )
        if total > MAX_SIZE:
            break
    if total > MAX_SIZE:
        raise SecurityError(f"the joined text would have more than {MAX_SIZE} characters")


def _bounded_filter(name: str, func: Any) -> Any:
    """A built-in filter whose result is checked against MAX_SIZE, and whose width arguments are
    checked before it runs where the result grows with them."""

    skip = 0 if _PassArg.from_obj(func) is None else 1  # the context, eval context or environment

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        plain = args[skip:]
        if name in ("center", "indent", "slice"):
            _check_numbers(tuple(plain[1:]), kwargs)
        elif name == "replace" and len(plain) >= 3:
            _check_replace(str(plain[0]), str(plain[1]), str(plain[2]))
        elif name == "format" and plain:
            _check_percent_format(plain[0])
        elif name == "join" and plain:
            items = plain[0] if isinstance(plain[0], (str, list, tuple, dict)) else list(plain[0])
            _check_join(plain[1] if len(plain) > 1 else kwargs.get("d", ""), items)
            args = (*args[:skip], items, *plain[1:])
        return _checked(func(*args, **kwargs))

    return bounded


_RANGE_LEFT: contextvars.ContextVar[list[int]] = contextvars.ContextVar("autopilot_range_left")


@contextlib.contextmanager
def _fresh_budget() -> Iterator[None]:
    """A new range() budget for one rendering or evaluation."""
    token = _RANGE_LEFT.set([MAX_RANGE_TOTAL])
    try:
        yield
    finally:
        _RANGE_LEFT.reset(token)


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    left = _RANGE_LEFT.get(None)
    if left is None:  # rendered outside the functions of this module (a template's own render())
        left = [MAX_RANGE_TOTAL]
        _RANGE_LEFT.set(left)
    left[0] -= len(numbers)
    if len(numbers) > MAX_SIZE or left[0] < 0:
        raise SecurityError(f"range() produced more than {MAX_RANGE_TOTAL} numbers in one evaluation")
    return numbers


class _BoundedCodeGenerator(CodeGenerator):
    """Concatenation (``~`` and text around ``{{ }}``) checked against MAX_SIZE as it is built."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(")")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with bounded work: ``**``, ``*``, ``+`` and ``%`` are checked before they run,
    str methods and filters that build text from a number have that number capped, ``range()``
    draws from one budget per evaluation, and rendered text is capped. Nothing is computed at compile
    time (``optimized=False``: Jinja would otherwise fold ``'a' * 10 ** 9`` while *parsing*)."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//", "/"})
    code_generator_class = _BoundedCodeGenerator

    @staticmethod
    def checked(value: Any) -> Any:
        return _checked(value)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "%":
            _check_percent_format(left)
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_call(__obj, args, kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    @staticmethod
    def concat(parts: Iterable[str]) -> str:  # type: ignore[override]
        out: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            if total > MAX_OUTPUT:
                raise SecurityError(f"the rendered text would be longer than {MAX_OUTPUT} characters")
            out.append(part)
        return "".join(out)


class _Tracking(TrackingCodeGenerator):
    """Jinja's introspection without its optimizer (which would compute constant parts)."""

    def __init__(self, environment: Any) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared_identifiers: set[str] = set()


def undeclared_names(tree: nodes.Template) -> set[str]:
    """``jinja2.meta.find_undeclared_variables`` without computing anything."""
    generator = _Tracking(tree.environment)  # type: ignore[attr-defined]
    generator.visit(tree)
    return generator.undeclared_identifiers


def nesting(tree: nodes.Node) -> int:
    """How deep ``tree`` nests (iteratively: any depth is safe to measure)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def _tojson(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _make_env(**kwargs: Any) -> ImmutableSandboxedEnvironment:
    env = _BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, optimized=False, **kwargs)
    env.filters["tojson"] = _tojson
    env.filters["shell_quote"] = lambda v: shlex.quote(str(v))
    for name, func in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, func)
    env.globals["range"] = _bounded_range
    # lorem ipsum generator: costs time per paragraph and is no use to a workflow
    env.globals.pop("lipsum", None)
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
    with _fresh_budget():
        return _compile("text", source).render(**scope)


def render_env_value(source: str, scope: Mapping[str, Any]) -> str:
    """Render the value of a script's environment variable: the text as data (lists and mappings as
    JSON, booleans as true/false), with no quoting, since no shell ever parses it."""
    if "{" not in source:
        return source
    with _fresh_budget():
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
    """Evaluate a decision expression in the sandbox (bounded: see MAX_SIZE and the limits above)."""
    with _fresh_budget():
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
    """Parse user text. Returns (syntax error or None, error line, references, undeclared names).

    Nothing is computed: text longer than MAX_TEMPLATE_CHARS (MAX_EXPRESSION_CHARS for an expression)
    or nested deeper than MAX_NESTING is an error, and no constant part is folded."""
    limit = MAX_EXPRESSION_CHARS if expression else MAX_TEMPLATE_CHARS
    if len(source) > limit:
        what = "an expression" if expression else "a template"
        return f"{what} may be at most {limit} characters long (this one has {len(source)})", 1, [], set()
    text = "{{ " + source + " }}" if expression else source
    try:
        tree = TEXT.parse(text)
        if nesting(tree) > MAX_NESTING:
            return f"nested more than {MAX_NESTING} levels deep", 1, [], set()
        undeclared = undeclared_names(tree) - set(TEXT.globals)
    except TemplateSyntaxError as exc:
        return exc.message or str(exc), exc.lineno or 1, [], set()
    except RecursionError:  # Jinja's parser recurses per level of parentheses, brackets, operators
        return f"nested more than {MAX_NESTING} levels deep", 1, [], set()
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
    with _fresh_budget():
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
            with _fresh_budget():
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
                if len(source) > MAX_TEMPLATE_CHARS:
                    problems.append(f"{label}: longer than {MAX_TEMPLATE_CHARS} characters")
                    continue
                tree = env.parse(source)
                if nesting(tree) > MAX_NESTING:
                    problems.append(f"{label}: nested more than {MAX_NESTING} levels deep")
                    continue
            except TemplateSyntaxError as exc:
                problems.append(f"{label}:{exc.lineno}: invalid template: {exc.message}")
                continue
            except RecursionError:
                problems.append(f"{label}: nested more than {MAX_NESTING} levels deep")
                continue
            for other in meta.find_referenced_templates(tree):
                if other is None:
                    continue
                try:
                    if not template_path(self.root, other).is_file():
                        problems.append(f"{label}: includes {other!r}, which is not in {TEMPLATES_DIR}/")
                except TemplateFileError as exc:
                    problems.append(f"{label}: {exc}")
            undeclared = undeclared_names(tree) - set(env.globals)
            for unknown in sorted(undeclared - set(names)):
                problems.append(f"{label}: unknown name '{unknown}'; known names: {', '.join(names)}")
            seen: set[tuple[str, str]] = set()
            for ref in sorted(_references(tree), key=lambda r: r.line):
                known = names.get(ref.scope)
                if ref.scope in names and known is not None and ref.name is not None and ref.name not in known:
                    if (ref.scope, ref.name) in seen:
                        continue
                    seen.add((ref.scope, ref.name))

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
