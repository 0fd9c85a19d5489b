"""The reading worklist: unread studies ranked by the triage score, and who reads which.

Ranking
-------
:func:`load_open` gathers what :func:`pacs_ai.triage.score.score` needs in three compact
queries, whatever the number of studies: the studies with their patient and reading state,
the modalities and body parts of their series, and the findings that count. The order is
:func:`pacs_ai.triage.score.rank`'s, the one the reading-room simulation evaluates.

Scoring 5,000 studies costs about 40 ms of Python on a small machine: too much to pay on
every request. :class:`RankedWorklist` keeps the last ranking and ranks again when findings
or studies arrive (the app's background task, :mod:`pacs_ai.api.events`, tells it) or when it
is ``worklist_refresh_s`` old, so that waiting times age the order. A request overlays the
reading state of the few studies whose claims changed since (:func:`recent_states`): a claim
shows at once, on every server sharing the database.

Which findings count
--------------------
Status ``current`` (a superseded run does not), not from a shadow run, and from a model
version that is not registered as shadow or inactive *now* (a version demoted after its run
stops moving the worklist at once). Present findings with a severity move the score (see
:mod:`pacs_ai.triage.score`); every finding that counts is shown as a badge (``ICH 0.93``).
Shadow findings never reach the worklist, its badges or the study page: they are for QA.

Reading actions (claims, release, marking read) are in
:mod:`pacs_ai.triage.worklist_reading`.

Patient setting
---------------
The emergency / inpatient / outpatient setting is not indexed by the archive; the worklist's
background task reads it once from the study's first instance (see
:mod:`pacs_ai.triage.worklist_dicom`) and keeps it on the study's entry.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Patient, Series, Study, aware, utcnow
from pacs_ai.config import Settings
from pacs_ai.pipeline.schema import FindingRow
from pacs_ai.registry.schema import ModelState, ModelVersion
from pacs_ai.triage.schema import ReadingStatus, WorklistEntry
from pacs_ai.triage.score import (
    Category,
    OrderPriority,
    PatientSetting,
    ScoreBreakdown,
    StudyFacts,
    TriagePolicy,
    findings_from_records,
    rank,
    score,
)

#: Modalities of objects made from images (reports, segmentations, presentation states, key
#: object selections): a study is listed by the modalities of its images.
DERIVED_MODALITIES = frozenset({"SR", "SEG", "PR", "KO"})
#: The read list shows the most recent reads, at most this many.
READ_HISTORY_MAX = 1000
#: Claims changed this long before a ranking was computed are overlaid too: a transaction
#: stamps its time before it commits, and servers sharing the database have their own clocks.
OVERLAY_MARGIN = timedelta(seconds=10)

AnySelect = Select[*tuple[Any, ...]]


class WorklistError(Exception):
    """A worklist action that cannot be done; the message says why."""


class StudyNotFound(WorklistError):
    """No study with that Study Instance UID is in the archive."""


@dataclass(frozen=True, slots=True)
class ReadingState:
    """Where a study is in reading, and who holds or read it."""

    status: ReadingStatus
    reader: str | None = None
    claimed_at: datetime | None = None
    read_at: datetime | None = None


UNREAD = ReadingState(ReadingStatus.UNREAD)


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """One finding row as the worklist reads it (a :class:`~pacs_ai.triage.score.FindingRecord`)."""

    id: int
    job_id: int
    study_instance_uid: str
    model_name: str
    model_version: str
    code_scheme: str
    code_value: str
    code_meaning: str
    severity: str
    probability: float
    present: bool
    shadow: bool
    status: str
    volume_ml: float | None
    location: str

    @property
    def code(self) -> str:
        """``SCHEME:VALUE``, as the triage tables and labels key findings."""
        return f"{self.code_scheme}:{self.code_value}"


@dataclass(frozen=True, slots=True)
class Badge:
    """An AI finding as the worklist shows it beside a study."""

    finding_id: int
    code: str
    label: str
    probability: float
    present: bool
    severity: str
    model: str

    @property
    def text(self) -> str:
        """What the badge reads, e.g. ``ICH 0.93``."""
        return f"{self.label} {self.probability:.2f}"


@dataclass(frozen=True, slots=True)
class WorklistStudy:
    """What the worklist knows of one study: display columns, score facts, reading state."""

    study_pk: int
    study_uid: str
    patient_id: str
    patient_name: str
    accession_number: str
    description: str
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    badges: tuple[Badge, ...]
    findings: tuple[StoredFinding, ...]
    facts: StudyFacts
    state: ReadingState


@dataclass(frozen=True, slots=True)
class WorklistItem:
    """A ranked study: its score and why, and its reading state now."""

    study: WorklistStudy
    breakdown: ScoreBreakdown
    state: ReadingState


@dataclass(frozen=True)
class Ranking:
    """The open studies in reading order, as computed at ``computed_at``.

    ``started`` is when loading began (``time.monotonic``): whatever was committed before it
    is in the ranking.
    """

    items: tuple[WorklistItem, ...]
    computed_at: datetime
    started: float


@dataclass(frozen=True)
class WorklistFilter:
    """What a reader narrows the worklist to; empty fields select everything.

    ``status`` None selects the open studies (unread and in progress).
    """

    modality: str | None = None
    body_part: str | None = None
    status: ReadingStatus | None = None
    reader: str | None = None
    critical_only: bool = False

    def accepts(self, item: WorklistItem) -> bool:
        """Whether ``item`` passes every filter (modality and body part ignore case)."""
        study = item.study
        if self.modality and self.modality.upper() not in study.modalities:
            return False
        if self.body_part and self.body_part.upper() not in study.body_parts:
            return False
        if self.status is None:
            if item.state.status is ReadingStatus.READ:
                return False
        elif item.state.status is not self.status:
            return False
        if self.reader and item.state.reader != self.reader:
            return False
        return not self.critical_only or item.breakdown.category is Category.CRITICAL


@dataclass(frozen=True)
class WorklistPage:
    """One page of the filtered worklist and how many items match in all."""

    items: list[WorklistItem]
    total: int
    computed_at: datetime


def _aware_or_none(value: datetime | None) -> datetime | None:
    return aware(value) if value is not None else None


def reading_state(status: str | None, reader: str | None, claimed: Any, read: Any) -> ReadingState:
    """The reading state an entry's columns hold; a study without an entry is unread."""
    if status is None or status == ReadingStatus.UNREAD.value:
        return UNREAD
    return ReadingState(
        ReadingStatus(status), reader, _aware_or_none(claimed), _aware_or_none(read)
    )


