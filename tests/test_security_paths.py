"""Issue 12, items 1, 5 and 9: definition paths keep to a small alphabet everywhere (API, CLI, files
found on disk), nothing a definition controls reaches generated Python but as a literal, a file with a
name that is not allowed can still be listed and removed, the CSRF check reads requests the way Airflow
authenticates them, and every documented form format is checked."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import jsonschema
import pytest

from autopilot_provider.definitions import models as m
from autopilot_provider.repository.folder import Project, decode_path, encode_path, path_problem
from autopilot_provider.repository.forms import check_form
from autopilot_provider.server.definition_store import DefinitionStore
from autopilot_provider.server.errors import InvalidInput
from dag_factory.render import RenderError, render_workflow
from dag_factory.stubs import MISNAMED_STUB, sync_stubs
from tests.conftest import REPO

API = "/autopilot/api/v1"

#: A file name that, written unescaped into a stub's comment line, would be two statements of Python
#: touching the file named by $AUTOPILOT_SENTINEL (a name cannot hold '/').
PAYLOAD_NAME = 'x\n__import__("pathlib").Path(__import__("os").environ["AUTOPILOT_SENTINEL"]).touch()\n#.yaml'

HOSTILE_NAMES = [
    PAYLOAD_NAME,
    "evil\r.yaml",
    "trailing.yaml\n",
    "a b.yaml",
    "tab\t.yaml",
    "back\\slash.yaml",
    "nul\x00.yaml",
    "../outside.yaml",
    "a/../../outside.yaml",
    "/etc/passwd.yaml",
    ".hidden.yaml",
    "dir/.hidden.yaml",
    "-dash.yaml",
    "dir//x.yaml",
    "caf\u00e9.yaml",
    "line\u2028sep.yaml",
    "quote'.yaml",
    'double".yaml',
    "pct%0A.yaml",
    "\ud800lone-surrogate.yaml",
    "semi;colon.yaml",
    "x" * 600 + ".yaml",
    "x.yaml.py",
    "x.txt",
    "",
]

WORKFLOW = """\
apiVersion: autopilot/v1
kind: Workflow
id: {id}
steps:
  - id: hello
    script: {{python: "output(n=1)"}}
