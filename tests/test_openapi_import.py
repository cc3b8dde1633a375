"""Importing OpenAPI documents (``autopilot import-openapi`` and ``POST /autopilot/api/v1/apis``) and the
operation catalog (``/apis/{name}/operations``).

The documents under ``tests/data`` (see its README): a Swagger 2.0 YAML, an OpenAPI 3.0 YAML and an
OpenAPI 3.1 JSON written for these tests, and GitHub's REST API description (13 MB, 1,223 operations).
CLI tests import into temporary definitions folders; API tests import into the folder the test API
server serves and remove what they wrote at the end.
"""

from __future__ import annotations

import copy
import functools
import gzip
import http.server
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from autopilot_provider.cli import main
from autopilot_provider.hooks import openapi as hook_module
from autopilot_provider.hooks.openapi import OpenApiAuthError, OpenApiHook
from autopilot_provider.openapi import cache, sources, validation
from autopilot_provider.openapi.cache import load_spec
from autopilot_provider.openapi.request import build_request
from autopilot_provider.openapi.spec import SpecError, normalise, parse_document
from autopilot_provider.repository.folder import Project
from autopilot_provider.server.openapi_import import import_openapi
from tests.fixtures.loopback import LoopbackHttpServer

DATA = Path(__file__).resolve().parent / "data"
SWAGGER2 = DATA / "inventory-swagger2.yaml"
OPENAPI30 = DATA / "backup-openapi30.yaml"
OPENAPI31 = DATA / "storage-openapi31.json"
GITHUB = DATA / "github-api.json.gz"
#: Operations in GitHub's REST API description as shipped by @octokit/openapi 23.0.2.
GITHUB_OPERATIONS = 1223

DOCUMENTS = [
    # (file, name, stored as, OpenAPI version, operation ids)
    (
        SWAGGER2,
        "inventory",
        "yaml",
        "2.0",
        ["listHosts", "addHost", "getHost", "delete_hosts_hostname", "post_hosts_hostname_notes"],
    ),
    (
        OPENAPI30,
        "backup",
        "yaml",
        "3.0.3",
        ["listJobs", "startJob", "getJob", "get_hosts_id_2", "get_hosts_id", "get_reports_2", "get_reports", "getTree"],
    ),
    (
        OPENAPI31,
        "storage",
        "json",
        "3.1.0",
        ["listVolumes", "createVolume", "getVolume", "deleteVolume", "post_volumes_name_resize"],
    ),
]


@pytest.fixture(autouse=True)
def spec_cache(tmp_path, monkeypatch) -> Path:
    """Each test gets its own normalised-spec cache."""
    folder = tmp_path / "spec-cache"
    monkeypatch.setenv("AUTOPILOT_SPEC_CACHE", str(folder))
    return folder


@pytest.fixture
def defs(tmp_path) -> Path:
    folder = tmp_path / "definitions"
    folder.mkdir()
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "autopilot_provider.cli", *args], capture_output=True, text=True, env=os.environ.copy()
    )


OAUTH_SECRET = "s3cret-of-the-connection"


class Recorder(LoopbackHttpServer):
    """A loopback HTTP server that records every request and answers from ``routes``
    (path → (status, headers, body)); 404 for any other path."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = recorder.routes.get(self.path.split("?")[0], (404, {}, b"not here"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler, "recorder")

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.requests]


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# CLI: the three dialects
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "name", "suffix", "openapi", "ids"), DOCUMENTS, ids=[d[1] for d in DOCUMENTS])
def test_cli_imports_each_dialect(defs, capsys, source, name, suffix, openapi, ids):
    assert main(["import-openapi", str(source), "--name", name, "--definitions", str(defs)]) == 0
    out = capsys.readouterr().out
    assert f"imported Api '{name}'" in out and f"{len(ids)} operation(s)" in out

    assert files(defs) == sorted([f"apis/{name}.yaml", f"apis/specs/{name}.{suffix}"])
    # the document is stored exactly as given: it stays the source of truth
    assert (defs / "apis" / "specs" / f"{name}.{suffix}").read_bytes() == source.read_bytes()
    definition = yaml.safe_load((defs / "apis" / f"{name}.yaml").read_text())
    title = parse_document(source.read_text())["info"]["title"]
    assert definition == {
        "apiVersion": "autopilot/v1",
        "kind": "Api",
        "id": name,
        "title": title,
        "spec": f"specs/{name}.{suffix}",
        "connection": f"{name}_api",
    }

    assert main(["validate", str(defs)]) == 0
    loaded, spec = Project(defs).api_spec(name)
    assert loaded.ok and spec.openapi == openapi
    assert list(spec.operations) == ids


def test_cli_entry_point_with_connection(defs):
    result = run_cli(
        "import-openapi", str(OPENAPI30), "--name", "backup", "--connection", "backup_prod", "--definitions", str(defs)
    )
    assert result.returncode == 0, result.stderr
    assert "8 operation(s), 3 without operationId (derived ids)" in result.stdout
    assert "connection: backup_prod" in result.stdout
    assert yaml.safe_load((defs / "apis" / "backup.yaml").read_text())["connection"] == "backup_prod"
    check = run_cli("validate", str(defs))
    assert check.returncode == 0, check.stdout + check.stderr


def test_cli_invalid_document_names_the_pointer_and_writes_nothing(defs, tmp_path):
    document = parse_document(OPENAPI30.read_text())
    del document["paths"]["/jobs"]["get"]["responses"]["200"]["description"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    result = run_cli("import-openapi", str(broken), "--name", "backup", "--definitions", str(defs))
    assert result.returncode == 1
    assert f"{broken}: /paths/~1jobs/get/responses/200: " in result.stderr
    assert "'description' is a required property" in result.stderr
    assert "nothing was written" in result.stderr
    assert files(defs) == []


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (
            lambda d: d["paths"]["/tree"]["get"].update(operationId="listJobs"),
            "/paths/~1tree/get/operationId",
            "is not unique",
        ),
        (
            lambda d: d["paths"]["/hosts/{id}"]["get"].pop("parameters"),
            "/paths/~1hosts~1{id}/get",
            "Path parameter 'id'",
        ),
        (
            lambda d: d["components"]["schemas"]["Policy"].update(default="platinum"),
            "/components/schemas/Policy/default",
            "'platinum' is not one of",
        ),
        (
            lambda d: d["components"]["schemas"]["NewJob"]["required"].append("nope"),
            "/components/schemas/NewJob/required",
            "['nope']",
        ),
        (
            lambda d: d["components"]["schemas"]["Tree"].update(type="tree"),
            "/components/schemas/Tree/type",
            "'tree' is not one of",
        ),
        (
            lambda d: d["paths"]["/jobs"]["get"]["parameters"].append({"name": "limit", "in": "query", "schema": {}}),
            "/paths/~1jobs/get/parameters/2",
            "Duplicate parameter 'limit'",
        ),
        (
            lambda d: d["paths"]["/tree"]["get"]["responses"]["200"]["content"]["application/json"]["schema"].update(
                {"$ref": "#/components/schemas/Nope"}
            ),
            "/paths/~1tree/get/responses/200/content/application~1json/schema/$ref",
            "unresolvable $ref",
        ),
        (lambda d: d["tags"].append({"name": "jobs"}), "/tags/2/name", "Duplicate tag name"),
        (lambda d: d.update(openapi="4.0.0"), "/openapi", "unsupported OpenAPI version"),
    ],
    ids=[
        "duplicate-operation-id",
        "unresolved-path-parameter",
        "bad-default",
        "allof-required",
        "bad-type",
        "duplicate-parameter",
        "broken-ref",
        "duplicate-tag",
        "unknown-version",
    ],
)
def test_invalid_documents_agree_with_openapi_spec_validator(change, pointer, message):
    """Our validation is openapi-spec-validator's (made fast): the same documents fail, and ours says where."""
    from openapi_spec_validator import validate as reference

    document = parse_document(OPENAPI30.read_text())
    change(document)
    with pytest.raises(SpecError) as raised:
        validation.validate(document)
    assert raised.value.pointer == pointer
    assert message in raised.value.message
    with pytest.raises(Exception):  # noqa: B017 - the reference raises its own error classes
        reference(copy.deepcopy(document))


