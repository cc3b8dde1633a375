"""The definitions REST API, against a real ``airflow api-server`` with the Autopilot plugin mounted.

Users (SimpleAuthManager): admin (admin), editor (user), viewer (viewer). Files the tests create live
under ``api_test/`` in the test definitions folder and are removed when the module ends.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

API = "/autopilot/api/v1/definitions"

GREETING = """\
apiVersion: autopilot/v1
kind: Workflow
id: api_test_greeting
title: API test greeting
steps:
  - id: hello
    script:
      bash: echo hello
"""

BROKEN = """\
apiVersion: autopilot/v1
kind: Workflow
id: api_test_broken
steps:
  - id: hello
    scrpt:
      bash: echo hello
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def variant(ident: str, echo: str = "hello") -> str:
    return GREETING.replace("api_test_greeting", ident).replace("echo hello", f"echo {echo}")


@pytest.fixture(scope="module")
def folder(api_server) -> Path:
    root = Path(os.environ["AUTOPILOT_DEFINITIONS"])
    yield root
    shutil.rmtree(root / "api_test", ignore_errors=True)


def stub(rel: str) -> Path:
    """The module the Autopilot DAG bundle generates for a definition (see dag_factory.stubs)."""
    return Path(os.environ["AIRFLOW_HOME"]) / "bundles" / "autopilot" / "stubs" / f"{rel}.py"


# ---------------------------------------------------------------------------------------------
# OpenAPI and authentication
# ---------------------------------------------------------------------------------------------


