"""Reading a study: claim it, give it back, mark it read with a verdict on each AI finding.

A study is read by one radiologist at a time. :func:`claim` is one conditional ``UPDATE ...
WHERE reader IS NULL OR reader = :me`` whose row count says who won: on SQLite writers take
turns (``BEGIN IMMEDIATE``), on PostgreSQL a second writer waits for the first's row lock and
re-checks the condition on the committed row (READ COMMITTED), so two concurrent claims can
never both succeed. :func:`mark_read` stores the reader's verdict on each AI finding shown
(:class:`~pacs_ai.triage.schema.FindingAgreement`): the reference QA compares model versions
against.

Each function runs inside the caller's write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pacs_ai.archive.schema import Patient, Study
from pacs_ai.pipeline.schema import FindingRow
from pacs_ai.triage.schema import FindingAgreement, ReadingStatus, WorklistEntry
from pacs_ai.triage.worklist import (
    UNREAD,
    ReadingState,
    StudyNotFound,
    WorklistError,
    counted_findings,
    reading_state,
)


class ReadingConflict(WorklistError):
    """The study's reading state forbids the action (held by another reader, already read)."""

    def __init__(self, reason: str, state: ReadingState) -> None:
        super().__init__(reason)
        self.state = state


class InvalidVerdict(WorklistError):
    """A verdict names a finding that the study page did not show."""


@dataclass(frozen=True)
class Verdict:
    """A reader's agreement with one AI finding, given when marking the study read."""

    finding_id: int
    agrees: bool
    comment: str = ""


@dataclass(frozen=True)
class Changed:
    """A reading action done: whose study it was, and the state it left."""

    study_uid: str
    patient_id: str
    state: ReadingState


def _study_keys(session: Session, study_uid: str) -> tuple[int, str]:
    found = session.execute(
        select(Study.id, Patient.patient_id)
        .join(Patient, Patient.id == Study.patient_pk)
        .where(Study.study_instance_uid == study_uid)
    ).first()
    if found is None:
        raise StudyNotFound(f"no study {study_uid} in the archive")
    return found[0], found[1]


def ensure_entries(*, session: Session, study_pks: Sequence[int], now: datetime) -> None:
    """Add an unread entry for each study that has none; existing entries are left alone.

    ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent insert of the same study (a claim
    beside the background task) waits for the other and then does nothing.
    """
    if not study_pks:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {
            "study_pk": pk,
            "status": ReadingStatus.UNREAD.value,
            "reader": None,
            "patient_setting": "",
            "setting_checked": False,
            "created_at": now,
            "updated_at": now,
        }
        for pk in study_pks
    ]
    session.execute(insert(WorklistEntry).on_conflict_do_nothing(index_elements=["study_pk"]), rows)


def _entry_state(session: Session, study_pk: int) -> ReadingState:
    row = session.execute(
        select(
            WorklistEntry.status,
            WorklistEntry.reader,
            WorklistEntry.claimed_at,
            WorklistEntry.read_at,
        ).where(WorklistEntry.study_pk == study_pk)
    ).first()
    return reading_state(*row) if row is not None else UNREAD


def _conflict(state: ReadingState, action: str) -> ReadingConflict:
    if state.status is ReadingStatus.READ:
        reason = f"cannot {action}: the study was already read by {state.reader}"
    elif state.status is ReadingStatus.IN_PROGRESS:
        reason = f"cannot {action}: the study is being read by {state.reader}"
    else:
        reason = f"cannot {action}: nobody is reading the study"
    return ReadingConflict(reason, state)