@pytest.mark.parametrize("source", [SWAGGER2, OPENAPI30, OPENAPI31], ids=lambda p: p.name)
def test_valid_documents_agree_with_openapi_spec_validator(source):
    from openapi_spec_validator import validate as reference

    document = parse_document(source.read_text())
    reference(copy.deepcopy(document))
    validation.validate(document)


def _nodes(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nodes(value, (*path, i))


@pytest.mark.parametrize("source", [SWAGGER2, OPENAPI30, OPENAPI31], ids=lambda p: p.name)
def test_fast_structure_check_agrees_with_jsonschema(source):
    """The yes/no structure check decides like jsonschema on hundreds of random breakages."""
    import random

    document = parse_document(source.read_text())
    version = validation.detect_version(document)
    fast = validation._fast_check(version)
    if version == "3.1":
        assert fast is None  # 2020-12: jsonschema (or jsonschema-rs) decides
        return
    reference = validation._python_validator(version)
    junk = [42, -1, 1.5, "x", "", None, True, [], {}, ["a"], {"x-ok": 1}, {"bogus": 1}]
    rng = random.Random(1234)
    nodes = [path for path, _ in _nodes(document)]
    disagreements = []
    for _ in range(400):
        mutated = copy.deepcopy(document)
        path = rng.choice(nodes)
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if not path:
            mutated["bogus"] = 1
        elif action < 0.3 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action < 0.45 and isinstance(parent, dict):
            parent[f"{path[-1]}x"] = parent.pop(path[-1])
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(junk))
        expected = next(reference.iter_errors(mutated), None) is None
        if fast(mutated) != expected:
            disagreements.append((path, expected))
    assert disagreements == []


def test_cli_refuses_bad_input(defs, tmp_path, capsys):
    assert main(["import-openapi", str(OPENAPI30), "--name", "9lives", "--definitions", str(defs)]) == 1
    assert "is not an identifier" in capsys.readouterr().err
    assert main(["import-openapi", str(tmp_path / "missing.yaml"), "--name", "x", "--definitions", str(defs)]) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("openapi: 3.0.3\ninfo: [unclosed\n")
    assert main(["import-openapi", str(tmp_path / "bad.yaml"), "--name", "x", "--definitions", str(defs)]) == 1
    assert "neither JSON nor YAML" in capsys.readouterr().err
    assert files(defs) == []


# ---------------------------------------------------------------------------------------------
# --force
# ---------------------------------------------------------------------------------------------