def test_openapi_document_is_served(anonymous):
    response = anonymous.get("/autopilot/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "Autopilot API"
    assert {"/api/v1/definitions", "/api/v1/definitions/{path}", "/api/v1/definitions/validate"} <= set(spec["paths"])
    assert "/api/v1/definitions/{path}/revisions/{number}" in spec["paths"]
    assert spec["paths"]["/api/v1/definitions"]["get"]["operationId"] == "list_definitions"
    docs = anonymous.get("/autopilot/docs")
    assert docs.status_code == 200 and "/autopilot/openapi.json" in docs.text


ENDPOINTS = [
    ("GET", API, None),
    ("GET", f"{API}/hello_world.yaml", None),
    ("GET", f"{API}/hello_world.yaml/revisions", None),
    ("GET", f"{API}/hello_world.yaml/revisions/1", None),
    ("POST", f"{API}/validate", {"path": "api_test/x.yaml", "content": GREETING}),
    ("POST", API, {"path": "api_test/x.yaml", "content": GREETING}),
    ("PUT", f"{API}/hello_world.yaml", {"content": GREETING, "version": "x"}),
    ("DELETE", f"{API}/hello_world.yaml?version=x", None),
]


@pytest.mark.parametrize(("method", "url", "body"), ENDPOINTS, ids=[f"{m} {u}" for m, u, _ in ENDPOINTS])
def test_every_endpoint_needs_a_token(anonymous, folder, method, url, body):
    response = anonymous.request(method, url, json=body)
    assert response.status_code == 401, response.text
    garbage = anonymous.request(method, url, json=body, headers={"Authorization": "Bearer not-a-jwt"})
    assert garbage.status_code in (401, 403)
    assert not (folder / "api_test" / "x.yaml").exists()
    assert (folder / "hello_world.yaml").exists()


def test_viewer_reads_but_cannot_write(viewer, folder):
    assert viewer.get(API).status_code == 200
    assert viewer.get(f"{API}/hello_world.yaml").status_code == 200
    assert viewer.post(f"{API}/validate", json={"path": "api_test/v.yaml", "content": GREETING}).json()["valid"]

    version = sha((folder / "hello_world.yaml").read_text())
    before = (folder / "hello_world.yaml").read_text()
    assert viewer.post(API, json={"path": "api_test/v.yaml", "content": GREETING}).status_code == 403
    assert viewer.put(f"{API}/hello_world.yaml", json={"content": GREETING, "version": version}).status_code == 403
    assert viewer.delete(f"{API}/hello_world.yaml", params={"version": version}).status_code == 403
    assert not (folder / "api_test" / "v.yaml").exists()
    assert (folder / "hello_world.yaml").read_text() == before


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


def test_list_definitions(admin, folder):
    response = admin.get(API)
    assert response.status_code == 200
    body = response.json()
    by_path = {d["path"]: d for d in body["definitions"]}
    assert body["total_entries"] == len(body["definitions"])
    hello = by_path["hello_world.yaml"]
    assert hello == {
        "path": "hello_world.yaml",
        "kind": "Workflow",
        "id": "hello_world",
        "title": "Hello, world",
        "version": sha((folder / "hello_world.yaml").read_text()),
        "valid": True,
        "error_count": 0,
        "problem": None,  # set only for a file whose name is not allowed (tests/test_security_paths.py)
    }
    assert by_path["functions/check_host.yaml"]["kind"] == "Function"

    functions = admin.get(API, params={"kind": "Function"}).json()["definitions"]
    assert functions and {d["kind"] for d in functions} == {"Function"}

    unknown = admin.get(API, params={"kind": "Workflw"})
    assert unknown.status_code == 400
    assert unknown.json()["detail"]["field"] == "kind"


def test_get_definition(admin, folder):
    response = admin.get(f"{API}/functions/check_host.yaml")
    assert response.status_code == 200
    body = response.json()
    text = (folder / "functions" / "check_host.yaml").read_text()
    assert body["content"] == text
    assert body["version"] == sha(text)
    assert (body["kind"], body["id"], body["valid"], body["diagnostics"]) == ("Function", "check_host", True, [])

    missing = admin.get(f"{API}/api_test/nothing_here.yaml")
    assert missing.status_code == 404
    assert missing.json()["detail"]["field"] == "path"


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------


def test_create_writes_file_records_revision_and_refreshes_bundle(admin, folder):
    rel = "api_test/greeting.yaml"
    response = admin.post(API, json={"path": rel, "content": GREETING})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["path"] == rel and body["action"] == "create" and body["revision"] == 1
    assert body["version"] == sha(GREETING)
    assert (body["kind"], body["id"]) == ("Workflow", "api_test_greeting")
    assert body["refreshed_bundles"] == ["autopilot"]
    assert (folder / rel).read_text() == GREETING
    assert stub(rel).exists(), "the Autopilot bundle was not refreshed"

    revisions = admin.get(f"{API}/{rel}/revisions").json()
    assert revisions["total_entries"] == 1
    (first,) = revisions["revisions"]
    assert (first["number"], first["action"], first["author"], first["version"]) == (
        1,
        "create",
        "admin",
        sha(GREETING),
    )
    assert first["created_at"]
    detail = admin.get(f"{API}/{rel}/revisions/1").json()
    assert detail["content"] == GREETING and detail["path"] == rel
    assert admin.get(f"{API}/{rel}/revisions/2").status_code == 404

    listed = {d["path"]: d for d in admin.get(API).json()["definitions"]}
    assert listed[rel]["valid"] is True

    again = admin.post(API, json={"path": rel, "content": GREETING})
    assert again.status_code == 409
    assert again.json()["detail"]["field"] == "path"


def test_invalid_content_is_rejected_with_positions_and_nothing_written(admin, folder):
    rel = "api_test/broken.yaml"
    response = admin.post(API, json={"path": rel, "content": BROKEN})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["field"] == "content"
    assert detail["diagnostics"], detail
    first = detail["diagnostics"][0]
    assert first["text"] == f"{first['path']}:{first['line']}:{first['column']}: {first['message']}"
    assert first["text"].startswith(f"{rel}:6:5: ")
    assert "scrpt" in first["message"]
    assert not (folder / rel).exists()
    assert admin.get(f"{API}/{rel}/revisions").status_code == 404

    not_yaml = admin.post(API, json={"path": "api_test/list.yaml", "content": "- just\n- a list\n"})
    assert not_yaml.status_code == 422
    assert not (folder / "api_test" / "list.yaml").exists()


def test_update_with_stale_version_conflicts_and_leaves_file(admin, editor, folder):
    rel = "api_test/update_me.yaml"
    v1 = variant("api_test_update_me")
    assert admin.post(API, json={"path": rel, "content": v1}).status_code == 201

    # the editor (a designer, not a code author) changes the title, not the script
    v2 = v1.replace("title: API test greeting", "title: Second title")
    stale = editor.put(f"{API}/{rel}", json={"content": v2, "version": sha("something else")})
    assert stale.status_code == 409
    assert stale.json()["detail"]["field"] == "version"
    assert stale.json()["detail"]["current_version"] == sha(v1)
    assert (folder / rel).read_text() == v1

    invalid = editor.put(f"{API}/{rel}", json={"content": BROKEN, "version": sha(v1)})
    assert invalid.status_code == 422
    assert (folder / rel).read_text() == v1

    ok = editor.put(f"{API}/{rel}", json={"content": v2, "version": sha(v1)})
    assert ok.status_code == 200, ok.text
    assert ok.json()["revision"] == 2 and ok.json()["version"] == sha(v2)
    assert (folder / rel).read_text() == v2
    assert admin.get(f"{API}/{rel}").json()["version"] == sha(v2)

    revisions = admin.get(f"{API}/{rel}/revisions").json()["revisions"]
    assert [(r["number"], r["action"], r["author"]) for r in revisions] == [
        (2, "update", "editor"),
        (1, "create", "admin"),
    ]
    assert admin.get(f"{API}/{rel}/revisions/1").json()["content"] == v1
    assert admin.get(f"{API}/{rel}/revisions/2").json()["content"] == v2

    # The old version is stale now.
    again = editor.put(f"{API}/{rel}", json={"content": v1, "version": sha(v1)})
    assert again.status_code == 409 and again.json()["detail"]["current_version"] == sha(v2)

    missing = admin.put(f"{API}/api_test/nope.yaml", json={"content": v1, "version": sha(v1)})
    assert missing.status_code == 404


def test_concurrent_updates_only_one_wins(admin, folder):
    rel = "api_test/race.yaml"
    base = variant("api_test_race")
    assert admin.post(API, json={"path": rel, "content": base}).status_code == 201
    contents = [variant("api_test_race", f"writer{i}") for i in range(4)]
    statuses: dict[int, int] = {}
    barrier = threading.Barrier(len(contents))

    def put(i: int) -> None:
        barrier.wait()
        response = admin.put(f"{API}/{rel}", json={"content": contents[i], "version": sha(base)})
        statuses[i] = response.status_code

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses.values()) == [200, 409, 409, 409], statuses
    winner = next(i for i, code in statuses.items() if code == 200)
    assert (folder / rel).read_text() == contents[winner]
    revisions = admin.get(f"{API}/{rel}/revisions").json()["revisions"]
    assert [r["number"] for r in revisions] == [2, 1]
    assert revisions[0]["version"] == sha(contents[winner])


