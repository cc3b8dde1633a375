"""Bounded work (issue 12, item 7): hostile YAML, OpenAPI documents, patterns, bodies and form values
are refused with a position or a field — never a 500, never unbounded time or memory.

The HTTP tests run against one real ``airflow api-server`` (module-scoped); the rest call the same
functions the server does.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from autopilot_provider.definitions.models import Form
from autopilot_provider.definitions.source import YamlError, parse, quick_header
from autopilot_provider.definitions.templating import MAX_NESTING, check_template, evaluate, render
from autopilot_provider.definitions.validate import load_text
from autopilot_provider.openapi import spec as S
from autopilot_provider.openapi import validation
from autopilot_provider.repository.forms import MAX_VALUE_CHARS, check_form, param_schema

API = "/autopilot/api/v1"

#: 9 levels of 9 aliases each: 9**9 (387 million) "lol"s when expanded, in about 600 bytes.
BILLION_LAUGHS = 'lol: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)
)
RECURSIVE = "apiVersion: autopilot/v1\nkind: Workflow\nid: loop\nsteps: &s\n  - *s\n"
DEEP_FLOW = "apiVersion: autopilot/v1\nkind: Workflow\nid: deep\nsteps: " + "[" * 10_000 + "]" * 10_000 + "\n"
DEEP_BLOCK = "apiVersion: autopilot/v1\nkind: Workflow\nid: deep\nsteps:\n" + "".join(
    "  " * (i + 1) + "- \n" for i in range(100)
)

PATTERN_WF = """\
apiVersion: autopilot/v1
kind: Workflow
id: bounded_pattern
title: Pattern test
form:
  properties:
    code:
      type: string
      pattern: "^(a+)+$"
    notes:
      type: string
  required: [code]
steps:
  - id: hello
    script:
      bash: echo hello
