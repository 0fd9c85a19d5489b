"""The audit trail for admins: search with paging, and export as JSON lines (``/api/audit``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from pacs_ai.api.deps import AuditorDep, ContextDep, SessionDep, allow
from pacs_ai.security import audit
from pacs_ai.security.audit import Action, AuditFilter, Outcome, Protocol
from pacs_ai.security.roles import ADMIN_ONLY

router = APIRouter(prefix="/audit", tags=["audit"])
ADMIN = allow(ADMIN_ONLY, Action.QUERY)
PAGE_MAX = 1000


class AuditEventPublic(BaseModel):
    """One audit entry."""

    id: int
    at: datetime
    protocol: str
    actor: str
    role: str
    source: str
    action: str
    outcome: str
    patient_id: str
    study_uids: list[str]
    detail: str


class AuditPage(BaseModel):
    """A page of entries, newest first, and where the next page starts.

    ``next_before_id`` pages stably while new entries arrive (each audit read is itself
    recorded); ``next_offset`` is there for simple clients.
    """

    items: list[AuditEventPublic]
    limit: int
    offset: int
    next_offset: int | None
    next_before_id: int | None


def audit_filter(
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Action | None = None,
    outcome: Outcome | None = None,
    protocol: Protocol | None = None,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    study_uid: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> AuditFilter:
    """The filters of an audit request, from its query parameters."""
    return AuditFilter(
        actor=actor,
        action=action,
        outcome=outcome,
        protocol=protocol,
        patient_id=patient_id,
        study_uid=study_uid,
        since=since,
        until=until,
        before_id=before_id,
    )


FilterDep = Annotated[AuditFilter, Depends(audit_filter)]


def _described(filters: AuditFilter) -> str:
    return ", ".join(f"{k}={v}" for k, v in vars(filters).items() if v is not None) or "all"


@router.get("", dependencies=[ADMIN], response_model=AuditPage)
def list_events(
    session: SessionDep,
    context: ContextDep,
    auditor: AuditorDep,
    filters: FilterDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> AuditPage:
    """Entries matching the filters, newest first; ``next_offset`` is null on the last page.

    Entries still queued are written first, so that an admin sees every access made so far.
    """
    if context.audit is not None:
        context.audit.flush()
    rows = audit.search(session=session, filters=filters, limit=limit + 1, offset=offset)
    auditor.record(Action.QUERY, Outcome.SUCCESS, detail=f"audit trail: {_described(filters)}")
    more = len(rows) > limit
    page = rows[:limit]
    return AuditPage(
        items=[AuditEventPublic(**audit.as_dict(r)) for r in page],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
        next_before_id=page[-1].id if more else None,
    )


@router.get(
    "/export",
    dependencies=[ADMIN],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_events(
    context: ContextDep, auditor: AuditorDep, filters: FilterDep
) -> StreamingResponse:
    """Every matching entry, oldest first, one JSON object per line (for a SIEM or archive)."""
    if context.audit is not None:
        context.audit.flush()
    auditor.record(Action.RETRIEVE, Outcome.SUCCESS, detail=f"audit export: {_described(filters)}")

    def lines() -> Iterator[bytes]:
        with context.database.sessions() as session:
            for event in audit.iterate(session=session, filters=filters):
                yield (json.dumps(audit.as_dict(event), separators=(",", ":")) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
