"""The UI's server side: the built app served under ``/autopilot/ui``, the endpoints only the UI needs
(session, schema), login through Airflow's ``_token`` cookie, the CSRF check on cookie-authenticated
changes, and the navigation entries Airflow's UI gets from the plugin.

The e2e browser tests are in tests/test_ui_e2e.py.
"""

from __future__ import annotations

import os
import re

import httpx
import pytest
from autopilot_plugin import ui
from autopilot_plugin.csrf import needs_proof

API = "/autopilot/api/v1"
VALIDATE_BODY = {
    "path": "ui_test.yaml",
    "content": "apiVersion: autopilot/v1\nkind: Workflow\nid: ui_test\nsteps: []\n",
}

# under `make test` (AUTOPILOT_REQUIRE_E2E=1) a missing build fails these tests instead of skipping them
needs_build = pytest.mark.skipif(
    not (ui.DIST / "index.html").is_file() and not os.environ.get("AUTOPILOT_REQUIRE_E2E"),
    reason="the UI is not built (make ui)",
)


# --------------------------------------------------------------------------------------------
# CSRF rule (no server)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "blocked"),
    [
        ("POST", {b"cookie": b"_token=abc"}, True),
        ("PUT", {b"cookie": b"other=1; _token=abc"}, True),
        ("DELETE", {b"cookie": b"_token=abc"}, True),
        ("POST", {b"cookie": b"_token=abc", b"x-autopilot-request": b"1"}, False),
        ("POST", {b"cookie": b"_token=abc", b"authorization": b"Bearer t"}, False),
        ("GET", {b"cookie": b"_token=abc"}, False),
        ("POST", {}, False),
        ("POST", {b"cookie": b"session=1"}, False),
    ],
)
def test_only_cookie_authenticated_changes_without_the_header_are_refused(method, headers, blocked):
    assert needs_proof(method, headers) is blocked


# --------------------------------------------------------------------------------------------
# Against a real API server
# --------------------------------------------------------------------------------------------


def cookie_client(api_server, user: str) -> httpx.Client:
    """A client that authenticates like a browser logged in to Airflow: the ``_token`` cookie only."""
    client = httpx.Client(base_url=api_server.base_url, timeout=60)
    client.cookies.set("_token", api_server.token(user))
    return client


@pytest.mark.server
@needs_build
def test_the_app_is_served_with_a_base_href_and_client_routes_fall_back_to_it(anonymous):
    index = anonymous.get("/autopilot/ui/")
    assert index.status_code == 200, index.text
    assert '<base href="/autopilot/ui/">' in index.text
    assert '<meta name="autopilot-api" content="/autopilot/api/v1">' in index.text
    assert '<meta name="airflow-root" content="/">' in index.text
    deep = anonymous.get("/autopilot/ui/designer/team/hello_world.yaml")
    assert deep.status_code == 200 and deep.text == index.text

    script = re.search(r'src="\./(assets/[^"]+\.js)"', index.text).group(1)
    asset = anonymous.get(f"/autopilot/ui/{script}")
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert "immutable" in asset.headers["cache-control"]
    assert anonymous.get("/autopilot/ui/assets/gone-1234.js").status_code == 404
    assert anonymous.get("/autopilot/ui/icon.svg").headers["content-type"].startswith("image/svg+xml")

    bare = anonymous.get("/autopilot/ui", follow_redirects=False)
    assert bare.status_code in (302, 307) and bare.headers["location"] == "/autopilot/ui/"


@pytest.mark.server
@needs_build
def test_files_outside_the_build_are_not_served(anonymous):
    response = anonymous.get("/autopilot/ui/..%2F..%2Fplugin.py")
    assert "AutopilotPlugin" not in response.text


@pytest.mark.server
def test_the_session_names_the_user_and_what_they_may_do(api_server, admin, viewer, anonymous):
    assert anonymous.get(f"{API}/session").status_code == 401
    me = admin.get(f"{API}/session").json()
    assert me["user"] == "admin" and me["can_edit_definitions"] and me["can_trigger"] and me["can_replay_alerts"]
    seen = viewer.get(f"{API}/session").json()
    assert seen["user"] == "viewer" and not seen["can_edit_definitions"] and not seen["can_trigger"]
    assert not seen["can_replay_alerts"] and not seen["can_read_alert_deliveries"]
    with cookie_client(api_server, "editor") as browser:
        theirs = browser.get(f"{API}/session").json()
        # a designer reads the alert delivery log but only alert admins replay ([autopilot] alert_admin_roles)
        assert theirs["user"] == "editor" and theirs["can_edit_definitions"] and theirs["can_read_alert_deliveries"]
        assert not theirs["can_replay_alerts"]