def test_force_replaces_and_keeps_the_connection(defs, tmp_path, capsys):
    args = ["--name", "svc", "--definitions", str(defs)]
    assert main(["import-openapi", str(OPENAPI30), *args, "--connection", "svc_prod"]) == 0
    before = {rel: (defs / rel).read_bytes() for rel in files(defs)}

    assert main(["import-openapi", str(OPENAPI31), *args]) == 1
    err = capsys.readouterr().err
    assert "an Api named 'svc' exists" in err and "--force" in err
    assert {rel: (defs / rel).read_bytes() for rel in files(defs)} == before

    assert main(["import-openapi", str(OPENAPI31), *args, "--force"]) == 0
    assert "replaced Api 'svc'" in capsys.readouterr().out
    # the YAML document made way for the JSON one; the connection chosen before is kept
    assert files(defs) == ["apis/specs/svc.json", "apis/svc.yaml"]
    definition = yaml.safe_load((defs / "apis" / "svc.yaml").read_text())
    assert definition["spec"] == "specs/svc.json" and definition["connection"] == "svc_prod"
    assert definition["title"] == "Storage"
    _, spec = Project(defs).api_spec("svc")
    assert "createVolume" in spec.operations

    # an explicit connection wins
    assert main(["import-openapi", str(OPENAPI31), *args, "--force", "--connection", "svc_test"]) == 0
    assert yaml.safe_load((defs / "apis" / "svc.yaml").read_text())["connection"] == "svc_test"


def test_force_never_overwrites_another_definition(defs, capsys):
    (defs / "legacy.yaml").write_text(
        "apiVersion: autopilot/v1\nkind: Api\nid: svc\nspec: specs/x.yaml\nconnection: x\n"
    )
    assert main(["import-openapi", str(OPENAPI30), "--name", "svc", "--definitions", str(defs), "--force"]) == 1
    assert "already defined in legacy.yaml" in capsys.readouterr().err
    (defs / "legacy.yaml").unlink()
    (defs / "apis").mkdir()
    (defs / "apis" / "svc.yaml").write_text(
        "apiVersion: autopilot/v1\nkind: Workflow\nid: svc\nsteps:\n  - id: a\n    script: {bash: echo}\n"
    )
    assert main(["import-openapi", str(OPENAPI30), "--name", "svc", "--definitions", str(defs), "--force"]) == 1
    assert "is not an Api definition" in capsys.readouterr().err
    assert files(defs) == ["apis/svc.yaml"]


# ---------------------------------------------------------------------------------------------
# Derived operation ids
# ---------------------------------------------------------------------------------------------


def _ids_by_route(spec) -> dict[tuple[str, str], str]:
    return {(op.method, op.path): op.id for op in spec.operations.values()}


def test_derived_ids_are_deterministic_and_stable(defs, tmp_path):
    spec = load_spec(parse_document(OPENAPI30.read_text()))
    ids = _ids_by_route(spec)
    # numbered in (path, method) order, whatever the document order ("/hosts/{id}" is written first)
    assert ids[("GET", "/hosts/id")] == "get_hosts_id"
    assert ids[("GET", "/hosts/{id}")] == "get_hosts_id_2"
    # an explicit operationId is never renamed: the derived one steps aside
    assert ids[("GET", "/legacy/reports")] == "get_reports"
    assert ids[("GET", "/reports")] == "get_reports_2"
    assert {op.id for op in spec.operations.values() if op.derived_id} == {
        "get_hosts_id",
        "get_hosts_id_2",
        "get_reports_2",
    }

    # the same document with its paths in reverse order gives the same ids
    document = parse_document(OPENAPI30.read_text())
    document["paths"] = dict(reversed(list(document["paths"].items())))
    assert _ids_by_route(load_spec(document)) == ids

    # and so does an import, a re-import, and the cached load of the stored document
    for _ in range(2):
        import_openapi(defs, "backup", source=OPENAPI30, force=True)
        _, stored = Project(defs).api_spec("backup")
        assert _ids_by_route(stored) == ids
    assert _ids_by_route(load_spec(defs / "apis" / "specs" / "backup.yaml", validate=False)) == ids


# ---------------------------------------------------------------------------------------------
# The normalised cache (what parsing a DAG with task steps pays)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [SWAGGER2, OPENAPI30, OPENAPI31], ids=lambda p: p.name)
def test_cached_spec_equals_the_parsed_one(tmp_path, spec_cache, source):
    path = tmp_path / source.name
    shutil.copy(source, path)
    fresh = load_spec(path, cache=False)
    first = load_spec(path)  # parses and writes the cache
    assert list(spec_cache.glob("*.spec"))
    cached = load_spec(path)  # reads the cache: nothing built yet
    assert not cached.operations._built
    assert list(cached.operations) == list(fresh.operations)
    for op_id in fresh.operations:
        assert cached.operations[op_id] == fresh.operations[op_id] == first.operations[op_id]
        assert cached.unresolved_operation(op_id) == fresh.unresolved_operation(op_id)
    for attr in ("title", "version", "openapi", "servers", "security_schemes", "security", "tags"):
        assert getattr(cached, attr) == getattr(fresh, attr)
    assert cached.document == fresh.document  # read from the file on first access


def test_changed_document_is_never_read_stale(tmp_path):
    path = tmp_path / "api.json"
    document = parse_document(OPENAPI31.read_text())
    path.write_text(json.dumps(document))
    assert load_spec(path).operation("createVolume").summary == "Create a volume"
    document["paths"]["/volumes"]["post"]["summary"] = "Create a VOLUME"  # same size, same second
    path.write_text(json.dumps(document))
    assert load_spec(path).operation("createVolume").summary == "Create a VOLUME"


def test_cache_entry_removed_after_loading_falls_back_to_the_document(tmp_path, spec_cache):
    path = tmp_path / "api.yaml"
    shutil.copy(OPENAPI30, path)
    load_spec(path)
    spec = load_spec(path)  # lazy: reads shards of the cache entry on demand
    shutil.rmtree(spec_cache)
    assert spec.operation("startJob").body_schema["required"] == ["host", "policy"]


def test_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_SPEC_CACHE", "off")
    assert cache.cache_dir() is None
    path = tmp_path / "api.yaml"
    shutil.copy(OPENAPI30, path)
    assert len(load_spec(path).operations) == 8


