"""Tables of the reading worklist: who reads which study, and what readers said of the AI.

``worklist_entry`` holds one row per study that the worklist has seen: its reading status, the
radiologist holding or having read it, and the patient setting read once from the study's
first instance (so that ranking never opens a file). A study without a row is unread; rows
are added by the worklist's background task and by the first claim, whichever comes first.

``finding_agreement`` holds, for each AI finding a radiologist saw when marking a study read,
whether they agreed: the reference that quality assurance compares model versions against.

The worklist also indexes ``study.created_at`` (the arrival time), which it selects on to
leave old studies off; the index is declared here, by the part that needs it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pacs_ai.archive.db import Base
from pacs_ai.archive.schema import Study, utcnow


class ReadingStatus(StrEnum):
    """Where a study is in reading: nobody on it, one radiologist on it, reported."""

    UNREAD = "unread"
    IN_PROGRESS = "in_progress"
    READ = "read"


_STATUSES = ", ".join(f"'{status.value}'" for status in ReadingStatus)


class WorklistEntry(Base):
    """The reading state of one study; ``reader`` holds the claim, then names who read it.

    ``reader`` is null exactly when the study is unread: a claim is the conditional update
    that sets it where it is null, so two radiologists cannot hold one study.
    """

    __tablename__ = "worklist_entry"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="ck_worklist_entry_status"),
        CheckConstraint("(status = 'unread') = (reader IS NULL)", name="ck_worklist_entry_reader"),
    )

    study_pk: Mapped[int] = mapped_column(
        ForeignKey("study.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default=ReadingStatus.UNREAD.value, index=True)
    reader: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    patient_setting: Mapped[str] = mapped_column(String(16), default="")
    """``emergency``, ``inpatient``, ``outpatient``, or empty when unknown."""
    setting_checked: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether the first instance's header was read for the patient setting."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class FindingAgreement(Base):
    """A radiologist's verdict on one AI finding, given when the study was marked read."""

    __tablename__ = "finding_agreement"
    __table_args__ = (UniqueConstraint("finding_id", "reader", name="uq_finding_agreement"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("finding.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    reader: Mapped[str] = mapped_column(String(64))
    agrees: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


STUDY_ARRIVAL_INDEX = Index("ix_worklist_study_created_at", Study.created_at)
"""Arrival time of studies: the worklist's horizon selects on it."""
