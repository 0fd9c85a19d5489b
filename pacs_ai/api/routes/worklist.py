"""The reading worklist for radiologists (``/api/worklist``): ranked list, claims, live events.

Thin handlers over :mod:`pacs_ai.triage.worklist`; every action is audited. Reading actions
are ``store`` entries of the audit trail (they change what is stored about a study), list and
study views ``query``, key images ``retrieve``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session

from pacs_ai.api.deps import (
    AuditorDep,
    ContextDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    allow,
)
from pacs_ai.api.errors import ApiError
from pacs_ai.api.events import EventKind, WorklistEvent, WorklistHub
from pacs_ai.api.key_images import key_image_response
from pacs_ai.archive.schema import aware, utcnow
from pacs_ai.archive.storage import StorageError
from pacs_ai.dicomweb.routes.common import SERVICE, StudyUID
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import Role
from pacs_ai.triage import worklist, worklist_reading
from pacs_ai.triage.schema import ReadingStatus
from pacs_ai.triage.worklist import (
    ReadingState,
    StoredFinding,
    StudyNotFound,
    WorklistFilter,
    WorklistItem,
)
from pacs_ai.triage.worklist_dicom import KeyImage, key_image
from pacs_ai.triage.worklist_reading import Changed, InvalidVerdict, ReadingConflict, Verdict

log = logging.getLogger(__name__)
router = APIRouter(prefix="/worklist", tags=["worklist"])

READERS: frozenset[Role] = frozenset({Role.RADIOLOGIST, Role.ADMIN})
"""Who reads studies: radiologists, and admins (who may also free another reader's claim)."""
VIEW = allow(READERS, Action.QUERY)
IMAGE = allow(READERS, Action.RETRIEVE)
ACT = allow(READERS, Action.STORE)
PAGE_MAX = 500

FindingId = Annotated[int, Path(description="Finding id", ge=1, le=2**31 - 1)]


async def get_hub(request: Request) -> WorklistHub:
    """The app's worklist hub (``create_app`` makes it); the first request starts its task."""
    hub: WorklistHub = request.app.state.worklist
    await hub.start()
    return hub


HubDep = Annotated[WorklistHub, Depends(get_hub)]


class BadgePublic(BaseModel):
    """An AI finding beside a study, e.g. ``ICH 0.93``."""

    finding_id: int
    text: str
    label: str
    code: str
    probability: float
    present: bool
    severity: str
    model: str


class ScorePublic(BaseModel):
    """The triage score and its weighted parts (``ai + clinical + waiting == total``)."""

    total: float
    ai: float
    clinical: float
    waiting: float
    category: str
    sla_minutes: float
    order_priority: str | None
    patient_setting: str | None
    reasons: list[str]


class WorklistItemPublic(BaseModel):
    """One study of the worklist."""

    rank: int | None
    study_uid: str
    patient_name: str
    patient_id: str
    accession_number: str
    modalities: list[str]
    body_parts: list[str]
    description: str
    arrived_at: datetime
    waited_minutes: float
    deadline: datetime
    minutes_left: float
    overdue: bool
    status: ReadingStatus
    reader: str | None
    claimed_at: datetime | None
    read_at: datetime | None
    badges: list[BadgePublic]
    score: ScorePublic


class WorklistPagePublic(BaseModel):
    """A page of the worklist in reading order; ``next_offset`` is null on the last page."""

    items: list[WorklistItemPublic]
    total: int
    limit: int
    offset: int
    next_offset: int | None
    computed_at: datetime


class ReadingStatePublic(BaseModel):
    """A study's reading state after an action."""

    study_uid: str
    status: ReadingStatus
    reader: str | None
    claimed_at: datetime | None
    read_at: datetime | None


class VerdictCreate(BaseModel):
    """The reader's verdict on one AI finding shown on the study page."""

    finding_id: int = Field(ge=1, le=2**31 - 1)
    agrees: bool
    comment: str = Field(default="", max_length=1024)


class ReadCreate(BaseModel):
    """Marking a study read, with optional verdicts on its AI findings (kept for QA)."""

    verdicts: list[VerdictCreate] = Field(default_factory=list, max_length=100)


class KeyImagePublic(BaseModel):
    """Where a finding is best seen: the overlay image, and the plain WADO-RS rendering."""

    series_uid: str
    sop_instance_uid: str
    segmentation_uid: str | None
    overlay_url: str
    rendered_url: str


class FindingPublic(BaseModel):
    """One AI finding of the study's structured report, as text and a key image."""

    id: int
    label: str
    code: str
    code_meaning: str
    present: bool
    probability: float
    severity: str
    volume_ml: float | None
    location: str
    model_name: str
    model_version: str
    key_image: KeyImagePublic | None


class VerdictPublic(BaseModel):
    """A verdict given when the study was read."""

    finding_id: int
    reader: str
    agrees: bool
    comment: str
    created_at: datetime


class StudyPublic(BaseModel):
    """The study page: the worklist item, its findings, verdicts, and a viewer link."""

    item: WorklistItemPublic
    findings: list[FindingPublic]
    verdicts: list[VerdictPublic]
    viewer_url: str | None


def worklist_filter(
    modality: Annotated[str | None, Query(max_length=16)] = None,
    body_part: Annotated[str | None, Query(max_length=16)] = None,
    status: ReadingStatus | None = None,
    reader: Annotated[str | None, Query(max_length=64)] = None,
    critical: bool = False,
) -> WorklistFilter:
    """The filters of a worklist request; no status lists unread and in-progress studies."""
    return WorklistFilter(
        modality=modality or None,
        body_part=body_part or None,
        status=status,
        reader=reader or None,
        critical_only=critical,
    )


FilterDep = Annotated[WorklistFilter, Depends(worklist_filter)]


def _item(item: WorklistItem, rank: int | None) -> WorklistItemPublic:
    study, b, state = item.study, item.breakdown, item.state
    return WorklistItemPublic(
        rank=rank,
        study_uid=study.study_uid,
        patient_name=study.patient_name,
        patient_id=study.patient_id,
        accession_number=study.accession_number,
        modalities=list(study.modalities),
        body_parts=list(study.body_parts),
        description=study.description,
        arrived_at=b.arrived_at,
        waited_minutes=b.waited_minutes,
        deadline=b.deadline,
        minutes_left=b.minutes_left,
        overdue=b.overdue,
        status=state.status,
        reader=state.reader,
        claimed_at=state.claimed_at,
        read_at=state.read_at,
        badges=[
            BadgePublic(
                finding_id=badge.finding_id,
                text=badge.text,
                label=badge.label,
                code=badge.code,
                probability=badge.probability,
                present=badge.present,
                severity=badge.severity,
                model=badge.model,
            )
            for badge in study.badges
        ],
        score=ScorePublic(
            total=b.total,
            ai=b.ai,
            clinical=b.clinical,
            waiting=b.waiting,
            category=b.category.value,
            sla_minutes=b.sla_minutes,
            order_priority=b.order_priority.value if b.order_priority else None,
            patient_setting=b.patient_setting.value if b.patient_setting else None,
            reasons=list(b.reasons),
        ),
    )


def _state(study_uid: str, state: ReadingState) -> ReadingStatePublic:
    return ReadingStatePublic(
        study_uid=study_uid,
        status=state.status,
        reader=state.reader,
        claimed_at=state.claimed_at,
        read_at=state.read_at,
    )


def _described(filters: WorklistFilter) -> str:
    return (
        ", ".join(f"{k}={v}" for k, v in vars(filters).items() if v not in (None, False)) or "all"
    )


@router.get("", dependencies=[VIEW], response_model=WorklistPagePublic)
def list_worklist(
    hub: HubDep,
    auditor: AuditorDep,
    filters: FilterDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> WorklistPagePublic:
    """Studies in reading order (highest triage score first), filtered and paged.

    Read studies (``status=read``) come latest read first, scored as they stood when read.
    """
    page = hub.ranking.page(filters=filters, limit=limit, offset=offset)
    auditor.record(
        Action.QUERY,
        Outcome.SUCCESS,
        study_uids=[item.study.study_uid for item in page.items],
        detail=f"worklist: {_described(filters)}; {len(page.items)} of {page.total}",
    )
    ranked = filters.status is not ReadingStatus.READ
    return WorklistPagePublic(
        items=[
            _item(item, offset + index + 1 if ranked else None)
            for index, item in enumerate(page.items)
        ],
        total=page.total,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if offset + limit < page.total else None,
        computed_at=page.computed_at,
    )


@router.get(
    "/events",
    dependencies=[VIEW],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        406: {"description": "Accept does not name text/event-stream"},
    },
)
async def worklist_events(request: Request, hub: HubDep, auditor: AuditorDep) -> StreamingResponse:
    """Server-Sent Events: ``ready``, then ``claim``, ``release``, ``read``, ``finding``, ``study``.

    Each event's data is JSON with ``type`` and ``study_uids`` (and ``reader`` for reading
    actions); pages fetch the worklist again when one arrives. The stream never ends by
    itself, so a client must ask for it with ``Accept: text/event-stream`` (as ``EventSource``
    does); any other request is 406.
    """
    if "text/event-stream" not in request.headers.get("accept", "").lower():
        raise ApiError(406, "this is an event stream: send Accept: text/event-stream")
    auditor.record(Action.QUERY, Outcome.SUCCESS, detail="worklist events: stream opened")
    return StreamingResponse(
        hub.stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _key_image(session: Session, hub: WorklistHub, finding: StoredFinding) -> KeyImagePublic | None:
    """Where the finding is seen; None (logged when unreadable) leaves it as text only."""
    try:
        found = _find_key_image(session, hub, finding)
    except ApiError as exc:
        log.warning("worklist study page: %s", exc.reason)
        return None
    if found is None:
        return None
    key, _mask = found
    return KeyImagePublic(
        series_uid=key.series_uid,
        sop_instance_uid=key.sop_instance_uid,
        segmentation_uid=key.segmentation_uid,
        overlay_url=f"/api/worklist/{key.study_uid}/findings/{key.finding_id}/key-image",
        rendered_url=(
            f"{SERVICE}/studies/{key.study_uid}/series/{key.series_uid}"
            f"/instances/{key.sop_instance_uid}/rendered"
        ),
    )


def _find_key_image(
    session: Session, hub: WorklistHub, finding: StoredFinding
) -> tuple[KeyImage, NDArray[np.bool_] | None] | None:
    try:
        return key_image(session=session, storage=hub.context.storage, finding=finding)
    except (StorageError, InvalidDicomError, ValueError) as exc:
        raise ApiError(
            422, f"the stored results of finding {finding.id} cannot be read: {exc}"
        ) from exc


@router.get("/{study}", dependencies=[VIEW], response_model=StudyPublic)
def get_study(
    study: StudyUID,
    hub: HubDep,
    session: SessionDep,
    settings: SettingsDep,
    auditor: AuditorDep,
) -> StudyPublic:
    """The study page: its score, its AI findings as text with key images, and verdicts."""
    found = _study_or_404(session, hub, study)
    breakdown = worklist.score_study(found, now=utcnow(), policy=hub.ranking.policy)
    labels = hub.ranking.labels
    findings = [
        FindingPublic(
            id=f.id,
            label=labels.get(f.code, f.code_meaning),
            code=f.code,
            code_meaning=f.code_meaning,
            present=f.present,
            probability=f.probability,
            severity=f.severity,
            volume_ml=f.volume_ml,
            location=f.location,
            model_name=f.model_name,
            model_version=f.model_version,
            key_image=_key_image(session, hub, f),
        )
        for f in found.findings
    ]
    verdicts = [
        VerdictPublic(
            finding_id=v.finding_id,
            reader=v.reader,
            agrees=v.agrees,
            comment=v.comment,
            created_at=aware(v.created_at),
        )
        for v in worklist_reading.agreements(session=session, study_uid=study)
    ]
    viewer = settings.ohif_viewer_url
    auditor.record(
        Action.QUERY,
        Outcome.SUCCESS,
        patient_id=found.patient_id,
        study_uids=[study],
        detail="worklist study page",
    )
    return StudyPublic(
        item=_item(worklist.WorklistItem(found, breakdown, found.state), None),
        findings=findings,
        verdicts=verdicts,
        viewer_url=viewer.replace("{study}", study) if viewer else None,
    )


def _study_or_404(session: Session, hub: WorklistHub, study: str) -> worklist.WorklistStudy:
    try:
        return worklist.get_by_uid_or_raise(
            session=session, study_uid=study, labels=hub.ranking.labels
        )
    except StudyNotFound as exc:
        raise ApiError(404, str(exc)) from exc


@router.get(
    "/{study}/findings/{finding_id}/key-image",
    dependencies=[IMAGE],
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def finding_key_image(
    study: StudyUID,
    finding_id: FindingId,
    hub: HubDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """The finding's key image as PNG, its segmentation filled and outlined in red."""
    found = _study_or_404(session, hub, study)
    finding = next((f for f in found.findings if f.id == finding_id), None)
    if finding is None:
        raise ApiError(404, f"finding {finding_id} is not a current AI finding of this study")
    answer = key_image_response(session=session, storage=hub.context.storage, finding=finding)
    auditor.record(
        Action.RETRIEVE,
        Outcome.SUCCESS,
        patient_id=found.patient_id,
        study_uids=[study],
        detail=f"worklist key image of finding {finding_id}",
    )
    return answer


def _act(
    context: ContextDep,
    hub: WorklistHub,
    auditor: AuditorDep,
    *,
    study: str,
    kind: EventKind,
    reader: str,
    action: Callable[[Session], Changed],
) -> ReadingStatePublic | JSONResponse:
    """Run one reading action in a write transaction; audit it and announce it."""
    try:
        with context.database.write_sessions.begin() as session:
            changed = action(session)
    except StudyNotFound as exc:
        auditor.record(Action.STORE, Outcome.FAILURE, study_uids=[study], detail=f"{kind}: {exc}")
        raise ApiError(404, str(exc)) from exc
    except InvalidVerdict as exc:
        auditor.record(Action.STORE, Outcome.FAILURE, study_uids=[study], detail=f"{kind}: {exc}")
        raise ApiError(400, str(exc)) from exc
    except ReadingConflict as exc:
        auditor.record(Action.STORE, Outcome.FAILURE, study_uids=[study], detail=f"{kind}: {exc}")
        return JSONResponse(
            {"error": str(exc), "status": exc.state.status.value, "reader": exc.state.reader},
            status_code=409,
        )
    auditor.record(
        Action.STORE,
        Outcome.SUCCESS,
        patient_id=changed.patient_id,
        study_uids=[study],
        detail=f"worklist {kind} by {reader}",
    )
    hub.publish(WorklistEvent(kind, (study,), reader))
    return _state(study, changed.state)


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Another reader holds the study, or it was read"}
}


@router.post(
    "/{study}/claim", dependencies=[ACT], response_model=ReadingStatePublic, responses=_CONFLICT
)
def claim_study(
    study: StudyUID, principal: CurrentUser, context: ContextDep, hub: HubDep, auditor: AuditorDep
) -> ReadingStatePublic | JSONResponse:
    """Take the study for reading; 409 with the holder when another reader has it."""
    reader = principal.username
    return _act(
        context,
        hub,
        auditor,
        study=study,
        kind=EventKind.CLAIM,
        reader=reader,
        action=lambda session: worklist_reading.claim(
            session=session, study_uid=study, reader=reader, now=utcnow()
        ),
    )


@router.post(
    "/{study}/release", dependencies=[ACT], response_model=ReadingStatePublic, responses=_CONFLICT
)
def release_study(
    study: StudyUID, principal: CurrentUser, context: ContextDep, hub: HubDep, auditor: AuditorDep
) -> ReadingStatePublic | JSONResponse:
    """Give the study back to the worklist; an admin may free another reader's claim."""
    reader = principal.username
    return _act(
        context,
        hub,
        auditor,
        study=study,
        kind=EventKind.RELEASE,
        reader=reader,
        action=lambda session: worklist_reading.release(
            session=session,
            study_uid=study,
            reader=reader,
            now=utcnow(),
            override=principal.role is Role.ADMIN,
        ),
    )


@router.post(
    "/{study}/read", dependencies=[ACT], response_model=ReadingStatePublic, responses=_CONFLICT
)
def read_study(
    study: StudyUID,
    principal: CurrentUser,
    context: ContextDep,
    hub: HubDep,
    auditor: AuditorDep,
    body: ReadCreate | None = None,
) -> ReadingStatePublic | JSONResponse:
    """Mark the study read, with the reader's agreement or not with each AI finding."""
    reader = principal.username
    verdicts = [
        Verdict(finding_id=v.finding_id, agrees=v.agrees, comment=v.comment)
        for v in (body.verdicts if body is not None else [])
    ]
    return _act(
        context,
        hub,
        auditor,
        study=study,
        kind=EventKind.READ,
        reader=reader,
        action=lambda session: worklist_reading.mark_read(
            session=session, study_uid=study, reader=reader, verdicts=verdicts, now=utcnow()
        ),
    )