def counted_findings() -> AnySelect:
    """Current findings of active model versions, not shadow runs (the ones that count)."""
    return (
        select(
            FindingRow.id,
            FindingRow.job_id,
            FindingRow.study_instance_uid,
            FindingRow.model_name,
            FindingRow.model_version,
            FindingRow.code_scheme,
            FindingRow.code_value,
            FindingRow.code_meaning,
            FindingRow.severity,
            FindingRow.probability,
            FindingRow.present,
            FindingRow.shadow,
            FindingRow.status,
            FindingRow.volume_ml,
            FindingRow.location,
        )
        .outerjoin(
            ModelVersion,
            and_(
                ModelVersion.name == FindingRow.model_name,
                ModelVersion.version == FindingRow.model_version,
            ),
        )
        .where(
            FindingRow.status == "current",
            FindingRow.shadow.is_(False),
            or_(ModelVersion.id.is_(None), ModelVersion.state == ModelState.ACTIVE.value),
        )
    )


def _studies() -> AnySelect:
    return (
        select(
            Study.id,
            Study.study_instance_uid,
            Study.accession_number,
            Study.study_description,
            Study.requested_procedure_priority,
            Study.created_at,
            Patient.patient_id,
            Patient.patient_name,
            WorklistEntry.status,
            WorklistEntry.reader,
            WorklistEntry.claimed_at,
            WorklistEntry.read_at,
            WorklistEntry.patient_setting,
        )
        .join(Patient, Patient.id == Study.patient_pk)
        .outerjoin(WorklistEntry, WorklistEntry.study_pk == Study.id)
    )


