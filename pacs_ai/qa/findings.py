"""AI findings as QA reads them: the review queue, one finding in context, rows for statistics.

Why a finding is in the queue is decided in SQL, one condition per reason, so that the queue
pages and counts in the database at any size. The random sample of negatives is decided in
SQL too, for the queue and for the statistics alike, with the arithmetic of
:func:`pacs_ai.qa.stats.in_negative_sample` (its definition, which tests use to predict it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, case, cast, exists, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from pacs_ai.archive.schema import Patient, Study, aware
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.qa.review import FindingNotFound
from pacs_ai.qa.schema import FindingReview
from pacs_ai.qa.stats import SAMPLE_MODULUS, SAMPLE_MULTIPLIER, PairTally, ReviewedFinding
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


def _flags(conditions: dict[QueueReason, ColumnElement[bool]]) -> list[Any]:
    """One 0/1 column per reason, named after it, to tell why a row is in the queue."""
    return [
        case((condition, 1), else_=0).label(reason.value)
        for reason, condition in conditions.items()
    ]


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
    flags = _flags(conditions)
    order = case(
        *((condition, rank) for rank, condition in enumerate(conditions.values())),
        else_=len(conditions),
    )
    # The length comes with the page (a window count): the conditions are evaluated once.
    rows = session.execute(
        statement.add_columns(*flags, func.count().over().label("queue_length"))
        .order_by(cast(order, Integer), FindingRow.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    if rows:
        total = int(rows[0].queue_length)
    else:
        total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
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
    flags = _flags(conditions)
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


def _utc_day(session: Session) -> Any:
    """The UTC calendar day of a finding, in the session's SQL dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", FindingRow.created_at))
    return func.date(FindingRow.created_at)  # SQLite keeps UTC text


def tallied_findings(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    recent_from: datetime,
    rate: float,
    pipeline: str | None = None,
    model: str | None = None,
) -> list[ReviewedFinding]:
    """The period's current findings tallied in the database, for the statistics.

    One row per version, call, latest decision, sample membership, UTC day and side of
    ``recent_from`` (the drift window's start), with its count and verdict sums, dated by the
    newest finding it holds; a busy period is then a few thousand rows, not every finding.
    """
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
    sampled = case((_sampled(rate), 1), else_=0)
    recent = case((FindingRow.created_at >= recent_from, 1), else_=0)
    keys = (
        Job.pipeline,
        FindingRow.model_name,
        FindingRow.model_version,
        FindingRow.shadow,
        FindingRow.present,
        latest.decision,
        sampled,
        _utc_day(session),
        recent,
    )
    statement = (
        select(
            *keys[:7],
            func.max(FindingRow.created_at),
            func.count(),
            func.coalesce(func.sum(verdicts.c.verdicts), 0),
            func.coalesce(func.sum(verdicts.c.agreed), 0),
        )
        .select_from(FindingRow)
        .join(Job, Job.id == FindingRow.job_id)
        .outerjoin(latest_id, latest_id.c.finding_id == FindingRow.id)
        .outerjoin(latest, latest.id == latest_id.c.review_id)
        .outerjoin(verdicts, verdicts.c.finding_id == FindingRow.id)
        .where(
            FindingRow.status == "current",
            FindingRow.created_at >= since,
            FindingRow.created_at < until,
        )
        .group_by(*keys)
    )
    if pipeline:
        statement = statement.where(Job.pipeline == pipeline)
    if model:
        statement = statement.where(FindingRow.model_name == model)
    return [
        ReviewedFinding(
            pipeline=pipeline_name,
            model_name=model_name,
            model_version=model_version,
            shadow=bool(shadow),
            present=bool(present),
            created_at=aware(newest),
            decision=decision,
            sampled=bool(in_sample),
            verdicts=int(verdicts_given),
            agreed=int(agreed),
            count=int(count),
        )
        for (
            pipeline_name,
            model_name,
            model_version,
            shadow,
            present,
            decision,
            in_sample,
            newest,
            count,
            verdicts_given,
            agreed,
        ) in session.connection().execute(statement)
    ]


def paired_calls(
    *,
    session: Session,
    since: datetime,
    until: datetime,
    pipeline: str | None = None,
    model: str | None = None,
) -> list[PairTally]:
    """Shadow calls of the period against the active calls on the same studies, counted.

    Per study, pipeline, finding code and model, the newest current active call is paired with
    the newest current call of each shadow version (a study read again counts once, as its
    radiologist saw it once); the pairs are counted per active and shadow version.
    """
    calls = select(
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
    ).join(Job, Job.id == FindingRow.job_id)
    calls = calls.where(
        FindingRow.status == "current",
        FindingRow.created_at >= since,
        FindingRow.created_at < until,
    )
    if pipeline:
        calls = calls.where(Job.pipeline == pipeline)
    if model:
        calls = calls.where(FindingRow.model_name == model)
    found = calls.subquery()
    same_call = (
        found.c.study_instance_uid,
        found.c.pipeline,
        found.c.code_scheme,
        found.c.code_value,
        found.c.model_name,
    )
    newest = (found.c.created_at.desc(), found.c.id.desc())
    # One pass of window functions, no self-join: within a study's calls of one code and
    # model, active calls sort first (false before true), newest first, so the first row is
    # the active call to compare with, if the study has one.
    active_first = (found.c.shadow.asc(), *newest)

    def first(column: Any) -> Any:
        return func.first_value(column).over(partition_by=same_call, order_by=active_first)

    ranked = select(
        found.c.pipeline,
        found.c.model_name,
        found.c.model_version,
        found.c.shadow,
        found.c.present,
        found.c.probability,
        first(found.c.shadow).label("lead_shadow"),
        first(found.c.model_version).label("active_version"),
        first(found.c.present).label("active_present"),
        first(found.c.probability).label("active_probability"),
        func.row_number()
        .over(partition_by=(*same_call, found.c.model_version), order_by=newest)
        .label("rank"),
    ).subquery()
    shadow_present, active_present = ranked.c.present, ranked.c.active_present
    counted = {
        "both": and_(active_present.is_(True), shadow_present.is_(True)),
        "neither": and_(active_present.is_(False), shadow_present.is_(False)),
        "shadow_only": and_(active_present.is_(False), shadow_present.is_(True)),
        "active_only": and_(active_present.is_(True), shadow_present.is_(False)),
    }
    keys = (ranked.c.pipeline, ranked.c.model_name, ranked.c.active_version, ranked.c.model_version)
    statement = (
        select(
            *keys,
            func.count(),
            *(func.sum(case((condition, 1), else_=0)) for condition in counted.values()),
            func.sum(func.abs(ranked.c.probability - ranked.c.active_probability)),
        )
        .where(
            ranked.c.shadow.is_(True),
            ranked.c.rank == 1,
            ranked.c.lead_shadow.is_(False),
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    return [
        PairTally(
            pipeline=row[0],
            model_name=row[1],
            active_version=row[2],
            shadow_version=row[3],
            studies=int(row[4]),
            both_positive=int(row[5]),
            both_negative=int(row[6]),
            shadow_only=int(row[7]),
            active_only=int(row[8]),
            abs_probability_difference=float(row[9]),
        )
        for row in session.connection().execute(statement)
    ]