def test_recursive_schemas_are_cut_and_refs_resolved():
    spec = load_spec(parse_document(OPENAPI30.read_text()))
    tree = spec.operation("getTree").responses["200"]
    assert tree["properties"]["children"]["items"] == {}
    body = spec.operation("startJob").body_schema
    assert "$ref" not in json.dumps(body)
    assert body["allOf"][0]["properties"]["policy"]["enum"] == ["gold", "silver", "bronze"]
    raw = spec.unresolved_operation("startJob")
    assert raw.body_schema == {"$ref": "#/components/schemas/NewJob"}
    swagger = load_spec(parse_document(SWAGGER2.read_text()))
    assert swagger.operation("getHost").responses["404"]["required"] == ["message"]
    assert swagger.servers == ["https://inventory.example.com/v1"]
    assert swagger.security_schemes == {"basic": {"type": "http", "scheme": "basic"}}


# ---------------------------------------------------------------------------------------------
# A big real document
# ---------------------------------------------------------------------------------------------


def test_github_rest_api_imports_with_every_operation(defs, tmp_path):
    source = tmp_path / "api.github.com.json"
    source.write_bytes(gzip.decompress(GITHUB.read_bytes()))
    result = import_openapi(defs, "github", source=source)
    assert result.operations == GITHUB_OPERATIONS
    assert result.derived_ids == 0
    assert result.spec_path == "apis/specs/github.json"

    _, spec = Project(defs).api_spec("github")
    assert len(spec.operations) == GITHUB_OPERATIONS
    assert not spec.operations._built  # served from the normalised cache the import wrote
    op = spec.operation("repos/get")
    assert (op.method, op.path) == ("GET", "/repos/{owner}/{repo}")
    assert {p.name for p in op.parameters} == {"owner", "repo"}
    assert op.responses["200"]["properties"]["full_name"]["type"] == "string"
    document = parse_document(source.read_bytes())
    assert len(normalise(document).operations) == GITHUB_OPERATIONS


# ---------------------------------------------------------------------------------------------
# REST API (a real airflow api-server)
# ---------------------------------------------------------------------------------------------

API = "/autopilot/api/v1/apis"
NAMES = ("t_inventory", "t_backup", "t_storage", "t_broken", "t_oauth")


@pytest.fixture(scope="module")
def listener():
    """A loopback server that must see no request: the documents' token URLs and refused imports point here."""
    server = Recorder()
    yield server
    server.stop()


#: This module's API server: imports may fetch from the host name ``localhost`` (allow-listed) and from
#: no other internal address; a connection with OAuth2 client credentials whose host is never contacted.
API_SERVER_ENV = {
    "AIRFLOW__AUTOPILOT__FETCH_ALLOWLIST": "localhost",
    "AIRFLOW_CONN_T_OAUTH_API": json.dumps(
        {
            "conn_type": "autopilot_openapi",
            "host": "http://127.0.0.1:9",
            "extra": json.dumps({"client_id": "viewer-must-not-see", "client_secret": OAUTH_SECRET}),
        }
    ),
}


