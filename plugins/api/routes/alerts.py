"""``/api/v1/alerts``: events from outside. Senders (a monitoring tool, a ticketing system, CI) deliver
to ``POST /alerts/{alert_id}``, authenticated by the alert's signature or token only — no Airflow
session, and a session cookie grants nothing there; people read the alerts and the delivery log, and
an alert admin replays a delivery.

The rules are :mod:`autopilot_provider.server.alerts`; a refused delivery is always the same 401
(unknown alert, bad or missing signature, stale timestamp), whatever the reason the log records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from autopilot_plugin.api.datamodels.alerts import (
    AlertAnswer,
    AlertList,
    AlertOut,
    DeliveryDetail,
    DeliveryList,
    DeliveryOut,
    DeliveryStatus,
    ReplayOut,
)
from autopilot_plugin.api.deps import CanRead, CanReadDeliveries, DeliveriesDep, GetUserDep
from autopilot_plugin.api.errors import ErrorDocs
from autopilot_plugin.api.permissions import Permission, require_permission, require_start_runs
from fastapi import APIRouter, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from autopilot_provider.server import alerts as service

router = APIRouter(prefix="/alerts", tags=["Alerts"])

errors = ErrorDocs(
    {
        401: "Not authenticated (for a delivery: an invalid or missing signature or token, or an unknown alert — "
        "the same answer for each)",
        404: "No such delivery, or its alert no longer exists",
        409: "The delivery kept no payload to replay",
        413: "The body is larger than `[autopilot] alert_max_body_bytes`",
        415: "The body is neither application/json nor application/x-www-form-urlencoded",
        422: "The mapped form values do not fit the workflow's form: `errors` lists each field (with its `route` and "
        "`item`); nothing was started",
        503: "A run could not be started (the workflow's DAG is not parsed yet, its choices cannot be fetched, or the "
        "Autopilot tables are missing); sending the delivery again is safe",
    }
)

AlertId = Annotated[str, Path(description="The alert id (its definition's `id`).", max_length=200)]
DeliveryNumber = Annotated[int, Path(description="The delivery's number in the log (`id`).", ge=1)]

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "The sender's event, exactly as signed.",
        "content": {
            "application/json": {"schema": {}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        },
    }
}


@router.get("", dependencies=[CanRead], operation_id="list_alerts", responses=errors(401, 403))
def list_alerts(
    deliveries: DeliveriesDep,
    workflow: Annotated[str | None, Query(description="Only alerts with a route to this workflow.")] = None,
) -> AlertList:
    """The valid alerts: where senders deliver, how they authenticate, which workflows they start."""
    found = [AlertOut(**a) for a in deliveries.summaries(workflow)]
    return AlertList(alerts=found, total_entries=len(found))


@router.get(
    "/deliveries",
    dependencies=[CanReadDeliveries],
    operation_id="list_alert_deliveries",
    responses=errors(401, 403, 503),
)
def list_deliveries(
    deliveries: DeliveriesDep,
    alert: Annotated[str | None, Query(description="Only deliveries to this alert.", max_length=200)] = None,
    status_: Annotated[DeliveryStatus | None, Query(alias="status", description="Only this outcome.")] = None,
    since: Annotated[datetime | None, Query(description="Received at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Received at or before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Deliveries to skip.")] = 0,
) -> DeliveryList:
    """The delivery log, newest first: every delivery with its outcome, its reason and the runs it started."""
    page, total = deliveries.list(alert=alert, status=status_, since=since, until=until, limit=limit, offset=offset)
    return DeliveryList(deliveries=[DeliveryOut(**d) for d in page], total_entries=total)


@router.get(
    "/deliveries/{delivery}",
    dependencies=[CanReadDeliveries],
    operation_id="get_alert_delivery",
    responses=errors(401, 403, 404, 503),
)
def get_delivery(delivery: DeliveryNumber, deliveries: DeliveriesDep) -> DeliveryDetail:
    """One delivery with its headers and payload (secrets masked)."""
    return DeliveryDetail(**deliveries.get(delivery))


@router.post(
    "/deliveries/{delivery}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="replay_alert_delivery",
    responses=errors(401, 403, 404, 409, 503),
)
def replay_delivery(delivery: DeliveryNumber, deliveries: DeliveriesDep, user: GetUserDep) -> ReplayOut:
    """Process a logged delivery's payload again, without its signature, as a new delivery
    (`<delivery id>#replay-<n>`: its runs are new ones). Needs the 'Autopilot Alerts' permission and
    may start runs of every workflow the alert can start (DAG-run create access, or 'Autopilot Requests' with
    read access to its runs)."""
    require_permission(user, Permission.ALERTS)
    for workflow in deliveries.routes_of(delivery):
        require_start_runs(user, workflow, what="replay an alert that starts workflow")
    outcome = deliveries.replay(delivery)
    assert outcome.id is not None
    return ReplayOut(delivery=DeliveryOut(**_logged(deliveries, outcome.id)))


def _logged(deliveries: service.Deliveries, number: int) -> dict:
    found = deliveries.get(number)
    found.pop("headers", None)
    found.pop("payload", None)
    return found


@router.post(
    "/{alert_id}",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="deliver_alert",
    response_model=AlertAnswer,
    openapi_extra=_BODY_DOC,
    responses={
        200: {"model": AlertAnswer, "description": "A duplicate (nothing started) or filtered out by the match rules"},
        **errors(401, 413, 415, 422, 503),
    },
)
async def deliver(alert_id: AlertId, request: Request, deliveries: DeliveriesDep) -> JSONResponse:
    """A sender's delivery, authenticated only by its signature or token (never by an Airflow session).
    202 with the runs it started; 200 for a duplicate delivery id (the same runs, nothing started) or
    one the match rules filter out; 401 for a bad or missing signature, a stale timestamp or an unknown
    alert; 422 when the mapped values do not fit the workflow's form (nothing started)."""
    body = await request.body()  # the raw bytes: what the sender signed
    outcome = await run_in_threadpool(
        deliveries.receive, alert_id, request.headers.raw, body, request.headers.get("content-type")
    )
    return JSONResponse(status_code=outcome.http_status, content=outcome.body())
