"""Models of ``/alerts``: the alert endpoints (events from outside) and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

DeliveryStatus = Literal["accepted", "duplicate", "filtered", "rejected", "invalid", "failed"]


class AlertRouteOut(BaseModel):
    id: str
    workflow: str = Field(description="The workflow the route starts.")


class AlertOut(BaseModel):
    id: str
    title: str
    description: str | None = None
    owner: str | None = None
    scheme: Literal["github", "stripe", "standard", "bearer"] = Field(description="How senders authenticate.")
    url: str = Field(description="Where senders deliver: POST this URL.")
    routes: list[AlertRouteOut]


class AlertList(BaseModel):
    alerts: list[AlertOut]
    total_entries: int


class AlertRunOut(BaseModel):
    route: str
    workflow: str
    run_id: str
    url: str = Field(description="The run in Airflow's grid view.")


class AlertAnswer(BaseModel):
    """What a sender gets for a delivery that was read (202 accepted; 200 duplicate or filtered)."""

    alert: str
    delivery_id: str
    status: Literal["accepted", "duplicate", "filtered"]
    runs: list[AlertRunOut]


class DeliveryOut(BaseModel):
    id: int
    alert: str
    delivery_id: str = Field(description="The sender's delivery id (or the sha256 of the body); empty when refused.")
    received_at: datetime
    status: DeliveryStatus
    reason: str | None = Field(None, description="Why it ended so (for a refused delivery: the real reason).")
    http_status: int = Field(description="What the sender was answered.")
    runs: list[AlertRunOut]
    replay_of: int | None = Field(None, description="The delivery this one replayed.")


class DeliveryDetail(DeliveryOut):
    headers: dict[str, str] = Field(description="The request headers (auth and secret-looking ones masked).")
    payload: Any = Field(
        None, description="The payload (secret-looking keys masked; none for refused deliveries; large ones truncated)."
    )


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    total_entries: int


class ReplayOut(BaseModel):
    delivery: DeliveryOut
