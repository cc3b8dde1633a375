"""``/approvals/confirm?token=…``: the page an approval mail link opens (not part of the API, not in
its OpenAPI document). It needs the Airflow login (not logged in, it sends you to Airflow's login page
and back) and records nothing by itself: it shows the request, asks you to confirm, then calls
``POST /api/v1/approvals/links/redeem``.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Literal
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Autopilot — confirm your decision</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f7f8fa;color:#1a202c;margin:0}}
main{{max-width:640px;margin:48px auto;background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:28px}}
h1{{font-size:20px;margin:0 0 12px}} dl{{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px}}
dt{{color:#4a5568}} textarea{{width:100%;min-height:80px;font:inherit}}
button{{font:inherit;padding:8px 16px;border-radius:6px;border:1px solid #2b6cb0;background:#3182ce;color:#fff;cursor:pointer}}
button.reject{{background:#c53030;border-color:#9b2c2c}} #result{{margin-top:16px;font-weight:600}}
</style></head><body><main>
<h1>Confirm your decision</h1>
<div id="details">Loading…</div>
<form id="vote" hidden>
<p><label>Decision:
<select id="decision"><option value="approve">Approve</option><option value="reject">Reject</option></select></label></p>
<p><label>Comment<br><textarea id="comment" maxlength="10000"></textarea></label></p>
<p><button type="submit" id="submit">Confirm</button></p>
</form>
<div id="result" role="status"></div>
</main>
<script>
const token = {token};
const preset = {decision};
const api = "../api/v1/approvals/links";
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}})[c]);
async function load() {{
  const r = await fetch(api + "/" + encodeURIComponent(token), {{credentials: "same-origin"}});
  const body = await r.json().catch(() => ({{}}));
  if (!r.ok) {{ document.getElementById("details").textContent = (body.detail && (body.detail.message || body.detail)) || r.statusText; return; }}
  const a = body;
  const rows = [["Request", a.subject], ["Workflow", a.workflow_title || a.dag_id], ["Requested by", a.requester_name || a.requester],
    ["Approvers", a.slots.map(s => s.label + " (" + s.state + ")").join(", ")], ["State", a.state]]
    .concat(Object.entries(a.request || {{}}).map(([k, v]) => [k, v]));
  document.getElementById("details").innerHTML = "<dl>" + rows.map(([k, v]) => "<dt>" + esc(k) + "</dt><dd>" + esc(v) + "</dd>").join("") + "</dl>"
    + (a.body ? "<p>" + esc(a.body) + "</p>" : "");
  if (!a.can_vote) {{ document.getElementById("result").textContent = "You cannot answer this request: " + a.why_not + "."; return; }}
  if (a.kind !== "approval") {{ document.getElementById("result").innerHTML = 'Answer this form in the <a href="../ui/approvals">Autopilot inbox</a>.'; return; }}
  document.getElementById("decision").value = preset === "reject" ? "reject" : "approve";
  document.getElementById("vote").hidden = false;
}}
document.getElementById("vote").addEventListener("submit", async ev => {{
  ev.preventDefault();
  document.getElementById("submit").disabled = true;
  const r = await fetch(api + "/redeem", {{method: "POST", credentials: "same-origin",
    headers: {{"Content-Type": "application/json", "X-Autopilot-Request": "1"}},
    body: JSON.stringify({{token, decision: document.getElementById("decision").value, comment: document.getElementById("comment").value}})}});
  const body = await r.json().catch(() => ({{}}));
  document.getElementById("result").textContent = r.ok ? "Recorded: the request is now " + body.state + "." :
    ((body.detail && (body.detail.message || body.detail)) || r.statusText);
  if (!r.ok) document.getElementById("submit").disabled = false; else document.getElementById("vote").hidden = true;
}});
load();
</script></body></html>
"""


@router.get("/approvals/confirm", response_class=HTMLResponse)
async def confirm_page(
    request: Request,
    token: Annotated[str, Query(max_length=2000)],
    decision: Annotated[Literal["approve", "reject"] | None, Query()] = None,
):
    """The page a mail link opens. Not logged in → Airflow's login page, then back here."""
    header = request.headers.get("authorization", "")
    bearer = (
        HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
        if header.lower().startswith("bearer ")
        else None
    )
    try:
        await get_user(request=request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException:
        here = str(request.url.path) + "?" + str(request.url.query)
        # Airflow's login page, under its base_url path when it has one (this app is mounted at
        # <base path>/autopilot)
        airflow_root = request.scope.get("root_path", "").rstrip("/").removesuffix("/autopilot")
        return RedirectResponse(
            f"{airflow_root}/auth/login?next={quote(here, safe='')}", status_code=status.HTTP_303_SEE_OTHER
        )
    page = _PAGE.format(token=json.dumps(html.escape(token)), decision=json.dumps(decision or ""))
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