def test_delete(admin, folder):
    rel = "api_test/delete_me.yaml"
    content = variant("api_test_delete_me")
    assert admin.post(API, json={"path": rel, "content": content}).status_code == 201
    assert stub(rel).exists()

    stale = admin.delete(f"{API}/{rel}", params={"version": sha("old")})
    assert stale.status_code == 409 and stale.json()["detail"]["current_version"] == sha(content)
    assert (folder / rel).exists()
    assert admin.delete(f"{API}/{rel}").status_code == 422  # version is required

    ok = admin.delete(f"{API}/{rel}", params={"version": sha(content)})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["action"], ok.json()["revision"]) == ("delete", 2)
    assert not (folder / rel).exists()
    assert not stub(rel).exists()
    assert admin.get(f"{API}/{rel}").status_code == 404
    assert admin.delete(f"{API}/{rel}", params={"version": sha(content)}).status_code == 404

    revisions = admin.get(f"{API}/{rel}/revisions").json()["revisions"]
    assert [(r["number"], r["action"]) for r in revisions] == [(2, "delete"), (1, "create")]
    assert admin.get(f"{API}/{rel}/revisions/2").json()["content"] == content

    # Re-creating the path continues its history.
    again = admin.post(API, json={"path": rel, "content": content})
    assert again.status_code == 201 and again.json()["revision"] == 3


# ---------------------------------------------------------------------------------------------
# Validation, paths, duplicate ids
# ---------------------------------------------------------------------------------------------