"""

BACKREFERENCE_WF = PATTERN_WF.replace("id: bounded_pattern", "id: bounded_backref").replace('"^(a+)+$"', '"^(a)\\\\1$"')

ALIAS_BOMB_OPENAPI = (
    "openapi: 3.0.3\ninfo: {title: bomb, version: '1'}\npaths: {}\nx-bomb:\n"
    + '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
)


# ---------------------------------------------------------------------------------------------
# The loader (no server)
# ---------------------------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_the_alias_that_passes_the_cap():
    with pytest.raises(YamlError) as caught:
        parse(BILLION_LAUGHS, "bomb.yaml")
    d = caught.value.diagnostic
    assert (d.path, d.line) == ("bomb.yaml", 6)
    assert "YAML: aliases expand to more than 100000 nodes" in d.message
    assert BILLION_LAUGHS.splitlines()[d.line - 1][d.column - 1] == "*"
    assert quick_header(BILLION_LAUGHS) == (None, None)


def test_more_than_100_aliases_are_refused():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    with pytest.raises(YamlError, match=r"x.yaml:2:\d+: YAML: more than 100 aliases"):
        parse(text, "x.yaml")
    assert parse("a: &a 1\nb: [" + ", ".join(["*a"] * 100) + "]\n", "x.yaml").data["b"] == [1] * 100


def test_recursive_alias_is_refused_with_its_position():
    with pytest.raises(YamlError) as caught:
        parse(RECURSIVE, "loop.yaml")
    assert str(caught.value.diagnostic) == "loop.yaml:5:5: YAML: recursive alias '*s' (used inside the node it names)"


def test_deep_nesting_is_refused_with_a_position():
    with pytest.raises(YamlError, match=r"deep.yaml:\d+:\d+: YAML"):
        parse(DEEP_FLOW, "deep.yaml")
    with pytest.raises(YamlError) as caught:
        parse(DEEP_BLOCK, "deep.yaml")
    assert caught.value.diagnostic.message == "YAML: nesting deeper than 64 levels"
    assert caught.value.diagnostic.line == 5 + 63  # the root mapping is level 1, `steps` level 2
    # an alias that brings nesting in counts too
    via_alias = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    with pytest.raises(YamlError, match=r"x.yaml:2:34: YAML: nesting deeper than 64 levels \(through an alias\)"):
        parse(via_alias, "x.yaml")


def test_ordinary_aliases_and_merge_keys_still_load():
    text = "base: &b {retries: 2}\nstep: {<<: *b, id: x}\nlist: &l [1, 2]\nagain: *l\n"
    assert parse(text, "ok.yaml").data == {
        "base": {"retries": 2},
        "step": {"retries": 2, "id": "x"},
        "list": [1, 2],
        "again": [1, 2],
    }


def test_validation_reports_the_limits_as_diagnostics():
    loaded = load_text(BILLION_LAUGHS, "bomb.yaml")
    assert loaded.definition is None
    assert [str(d).split(": ", 1)[1] for d in loaded.diagnostics][0].startswith("YAML: aliases expand")


# ---------------------------------------------------------------------------------------------
# OpenAPI documents (no server)
# ---------------------------------------------------------------------------------------------


def test_openapi_alias_bomb_and_deep_json_are_spec_errors():
    with pytest.raises(S.SpecError, match=r"^/: content:10:\d+: YAML: aliases expand to more than"):
        S.parse_document(ALIAS_BOMB_OPENAPI, source="content")
    with pytest.raises(S.SpecError, match="JSON: nesting deeper than 128 levels"):
        S.parse_document('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", source="content")
    with pytest.raises(S.SpecError) as caught:
        S.parse_document('{"a": ' + "[" * 200 + "]" * 200 + "}", source="content")
    assert caught.value.pointer == "/a" + "/0" * 127


def test_references_that_double_at_every_level_resolve_to_a_bounded_schema():
    schemas = {
        f"S{i}": {
            "type": "object",
            "properties": {
                "a": {"$ref": f"#/components/schemas/S{i + 1}"},
                "b": {"$ref": f"#/components/schemas/S{i + 1}"},
            },
        }
        for i in range(60)
    }
    schemas["S60"] = {"type": "object", "properties": {"back": {"$ref": "#/components/schemas/S0"}}}  # a cycle
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}
    responses = {str(code): {"description": "same", **body} for code in range(200, 260)}
    document = {
        "openapi": "3.0.3",
        "info": {"title": "refs", "version": "1"},
        "paths": {"/x": {"post": {"operationId": "x", "requestBody": body, "responses": responses}}},
        "components": {"schemas": schemas},
    }
    operation = S.normalise(document).operation("x")  # 2**60 nodes in full, 60 times over
    shown = json.dumps([operation.body_schema, operation.responses])
    assert shown.count('"type"') <= S.MAX_RESOLVED_NODES


# ---------------------------------------------------------------------------------------------
# Patterns and form values (no server)
# ---------------------------------------------------------------------------------------------


def test_a_catastrophic_pattern_is_matched_in_linear_time():
    form = Form.model_validate({"properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}})
    _, errors = check_form(form, {"code": "a" * 30 + "b"})
    assert [(e.field, e.message) for e in errors] == [("code", f"'{'a' * 30}b' does not match '^(a+)+$'")]
    assert check_form(form, {"code": "a" * 30})[1] == []


def test_patterns_re2_cannot_run_are_refused_saying_why():
    for pattern, why in [(r"^(a)\1$", "backreferences"), ("^(?=a)", "lookahead"), ("^(?<!a)b", "lookbehind")]:
        with pytest.raises(ValueError, match=why):
            Form.model_validate({"properties": {"code": {"type": "string", "pattern": pattern}}})
    with pytest.raises(ValueError, match="patternProperties is not supported"):
        Form.model_validate({"properties": {"m": {"type": "array", "items": {"patternProperties": {"a": {}}}}}})


def test_airflow_params_carry_no_pattern_and_a_length_cap():
    form = Form.model_validate(
        {
            "properties": {
                "code": {"type": "string", "pattern": "^a+$"},
                "tags": {"type": "array", "items": {"type": "string", "pattern": "^x"}},
                "short": {"type": "string", "maxLength": 5},
            }
        }
    )
    assert param_schema(form.properties["code"]) == {"type": "string", "maxLength": MAX_VALUE_CHARS}
    assert param_schema(form.properties["tags"]) == {
        "type": "array",
        "items": {"type": "string", "maxLength": MAX_VALUE_CHARS},
    }
    assert param_schema(form.properties["short"])["maxLength"] == 5


def test_oversize_and_deep_form_values_are_refused_naming_the_field():
    form = Form.model_validate({"properties": {"notes": {"type": "string"}, "tags": {"type": "array"}}})
    _, errors = check_form(form, {"notes": "x" * (MAX_VALUE_CHARS + 1)})
    assert [e.field for e in errors] == ["notes"] and "more than the 65536 allowed" in errors[0].message
    _, errors = check_form(form, {"tags": ["y" * 60_000] * 20})
    assert [e.field for e in errors] == ["tags"] and "more than the 1048576 allowed" in errors[0].message
    deep: list = []
    for _ in range(40):
        deep = [deep]
    assert [e.message for e in check_form(form, {"tags": deep})[1]] == ["is nested deeper than 32 levels"]


# ---------------------------------------------------------------------------------------------
# The expression language (no server)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "9 ** 999999999",
        "'a' * 10 ** 9",
        "[1] * 10 ** 8",
        "'%0999999999d' % 1",
        "'{:>999999999}'.format(1)",
        "'a'.center(10 ** 9)",
        "'a' | center(999999999)",
        "range(10 ** 9) | list",
        "range(10 ** 6) | join('x' * 1000)",
        "'a'.join(['b' * 100000] * 100000)",
        "(['b' * 100000] * 20) | join('')",
        "(2 ** 4000) * (2 ** 4000)",
    ],
)
def test_expensive_expressions_validate_without_computing_and_are_refused_when_run(expression):
    assert check_template(expression, expression=True)[0] is None  # parsing computes nothing
    with pytest.raises(Exception, match="not allowed|more than"):
        evaluate(expression, {})


def test_lipsum_is_not_offered():
    with pytest.raises(Exception, match="lipsum"):
        evaluate("lipsum(100000)", {})


def test_long_and_deep_expressions_are_refused_at_validation():
    assert "at most 4000 characters" in check_template("x" + ".a" * 3000, expression=True)[0]
    assert check_template("(" * 10_000 + "1" + ")" * 10_000, expression=True)[0].startswith("an expression may be")
    assert (
        check_template("(" * 500 + "1" + ")" * 500, expression=True)[0] == f"nested more than {MAX_NESTING} levels deep"
    )
    assert check_template("-" * 1000 + "1", expression=True)[0] == f"nested more than {MAX_NESTING} levels deep"


def test_templates_that_double_text_in_a_loop_are_stopped():
    doubling = (
        "{% set ns = namespace(x='ab') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}"
    )
    with pytest.raises(Exception, match="more than 1000000"):
        render(doubling, {})
    with pytest.raises(Exception, match="range"):
        render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})
    assert render("{% for i in range(3) %}{{ i }}{% endfor %} {{ 'a' ~ 'b' }}", {}) == "012 ab"


# ---------------------------------------------------------------------------------------------
# Through the real API server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(api_server) -> Path:
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    yield root
    for rel in ("bounded/pattern.yaml", "bounded/bomb.yaml", "bounded/loop.yaml", "bounded/deep.yaml"):
        (root / rel).unlink(missing_ok=True)


def _validate(client, path: str, content: str) -> dict:
    response = client.post(f"{API}/definitions/validate", json={"path": path, "content": content})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.server
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BILLION_LAUGHS, "YAML: aliases expand to more than 100000 nodes"),
        (RECURSIVE, "YAML: recursive alias '*s'"),
        (DEEP_FLOW, "YAML syntax error: exceeded maximum nesting depth"),
        (DEEP_BLOCK, "YAML: nesting deeper than 64 levels"),
    ],
    ids=["billion-laughs", "recursive-alias", "10k-deep-flow", "deep-block"],
)
def test_hostile_yaml_is_refused_with_a_position_by_validate_and_create(folder, viewer, admin, text, message):
    result = _validate(viewer, "bounded/bomb.yaml", text)
    assert result["valid"] is False
    (diagnostic,) = result["diagnostics"]
    assert diagnostic["message"].startswith(message), diagnostic
    assert diagnostic["path"] == "bounded/bomb.yaml" and diagnostic["line"] >= 1 and diagnostic["column"] >= 1
    created = admin.post(f"{API}/definitions", json={"path": "bounded/bomb.yaml", "content": text})
    assert created.status_code == 422, created.text
    assert created.json()["detail"]["diagnostics"][0]["message"].startswith(message)
    assert not (folder / "bounded" / "bomb.yaml").exists()


@pytest.mark.server
def test_an_alias_bomb_openapi_document_is_422_and_nothing_is_cached(folder, admin):
    response = admin.post(f"{API}/apis", json={"name": "bomb", "content": ALIAS_BOMB_OPENAPI})
    assert response.status_code == 422, response.text
    assert "YAML: aliases expand to more than 100000 nodes" in response.json()["detail"]["message"]
    assert not (folder / "apis" / "bomb.yaml").exists()
    assert not list((folder / "apis").glob("specs/bomb.*"))
    sha = hashlib.sha256(ALIAS_BOMB_OPENAPI.encode()).hexdigest()
    cache = Path(os.environ["AIRFLOW_HOME"]) / "autopilot" / "spec-cache"
    assert not [p.name for p in cache.rglob("*") if sha in p.name]


@pytest.mark.server
def test_a_backreference_pattern_is_a_diagnostic_at_the_pattern(folder, viewer):
    result = _validate(viewer, "bounded/backref.yaml", BACKREFERENCE_WF)
    assert result["valid"] is False
    (diagnostic,) = result["diagnostics"]
    line = BACKREFERENCE_WF.splitlines().index('      pattern: "^(a)\\\\1$"') + 1
    assert diagnostic["line"] == line
    assert "RE2" in diagnostic["message"] and "backreferences" in diagnostic["message"]


def _runs(dag_id: str) -> int:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(DagRun).filter(DagRun.dag_id == dag_id).count()


@pytest.mark.server
def test_form_values_are_bounded_and_start_no_run(folder, admin, editor):
    created = admin.post(f"{API}/definitions", json={"path": "bounded/pattern.yaml", "content": PATTERN_WF})
    assert created.status_code == 201, created.text
    runs = f"{API}/workflows/bounded_pattern/runs"

    catastrophic = editor.post(runs, json={"form": {"code": "a" * 30 + "b"}})
    assert catastrophic.status_code == 422, catastrophic.text
    assert catastrophic.json()["detail"]["errors"] == [
        {"field": "code", "message": f"'{'a' * 30}b' does not match '^(a+)+$'"}
    ]

    long_value = editor.post(runs, json={"form": {"code": "a", "notes": "n" * 100_000}})
    assert long_value.status_code == 422, long_value.text
    assert long_value.json()["detail"]["errors"][0]["field"] == "notes"

    huge = editor.post(runs, json={"form": {"code": "a", "notes": "n" * 10_000_000}})
    assert huge.status_code == 413, huge.text
    assert huge.json()["detail"]["message"] == "the request body is larger than 2097152 bytes"
    assert _runs("bounded_pattern") == 0


@pytest.mark.server
def test_an_oversize_body_is_413_whether_announced_or_streamed(api_server, admin):
    declared = admin.post(
        f"{API}/definitions/validate", content=b"x" * (3 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json() == {"detail": {"message": "the request body is larger than 2097152 bytes", "field": None}}

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(48):
            yield b" " * 65536

    streamed = admin.post(f"{API}/definitions/validate", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["detail"]["field"] is None
    small = admin.post(f"{API}/definitions/validate", json={"path": "bounded/x.yaml", "content": "a: 1\n"})
    assert small.status_code == 200


@pytest.mark.server
def test_deeply_nested_json_bodies_are_a_client_error(api_server, admin):
    body = '{"path": "x.yaml", "content": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = admin.post(f"{API}/definitions/validate", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_tags_without_a_safe_constructor_are_diagnostics():
    for text, message in [
        ("a: !!python/object:os.system x\n", "x.yaml:1:4: YAML: could not determine a constructor"),
        ('a: !!binary "aGk="\n', "x.yaml:1:4: YAML: binary values (!!binary) are not supported"),
        ("a: !!float x\n", "x.yaml:1:1: YAML: could not convert string to float"),
    ]:
        with pytest.raises(YamlError) as caught:
            parse(text, "x.yaml")
        assert str(caught.value.diagnostic).startswith(message)


# ---------------------------------------------------------------------------------------------
# Airflow's trigger paths (a real DagBag and dag.test)
# ---------------------------------------------------------------------------------------------


def test_a_run_triggered_in_airflow_has_its_pattern_matched_by_re2_in_check_form(write_definition, run_workflow):
    from tests.conftest import task_states

    write_definition("bounded_trigger/pattern.yaml", PATTERN_WF.replace("bounded_pattern", "bounded_trigger"))
    failed = run_workflow("bounded_trigger", {"code": "a" * 30 + "b"})
    assert task_states(failed) == {"_check_form": "failed", "hello": "upstream_failed"}
    passed = run_workflow("bounded_trigger", {"code": "a" * 30})
    assert task_states(passed) == {"_check_form": "success", "hello": "success"}


def test_airflow_refuses_an_oversize_value_before_a_run_exists(write_definition, run_workflow):
    from airflow.exceptions import ParamValidationError

    write_definition("bounded_trigger/long.yaml", PATTERN_WF.replace("bounded_pattern", "bounded_long"))
    with pytest.raises(ParamValidationError, match="notes"):
        run_workflow("bounded_long", {"code": "a", "notes": "n" * (MAX_VALUE_CHARS + 1)})
    assert _runs("bounded_long") == 0


@pytest.mark.server
def test_openapi_imports_get_the_larger_body_cap(folder, admin):
    document = (
        "openapi: 3.0.3\ninfo: {title: big, version: '1'}\npaths: {}\nx-padding: '" + "p" * (3 * 1024 * 1024) + "'\n"
    )
    response = admin.post(f"{API}/apis", json={"name": "big_padding", "content": document})
    assert response.status_code == 201, response.text  # 3 MiB: over max_request_bytes, under max_import_bytes
    (folder / "apis" / "big_padding.yaml").unlink(missing_ok=True)
    (folder / "apis" / "specs" / "big_padding.yaml").unlink(missing_ok=True)
    too_big = admin.post(f"{API}/apis", content=b"x" * (33 * 1024 * 1024), headers={"content-type": "application/json"})
    assert too_big.status_code == 413
    assert too_big.json()["detail"]["message"] == "the request body is larger than 33554432 bytes"


def test_an_openapi_default_against_a_catastrophic_pattern_is_checked_in_linear_time():
    schema = {"type": "string", "pattern": "^(a+)+$", "default": "a" * 40 + "b"}
    document = {
        "openapi": "3.0.3",
        "info": {"title": "redos", "version": "1"},
        "paths": {},
        "components": {"schemas": {"Code": schema}},
    }
    with pytest.raises(S.SpecError, match=r"default value is invalid: 'a+b' does not match"):
        validation.validate_document(document)
