"""AI findings as QA reads them: the review queue, one finding in context, rows for statistics.

Why a finding is in the queue is decided in SQL, one condition per reason, so that the queue
pages and counts in the database at any size. The random sample of negatives is the same
arithmetic in SQL and in Python (:func:`pacs_ai.qa.stats.in_negative_sample`), so the
statistics know which reviewed negatives were drawn at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, case, cast, exists, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from pacs_ai.archive.schema import Patient, Study
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.qa.review import FindingNotFound
from pacs_ai.qa.schema import FindingReview
from pacs_ai.qa.stats import SAMPLE_MODULUS, SAMPLE_MULTIPLIER, ReviewedFinding, in_negative_sample
from pacs_ai.triage.schema import FindingAgreement


class QueueReason(StrEnum):
    """Why a finding is offered for review, in the order the queue serves them."""

    READER_DISAGREED = "reader_disagreed"
    SHADOW_DIFFERS = "shadow_differs"
    POSITIVE = "positive"
    NEGATIVE_SAMPLE = "negative_sample"


@dataclass(frozen=True)
class FindingInfo:
    """A finding with what a reviewer needs around it: study, patient, pipeline."""

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
    code_scheme: str
    code_value: str
    code_meaning: str
    present: bool
    probability: float
    severity: str
    volume_ml: float | None
    location: str
    status: str
    created_at: datetime
    job_id: int

    @property
    def code(self) -> str:
        """``SCHEME:VALUE``."""
        return f"{self.code_scheme}:{self.code_value}"


@dataclass(frozen=True)
class QueueItem:
    """One finding of the queue, the reasons it is there, and its reviews so far."""

    finding: FindingInfo
    reasons: list[QueueReason]
    latest_review: FindingReview | None
    reviews: int


@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer narrows the queue to."""

    reason: QueueReason | None = None
    pipeline: str | None = None
    model: str | None = None
    version: str | None = None
    include_reviewed: bool = False


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything pacs-ai stores is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sampled(rate: float) -> ColumnElement[bool]:
    # BigInteger: ids times the multiplier pass 2**31 on PostgreSQL's INTEGER.
    threshold = round(rate * SAMPLE_MODULUS)
    return (cast(FindingRow.id, BigInteger) * SAMPLE_MULTIPLIER) % SAMPLE_MODULUS < threshold


def _conditions(rate: float) -> dict[QueueReason, ColumnElement[bool]]:
    active = aliased(FindingRow)
    active_job = aliased(Job)
    differs = exists(
        select(active.id)
        .join(active_job, active_job.id == active.job_id)
        .where(
            active.study_instance_uid == FindingRow.study_instance_uid,
            active.shadow.is_(False),
            active.status == "current",
            active.model_name == FindingRow.model_name,
            active.code_scheme == FindingRow.code_scheme,
            active.code_value == FindingRow.code_value,
            active_job.pipeline == Job.pipeline,
            active.present != FindingRow.present,
        )
    )
    disagreed = exists(
        select(FindingAgreement.id).where(
            FindingAgreement.finding_id == FindingRow.id, FindingAgreement.agrees.is_(False)
        )
    )
    return {
        QueueReason.READER_DISAGREED: disagreed,
        QueueReason.SHADOW_DIFFERS: and_(FindingRow.shadow.is_(True), differs),
        QueueReason.POSITIVE: and_(FindingRow.shadow.is_(False), FindingRow.present.is_(True)),
        QueueReason.NEGATIVE_SAMPLE: and_(
            FindingRow.shadow.is_(False), FindingRow.present.is_(False), _sampled(rate)
        ),
    }


_COLUMNS = (
    FindingRow.id,
    FindingRow.study_instance_uid,
    Job.series_instance_uid,
    Patient.patient_id,
    Patient.patient_name,
    Study.accession_number,
    Job.pipeline,
    FindingRow.model_name,
    FindingRow.model_version,
    FindingRow.shadow,
    FindingRow.code_scheme,
    FindingRow.code_value,
    FindingRow.code_meaning,
    FindingRow.present,
    FindingRow.probability,
    FindingRow.severity,
    FindingRow.volume_ml,
    FindingRow.location,
    FindingRow.status,
    FindingRow.created_at,
    FindingRow.job_id,
)