def test_validate_without_saving(viewer, folder):
    rel = "api_test/draft.yaml"
    bad = viewer.post(f"{API}/validate", json={"path": rel, "content": BROKEN})
    assert bad.status_code == 200
    body = bad.json()
    assert body["valid"] is False and body["error_count"] == len(body["diagnostics"]) >= 1
    assert body["diagnostics"][0]["text"].startswith(f"{rel}:6:5: ")

    good = viewer.post(f"{API}/validate", json={"path": rel, "content": variant("api_test_draft")}).json()
    assert good == {
        "path": rel,
        "kind": "Workflow",
        "id": "api_test_draft",
        "valid": True,
        "error_count": 0,
        "diagnostics": [],
    }
    assert not (folder / rel).exists()

    shape = viewer.post(f"{API}/validate", json={"path": rel})
    assert shape.status_code == 422
    assert shape.json()["detail"][0]["loc"] == ["body", "content"]


@pytest.mark.parametrize(
    "path",
    [
        "../escape.yaml",
        "api_test/../../escape.yaml",
        "/etc/escape.yaml",
        "api_test/notes.txt",
        ".hidden.yaml",
        "schema/workflow.yaml",
        "api_test//double.yaml",
        "C:/windows.yaml",
    ],
)
def test_bad_paths_are_rejected(admin, folder, path):
    response = admin.post(API, json={"path": path, "content": GREETING})
    assert response.status_code == 400, response.text
    assert response.json()["detail"]["field"] == "path"
    assert not (folder.parent / "escape.yaml").exists()
    assert not (folder / "api_test" / "notes.txt").exists()
    validate = admin.post(f"{API}/validate", json={"path": path, "content": GREETING})
    assert validate.status_code == 400


def test_path_traversal_in_url_is_rejected(admin, folder):
    (folder.parent / "outside.yaml").write_text(GREETING)
    try:
        for url in (f"{API}/%2E%2E/outside.yaml", f"{API}/%2Fetc%2Fpasswd.yaml", f"{API}/..%2Foutside.yaml"):
            response = admin.get(url)
            assert response.status_code in (400, 404), (url, response.text)
            assert "content" not in response.json()
        response = admin.get(f"{API}/%2E%2E/outside.yaml")
        assert response.status_code == 400 and response.json()["detail"]["field"] == "path"
    finally:
        (folder.parent / "outside.yaml").unlink()


def test_symlink_out_of_the_folder_is_rejected(admin, folder):
    outside = Path(tempfile.mkdtemp(prefix="autopilot-outside-"))
    link = folder / "api_test" / "link"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    try:
        response = admin.post(API, json={"path": "api_test/link/x.yaml", "content": GREETING})
        assert response.status_code == 400
        assert "leaves the definitions folder" in response.json()["detail"]["message"]
        assert not (outside / "x.yaml").exists()
    finally:
        link.unlink()
        shutil.rmtree(outside)


def test_duplicate_id_is_rejected(admin, folder):
    rel = "api_test/second_hello.yaml"
    content = variant("hello_world")
    response = admin.post(API, json={"path": rel, "content": content})
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "hello_world" in detail["message"] and "hello_world.yaml" in detail["message"]
    assert detail["diagnostics"][0]["text"].startswith(f"{rel}:3:5: ")
    assert not (folder / rel).exists()

    validation = admin.post(f"{API}/validate", json={"path": rel, "content": content}).json()
    assert validation["valid"] is False
    assert "already defined in hello_world.yaml" in validation["diagnostics"][0]["message"]
    # The file itself may keep its own id.
    same = admin.post(f"{API}/validate", json={"path": "hello_world.yaml", "content": content}).json()
    assert same["valid"] is True


def test_body_shape_errors_name_the_field(admin):
    response = admin.post(API, json={"path": "api_test/x.yaml"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "content"]
    response = admin.put(f"{API}/hello_world.yaml", json={"content": GREETING})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "version"]


# ---------------------------------------------------------------------------------------------
# Storage, in process (same database as the server)
# ---------------------------------------------------------------------------------------------


def test_migrate_is_idempotent(api_server):
    from autopilot_provider.server.tables import migrate

    assert migrate() == []