@pytest.fixture(scope="module")
def folder(api_server) -> Path:
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    yield root
    for name in NAMES:
        (root / "apis" / f"{name}.yaml").unlink(missing_ok=True)
        for suffix in (".json", ".yaml"):
            (root / "apis" / "specs" / f"{name}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def served():
    """tests/data over HTTP (the API server fetches documents from here)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # by name: the module's API server allow-lists the host name localhost, not the address 127.0.0.1
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _storage_with_slash_ids() -> str:
    return OPENAPI31.read_text().replace('"getVolume"', '"volumes/get"')


@pytest.mark.server
def test_api_import_needs_write_permission(anonymous, viewer, folder):
    body = {"name": "t_backup", "content": OPENAPI30.read_text()}
    assert anonymous.post(API, json=body).status_code == 401
    assert anonymous.get(API).status_code == 401
    assert anonymous.get(f"{API}/t_backup/operations").status_code == 401
    assert viewer.post(API, json=body).status_code == 403
    assert not (folder / "apis" / "t_backup.yaml").exists()


@pytest.mark.server
def test_api_import_from_url(editor, served, folder):
    response = editor.post(API, json={"name": "t_inventory", "url": f"{served}/{SWAGGER2.name}"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["operations"] == 5 and body["derived_ids"] == 2 and body["openapi"] == "2.0"
    assert body["api_path"] == "apis/t_inventory.yaml" and body["spec_path"] == "apis/specs/t_inventory.yaml"
    assert body["revision"] == 1 and body["replaced"] is False
    assert (folder / "apis" / "specs" / "t_inventory.yaml").read_bytes() == SWAGGER2.read_bytes()
    definition = yaml.safe_load((folder / "apis" / "t_inventory.yaml").read_text())
    assert definition["description"] == f"Imported from {served}/{SWAGGER2.name}"
    revisions = editor.get("/autopilot/api/v1/definitions/apis/t_inventory.yaml/revisions").json()
    assert revisions["revisions"][0]["author"] == "editor"

    missing = editor.post(API, json={"name": "t_broken", "url": f"{served}/nope.yaml"})
    assert missing.status_code == 400 and missing.json()["detail"]["field"] == "url"
    assert "404" in missing.json()["detail"]["message"]


@pytest.mark.server
def test_api_import_from_content_and_replace(admin, folder):
    content = OPENAPI30.read_text()
    created = admin.post(API, json={"name": "t_backup", "content": content})
    assert created.status_code == 201, created.text
    assert created.json()["connection"] == "t_backup_api"

    again = admin.post(API, json={"name": "t_backup", "content": content})
    assert again.status_code == 409 and again.json()["detail"]["field"] == "name"

    replaced = admin.post(
        API, json={"name": "t_backup", "content": content, "replace": True, "connection": "backup_prod"}
    )
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["replaced"] is True and replaced.json()["revision"] == 2
    assert yaml.safe_load((folder / "apis" / "t_backup.yaml").read_text())["connection"] == "backup_prod"

    storage = admin.post(API, json={"name": "t_storage", "content": _storage_with_slash_ids()})
    assert storage.status_code == 201, storage.text
    assert storage.json()["spec_path"] == "apis/specs/t_storage.json"


@pytest.mark.server
def test_api_import_rejects_invalid_input(admin, folder):
    document = parse_document(OPENAPI30.read_text())
    document["paths"]["/jobs"]["get"]["operationId"] = "startJob"
    invalid = admin.post(API, json={"name": "t_broken", "content": json.dumps(document)})
    assert invalid.status_code == 422, invalid.text
    detail = invalid.json()["detail"]
    assert detail["pointer"] == "/paths/~1jobs/post/operationId" and detail["field"] == "content"
    assert "is not unique" in detail["message"]
    assert not (folder / "apis" / "t_broken.yaml").exists()
    assert not (folder / "apis" / "specs" / "t_broken.json").exists()

    assert admin.post(API, json={"name": "t-broken", "content": "{}"}).json()["detail"]["field"] == "name"
    both = admin.post(API, json={"name": "t_broken", "content": "{}", "url": "http://127.0.0.1:1/x"})
    assert both.status_code == 400
    neither = admin.post(API, json={"name": "t_broken"})
    assert neither.status_code == 400
    not_openapi = admin.post(API, json={"name": "t_broken", "content": "just: yaml"})
    assert not_openapi.status_code == 422 and "no 'openapi' or 'swagger'" in not_openapi.json()["detail"]["message"]


@pytest.mark.server
def test_api_list_and_catalog(viewer, admin, folder):
    if not (folder / "apis" / "t_backup.yaml").exists():
        assert admin.post(API, json={"name": "t_backup", "content": OPENAPI30.read_text()}).status_code == 201
    listing = viewer.get(API)
    assert listing.status_code == 200, listing.text
    apis = {a["id"]: a for a in listing.json()["apis"]}
    backup = apis["t_backup"]
    assert backup["title"] == "Backup service" and backup["version"] == "2.1.0" and backup["openapi"] == "3.0.3"
    assert backup["operations"] == 8 and backup["valid"] and backup["path"] == "apis/t_backup.yaml"
    assert backup["servers"] == ["https://backup.example.com/api"]

    one = viewer.get(f"{API}/t_backup").json()
    assert {"name": "jobs", "description": "Backup jobs", "operations": 3} in one["tags"]
    assert one["security_schemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}

    ops = viewer.get(f"{API}/t_backup/operations")
    assert ops.status_code == 200, ops.text
    assert ops.json()["total_entries"] == 8
    first = ops.json()["operations"][0]
    assert first["operationId"] == "listJobs" and first["method"] == "GET" and first["path"] == "/jobs"
    assert first["parameters"][0] == {
        "name": "status",
        "in": "query",
        "required": False,
        "description": None,
        "schema": {"$ref": "#/components/schemas/Status"},
        "style": None,
        "explode": None,
    }
    assert first["responses"]["200"]["schema"]["items"] == {"$ref": "#/components/schemas/Job"}

    found = viewer.get(f"{API}/t_backup/operations", params={"q": "backup job"}).json()
    assert [o["operationId"] for o in found["operations"]] == ["listJobs", "startJob", "getJob"]
    assert [
        o["operationId"] for o in viewer.get(f"{API}/t_backup/operations", params={"tag": "HOSTS"}).json()["operations"]
    ] == ["get_hosts_id_2", "get_hosts_id"]
    page = viewer.get(f"{API}/t_backup/operations", params={"limit": 2, "offset": 2}).json()
    assert [o["operationId"] for o in page["operations"]] == ["getJob", "get_hosts_id_2"] and page["total_entries"] == 8

    detail = viewer.get(f"{API}/t_backup/operations/startJob")
    assert detail.status_code == 200, detail.text
    start = detail.json()
    assert start["request_body"]["required"] and start["request_body"]["media_types"] == ["application/json"]
    assert "$ref" not in json.dumps(start)
    assert start["request_body"]["schema"]["required"] == ["host", "policy"]
    assert start["responses"]["202"]["schema"]["allOf"][1]["properties"]["status"]["enum"][0] == "queued"
    assert start["security"] is None and start["api"] == "t_backup"
    assert viewer.get(f"{API}/t_backup/operations/get_reports").json()["deprecated"] is True


@pytest.mark.server
def test_api_catalog_operation_ids_with_slashes_and_not_found(viewer, admin, folder):
    if not (folder / "apis" / "t_storage.yaml").exists():
        assert admin.post(API, json={"name": "t_storage", "content": _storage_with_slash_ids()}).status_code == 201
    got = viewer.get(f"{API}/t_storage/operations/volumes/get")
    assert got.status_code == 200, got.text
    assert got.json()["path"] == "/volumes/{name}" and got.json()["parameters"][0]["name"] == "name"

    missing = viewer.get(f"{API}/t_storage/operations/volumes/gte")
    assert missing.status_code == 404
    assert "did you mean 'volumes/get'" in missing.json()["detail"]["message"]
    assert viewer.get(f"{API}/no_such_api/operations").status_code == 404
    assert viewer.get(f"{API}/no_such_api").status_code == 404


# ---------------------------------------------------------------------------------------------
# What the API server may fetch and read (issue 12, item 6)
# ---------------------------------------------------------------------------------------------

VALIDATE = "/autopilot/api/v1/definitions/validate"


def _refused_port() -> tuple[socket.socket, int]:
    """A port on 127.0.0.1 that refuses connections for as long as the socket is held (bound, not listening)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        # IPv6 that reaches an internal IPv4 address (6to4, Teredo's client, NAT64), and site-local
        ("2002:a9fe:a9fe::1", "6to4 link-local"),
        ("2002:7f00:1::1", "6to4 loopback"),
        ("2002:a01:203::1", "6to4 private"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo loopback"),  # client 127.0.0.1 (bits inverted)
        ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
        ("fec0::1", "site-local"),
        ("2002:5db8:d822::1", None),  # 6to4 of the public 93.184.216.34
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_internal_addresses_are_recognised(address, kind):
    assert sources.internal_kind(ipaddress.ip_address(address)) == kind


def test_allowlist_names_hosts_and_networks():
    allow = sources.Allowlist.parse("docs.corp.example, 10.20.0.0/16 127.0.0.1,[::1]")
    assert allow.allows("DOCS.corp.example", ipaddress.ip_address("10.9.9.9"))
    assert allow.allows("x", ipaddress.ip_address("10.20.3.4"))
    assert allow.allows("x", ipaddress.ip_address("127.0.0.1"))
    assert allow.allows("x", ipaddress.ip_address("::1"))
    assert not allow.allows("x", ipaddress.ip_address("127.0.0.2"))
    assert not allow.allows("docs.corp.example.evil", ipaddress.ip_address("10.9.9.9"))
    with pytest.raises(ValueError, match="fetch_allowlist entry 'http://x'"):
        sources.Allowlist.parse("http://x")


def test_fetch_refuses_loopback_before_connecting_unless_allow_listed():
    server = Recorder()
    try:
        server.routes["/doc.yaml"] = (200, {}, OPENAPI30.read_bytes())
        for host in ("localhost", "127.0.0.1", "[::ffff:127.0.0.1]", "127.1"):
            with pytest.raises(sources.NotAllowed, match="fetch_allowlist"):
                sources.fetch_url(f"http://{host}:{server.port}/doc.yaml")
        assert server.requests == []  # refused before any connection

        url = f"http://127.0.0.1:{server.port}/doc.yaml"
        assert sources.fetch_url(url, allowlist=sources.Allowlist.parse("127.0.0.1")) == OPENAPI30.read_bytes()
        by_name = f"http://localhost:{server.port}/doc.yaml"
        assert sources.fetch_url(by_name, allowlist=sources.Allowlist.parse("localhost")) == OPENAPI30.read_bytes()
        # the pinned address is connected to, the server still sees the URL's host
        assert [r[2]["Host"] for r in server.requests] == [f"127.0.0.1:{server.port}", f"localhost:{server.port}"]
    finally:
        server.stop()


def test_fetch_checks_every_redirect_and_caps_bytes_and_hops():
    server = Recorder()
    try:
        local = sources.Allowlist.parse("localhost")
        server.routes["/hop"] = (302, {"Location": f"http://127.0.0.1:{server.port}/doc.yaml"}, b"")
        server.routes["/doc.yaml"] = (200, {}, OPENAPI30.read_bytes())
        with pytest.raises(sources.NotAllowed, match="127.0.0.1 is a loopback address"):
            sources.fetch_url(f"http://localhost:{server.port}/hop", allowlist=local)
        assert server.paths() == ["/hop"]  # the loopback address it pointed to was never asked

        server.routes["/loop"] = (307, {"Location": "/loop"}, b"")
        with pytest.raises(sources.NotAllowed, match="redirects more than 5 times"):
            sources.fetch_url(f"http://localhost:{server.port}/loop", allowlist=local)
        assert server.paths().count("/loop") == 6

        server.routes["/big"] = (200, {}, b"x" * 5000)
        with pytest.raises(sources.TooLarge, match="larger than 1000 bytes"):
            sources.fetch_url(f"http://localhost:{server.port}/big", allowlist=local, limit=1000)
    finally:
        server.stop()


def test_fetch_checks_the_overall_deadline_before_every_hop_and_address():
    server = Recorder()
    try:
        server.routes["/doc.yaml"] = (200, {}, OPENAPI30.read_bytes())
        url = f"http://127.0.0.1:{server.port}/doc.yaml"
        with pytest.raises(sources.Unreachable, match="could not fetch the document"):
            sources.fetch_url(url, allowlist=sources.Allowlist.parse("127.0.0.1"), total_timeout=0)
        assert server.requests == []  # the deadline had passed: nothing was asked
    finally:
        server.stop()


def test_read_file_refuses_fifos_devices_and_large_files(tmp_path):
    fifo = tmp_path / "doc.yaml"
    os.mkfifo(fifo)
    with pytest.raises(sources.NotAllowed, match="not a regular file"):
        sources.read_file(fifo)  # refused on the open descriptor, not waited on
    with pytest.raises(sources.NotAllowed, match="not a regular file"):
        sources.read_file("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(sources.NotAllowed, match="larger than 1000 bytes"):
        sources.read_file(big, limit=1000)
    assert sources.spec_file_problem(tmp_path, "api.yaml", "big.yaml", limit=1000) == (
        "spec 'big.yaml' is larger than 1000 bytes"
    )


def test_spec_outside_the_folder_is_a_diagnostic_for_the_cli(defs, tmp_path, capsys):
    (tmp_path / "outside.yaml").write_text(OPENAPI30.read_text())
    (defs / "apis" / "specs").mkdir(parents=True)
    (defs / "apis" / "specs" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    for name, spec in [("up", "../../outside.yaml"), ("link", "specs/link.yaml"), ("abs", str(tmp_path))]:
        (defs / "apis" / f"{name}.yaml").write_text(
            f"apiVersion: autopilot/v1\nkind: Api\nid: {name}\nspec: {spec}\nconnection: c\n"
        )
    assert main(["validate", str(defs), "--definitions", str(defs)]) == 1
    out = capsys.readouterr().out
    assert "apis/up.yaml:4:7: spec '../../outside.yaml' lies outside the definitions folder" in out
    assert "apis/link.yaml:4:7: spec 'specs/link.yaml' lies outside the definitions folder" in out
    assert f"apis/abs.yaml:4:7: spec: '{tmp_path}' must be a relative path" in out
    loaded, spec = Project(defs).api_spec("link")  # an Api with errors: its document is never read
    assert spec is None and not loaded.ok


@pytest.mark.server
def test_api_import_refuses_internal_addresses_without_connecting(admin, listener, folder):
    listener.routes["/doc.yaml"] = (200, {}, OPENAPI30.read_bytes())
    seen = len(listener.requests)
    port = listener.port
    for url in [
        f"http://127.0.0.1:{port}/doc.yaml",
        f"http://[::1]:{port}/doc.yaml",
        f"http://[::ffff:127.0.0.1]:{port}/doc.yaml",
        f"http://0.0.0.0:{port}/doc.yaml",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/openapi.yaml",
        "http://100.64.0.1/openapi.yaml",
    ]:
        response = admin.post(API, json={"name": "t_broken", "url": url})
        assert response.status_code == 422, (url, response.text)
        detail = response.json()["detail"]
        assert detail["field"] == "url" and "fetch_allowlist" in detail["message"], detail
    assert len(listener.requests) == seen  # no connection was made
    assert not (folder / "apis" / "t_broken.yaml").exists()


@pytest.mark.server
def test_api_import_redirect_to_loopback_is_refused(admin, listener, folder):
    hop = Recorder()  # reached by the allow-listed name localhost
    try:
        hop.routes["/openapi.yaml"] = (302, {"Location": f"http://127.0.0.1:{listener.port}/doc.yaml"}, b"")
        seen = len(listener.requests)
        response = admin.post(API, json={"name": "t_broken", "url": f"http://localhost:{hop.port}/openapi.yaml"})
        assert response.status_code == 422, response.text
        assert "127.0.0.1 is a loopback address" in response.json()["detail"]["message"]
        assert hop.paths() == ["/openapi.yaml"] and len(listener.requests) == seen
    finally:
        hop.stop()
    assert not (folder / "apis" / "t_broken.yaml").exists()


@pytest.mark.server
def test_api_import_reads_no_local_file(admin, folder):
    for url in ["/etc/passwd", "file:///etc/passwd", "etc/passwd", "airflow.cfg", "/proc/self/environ"]:
        response = admin.post(API, json={"name": "t_broken", "url": url})
        assert response.status_code == 422, (url, response.text)
        detail = response.json()["detail"]
        assert detail["field"] == "url" and "absolute http:// or https:// URL" in detail["message"]
        assert "root:" not in response.text
    assert not (folder / "apis" / "t_broken.yaml").exists()


@pytest.mark.server
def test_api_import_unreachable_hosts_answer_one_message(admin):
    sock, port = _refused_port()
    try:
        url = f"http://localhost:{port}/openapi.yaml"
        refused = admin.post(API, json={"name": "t_broken", "url": url})
    finally:
        sock.close()
    assert refused.status_code == 400
    assert refused.json()["detail"] == {"message": f"could not fetch the document from {url}", "field": "url"}


@pytest.mark.server
def test_spec_must_be_a_regular_file_inside_the_folder_and_validation_fetches_nothing(viewer, listener, folder):
    specs = folder / "apis" / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    link, fifo = specs / "t_link.json", specs / "t_fifo.json"
    remote = folder / "apis" / "t_remote.yaml"
    seen = len(listener.requests)
    try:
        link.symlink_to("/etc/passwd")
        os.mkfifo(fifo)
        cases = {
            "../../etc/passwd": "lies outside the definitions folder",
            "/etc/passwd": "spec: '/etc/passwd' must be a relative path",
            f"http://127.0.0.1:{listener.port}/doc.yaml": "is a URL; the document must be a file inside",
            "specs/t_link.json": "lies outside the definitions folder",
            "specs/t_fifo.json": "is not a regular file",
        }
        for spec, message in cases.items():
            content = f"apiVersion: autopilot/v1\nkind: Api\nid: t_evil\nspec: {spec}\nconnection: c\n"
            response = viewer.post(VALIDATE, json={"path": "apis/t_evil.yaml", "content": content})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["valid"] is False, (spec, body)
            (diagnostic,) = body["diagnostics"]
            assert (diagnostic["line"], diagnostic["column"]) == (4, 7) and message in diagnostic["message"], spec

        # An Api written to the folder by other means (a git pull) with a URL: using it fetches nothing.
        remote.write_text(
            f"apiVersion: autopilot/v1\nkind: Api\nid: t_remote\nspec: http://127.0.0.1:{listener.port}/doc.yaml\n"
            "connection: c\n"
        )
        workflow = (
            "apiVersion: autopilot/v1\nkind: Workflow\nid: t_uses_remote\nsteps:\n"
            "  - id: list\n    task: {api: t_remote, operation: listJobs}\n"
        )
        checked = viewer.post(VALIDATE, json={"path": "t_uses_remote.yaml", "content": workflow}).json()
        assert checked["valid"] is False
        assert any("api 't_remote' has errors" in d["message"] for d in checked["diagnostics"]), checked
        assert viewer.get(f"{API}/t_remote").json()["valid"] is False
        assert viewer.get(f"{API}/t_remote/operations").status_code == 422
    finally:
        link.unlink(missing_ok=True)
        fifo.unlink(missing_ok=True)
        remote.unlink(missing_ok=True)
    assert len(listener.requests) == seen


def _oauth_document(token_url: str) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "OAuth product", "version": "1"},
        "servers": [{"url": "https://oauth.example.com/api"}],
        "security": [{"oauth": ["hosts:read"]}],
        "components": {
            "securitySchemes": {
                "oauth": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": {"hosts:read": "read"}}},
                }
            }
        },
        "paths": {
            "/hosts": {
                "get": {
                    "operationId": "listHosts",
                    "responses": {"200": {"description": "hosts", "content": {"application/json": {"schema": {}}}}},
                }
            }
        },
    }


@pytest.mark.server
def test_document_token_url_never_receives_a_connections_credentials(admin, viewer, listener, folder):
    token_url = f"http://127.0.0.1:{listener.port}/token"
    listener.routes["/token"] = (200, {"Content-Type": "application/json"}, b'{"access_token": "t"}')
    imported = admin.post(
        API, json={"name": "t_oauth", "content": json.dumps(_oauth_document(token_url)), "replace": True}
    )
    assert imported.status_code == 201, imported.text
    workflow = folder / "t_oauth_form.yaml"
    workflow.write_text(
        "apiVersion: autopilot/v1\nkind: Workflow\nid: t_oauth_form\nform:\n  properties:\n"
        "    host:\n      type: string\n      options: {api: t_oauth, operation: listHosts}\n"
        "steps:\n  - id: hosts\n    task: {api: t_oauth, operation: listHosts}\n"
    )
    seen = len(listener.requests)
    try:
        form = viewer.get("/autopilot/api/v1/workflows/t_oauth_form/form")
    finally:
        workflow.unlink()
    assert form.status_code == 502, form.text
    message = form.json()["detail"]["message"]
    assert f"the OAuth2 token URL {token_url}" in message and "oauth_token_url_allowlist" in message
    assert OAUTH_SECRET not in form.text
    assert len(listener.requests) == seen  # the client id and secret went nowhere


def test_token_url_from_the_connection_or_the_allow_list_gets_the_credentials(monkeypatch):
    server = Recorder()
    try:
        server.routes["/token"] = (200, {"Content-Type": "application/json"}, b'{"access_token": "tok"}')
        server.routes["/api/hosts"] = (200, {"Content-Type": "application/json"}, b"[]")
        document_url = f"http://localhost:{server.port}/token"  # another origin than the connection's host
        spec = load_spec(_oauth_document(document_url))
        operation = spec.operation("listHosts")
        creds = {"client_id": "id", "client_secret": OAUTH_SECRET}

        def run(extra: dict) -> dict:
            hook_module._TOKENS.clear()
            conn = {"conn_type": "autopilot_openapi", "host": f"http://127.0.0.1:{server.port}/api", "extra": extra}
            monkeypatch.setenv("AIRFLOW_CONN_T_HOOK", json.dumps(conn))
            hook = OpenApiHook("t_hook", spec=spec, retries=0)
            return hook.run(operation, build_request(spec, operation, {}, None))

        monkeypatch.delenv("AIRFLOW__AUTOPILOT__OAUTH_TOKEN_URL_ALLOWLIST", raising=False)
        with pytest.raises(OpenApiAuthError, match="comes from the OpenAPI document, not from the connection"):
            run(creds)
        assert server.requests == []

        monkeypatch.setenv("AIRFLOW__AUTOPILOT__OAUTH_TOKEN_URL_ALLOWLIST", f"http://localhost:{server.port}/tok")
        with pytest.raises(OpenApiAuthError):  # a prefix ends at a path segment: /tok does not allow /token
            run(creds)
        monkeypatch.setenv("AIRFLOW__AUTOPILOT__OAUTH_TOKEN_URL_ALLOWLIST", f"http://localhost:{server.port}")
        assert run(creds)["status"] == 200
        assert server.paths() == ["/token", "/api/hosts"]

        monkeypatch.delenv("AIRFLOW__AUTOPILOT__OAUTH_TOKEN_URL_ALLOWLIST")
        assert run({**creds, "token_url": f"http://127.0.0.1:{server.port}/token"})["status"] == 200
        same_origin = load_spec(_oauth_document("/token"))  # relative: on the connection host's origin
        hook_module._TOKENS.clear()
        hook = OpenApiHook("t_hook", spec=same_origin, retries=0)
        op = same_origin.operation("listHosts")
        assert hook.run(op, build_request(same_origin, op, {}, None))["status"] == 200
        assert server.paths()[-2:] == ["/token", "/api/hosts"]
    finally:
        server.stop()


def test_cli_fetches_internal_urls_only_when_allow_listed(defs, monkeypatch):
    server = Recorder()
    try:
        server.routes["/doc.yaml"] = (200, {}, OPENAPI30.read_bytes())
        url = f"http://127.0.0.1:{server.port}/doc.yaml"
        monkeypatch.delenv("AIRFLOW__AUTOPILOT__FETCH_ALLOWLIST", raising=False)
        refused = run_cli("import-openapi", url, "--name", "backup", "--definitions", str(defs))
        assert refused.returncode == 1 and "fetch_allowlist" in refused.stderr
        assert server.requests == [] and files(defs) == []

        monkeypatch.setenv("AIRFLOW__AUTOPILOT__FETCH_ALLOWLIST", "127.0.0.0/8")
        allowed = run_cli("import-openapi", url, "--name", "backup", "--definitions", str(defs))
        assert allowed.returncode == 0, allowed.stderr
        assert (defs / "apis" / "specs" / "backup.yaml").read_bytes() == OPENAPI30.read_bytes()
    finally:
        server.stop()