def _load(session: Session, statement: AnySelect, labels: Mapping[str, str]) -> list[WorklistStudy]:
    """The studies ``statement`` selects, with their series and counted findings.

    Three queries whatever the number of studies; the second and third select on the first's
    study keys as a subquery, so no key list travels to the database.
    """
    rows = session.execute(statement).all()
    if not rows:
        return []
    keys = statement.with_only_columns(Study.id, Study.study_instance_uid).subquery()
    series: dict[int, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for study_pk, modality, body_part in session.execute(
        select(Series.study_pk, Series.modality, Series.body_part_examined)
        .where(Series.study_pk.in_(select(keys.c.id)))
        .distinct()
    ):
        modalities, body_parts = series[study_pk]
        if modality:
            modalities.add(modality.upper())
        if body_part:
            body_parts.add(body_part.upper())
    findings: dict[str, list[StoredFinding]] = defaultdict(list)
    for row in session.execute(
        counted_findings()
        .where(FindingRow.study_instance_uid.in_(select(keys.c.study_instance_uid)))
        .order_by(FindingRow.id)
    ):
        findings[row.study_instance_uid].append(StoredFinding(*row))
    none: tuple[set[str], set[str]] = (set(), set())
    return [
        _study(row, series.get(row.id, none), findings.get(row.study_instance_uid, []), labels)
        for row in rows
    ]


@lru_cache(maxsize=256)
def _order_priority(value: str) -> OrderPriority | None:
    return OrderPriority.parse(value)


@lru_cache(maxsize=16)
def _patient_setting(value: str) -> PatientSetting | None:
    return PatientSetting.parse(value or None)


def _study(
    row: Any,
    series: tuple[set[str], set[str]],
    findings: Sequence[StoredFinding],
    labels: Mapping[str, str],
) -> WorklistStudy:
    all_modalities, body_parts = series
    images = sorted(all_modalities - DERIVED_MODALITIES)
    badges = tuple(
        Badge(
            finding_id=f.id,
            code=f.code,
            label=labels.get(f.code, f.code_meaning),
            probability=f.probability,
            present=f.present,
            severity=f.severity,
            model=f"{f.model_name} {f.model_version}",
        )
        for f in findings
    )
    return WorklistStudy(
        study_pk=row.id,
        study_uid=row.study_instance_uid,
        patient_id=row.patient_id,
        patient_name=row.patient_name,
        accession_number=row.accession_number,
        description=row.study_description,
        modalities=tuple(images or sorted(all_modalities)),
        body_parts=tuple(sorted(body_parts)),
        badges=badges,
        findings=tuple(findings),
        facts=StudyFacts(
            study_uid=row.study_instance_uid,
            arrived_at=aware(row.created_at),
            order_priority=_order_priority(row.requested_procedure_priority),
            patient_setting=_patient_setting(row.patient_setting or ""),
            findings=findings_from_records(findings, labels) if findings else (),
        ),
        state=reading_state(row.status, row.reader, row.claimed_at, row.read_at),
    )


def _horizon(now: datetime, horizon_days: float) -> list[Any]:
    if horizon_days <= 0:
        return []
    return [Study.created_at >= now - timedelta(days=horizon_days)]


def load_open(
    *, session: Session, now: datetime, horizon_days: float, labels: Mapping[str, str]
) -> list[WorklistStudy]:
    """Every study not yet read that arrived within the horizon."""
    statement = _studies().where(
        or_(WorklistEntry.status.is_(None), WorklistEntry.status != ReadingStatus.READ.value),
        *_horizon(now, horizon_days),
    )
    return _load(session, statement, labels)


def load_read(
    *, session: Session, now: datetime, horizon_days: float, labels: Mapping[str, str]
) -> list[WorklistStudy]:
    """The most recently read studies (at most :data:`READ_HISTORY_MAX`), latest first."""
    statement = (
        _studies()
        .where(WorklistEntry.status == ReadingStatus.READ.value, *_horizon(now, horizon_days))
        .order_by(WorklistEntry.read_at.desc(), Study.id.desc())
        .limit(READ_HISTORY_MAX)
    )
    return _load(session, statement, labels)


def get_by_uid(
    *, session: Session, study_uid: str, labels: Mapping[str, str]
) -> WorklistStudy | None:
    """One study whatever its state or age, or None when it is not in the archive."""
    found = _load(session, _studies().where(Study.study_instance_uid == study_uid), labels)
    return found[0] if found else None


def get_by_uid_or_raise(
    *, session: Session, study_uid: str, labels: Mapping[str, str]
) -> WorklistStudy:
    """One study whatever its state or age; :class:`StudyNotFound` when it is not there."""
    study = get_by_uid(session=session, study_uid=study_uid, labels=labels)
    if study is None:
        raise StudyNotFound(f"no study {study_uid} in the archive")
    return study


def score_study(study: WorklistStudy, *, now: datetime, policy: TriagePolicy) -> ScoreBreakdown:
    """The study's score now, or as it stood when it was read."""
    at = study.state.read_at if study.state.read_at is not None else now
    return score(study.facts, now=at, policy=policy)


def rank_studies(
    studies: Iterable[WorklistStudy], *, now: datetime, policy: TriagePolicy
) -> list[WorklistItem]:
    """``studies`` in reading order (:func:`pacs_ai.triage.score.rank`)."""
    by_uid = {study.study_uid: study for study in studies}
    return [
        WorklistItem(by_uid[b.study_uid], b, by_uid[b.study_uid].state)
        for b in rank((s.facts for s in by_uid.values()), now=now, policy=policy)
    ]


def recent_states(*, session: Session, since: datetime) -> dict[int, ReadingState]:
    """Reading states of studies in progress or changed since ``since``, by study key."""
    rows = session.execute(
        select(
            WorklistEntry.study_pk,
            WorklistEntry.status,
            WorklistEntry.reader,
            WorklistEntry.claimed_at,
            WorklistEntry.read_at,
        ).where(
            or_(
                WorklistEntry.status == ReadingStatus.IN_PROGRESS.value,
                WorklistEntry.updated_at >= since,
            )
        )
    )
    return {
        pk: reading_state(status, reader, claimed, read)
        for pk, status, reader, claimed, read in rows
    }


def select_page(
    items: Iterable[WorklistItem],
    *,
    filters: WorklistFilter,
    limit: int,
    offset: int,
    computed_at: datetime,
    states: Mapping[int, ReadingState] | None = None,
) -> WorklistPage:
    """The page of ``items`` that passes ``filters``, with ``states`` overlaid first."""
    overlay = states or {}
    matching = []
    for item in items:
        state = overlay.get(item.study.study_pk)
        current = item if state is None else WorklistItem(item.study, item.breakdown, state)
        if filters.accepts(current):
            matching.append(current)
    return WorklistPage(matching[offset : offset + limit], len(matching), computed_at)


class RankedWorklist:
    """The last ranking of the open studies, ranked again when stale; one per app.

    Parameters
    ----------
    database
        Where studies and findings are read.
    settings
        Triage policy (``triage_*``), horizon, labels and refresh interval.
    clock
        The current time (tests move it).
    """

    def __init__(
        self, database: Database, settings: Settings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.database = database
        self.policy = TriagePolicy.from_settings(settings)
        self.horizon_days = settings.worklist_horizon_days
        self.labels = dict(settings.worklist_finding_labels)
        self.refresh_s = settings.worklist_refresh_s
        self.clock = clock
        self._lock = threading.Lock()
        self._ranking: Ranking | None = None

    def age_s(self) -> float:
        """Seconds since the last ranking (infinite before the first)."""
        ranking = self._ranking
        return time.monotonic() - ranking.started if ranking is not None else float("inf")

    def current(self) -> Ranking:
        """The last ranking; ranked again here when the background task has not kept it fresh."""
        ranking = self._ranking
        if ranking is None or self.age_s() > 2 * self.refresh_s:
            return self.refresh()
        return ranking

    def refresh(self) -> Ranking:
        """Load and rank the open studies now; callers waiting meanwhile share the result.

        A ranking that began loading after this call began is as good as a new one; one that
        began before may miss what the caller knows was committed, so it is computed again.
        """
        asked = time.monotonic()
        with self._lock:
            ranking = self._ranking
            if ranking is not None and ranking.started >= asked:
                return ranking
            started = time.monotonic()
            now = self.clock()
            with self.database.sessions() as session:
                studies = load_open(
                    session=session, now=now, horizon_days=self.horizon_days, labels=self.labels
                )
            ranking = Ranking(
                items=tuple(rank_studies(studies, now=now, policy=self.policy)),
                computed_at=now,
                started=started,
            )
            self._ranking = ranking
            return ranking

    def page(self, *, filters: WorklistFilter, limit: int, offset: int) -> WorklistPage:
        """A page of the worklist as ``filters`` select it, with reading states current."""
        if filters.status is ReadingStatus.READ:
            now = self.clock()
            with self.database.sessions() as session:
                studies = load_read(
                    session=session, now=now, horizon_days=self.horizon_days, labels=self.labels
                )
            items = [
                WorklistItem(s, score_study(s, now=now, policy=self.policy), s.state)
                for s in studies
            ]
            return select_page(items, filters=filters, limit=limit, offset=offset, computed_at=now)
        ranking = self.current()
        with self.database.sessions() as session:
            states = recent_states(session=session, since=ranking.computed_at - OVERLAY_MARGIN)
        return select_page(
            ranking.items,
            filters=filters,
            limit=limit,
            offset=offset,
            computed_at=ranking.computed_at,
            states=states,
        )


@dataclass(frozen=True)
class Marks:
    """The newest finding and study keys: what the background task compares tick to tick."""

    finding_id: int
    study_id: int


def marks(*, session: Session) -> Marks:
    """The largest finding and study keys (two index lookups)."""
    finding_id, study_id = session.execute(
        select(
            select(func.max(FindingRow.id)).scalar_subquery(),
            select(func.max(Study.id)).scalar_subquery(),
        )
    ).one()
    return Marks(finding_id or 0, study_id or 0)


def studies_with_findings_after(*, session: Session, finding_id: int) -> list[str]:
    """Study UIDs with a finding newer than ``finding_id`` that counts (shadow runs do not)."""
    return list(
        session.execute(
            counted_findings()
            .with_only_columns(FindingRow.study_instance_uid)
            .where(FindingRow.id > finding_id)
            .distinct()
        ).scalars()
    )


def studies_after(*, session: Session, study_id: int) -> list[str]:
    """Study UIDs of studies newer than ``study_id``, oldest first."""
    return list(
        session.execute(
            select(Study.study_instance_uid).where(Study.id > study_id).order_by(Study.id)
        ).scalars()
    )