def test_failed_revision_insert_leaves_no_file(api_server, folder):
    """The revision row is inserted before the file is written: if it fails, nothing changes on disk."""
    from sqlalchemy import delete, insert

    from autopilot_provider.server.definition_store import DefinitionStore
    from autopilot_provider.server.tables import _now, head_table, revision_table

    store = DefinitionStore(folder)
    rel = "api_test/orphan.yaml"
    # A revision row with no head row: the next save computes number 1 and collides with it.
    with store.engine.begin() as connection:
        connection.execute(
            insert(revision_table).values(path=rel, number=1, action="create", version="x", created_at=_now())
        )
    try:
        with pytest.raises(Exception, match="(?i)unique|integrity|duplicate"):
            store.create(rel, variant("api_test_orphan"), author="test")
        assert not (folder / rel).exists()
    finally:
        with store.engine.begin() as connection:
            connection.execute(delete(revision_table).where(revision_table.c.path == rel))
            connection.execute(delete(head_table).where(head_table.c.path == rel))


# ---------------------------------------------------------------------------------------------
# Four-eyes review of approval rules ([autopilot] review_required_for, default: approvals)
# ---------------------------------------------------------------------------------------------

GUARDED = """\
apiVersion: autopilot/v1
kind: Workflow
id: api_test_guarded
steps:
  - id: approve
    approval:
      from: [group:storage]
      subject: Wipe the disk?
"""


def _propose(client, rel: str, content: str, version: str | None = None) -> dict:
    if version is None:
        response = client.post(API, json={"path": rel, "content": content})
    else:
        response = client.put(f"{API}/{rel}", json={"content": content, "version": version})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "pending_review" and body["review_reasons"] == ["approvals"], body
    return body


