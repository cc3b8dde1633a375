"""The Autopilot UI (designer, form portal, approvals inbox): a single-page app served at ``/autopilot/ui``.

The app is built from ``ui/`` by ``make ui`` (npm + Vite) into ``ui_dist/`` next to this module, which
ships inside the Python package. Files are served as they are (hashed assets cached for a year); any
other path under ``/ui/`` is a client-side route and gets ``index.html``, with a ``<base href>`` made
from the request's root path so the app works behind Airflow's ``[api] base_url`` sub-path, in
Airflow's iframe and at its own URL alike. Static files need no login; every API call the app makes
does (Airflow's ``_token`` cookie or a bearer token).
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

DIST = Path(__file__).resolve().parent / "ui_dist"
UI_PREFIX = "/ui"

mimetypes.add_type("application/javascript", ".js")
mimetypes.add_type("application/javascript", ".mjs")
mimetypes.add_type("image/svg+xml", ".svg")

router = APIRouter(include_in_schema=False)

NOT_BUILT = """<!doctype html><title>Autopilot UI not built</title>
<p>The Autopilot UI has not been built. Run <code>make ui</code> (npm ci &amp;&amp; npm run build in
<code>ui/</code>) and reload.</p>"""


def _mount_path(request: Request) -> str:
    """The URL path of this app, e.g. ``/autopilot`` or ``/airflow/autopilot`` behind a base_url path."""
    return request.scope.get("root_path", "").rstrip("/")


def _index(request: Request) -> HTMLResponse:
    index = DIST / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503)
    mount = _mount_path(request)
    airflow_root = mount.removesuffix("/autopilot") + "/"
    head = (
        f'<base href="{html.escape(mount)}{UI_PREFIX}/">'
        f'<meta name="autopilot-api" content="{html.escape(mount)}/api/v1">'
        f'<meta name="airflow-root" content="{html.escape(airflow_root)}">'
    )
    text = index.read_text(encoding="utf-8").replace("<head>", "<head>" + head, 1)
    return HTMLResponse(text, headers={"Cache-Control": "no-cache"})


@router.get(UI_PREFIX)
def ui_root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_mount_path(request)}{UI_PREFIX}/")


@router.get(UI_PREFIX + "/{path:path}")
def ui_file(path: str, request: Request):
    if path:
        target = (DIST / path).resolve()
        if target.is_relative_to(DIST) and target.is_file():
            cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
            return FileResponse(target, headers={"Cache-Control": cache})
        if path.startswith("assets/"):
            # a missing hashed asset is a stale page, not a client route
            raise HTTPException(status_code=404, detail="no such asset")
    return _index(request)
