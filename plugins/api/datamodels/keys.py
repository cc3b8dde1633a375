"""Response model of ``/keys``: the public key that verifies approval decisions signed by this server."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PublicKey(BaseModel):
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="The raw public key, base64.")
