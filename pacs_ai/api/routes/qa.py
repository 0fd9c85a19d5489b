"""Quality assurance of AI findings (``/api/qa``): the review queue, reviews, statistics.

Thin handlers over :mod:`pacs_ai.qa`; every call is audited. Reviews are ``store`` entries
of the audit trail (they add to what is stored about a study), the queue, findings and
statistics ``query``, key images ``retrieve``. Statistics are open to ML engineers too: they
compare versions on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from pacs_ai.api.deps import AuditorDep, ContextDep, CurrentUser, SessionDep, SettingsDep, allow
from pacs_ai.api.errors import ApiError
from pacs_ai.api.key_images import key_image_response
from pacs_ai.archive.schema import aware, utcnow
from pacs_ai.config import Settings
from pacs_ai.qa import findings as qa_findings
from pacs_ai.qa import review as qa_review
from pacs_ai.qa import stats as qa_stats
from pacs_ai.qa.findings import FindingInfo, QueueFilter, QueueReason
from pacs_ai.qa.review import FindingNotFound, InvalidReview, ReviewInput
from pacs_ai.qa.schema import Decision, FindingReview
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import Role
from pacs_ai.triage import worklist_reading
from pacs_ai.triage.worklist import StoredFinding

log = logging.getLogger(__name__)
router = APIRouter(prefix="/qa", tags=["qa"])

REVIEWERS: frozenset[Role] = frozenset({Role.QA, Role.ADMIN})
"""Who reviews AI findings."""
STATISTICS_READERS: frozenset[Role] = frozenset({Role.QA, Role.ML_ENGINEER, Role.ADMIN})
"""Who reads the agreement statistics: reviewers, and the engineers who compare versions."""
VIEW = allow(REVIEWERS, Action.QUERY)
IMAGE = allow(REVIEWERS, Action.RETRIEVE)
REVIEW = allow(REVIEWERS, Action.STORE)
STATISTICS = allow(STATISTICS_READERS, Action.QUERY)
PAGE_MAX = 500
DEFAULT_PERIOD = timedelta(days=90)

FindingId = Annotated[int, Path(description="Finding id", ge=1, le=2**31 - 1)]


class FindingPublic(BaseModel):
    """An AI finding with its study and the run that made it."""

    id: int
    study_uid: str
    series_uid: str
    patient_id: str
    patient_name: str
    accession_number: str
    pipeline: str
    model_name: str
    model_version: str
    shadow: bool
    code: str
    code_meaning: str
    present: bool
    probability: float
    severity: str
    volume_ml: float | None
    location: str
    status: str
    created_at: datetime


class ReviewPublic(BaseModel):
    """One review; ``supersedes`` names the review it follows."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    finding_id: int
    reviewer: str
    decision: Decision
    reason: str
    comment: str
    corrected_location: str
    corrected_volume_ml: float | None
    corrected_severity: str
    supersedes: int | None
    created_at: datetime


class QueueItemPublic(BaseModel):
    """A finding offered for review, why, and its reviews so far."""

    finding: FindingPublic
    reasons: list[QueueReason]
    latest_review: ReviewPublic | None
    reviews: int


class QueuePagePublic(BaseModel):
    """A page of the queue; ``next_offset`` is null on the last page."""

    items: list[QueueItemPublic]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ReaderVerdictPublic(BaseModel):
    """A radiologist's verdict on the finding, given when the study was read."""

    reader: str
    agrees: bool
    comment: str
    created_at: datetime


class FindingDetailPublic(BaseModel):
    """A finding, why the queue offers it, its review history and readers' verdicts."""

    finding: FindingPublic
    reasons: list[QueueReason]
    reviews: list[ReviewPublic]
    reader_verdicts: list[ReaderVerdictPublic]
    key_image_url: str | None
    active_finding: FindingPublic | None