"""


def _bag(definitions: Path, stubs: Path):
    from airflow.dag_processing.dagbag import DagBag

    sync_stubs(definitions, stubs)
    return DagBag(dag_folder=stubs, bundle_path=stubs, bundle_name="autopilot")


# ------------------------------------------------------------------------------------------------
# The alphabet
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_the_store_refuses_hostile_paths_naming_the_field(name, tmp_path):
    with pytest.raises(InvalidInput) as caught:
        DefinitionStore(tmp_path).clean_path(name)
    assert caught.value.field == "path"
    assert "\n" not in caught.value.message and "\r" not in caught.value.message


@pytest.mark.parametrize("name", ["a.yaml", "team/b-c_d.1.yml", "_x/y.yaml", "A9/B.yaml"])
def test_ordinary_paths_are_allowed(name, tmp_path):
    assert path_problem(name) is None
    assert DefinitionStore(tmp_path).clean_path(name) == name


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if n and "\x00" not in n and "\ud800" not in n], ids=repr)
def test_the_encoded_name_of_a_misnamed_file_is_never_an_allowed_path(name):
    encoded = encode_path(name)
    assert decode_path(encoded) == name
    assert path_problem(encoded) is not None
    assert all(ch.isascii() and (ch.isalnum() or ch in "%._-/~") for ch in encoded)


# ------------------------------------------------------------------------------------------------
# Files found on disk: no stub, no code, one import error naming them safely
# ------------------------------------------------------------------------------------------------


def test_a_file_named_with_a_newline_runs_no_code_when_airflow_parses(
    airflow_db, definitions_dir, write_definition, tmp_path, monkeypatch
):
    sentinel = tmp_path / "code-ran"
    monkeypatch.setenv("AUTOPILOT_SENTINEL", str(sentinel))
    write_definition(PAYLOAD_NAME, WORKFLOW.format(id="evil_by_name"))
    write_definition("with space.yaml", WORKFLOW.format(id="spaced_out"))
    stubs = tmp_path / "stubs"
    bag = _bag(definitions_dir, stubs)

    assert not sentinel.exists(), "a file name ran as Python"
    assert {"hello_world", "add_machine_to_backups"} <= set(bag.dags), "the other definitions stopped loading"
    assert not {"evil_by_name", "spaced_out"} & set(bag.dags)
    assert list(bag.import_errors) == [MISNAMED_STUB]
    message = bag.import_errors[MISNAMED_STUB]
    assert (
        f"{definitions_dir.name}/{encode_path(PAYLOAD_NAME)}:1:1: not loaded: the file name is not allowed" in message
    )
    assert f"{definitions_dir.name}/with%20space.yaml:1:1:" in message
    assert "__import__(" not in message and "with space" not in message
    # every generated module is one import and one call with literal arguments
    for stub in stubs.rglob("*.py"):
        tree = ast.parse(stub.read_text(encoding="utf-8"))
        assert [type(node).__name__ for node in tree.body] in (["ImportFrom", "Assign"], ["ImportFrom", "Expr"])
        call = tree.body[1].value
        assert isinstance(call, ast.Call) and call.func.id in ("load_dag_file", "report_misnamed")
        assert all(isinstance(a, (ast.Constant, ast.Name)) for a in call.args)
        assert "__import__" not in stub.read_text(encoding="utf-8")


def test_the_misnamed_report_goes_away_with_the_file(definitions_dir, write_definition, tmp_path):
    path = write_definition("bad name.yaml", WORKFLOW.format(id="bad_name"))
    stubs = tmp_path / "stubs"
    sync_stubs(definitions_dir, stubs)
    assert (stubs / MISNAMED_STUB).exists()
    index = json.loads((stubs / "_autopilot_index.json").read_text())
    assert index["misnamed"] == ["bad name.yaml"] and "bad name.yaml" not in index["files"]
    path.unlink()
    sync_stubs(definitions_dir, stubs)
    assert not (stubs / MISNAMED_STUB).exists()


def test_cli_validate_reports_a_misnamed_file_escaped(tmp_path):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "ok.yaml").write_text(WORKFLOW.format(id="fine"))
    (folder / PAYLOAD_NAME).write_text(WORKFLOW.format(id="evil"))
    env = {**os.environ, "AUTOPILOT_SENTINEL": str(tmp_path / "code-ran")}
    for args in ([str(folder)], [str(folder / PAYLOAD_NAME)]):
        done = subprocess.run(
            [sys.executable, "-m", "autopilot_provider.cli", "validate", "--definitions", str(folder), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 1, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"defs/{encode_path(PAYLOAD_NAME)}:1:1: not loaded"), lines
    assert not (tmp_path / "code-ran").exists()


# ------------------------------------------------------------------------------------------------
# autopilot render: only literals
# ------------------------------------------------------------------------------------------------

HOSTILE_TEXT = 'a "quoted" \'one\' """triple""" \'\'\'single\'\'\' back\\slash \\n\n import os\nos.system("id") #'
HOSTILE_WORKFLOW = {
    "apiVersion": "autopilot/v1",
    "kind": "Workflow",
    "id": "hostile_text",
    "title": HOSTILE_TEXT,
    "description": HOSTILE_TEXT + "\\",
    "tags": ["x\nimport os"],
    "form": {
        "properties": {
            "note": {"type": "string", "title": HOSTILE_TEXT, "description": HOSTILE_TEXT, "default": HOSTILE_TEXT}
        }
    },
    "steps": [
        {
            "id": "hello",
            "title": HOSTILE_TEXT,
            "script": {
                "env": {"NOTE": "{{ form.note }}", "LITERAL": HOSTILE_TEXT},
                "python": "# " + HOSTILE_TEXT.replace("\n", "\n# ") + "\noutput(n=1)\n",
            },
        }
    ],
}


def _no_injected_statement(source: str) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            assert "os" not in names and node.col_offset == 0, ast.dump(node)
        assert not (isinstance(node, ast.Name) and node.id == "os"), "an injected statement names os"
        assert not (isinstance(node, ast.Attribute) and node.attr == "system")
    # the file is imports, constants and the `with DAG(...)` block; "import os" only inside literals
    assert {type(node).__name__ for node in tree.body} <= {"Import", "ImportFrom", "Assign", "With"}


def test_rendered_file_keeps_hostile_text_as_literals(tmp_path):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "hostile.yaml").write_text(json.dumps(HOSTILE_WORKFLOW), encoding="utf-8")
    project = Project(folder, display_root="")
    loaded = project.load("hostile.yaml")
    assert loaded.ok, loaded.diagnostics
    source = render_workflow(project, "hostile_text")
    _no_injected_statement(source)
    strings = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert HOSTILE_TEXT in strings  # the title of the step, exactly as written
    assert any(HOSTILE_TEXT + "\\" in s for s in strings)  # the description, trailing backslash included


@pytest.mark.parametrize("ident", ['x"\nimport os', "x\n", "x y", "x'''"])
def test_a_hostile_workflow_id_is_refused_before_rendering(ident, tmp_path):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "w.yaml").write_text(json.dumps({**HOSTILE_WORKFLOW, "id": ident}), encoding="utf-8")
    with pytest.raises(RenderError):
        render_workflow(Project(folder, display_root=""), "w.yaml")


def test_render_refuses_a_misnamed_file_and_writes_no_unsafe_comment(tmp_path, monkeypatch):
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / PAYLOAD_NAME).write_text(WORKFLOW.format(id="evil"), encoding="utf-8")
    monkeypatch.chdir(folder)
    with pytest.raises(RenderError) as caught:
        render_workflow(Project(folder, display_root=""), PAYLOAD_NAME)
    assert encode_path(PAYLOAD_NAME) in str(caught.value) and "__import__(" not in str(caught.value)
    # a definitions folder whose own name is odd: the comment leaves it out, doc_md carries it
    odd = tmp_path / "odd\nname"
    shutil.copytree(REPO / "definitions", odd)
    source = render_workflow(Project(odd, display_root="odd\nname"), "hello_world")
    _no_injected_statement(source)
    assert "# the definition file named in doc_md" in source


# ------------------------------------------------------------------------------------------------
# Form formats
# ------------------------------------------------------------------------------------------------

FORMATS = {
    "date": ("2026-12-07", "2026-13-40"),
    "date-time": ("2026-12-07T10:00:00Z", "yesterday"),
    "time": ("10:00:00", "10:00:00Z"),  # as Airflow's Params check it: HH:MM:SS
    "duration": ("P1DT2H", "2 days"),
    "email": ("ops@example.com", "not-an-email"),
    "idn-email": ("ops@example.com", "no at sign"),
    "hostname": ("db-01.example.com", "bad host_name!"),
    "idn-hostname": ("bücher.example", "bad host!"),
    "ipv4": ("192.0.2.1", "999.0.0.1"),
    "ipv6": ("2001:db8::1", "2001:::1"),
    "uri": ("https://example.com/a?b=c", "not a uri"),
    "uri-reference": ("/a/b?c", "\\\\bad ref"),
    "iri": ("https://bücher.example/", "no scheme"),
    "iri-reference": ("/bücher", "\\\\bad"),
    "uri-template": ("https://example.com/{id}", "https://example.com/{id"),
    "uuid": ("6f1c3b7e-4a0e-4a8b-9a5d-3f2e1c0b9a8d", "not-a-uuid"),
    "json-pointer": ("/a/b", "a/b"),
    "relative-json-pointer": ("0/a", "/a"),
    "regex": ("^[a-z]+$", "(unclosed"),
}


def test_every_checked_format_has_a_case_and_a_checker():
    assert set(FORMATS) == set(m.CHECKED_FORMATS)
    checkers = jsonschema.FormatChecker().checkers
    assert set(m.CHECKED_FORMATS) <= set(checkers), "install jsonschema[format-nongpl]"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_form_values_are_checked_against_their_format(fmt):
    form = m.Form.model_validate({"properties": {"value": {"type": "string", "format": fmt}}})
    good, bad = FORMATS[fmt]
    assert check_form(form, {"value": good})[1] == []
    errors = check_form(form, {"value": bad})[1]
    assert [e.field for e in errors] == ["value"], errors


def test_an_unknown_format_is_a_validation_error():
    from autopilot_provider.definitions.validate import load_text

    text = WORKFLOW.format(id="w") + "form:\n  properties:\n    host: {type: string, format: hostnme}\n"
    loaded = load_text(text, "w.yaml")
    assert any("unknown format 'hostnme'" in d.message for d in loaded.diagnostics), loaded.diagnostics


# ------------------------------------------------------------------------------------------------
# Against the real API server
# ------------------------------------------------------------------------------------------------

FORMAT_WORKFLOW = """\
apiVersion: autopilot/v1
kind: Workflow
id: format_check
form:
  properties:
    host: {type: string, format: hostname}
    link: {type: string, format: uri}
  required: [host, link]
