"""Fuzzing the definition loader and the expression language (issue 12: "a fuzz run that finds no
500 and no slow input"): whatever text comes in, the loader answers with diagnostics and the
expression language with a validation error or an evaluation error — never another exception
(a RecursionError, a MemoryError, a crash in a walk), and never unbounded work (the limits of
autopilot_provider/definitions/bounded.py and autopilot_provider/definitions/templating.py cap it by count and size).

``make test`` runs a modest, derandomized number of examples; ``make fuzz`` runs many more
(``AUTOPILOT_FUZZ_PROFILE=fuzz``, random each run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import TemplateError

from autopilot_provider.definitions.errors import Diagnostic
from autopilot_provider.definitions.templating import check_template, evaluate, render
from autopilot_provider.definitions.validate import load_text, validate

# checks no metadata database: run once, in the SQLite pass of make test
pytestmark = pytest.mark.db_independent

settings.register_profile(
    "ci",
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("AUTOPILOT_FUZZ_PROFILE", "ci"))

SHIPPED = sorted((Path(__file__).parent.parent / "definitions").rglob("*.yaml"))
#: what evaluating an expression may raise: the sandbox's refusals and ordinary evaluation errors
EVALUATION_ERRORS = (TemplateError, TypeError, ValueError, AttributeError, ArithmeticError, LookupError)


def _loads_to_diagnostics(text: str) -> None:
    """Parse and validate ``text`` as a definition: only diagnostics come out."""
    loaded = validate(load_text(text, "fuzz/def.yaml"), lambda _name: None)
    assert all(isinstance(d, Diagnostic) for d in loaded.diagnostics)
    for d in loaded.diagnostics:
        assert d.path == "fuzz/def.yaml" and d.line >= 1 and d.column >= 1, d
    assert loaded.diagnostics or loaded.definition is not None


# ---------------------------------------------------------------------------------------------
# The definition loader
# ---------------------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["Workflow", "Api", "Function", "autopilot/v1", "{{ form.x }}", "echo hi", "1s", "^(a+)+$"]),
)
_keys = st.one_of(
    st.sampled_from(["apiVersion", "kind", "id", "steps", "form", "properties", "script", "bash", "pattern", "when"]),
    st.text(min_size=1, max_size=10),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=40,
)
#: YAML that stresses the parser: anchors and aliases, merges, tags, deep brackets, odd characters
_fragments = st.sampled_from(
    [
        "&a ",
        "*a",
        "<<: *a\n",
        "!!python/object:os.system ",
        "!!binary ",
        "[" * 70,
        "]" * 70,
        "{" * 30,
        "- " * 80,
        "? ",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "\t",
        "\x00",
        "'",
        '"',
        "|\n  ",
        ">-\n",
        "\n",
        ": ",
        "# c\n",
        "\ufeff",
    ]
)


@settings(PROFILE)
@given(data=_data)
def test_generated_definitions_give_only_diagnostics(data):
    header = {"apiVersion": "autopilot/v1", "kind": "Workflow", "id": "fuzz"}
    document = {**header, **data} if isinstance(data, dict) else data
    _loads_to_diagnostics(yaml.safe_dump(document, allow_unicode=True))


@settings(PROFILE)
@given(parts=st.lists(st.one_of(_fragments, st.text(max_size=12)), max_size=30))
def test_arbitrary_yaml_text_gives_only_diagnostics(parts):
    _loads_to_diagnostics("".join(parts))


@settings(PROFILE)
@given(
    index=st.integers(min_value=0, max_value=max(len(SHIPPED) - 1, 0)),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace", "repeat"]),
            st.floats(min_value=0, max_value=1),
            st.one_of(_fragments, st.text(max_size=8)),
            st.integers(min_value=1, max_value=40),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_shipped_definitions_give_only_diagnostics(index, edits):
    text = SHIPPED[index].read_text(encoding="utf-8")
    for action, where, fragment, length in edits:
        at = int(where * len(text))
        if action == "insert":
            text = text[:at] + fragment + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + length :]
        elif action == "replace":
            text = text[:at] + fragment + text[at + len(fragment) :]
        else:  # repeat a slice: lines and anchors multiply
            text = text[:at] + text[at : at + length] * 50 + text[at:]
    _loads_to_diagnostics(text)


# ---------------------------------------------------------------------------------------------
# The expression language
# ---------------------------------------------------------------------------------------------

_atoms = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["0", "1", "2", "9", "10", "99", "999999999", "10 ** 9", "0.5", "-1"]),
    st.text(alphabet="ab%{}:>0*9 ", max_size=8).map(repr),
    st.sampled_from(["form.x", "form.n", "form.items", "steps.s.outputs.v", "run.id", "none", "true", "[1, 2]"]),
    st.sampled_from(["range(5)", "range(10 ** 7)", "namespace(x=1)", "missing", "form.missing"]),
)
_binary = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "==", "<", "in"])
_filters = st.sampled_from(
    [
        "length",
        "list",
        "join",
        "join('x' * 1000)",
        "center(10 ** 9)",
        "replace('a', 'b' * 999)",
        "format(1)",
        "upper",
        "int",
        "tojson",
        "default('d')",
        "slice(3)",
        "batch(2)",
        "sum",
        "indent(4)",
        "first",
    ]
)
_methods = st.sampled_from(
    [".upper()", ".center(10 ** 9)", ".zfill(99999)", ".format(1)", ".split()", ".replace('a', 'aa')", ".join(['a'])"]
)


def _expressions():
    return st.recursive(
        _atoms,
        lambda inner: st.one_of(
            st.tuples(inner, _binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, _filters).map(lambda t: f"({t[0]} | {t[1]})"),
            st.tuples(inner, _methods).map(lambda t: f"({t[0]}){t[1]}"),
            inner.map(lambda e: f"not {e}"),
            inner.map(lambda e: f"[{e}, {e}]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        ),
        max_leaves=12,
    )


SCOPE = {
    "form": {"x": "abc", "n": 7, "items": ["a", "b"]},
    "steps": {"s": {"outputs": {"v": 3}}},
    "run": {"id": "r1"},
}


@settings(PROFILE)
@given(expression=st.one_of(_expressions(), st.text(max_size=60)))
def test_expressions_validate_and_evaluate_with_only_expected_errors(expression):
    error, line, _, _ = check_template(expression, expression=True)
    assert error is None or (isinstance(error, str) and line >= 1)
    if error is None:
        try:
            evaluate(expression, SCOPE)
        except EVALUATION_ERRORS:
            pass


@settings(PROFILE)
@given(
    parts=st.lists(
        st.one_of(
            st.sampled_from(
                ["{{ ", " }}", "{% for i in range(10 ** 5) %}", "{% endfor %}", "{% if form.n %}", "{% endif %}"]
            ),
            st.sampled_from(["{% set ns = namespace(x='ab') %}", "{% set ns.x = ns.x ~ ns.x %}", "{{ ns.x }}", "("]),
            _expressions(),
            st.text(max_size=10),
        ),
        max_size=12,
    )
)
def test_templates_validate_and_render_with_only_expected_errors(parts):
    source = "".join(parts)
    error, _, _, _ = check_template(source)
    if error is None:
        try:
            render(source, SCOPE)
        except EVALUATION_ERRORS:
            pass