def test_a_change_to_approval_rules_waits_for_a_second_persons_review(admin, editor, viewer, folder):
    rel = "api_test/guarded.yaml"
    proposed = _propose(editor, rel, GUARDED)
    # stored as a revision, not written: the workflow does not exist yet
    assert not (folder / rel).exists() and not stub(rel).exists()
    [revision] = admin.get(f"{API}/{rel}/revisions").json()["revisions"]
    assert (revision["number"], revision["state"], revision["author"]) == (
        proposed["revision"],
        "pending_review",
        "editor",
    )
    pending = [r for r in viewer.get("/autopilot/api/v1/reviews").json()["reviews"] if r["path"] == rel]
    assert [(r["number"], r["review_reasons"]) for r in pending] == [(proposed["revision"], ["approvals"])]

    review = f"{API}/{rel}/revisions/{proposed['revision']}/review"
    own = editor.post(review, json={"decision": "approve"})
    assert own.status_code == 403 and own.json()["detail"]["field"] == "user", own.text
    assert viewer.post(review, json={"decision": "approve"}).status_code == 403
    assert not (folder / rel).exists()

    approved = admin.post(review, json={"decision": "approve", "comment": "storage decides, as before"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "applied" and approved.json()["refreshed_bundles"] == ["autopilot"]
    assert (folder / rel).read_text() == GUARDED and stub(rel).exists()
    [revision] = admin.get(f"{API}/{rel}/revisions").json()["revisions"]
    assert (revision["state"], revision["reviewer"], revision["review_comment"]) == (
        "applied",
        "admin",
        "storage decides, as before",
    )
    assert admin.post(review, json={"decision": "approve"}).status_code == 409  # reviewed once
    assert not [r for r in admin.get("/autopilot/api/v1/reviews").json()["reviews"] if r["path"] == rel]

    # a change that leaves the approval rules alone applies at once
    reworded = GUARDED.replace("Wipe the disk?", "Wipe the disk now?")
    plain = editor.put(f"{API}/{rel}", json={"content": reworded, "version": sha(GUARDED)})
    assert plain.status_code == 200 and plain.json()["state"] == "applied", plain.text
    assert (folder / rel).read_text() == reworded

    # rejected: nothing is written
    wider = reworded.replace("from: [group:storage]", "from: [group:storage]\n      quorum: any")
    proposed = _propose(editor, rel, wider, sha(reworded))
    rejected = admin.post(
        f"{API}/{rel}/revisions/{proposed['revision']}/review", json={"decision": "reject", "comment": "no"}
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected", rejected.text
    assert (folder / rel).read_text() == reworded
    assert admin.get(f"{API}/{rel}/revisions/{proposed['revision']}").json()["state"] == "rejected"


def test_an_approved_review_of_a_stale_base_conflicts(admin, editor, folder):
    rel = "api_test/guarded_stale.yaml"
    content = GUARDED.replace("api_test_guarded", "api_test_guarded_stale")
    first = _propose(editor, rel, content)
    assert (
        admin.post(f"{API}/{rel}/revisions/{first['revision']}/review", json={"decision": "approve"}).status_code == 200
    )
    # a change of the approvers waits; meanwhile the file changes in another way
    escalated = content.replace("from: [group:storage]", "from: [group:storage, group:operations]")
    proposed = _propose(editor, rel, escalated, sha(content))
    reworded = content.replace("Wipe the disk?", "Wipe it?")
    assert editor.put(f"{API}/{rel}", json={"content": reworded, "version": sha(content)}).status_code == 200
    stale = admin.post(f"{API}/{rel}/revisions/{proposed['revision']}/review", json={"decision": "approve"})
    assert stale.status_code == 409, stale.text
    assert stale.json()["detail"]["field"] == "version" and stale.json()["detail"]["current_version"] == sha(reworded)
    assert (folder / rel).read_text() == reworded
    # still waiting: it can be rejected (and proposed again on the current version)
    assert admin.get(f"{API}/{rel}/revisions/{proposed['revision']}").json()["state"] == "pending_review"
    assert (
        admin.post(f"{API}/{rel}/revisions/{proposed['revision']}/review", json={"decision": "reject"}).status_code
        == 200
    )


def test_exclude_requester_false_is_refused_unless_the_deployment_allows_self_approval(editor, folder):
    rel = "api_test/self_approval.yaml"
    content = GUARDED.replace("api_test_guarded", "api_test_self_approval").replace(
        "from: [group:storage]", "from: [group:storage]\n      exclude_requester: false"
    )
    refused = editor.post(API, json={"path": rel, "content": content})
    assert refused.status_code == 422, refused.text
    [diagnostic] = refused.json()["detail"]["diagnostics"]
    assert diagnostic["text"].startswith(f"{rel}:8:26: step 'approve': exclude_requester: false has no effect")
    assert "[autopilot] allow_self_approval" in diagnostic["message"]
    assert not (folder / rel).exists()


def test_which_changes_need_review_follows_the_setting(folder, monkeypatch):
    from autopilot_provider.server.definition_store import DefinitionStore

    store = DefinitionStore(folder)
    scripted = variant("api_test_reasons")
    rescripted = variant("api_test_reasons", "changed")
    approval = GUARDED.replace("api_test_guarded", "api_test_reasons")
    assert store.review_reasons("x.yaml", None, approval) == ["approvals"]
    assert store.review_reasons("x.yaml", approval, approval.replace("Wipe", "Erase")) == []
    assert store.review_reasons(
        "x.yaml", approval, approval.replace("\n      subject", "\n      timeout: 1h\n      subject")
    ) == ["approvals"]
    assert store.review_reasons("x.yaml", approval, scripted) == ["approvals"]  # removed
    assert store.review_reasons("x.yaml", scripted, rescripted) == []
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__REVIEW_REQUIRED_FOR", "approvals, scripts")
    assert store.review_reasons("x.yaml", scripted, rescripted) == ["scripts"]
    assert store.review_reasons("x.yaml", None, scripted) == ["scripts"]
    # moving a step out from under an approval, or letting it run whatever was decided, is reviewed too
    gated = approval + "  - id: wipe\n    script: {bash: echo wiped}\n"
    assert store.review_reasons("x.yaml", gated, gated.replace("id: wipe\n", "id: wipe\n    after: []\n")) == [
        "approvals"
    ]
    loosened = gated.replace("id: wipe\n", "id: wipe\n    trigger_rule: all_done\n")
    assert store.review_reasons("x.yaml", gated, loosened) == ["approvals"]
    more = gated + "  - id: tell\n    notify: {to: [requester], subject: done}\n"
    assert store.review_reasons("x.yaml", gated, more) == []  # one more guarded step
    # the contacts say who approves: making oneself a member of an approving group is reviewed
    contacts = (folder / "contacts.yaml").read_text()
    assert "members: [dave]" in contacts
    joined = contacts.replace("members: [dave]", "members: [dave, alice]")
    assert store.review_reasons("contacts.yaml", contacts, joined) == ["approvals"]
    assert store.review_reasons("contacts.yaml", contacts, contacts.replace("Dave", "David")) == []
    monkeypatch.setenv("AIRFLOW__AUTOPILOT__REVIEW_REQUIRED_FOR", "")
    assert store.review_reasons("x.yaml", None, approval) == []


# The four-eyes bypasses a security review found: each now waits for review.

SOD = """\
apiVersion: autopilot/v1
kind: Workflow
id: api_test_sod
steps:
  - id: approve
    approval:
      from: [group:storage]
      subject: Wipe the disk?
{else_}
  - id: wipe
    after: {after}
    script: {{bash: echo wiped}}
  - id: refused
    after: approve
    notify: {{to: [requester], subject: refused}}
"""
SOD_OLD = SOD.format(after="approve", else_="      else: refused")
SOD_WITHOUT_APPROVAL = """\
apiVersion: autopilot/v1
kind: Workflow
id: api_test_sod
steps:
  - id: wipe
    script: {bash: echo wiped}
"""


@pytest.mark.parametrize(
    "changed",
    [
        # 1: rename the guarded step and drop its `after:`
        SOD_OLD.replace("id: wipe\n    after: approve", "id: wipe_now\n    after: []"),
        # 2: run the guarded action when the request is rejected
        SOD.format(after="approve", else_="      else: [refused, wipe]"),
        # 3: an unguarded copy of the guarded action, and an unguarded step changed to do it
        SOD_OLD + "  - id: wipe_too\n    after: []\n    script: {bash: echo wiped}\n",
        SOD_OLD.replace("notify: {to: [requester], subject: refused}", "script: {bash: echo wiped}"),
        # (the guarded step moved out, as before)
        SOD.format(after="[]", else_="      else: refused"),
    ],
    ids=["renamed-out", "else", "copied-out", "outside-step-changed", "moved-out"],
)
def test_a_guarded_step_cannot_escape_its_approval_unreviewed(folder, changed):
    from autopilot_provider.server.definition_store import DefinitionStore

    store = DefinitionStore(folder)
    assert store.validate("x.yaml", changed).valid, store.validate("x.yaml", changed).diagnostics
    assert store.review_reasons("x.yaml", SOD_OLD, changed) == ["approvals"]


def test_changes_behind_an_approval_need_no_review(folder):
    from autopilot_provider.server.definition_store import DefinitionStore

    store = DefinitionStore(folder)
    more = SOD_OLD + "  - id: tell\n    after: wipe\n    notify: {to: [requester], subject: wiped}\n"
    assert store.review_reasons("x.yaml", SOD_OLD, more) == []
    renamed_inside = SOD_OLD.replace("id: wipe\n", "id: wipe_disk\n")
    assert store.review_reasons("x.yaml", SOD_OLD, renamed_inside) == []
    assert store.review_reasons("x.yaml", SOD_OLD, SOD_OLD.replace("echo wiped", "echo gone")) == []
    # the same step waiting for the approval and for another step still waits for the approval
    joined = SOD_OLD.replace(
        "  - id: wipe\n", "  - id: prepare\n    after: []\n    script: {bash: echo ready}\n  - id: wipe\n"
    )
    both = joined.replace(
        "after: approve\n    script: {bash: echo wiped}", "after: [approve, prepare]\n    script: {bash: echo wiped}"
    )
    assert store.review_reasons("x.yaml", joined, both) == []
    assert store.review_reasons("x.yaml", both, both.replace("after: [approve, prepare]", "after: [prepare]")) == [
        "approvals"
    ]


def test_a_script_change_is_any_change_of_its_code_parts(folder, monkeypatch):
    from autopilot_provider.server.definition_store import DefinitionStore

    monkeypatch.setenv("AIRFLOW__AUTOPILOT__REVIEW_REQUIRED_FOR", "scripts")
    store = DefinitionStore(folder)
    base = variant("api_test_code").replace("    script:\n", "    script:\n      env: {TARGET: disk1}\n")
    for changed in (
        base.replace("      env:", "      connections: {BACKUP: backup_api}\n      env:"),
        base.replace("      env:", "      cwd: /tmp\n      env:"),
        base.replace("TARGET: disk1", "TARGET: disk1, MODE: full"),
        base.replace("TARGET: disk1", "DEVICE: disk1"),
    ):
        assert store.review_reasons("x.yaml", base, changed) == ["scripts"], changed
    # an env value is data handed to the script, not code
    assert store.review_reasons("x.yaml", base, base.replace("disk1", "disk2")) == []


def test_a_workflow_deleted_with_its_approval_comes_back_without_it_only_after_review(admin, editor, folder):
    rel = "api_test/sod.yaml"
    # (the editor is no code author: the guarded step notifies)
    wipe = "notify: {to: [requester], subject: wiped}"
    guarded = SOD_OLD.replace("script: {bash: echo wiped}", wipe)
    unguarded = SOD_WITHOUT_APPROVAL.replace("script: {bash: echo wiped}", wipe)
    proposed = _propose(editor, rel, guarded)
    review = f"{API}/{rel}/revisions/{proposed['revision']}/review"
    assert admin.post(review, json={"decision": "approve"}).status_code == 200
    deleted = editor.delete(f"{API}/{rel}", params={"version": sha(guarded)})
    assert deleted.status_code == 200, deleted.text
    assert not (folder / rel).exists()
    # again at the same path, or under another name with the same workflow id: compared with what was deleted
    _propose(editor, rel, unguarded)
    _propose(editor, "api_test/sod_again.yaml", unguarded)
    assert not (folder / rel).exists() and not (folder / "api_test" / "sod_again.yaml").exists()
    # the same workflow again (its approval unchanged) is a create like any other: an approval added
    _propose(editor, rel, guarded)
    # a workflow that never had an approval is created at once
    fresh = unguarded.replace("api_test_sod", "api_test_sod_fresh")
    created = editor.post(API, json={"path": "api_test/sod_fresh.yaml", "content": fresh})
    assert created.status_code == 201 and created.json()["state"] == "applied", created.text


def test_rejecting_a_review_of_a_new_workflow_needs_no_dag_edit(admin, editor, viewer, folder):
    """Past the designer check (the route's dependency), rejecting a change asks for DAG edit access on
    the workflows it touches — none for a workflow id that no DAG has yet (nothing of anyone's to
    change, and nothing FAB could grant per DAG before it is parsed: docs/security.md)."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from autopilot_plugin.api.datamodels.definitions import ReviewIn
    from autopilot_plugin.api.routes.definitions import review_revision

    from autopilot_provider.server.definition_store import DefinitionStore

    rel = "api_test/sod_reject.yaml"
    proposed = _propose(editor, rel, GUARDED.replace("api_test_guarded", "api_test_sod_reject"))
    review = f"{API}/{rel}/revisions/{proposed['revision']}/review"
    assert viewer.post(review, json={"decision": "reject"}).status_code == 403  # no designer
    create_auth_manager()  # the server's auth manager, in this process
    no_dag_edit = SimpleAuthManagerUser(username="elsewhere", role="viewer")
    review_revision(rel, proposed["revision"], ReviewIn(decision="reject"), DefinitionStore(folder), no_dag_edit)
    assert admin.get(f"{API}/{rel}/revisions/{proposed['revision']}").json()["state"] == "rejected"


def test_the_review_migration_keeps_old_revisions(tmp_path):
    """0004 adds the review columns to a revision table created before them; its rows read as applied."""
    from sqlalchemy import create_engine, text

    from autopilot_provider.server.definition_store import DefinitionStore
    from autopilot_provider.server.tables import _add_review_columns, head_table

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE autopilot_definition_revision (path VARCHAR(512) NOT NULL, number INTEGER NOT NULL, "
                "action VARCHAR(16) NOT NULL, version VARCHAR(64), author VARCHAR(250), created_at DATETIME NOT NULL, "
                "content TEXT, PRIMARY KEY (path, number))"
            )
        )
        connection.execute(
            text(
                "INSERT INTO autopilot_definition_revision VALUES "
                "('old.yaml', 1, 'create', 'v1', 'admin', '2026-01-01 00:00:00.000000', 'kind: Workflow')"
            )
        )
        head_table.create(connection)
        _add_review_columns(connection)
        _add_review_columns(connection)  # idempotent
    (tmp_path / "old.yaml").write_text("kind: Workflow")
    [old] = DefinitionStore(tmp_path, engine=engine).revisions("old.yaml")
    assert (old.number, old.author, old.state, old.reviewer) == (1, "admin", "applied", None)