class ReviewCreate(BaseModel):
    """A review as submitted."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    reason: str = Field(max_length=32)
    comment: str = Field(default="", max_length=qa_review.COMMENT_MAX)
    corrected_location: str = Field(default="", max_length=qa_review.LOCATION_MAX)
    corrected_volume_ml: float | None = None
    corrected_severity: str = Field(default="", max_length=16)


class ReasonPublic(BaseModel):
    """One entry of the fixed list of reasons."""

    code: str
    label: str


class StatsPublic(BaseModel):
    """Agreement statistics over a period (the figures are :mod:`pacs_ai.qa.stats`'s own)."""

    since: datetime
    until: datetime
    negative_sample_rate: float
    versions: list[qa_stats.VersionStats]
    comparisons: list[qa_stats.Comparison]


def _finding(info: FindingInfo) -> FindingPublic:
    return FindingPublic(
        id=info.id,
        study_uid=info.study_uid,
        series_uid=info.series_uid,
        patient_id=info.patient_id,
        patient_name=info.patient_name,
        accession_number=info.accession_number,
        pipeline=info.pipeline,
        model_name=info.model_name,
        model_version=info.model_version,
        shadow=info.shadow,
        code=info.code,
        code_meaning=info.code_meaning,
        present=info.present,
        probability=info.probability,
        severity=info.severity,
        volume_ml=info.volume_ml,
        location=info.location,
        status=info.status,
        created_at=info.created_at,
    )


def _review(row: FindingReview) -> ReviewPublic:
    public = ReviewPublic.model_validate(row)
    return public.model_copy(update={"created_at": aware(row.created_at)})


@router.get("/reasons", dependencies=[VIEW], response_model=dict[Decision, list[ReasonPublic]])
def list_reasons() -> dict[Decision, list[ReasonPublic]]:
    """The fixed list of reasons, per decision."""
    return {
        decision: [ReasonPublic(code=r.code, label=r.label) for r in reasons]
        for decision, reasons in qa_review.REASONS.items()
    }


@router.get("/queue", dependencies=[VIEW], response_model=QueuePagePublic)
def review_queue(
    session: SessionDep,
    settings: SettingsDep,
    auditor: AuditorDep,
    reason: QueueReason | None = None,
    pipeline: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    version: Annotated[str | None, Query(max_length=64)] = None,
    include_reviewed: bool = False,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> QueuePagePublic:
    """Findings waiting for review: disagreements first, then shadow differences, positives,
    and the random sample of negatives."""
    filters = QueueFilter(
        reason=reason,
        pipeline=pipeline,
        model=model,
        version=version,
        include_reviewed=include_reviewed,
    )
    items, total = qa_findings.queue(
        session=session,
        rate=settings.qa_negative_sample_rate,
        filters=filters,
        limit=limit,
        offset=offset,
    )
    auditor.record(
        Action.QUERY,
        Outcome.SUCCESS,
        study_uids=sorted({item.finding.study_uid for item in items}),
        detail=f"QA queue: {len(items)} of {total}",
    )
    return QueuePagePublic(
        items=[
            QueueItemPublic(
                finding=_finding(item.finding),
                reasons=item.reasons,
                latest_review=_review(item.latest_review) if item.latest_review else None,
                reviews=item.reviews,
            )
            for item in items
        ],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=offset + len(items) if offset + len(items) < total else None,
    )


def _finding_or_404(session: Session, finding_id: int) -> FindingInfo:
    try:
        return qa_findings.get_finding(session=session, finding_id=finding_id)
    except FindingNotFound as exc:
        raise ApiError(404, str(exc)) from exc


def _stored(info: FindingInfo) -> StoredFinding:
    return StoredFinding(
        id=info.id,
        job_id=info.job_id,
        study_instance_uid=info.study_uid,
        model_name=info.model_name,
        model_version=info.model_version,
        code_scheme=info.code_scheme,
        code_value=info.code_value,
        code_meaning=info.code_meaning,
        severity=info.severity,
        probability=info.probability,
        present=info.present,
        shadow=info.shadow,
        status=info.status,
        volume_ml=info.volume_ml,
        location=info.location,
    )


@router.get("/findings/{finding_id}", dependencies=[VIEW], response_model=FindingDetailPublic)
def get_finding(
    finding_id: FindingId, session: SessionDep, settings: SettingsDep, auditor: AuditorDep
) -> FindingDetailPublic:
    """A finding with its review history, readers' verdicts, and the active run's call."""
    info = _finding_or_404(session, finding_id)
    verdicts = [
        ReaderVerdictPublic(
            reader=v.reader,
            agrees=v.agrees,
            comment=v.comment,
            created_at=aware(v.created_at),
        )
        for v in worklist_reading.agreements(session=session, study_uid=info.study_uid)
        if v.finding_id == finding_id
    ]
    active = qa_findings.counterpart(session=session, finding=info)
    auditor.record(
        Action.QUERY,
        Outcome.SUCCESS,
        patient_id=info.patient_id,
        study_uids=[info.study_uid],
        detail=f"QA finding {finding_id}",
    )
    return FindingDetailPublic(
        finding=_finding(info),
        reasons=qa_findings.queue_reasons(
            session=session, finding_id=finding_id, rate=settings.qa_negative_sample_rate
        ),
        reviews=[_review(r) for r in qa_review.history(session=session, finding_id=finding_id)],
        reader_verdicts=verdicts,
        key_image_url=f"/api/qa/findings/{finding_id}/key-image",
        active_finding=_finding(active) if active is not None else None,
    )


@router.get(
    "/findings/{finding_id}/key-image",
    dependencies=[IMAGE],
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def finding_key_image(
    finding_id: FindingId, session: SessionDep, context: ContextDep, auditor: AuditorDep
) -> Response:
    """The image that best shows the finding, its segmentation filled and outlined in red."""
    info = _finding_or_404(session, finding_id)
    answer = key_image_response(session=session, storage=context.storage, finding=_stored(info))
    auditor.record(
        Action.RETRIEVE,
        Outcome.SUCCESS,
        patient_id=info.patient_id,
        study_uids=[info.study_uid],
        detail=f"QA key image of finding {finding_id}",
    )
    return answer


@router.post(
    "/findings/{finding_id}/reviews",
    dependencies=[REVIEW],
    response_model=ReviewPublic,
    status_code=201,
)
def add_review(
    finding_id: FindingId,
    body: ReviewCreate,
    principal: CurrentUser,
    context: ContextDep,
    auditor: AuditorDep,
) -> ReviewPublic:
    """Add a review; earlier reviews of the finding stay as its history."""
    review = ReviewInput(
        decision=body.decision,
        reason=body.reason,
        comment=body.comment,
        corrected_location=body.corrected_location,
        corrected_volume_ml=body.corrected_volume_ml,
        corrected_severity=body.corrected_severity,
    )
    try:
        with context.database.write_sessions.begin() as session:
            row = qa_review.add_review(
                session=session,
                finding_id=finding_id,
                reviewer=principal.username,
                review=review,
                now=utcnow(),
            )
            created = _review(row)
            study_uid = row.study_instance_uid
    except FindingNotFound as exc:
        auditor.record(Action.STORE, Outcome.FAILURE, detail=f"QA review: {exc}")
        raise ApiError(404, str(exc)) from exc
    except InvalidReview as exc:
        auditor.record(
            Action.STORE, Outcome.FAILURE, detail=f"QA review of finding {finding_id}: {exc}"
        )
        raise ApiError(422, str(exc)) from exc
    auditor.record(
        Action.STORE,
        Outcome.SUCCESS,
        study_uids=[study_uid],
        detail=f"QA review {created.id} of finding {finding_id}: {created.decision.value} "
        f"({created.reason})",
    )
    return created


@dataclass(frozen=True)
class StatsQuery:
    """The period and the narrowing of a statistics request, resolved."""

    since: datetime
    until: datetime
    pipeline: str | None
    model: str | None


def stats_query(
    since: datetime | None = None,
    until: datetime | None = None,
    pipeline: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
) -> StatsQuery:
    """The period asked for, by default the last 90 days; 400 when it ends before it starts."""
    end = aware(until) if until is not None else utcnow()
    start = aware(since) if since is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise ApiError(400, "since must be before until")
    return StatsQuery(start, end, pipeline, model)


StatsQueryDep = Annotated[StatsQuery, Depends(stats_query)]


def _statistics(
    session: Session, settings: Settings, query: StatsQuery
) -> tuple[list[qa_stats.VersionStats], list[qa_stats.Comparison]]:
    policy = qa_stats.DriftPolicy(
        threshold=settings.qa_drift_threshold,
        window_days=settings.qa_drift_window_days,
        min_findings=settings.qa_drift_min_findings,
    )
    tallies = qa_findings.tallied_findings(
        session=session,
        since=query.since,
        until=query.until,
        recent_from=query.until - timedelta(days=policy.window_days),
        rate=settings.qa_negative_sample_rate,
        pipeline=query.pipeline,
        model=query.model,
    )
    pairs = qa_findings.paired_calls(
        session=session,
        since=query.since,
        until=query.until,
        pipeline=query.pipeline,
        model=query.model,
    )
    return (
        qa_stats.version_stats(tallies, since=query.since, until=query.until, drift=policy),
        [qa_stats.comparison(pair) for pair in pairs],
    )


@router.get("/stats", dependencies=[STATISTICS], response_model=StatsPublic)
def statistics(
    query: StatsQueryDep, session: SessionDep, settings: SettingsDep, auditor: AuditorDep
) -> StatsPublic:
    """Reviewed count, PPV, estimated sensitivity and specificity, reader agreement, drift."""
    versions, pairs = _statistics(session, settings, query)
    auditor.record(
        Action.QUERY, Outcome.SUCCESS, detail=f"QA statistics {query.since} - {query.until}"
    )
    return StatsPublic(
        since=query.since,
        until=query.until,
        negative_sample_rate=settings.qa_negative_sample_rate,
        versions=versions,
        comparisons=pairs,
    )


@router.get(
    "/stats.csv",
    dependencies=[STATISTICS],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def statistics_csv(
    query: StatsQueryDep, session: SessionDep, settings: SettingsDep, auditor: AuditorDep
) -> Response:
    """The statistics as CSV, one row per version."""
    versions, _ = _statistics(session, settings, query)
    auditor.record(
        Action.RETRIEVE,
        Outcome.SUCCESS,
        detail=f"QA statistics CSV {query.since} - {query.until}",
    )
    name = f"qa-stats-{query.since:%Y%m%d}-{query.until:%Y%m%d}.csv"
    return Response(
        qa_stats.to_csv(versions),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
