"""The OpenAPI document, for authenticated clients (``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pacs_ai.api.deps import allow
from pacs_ai.security.audit import Action
from pacs_ai.security.roles import ALL_ROLES

router = APIRouter(tags=["operations"])


@router.get("/openapi.json", dependencies=[allow(ALL_ROLES, Action.QUERY)])
def openapi(request: Request) -> dict[str, Any]:
    """The API description; it lists routes and the roles each admits."""
    schema: dict[str, Any] = request.app.openapi()
    return schema