def _update(session: Session, study_pk: int, *where: Any, **values: Any) -> bool:
    """One conditional update of a study's entry; True when it applied."""
    result = session.execute(
        update(WorklistEntry)
        .where(WorklistEntry.study_pk == study_pk, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def claim(*, session: Session, study_uid: str, reader: str, now: datetime) -> Changed:
    """Take the study for ``reader``; claiming one's own study again is a no-op.

    Raises :class:`ReadingConflict` when another reader holds it or it was read.
    """
    study_pk, patient_id = _study_keys(session, study_uid)
    ensure_entries(session=session, study_pks=[study_pk], now=now)
    claimed = _update(
        session,
        study_pk,
        WorklistEntry.status != ReadingStatus.READ.value,
        or_(WorklistEntry.reader.is_(None), WorklistEntry.reader == reader),
        status=ReadingStatus.IN_PROGRESS.value,
        reader=reader,
        claimed_at=case((WorklistEntry.reader.is_(None), now), else_=WorklistEntry.claimed_at),
        updated_at=now,
    )
    state = _entry_state(session, study_pk)
    if not claimed:
        raise _conflict(state, "claim")
    return Changed(study_uid, patient_id, state)


def release(
    *, session: Session, study_uid: str, reader: str, now: datetime, override: bool = False
) -> Changed:
    """Give the study back to the worklist; ``override`` releases another reader's claim.

    Raises :class:`ReadingConflict` when the study is not in progress (for ``reader``).
    """
    study_pk, patient_id = _study_keys(session, study_uid)
    held = [] if override else [WorklistEntry.reader == reader]
    released = _update(
        session,
        study_pk,
        WorklistEntry.status == ReadingStatus.IN_PROGRESS.value,
        *held,
        status=ReadingStatus.UNREAD.value,
        reader=None,
        claimed_at=None,
        updated_at=now,
    )
    state = _entry_state(session, study_pk)
    if not released:
        raise _conflict(state, "release")
    return Changed(study_uid, patient_id, UNREAD)


def _check_verdicts(session: Session, study_uid: str, verdicts: Sequence[Verdict]) -> None:
    ids = [verdict.finding_id for verdict in verdicts]
    if len(set(ids)) != len(ids):
        raise InvalidVerdict("one verdict per finding")
    if not ids:
        return
    shown = set(
        session.execute(
            counted_findings()
            .with_only_columns(FindingRow.id)
            .where(FindingRow.id.in_(ids), FindingRow.study_instance_uid == study_uid)
        ).scalars()
    )
    unknown = sorted(set(ids) - shown)
    if unknown:
        raise InvalidVerdict(f"findings {unknown} are not current AI findings of this study")


def mark_read(
    *,
    session: Session,
    study_uid: str,
    reader: str,
    verdicts: Sequence[Verdict],
    now: datetime,
) -> Changed:
    """Record that ``reader`` read the study, with their verdict on each AI finding given.

    The study must be held by ``reader`` or by nobody (reading an unclaimed study claims it
    in the same update). Raises :class:`ReadingConflict` otherwise and
    :class:`InvalidVerdict` for a verdict on a finding the study page does not show.
    """
    study_pk, patient_id = _study_keys(session, study_uid)
    _check_verdicts(session, study_uid, verdicts)
    ensure_entries(session=session, study_pks=[study_pk], now=now)
    done = _update(
        session,
        study_pk,
        WorklistEntry.status != ReadingStatus.READ.value,
        or_(WorklistEntry.reader.is_(None), WorklistEntry.reader == reader),
        status=ReadingStatus.READ.value,
        reader=reader,
        claimed_at=func.coalesce(WorklistEntry.claimed_at, now),
        read_at=now,
        updated_at=now,
    )
    state = _entry_state(session, study_pk)
    if not done:
        raise _conflict(state, "mark read")
    session.add_all(
        FindingAgreement(
            finding_id=verdict.finding_id,
            study_instance_uid=study_uid,
            reader=reader,
            agrees=verdict.agrees,
            comment=verdict.comment,
            created_at=now,
        )
        for verdict in verdicts
    )
    return Changed(study_uid, patient_id, state)


def agreements(*, session: Session, study_uid: str) -> list[FindingAgreement]:
    """The verdicts given on the study's findings, in the order they were given."""
    return list(
        session.execute(
            select(FindingAgreement)
            .where(FindingAgreement.study_instance_uid == study_uid)
            .order_by(FindingAgreement.id)
        ).scalars()
    )