def _base() -> Any:
    return (
        select(*_COLUMNS)
        .join(Job, Job.id == FindingRow.job_id)
        .outerjoin(Study, Study.study_instance_uid == FindingRow.study_instance_uid)
        .outerjoin(Patient, Patient.id == Study.patient_pk)
    )


def _info(row: Any) -> FindingInfo:
    return FindingInfo(
        id=row.id,
        study_uid=row.study_instance_uid,
        series_uid=row.series_instance_uid,
        patient_id=row.patient_id or "",
        patient_name=row.patient_name or "",
        accession_number=row.accession_number or "",
        pipeline=row.pipeline,
        model_name=row.model_name,
        model_version=row.model_version,
        shadow=bool(row.shadow),
        code_scheme=row.code_scheme,
        code_value=row.code_value,
        code_meaning=row.code_meaning,
        present=bool(row.present),
        probability=float(row.probability),
        severity=row.severity,
        volume_ml=row.volume_ml,
        location=row.location,
        status=row.status,
        created_at=aware(row.created_at),
        job_id=row.job_id,
    )


def _narrowed(statement: Any, filters: QueueFilter) -> Any:
    if filters.pipeline:
        statement = statement.where(Job.pipeline == filters.pipeline)
    if filters.model:
        statement = statement.where(FindingRow.model_name == filters.model)
    if filters.version:
        statement = statement.where(FindingRow.model_version == filters.version)
    return statement


def _latest_reviews(session: Session, finding_ids: Sequence[int]) -> dict[int, FindingReview]:
    if not finding_ids:
        return {}
    latest = (
        select(func.max(FindingReview.id))
        .where(FindingReview.finding_id.in_(finding_ids))
        .group_by(FindingReview.finding_id)
    )
    rows = session.scalars(select(FindingReview).where(FindingReview.id.in_(latest)))
    return {row.finding_id: row for row in rows}


def _review_counts(session: Session, finding_ids: Sequence[int]) -> dict[int, int]:
    if not finding_ids:
        return {}
    rows = session.execute(
        select(FindingReview.finding_id, func.count())
        .where(FindingReview.finding_id.in_(finding_ids))
        .group_by(FindingReview.finding_id)
    )
    return {finding_id: int(count) for finding_id, count in rows}