@pytest.mark.server
def test_the_schema_has_a_property_schema_for_every_step_kind(viewer, anonymous):
    assert anonymous.get(f"{API}/schema").status_code == 401
    body = viewer.get(f"{API}/schema").json()
    kinds = [k["kind"] for k in body["step_kinds"]]
    assert set(kinds) == set(body["steps"]) and {"task", "script", "decision", "approval"} <= set(kinds)
    assert {k["kind"]: k["supported"] for k in body["step_kinds"]}["script"] is True
    assert "bash" in body["steps"]["script"]["properties"]
    assert body["definition"]["title"].startswith("Autopilot definition")


@pytest.mark.server
def test_a_cookie_alone_cannot_change_anything_but_the_ui_header_or_a_token_can(api_server, editor, definitions_dir):
    with cookie_client(api_server, "editor") as browser:
        refused = browser.post(f"{API}/definitions/validate", json=VALIDATE_BODY)
        assert refused.status_code == 403
        assert "X-Autopilot-Request" in refused.json()["detail"]["message"]
        allowed = browser.post(f"{API}/definitions/validate", json=VALIDATE_BODY, headers={"X-Autopilot-Request": "1"})
        assert allowed.status_code == 200, allowed.text
        assert browser.get(f"{API}/definitions/hello_world.yaml").status_code == 200

        before = (definitions_dir / "hello_world.yaml").read_text()
        version = browser.get(f"{API}/definitions/hello_world.yaml").json()["version"]
        changed = before.replace("Hello, world", "Hacked")
        forged = browser.put(f"{API}/definitions/hello_world.yaml", json={"content": changed, "version": version})
        assert forged.status_code == 403
        assert (definitions_dir / "hello_world.yaml").read_text() == before

    # bearer clients are unchanged
    assert editor.post(f"{API}/definitions/validate", json=VALIDATE_BODY).status_code == 200


@pytest.mark.server
def test_airflow_lists_the_ui_in_its_navigation(admin):
    plugins = admin.get("/api/v2/plugins").json()["plugins"]
    autopilot = next(p for p in plugins if p["name"] == "autopilot")
    views = {v["url_route"]: v for v in autopilot["external_views"]}
    assert set(views) == {"autopilot-requests", "autopilot-approvals", "autopilot-designer", "autopilot-alerts"}
    assert views["autopilot-designer"]["href"] == "autopilot/ui/designer"
    assert views["autopilot-alerts"]["href"] == "autopilot/ui/alerts"
    assert all(v["destination"] == "nav" and v["category"] == "Autopilot" for v in views.values())


# --------------------------------------------------------------------------------------------
# Serving without a server: sub-paths and a missing build
# --------------------------------------------------------------------------------------------


def _ui_client(root_path: str = ""):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.include_router(ui.router)
    return TestClient(app, root_path=root_path)


def test_behind_an_airflow_base_url_path_the_links_follow_it(tmp_path, monkeypatch):
    (tmp_path / "index.html").write_text("<html><head><title>x</title></head><body></body></html>")
    monkeypatch.setattr(ui, "DIST", tmp_path)
    page = _ui_client("/airflow/autopilot").get("/ui/requests/mine").text
    assert '<base href="/airflow/autopilot/ui/">' in page
    assert '<meta name="autopilot-api" content="/airflow/autopilot/api/v1">' in page
    assert '<meta name="airflow-root" content="/airflow/">' in page


def test_without_a_build_the_page_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ui, "DIST", tmp_path / "missing")
    response = _ui_client().get("/ui/")
    assert response.status_code == 503 and "make ui" in response.text


@pytest.mark.server
@pytest.mark.parametrize(
    "path",
    [
        "/session",
        "/schema",
        "/definitions?kind=Workflow",
        "/definitions/hello_world.yaml",
        "/definitions/hello_world.yaml/revisions",
        "/apis",
        "/apis/backup_product/operations?q=install",
        "/apis/backup_product/operations/installAgent",
        "/workflows",
        "/workflows/hello_world/form",
        "/requests?mine=true",
        "/approvals?state=pending&mine=true",
        "/approvals?state=all&mine=false&dag_id=hello_world",
        "/approvals/history",
    ],
)
def test_every_endpoint_the_ui_reads_answers_the_login_cookie(api_server, path):
    with cookie_client(api_server, "editor") as browser:
        response = browser.get(API + path)
        assert response.status_code == 200, response.text
