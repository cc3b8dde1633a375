"""``/api/v1/reviews``: the definition changes waiting for a second person's review (four-eyes),
across all paths. A change is reviewed at ``/definitions/{path}/revisions/{number}/review``
(:mod:`autopilot_plugin.api.routes.definitions`)."""

from __future__ import annotations

from autopilot_plugin.api.datamodels.definitions import PendingReviewList, PendingReviewOut
from autopilot_plugin.api.deps import CanRead, StoreDep
from autopilot_plugin.api.errors import ErrorDocs
from fastapi import APIRouter

router = APIRouter(prefix="/reviews", tags=["Definitions"])

errors = ErrorDocs()


@router.get("", dependencies=[CanRead], operation_id="list_pending_reviews", responses=errors(401, 403, 503))
def list_pending_reviews(store: StoreDep) -> PendingReviewList:
    """Every definition change waiting for review, oldest first."""
    pending = store.pending_reviews()
    return PendingReviewList(reviews=[PendingReviewOut.of(r, path=r.path) for r in pending], total_entries=len(pending))