def queue(
    *, session: Session, rate: float, filters: QueueFilter, limit: int, offset: int
) -> tuple[list[QueueItem], int]:
    """A page of the review queue and the queue's length."""
    conditions = _conditions(rate)
    wanted = conditions[filters.reason] if filters.reason is not None else or_(*conditions.values())
    statement = _narrowed(_base().where(FindingRow.status == "current", wanted), filters)
    if not filters.include_reviewed:
        statement = statement.where(
            ~exists(select(FindingReview.id).where(FindingReview.finding_id == FindingRow.id))
        )
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    flags = [
        case((condition, 1), else_=0).label(reason.value)
        for reason, condition in conditions.items()
    ]
    order = case(
        *((condition, rank) for rank, condition in enumerate(conditions.values())),
        else_=len(conditions),
    )
    rows = session.execute(
        statement.add_columns(*flags)
        .order_by(cast(order, Integer), FindingRow.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    ids = [row.id for row in rows]
    latest = _latest_reviews(session, ids)
    counts = _review_counts(session, ids)
    items = [
        QueueItem(
            finding=_info(row),
            reasons=[reason for reason in QueueReason if getattr(row, reason.value)],
            latest_review=latest.get(row.id),
            reviews=counts.get(row.id, 0),
        )
        for row in rows
    ]
    return items, int(total)


def get_finding(*, session: Session, finding_id: int) -> FindingInfo:
    """One finding with its context; :class:`FindingNotFound` when there is none."""
    row = session.execute(_base().where(FindingRow.id == finding_id)).first()
    if row is None:
        raise FindingNotFound(f"no AI finding has id {finding_id}")
    return _info(row)


def queue_reasons(*, session: Session, finding_id: int, rate: float) -> list[QueueReason]:
    """Why the queue offers this finding (whether reviewed or not)."""
    conditions = _conditions(rate)
    flags = [
        case((condition, 1), else_=0).label(reason.value)
        for reason, condition in conditions.items()
    ]
    row = session.execute(
        select(*flags)
        .select_from(FindingRow)
        .join(Job, Job.id == FindingRow.job_id)
        .where(FindingRow.id == finding_id, FindingRow.status == "current")
    ).first()
    if row is None:
        return []
    return [reason for reason in QueueReason if getattr(row, reason.value)]


def counterpart(*, session: Session, finding: FindingInfo) -> FindingInfo | None:
    """For a shadow finding, the active run's current finding on the same study and code."""
    if not finding.shadow:
        return None
    row = session.execute(
        _base()
        .where(
            FindingRow.study_instance_uid == finding.study_uid,
            FindingRow.shadow.is_(False),
            FindingRow.status == "current",
            FindingRow.model_name == finding.model_name,
            FindingRow.code_scheme == finding.code_scheme,
            FindingRow.code_value == finding.code_value,
            Job.pipeline == finding.pipeline,
        )
        .order_by(FindingRow.id.desc())
        .limit(1)
    ).first()
    return _info(row) if row is not None else None


def reviewed_findings(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    rate: float,
    pipeline: str | None = None,
    model: str | None = None,
) -> list[ReviewedFinding]:
    """Current findings made in [since, until), with their latest review and readers' verdicts."""
    latest_id = (
        select(FindingReview.finding_id, func.max(FindingReview.id).label("review_id"))
        .group_by(FindingReview.finding_id)
        .subquery()
    )
    latest = aliased(FindingReview)
    verdicts = (
        select(
            FindingAgreement.finding_id,
            func.count().label("verdicts"),
            func.sum(case((FindingAgreement.agrees.is_(True), 1), else_=0)).label("agreed"),
        )
        .group_by(FindingAgreement.finding_id)
        .subquery()
    )
    statement = (
        select(
            FindingRow.id,
            Job.pipeline,
            FindingRow.model_name,
            FindingRow.model_version,
            FindingRow.shadow,
            FindingRow.study_instance_uid,
            FindingRow.code_scheme,
            FindingRow.code_value,
            FindingRow.present,
            FindingRow.probability,
            FindingRow.created_at,
            latest.decision,
            verdicts.c.verdicts,
            verdicts.c.agreed,
        )
        .join(Job, Job.id == FindingRow.job_id)
        .outerjoin(latest_id, latest_id.c.finding_id == FindingRow.id)
        .outerjoin(latest, latest.id == latest_id.c.review_id)
        .outerjoin(verdicts, verdicts.c.finding_id == FindingRow.id)
        .where(
            FindingRow.status == "current",
            FindingRow.created_at >= since,
            FindingRow.created_at < until,
        )
        .order_by(FindingRow.id)
    )
    if pipeline:
        statement = statement.where(Job.pipeline == pipeline)
    if model:
        statement = statement.where(FindingRow.model_name == model)
    return [
        ReviewedFinding(
            finding_id=row.id,
            pipeline=row.pipeline,
            model_name=row.model_name,
            model_version=row.model_version,
            shadow=bool(row.shadow),
            study_uid=row.study_instance_uid,
            code=f"{row.code_scheme}:{row.code_value}",
            present=bool(row.present),
            probability=float(row.probability),
            created_at=aware(row.created_at),
            decision=row.decision,
            sampled=in_negative_sample(row.id, rate),
            verdicts=int(row.verdicts or 0),
            agreed=int(row.agreed or 0),
        )
        for row in session.execute(statement)
    ]