steps:
  - id: hello
    script: {python: "output(n=1)"}
"""


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if "\x00" not in n], ids=repr)
def test_the_api_refuses_hostile_paths(admin, name):
    # sent as JSON text with \u escapes, so that even a lone surrogate arrives as written
    body = json.dumps({"path": name, "content": WORKFLOW.format(id="h")})
    headers = {"Content-Type": "application/json"}
    for response in (
        admin.post(f"{API}/definitions", content=body, headers=headers),
        admin.post(f"{API}/definitions/validate", content=body, headers=headers),
    ):
        assert response.status_code in (400, 422), response.text
        assert response.json()["detail"]["field"] == "path", response.text
    if name and "/" not in name.strip("/"):
        url = f"{API}/definitions/{quote(name, safe='', errors='surrogatepass')}"
        for response in (
            admin.get(url),
            admin.put(url, json={"content": "x", "version": "v"}),
            admin.delete(url, params={"version": "v"}),
            admin.get(f"{url}/revisions"),
            admin.get(f"{url}/revisions/1"),
        ):
            assert response.status_code in (400, 404, 405, 422), response.text


@pytest.mark.parametrize("name", ["x\n", "x y", "x/../y", "x.yaml"])
def test_api_import_refuses_a_hostile_name(admin, name):
    response = admin.post(f"{API}/apis", json={"name": name, "content": "openapi: 3.0.0"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"]["field"] == "name"


def test_a_misnamed_file_is_listed_and_deleted_through_the_api(
    api_server, admin, viewer, definitions_dir, write_definition, tmp_path, monkeypatch
):
    write_definition(PAYLOAD_NAME, WORKFLOW.format(id="evil_listed"))
    encoded = encode_path(PAYLOAD_NAME)
    listed = {d["path"]: d for d in admin.get(f"{API}/definitions").json()["definitions"]}
    entry = listed[encoded]
    assert entry["valid"] is False and entry["kind"] is None and "not allowed" in entry["problem"]
    # not readable or writable as a definition under either name
    assert admin.get(f"{API}/definitions/{quote(encoded, safe='')}").status_code in (400, 404)
    # only a designer may delete, only with the current version, only files the listing shows
    assert (
        viewer.delete(f"{API}/definitions", params={"encoded": encoded, "version": entry["version"]}).status_code == 403
    )
    assert admin.delete(f"{API}/definitions", params={"encoded": encoded, "version": "0" * 64}).status_code == 409
    for other in ("hello_world.yaml", "../x.yaml", "does%20not%20exist.yaml"):
        response = admin.delete(f"{API}/definitions", params={"encoded": other, "version": "0" * 64})
        assert response.status_code == 404 and response.json()["detail"]["field"] == "encoded", response.text
    response = admin.delete(f"{API}/definitions", params={"encoded": encoded, "version": entry["version"]})
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "delete"
    assert not (definitions_dir / PAYLOAD_NAME).exists()
    assert encoded not in {d["path"] for d in admin.get(f"{API}/definitions").json()["definitions"]}


def test_a_misnamed_file_is_deleted_by_the_cli(api_server, definitions_dir, write_definition):
    write_definition("by cli.yaml", WORKFLOW.format(id="by_cli"))
    done = subprocess.run(
        [sys.executable, "-m", "autopilot_provider.cli", "delete", "--encoded", "by%20cli.yaml"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    assert not (definitions_dir / "by cli.yaml").exists()
    refused = subprocess.run(
        [sys.executable, "-m", "autopilot_provider.cli", "delete", "a\nb.yaml"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert refused.returncode == 1 and "not an allowed definition path" in refused.stderr


def test_portal_refuses_a_value_that_is_not_of_its_format(admin, write_definition):
    write_definition("format_check.yaml", FORMAT_WORKFLOW)
    response = admin.post(
        f"{API}/workflows/format_check/runs", json={"form": {"host": "bad host_name!", "link": "not a uri"}}
    )
    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["detail"]["errors"]}
    assert fields == {"host", "link"}, response.text


# ------------------------------------------------------------------------------------------------
# CSRF: the cookie is the credential unless get_user would take a bearer token
# ------------------------------------------------------------------------------------------------


def _post_validate(api_server, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=api_server.base_url, timeout=60) as client:
        return client.post(
            f"{API}/definitions/validate",
            json={"path": "x.yaml", "content": WORKFLOW.format(id="x")},
            headers=headers,
        )


@pytest.mark.parametrize(
    ("cookie", "extra", "status"),
    [
        ("bad cookie; _token={token}", {}, 403),  # an unparsable part before _token
        ('x="unterminated; _token={token}', {}, 403),
        ("a=b; c; _token={token}", {}, 403),
        ("_token={token}", {"Authorization": "Basic eDp5"}, 403),
        ("_token={token}", {"Authorization": "garbage"}, 403),
        ("_token={token}", {"Authorization": "Bearer"}, 403),  # no credential: HTTPBearer ignores it
        ("_token={token}", {"X-Autopilot-Request": "1"}, 200),
        (None, {"Authorization": "Bearer {token}"}, 200),
        ("_token=stale", {"Authorization": "Bearer {token}"}, 200),
    ],
)
def test_csrf_applies_whenever_the_cookie_is_the_credential(api_server, cookie, extra, status):
    token = api_server.token("viewer")
    headers = {k: v.format(token=token) for k, v in extra.items()}
    if cookie is not None:
        headers["Cookie"] = cookie.format(token=token)
    response = _post_validate(api_server, headers)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["detail"]["field"] == "X-Autopilot-Request"
