"""The table of QA reviews: what a reviewer decided about one AI finding, append-only.

A finding is never reviewed in place. A second opinion, or a change of mind, is a new row that
names the row it follows (``supersedes``); the latest row of a finding is the one the
statistics count, and every earlier one stays as the finding's history. Two reviewers who
answer at once thus both keep their review: the one written last becomes the latest, and
the history shows both.

The statistics select findings by the time they were made, and the queue looks up a study's
current findings; the indexes for both are declared here, by the part that needs them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from pacs_ai.archive.db import Base
from pacs_ai.archive.schema import utcnow
from pacs_ai.pipeline.schema import FindingRow


class Decision(StrEnum):
    """A reviewer's verdict on a model's call."""

    ACCEPT = "accept"
    """The call is right (a true positive, or a true negative)."""
    REJECT = "reject"
    """The call is wrong (a false positive, or a missed finding)."""
    CORRECT = "correct"
    """The finding is there, but its location, size or severity is wrong (positives only)."""


_DECISIONS = ", ".join(f"'{decision.value}'" for decision in Decision)


class FindingReview(Base):
    """One review of one AI finding."""

    __tablename__ = "finding_review"
    __table_args__ = (
        CheckConstraint(f"decision IN ({_DECISIONS})", name="ck_finding_review_decision"),
        Index("ix_finding_review_finding", "finding_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("finding.id"))
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(String(2048), default="")
    corrected_location: Mapped[str] = mapped_column(String(64), default="")
    corrected_volume_ml: Mapped[float | None] = mapped_column(Float, nullable=True)
    corrected_severity: Mapped[str] = mapped_column(String(16), default="")
    supersedes: Mapped[int | None] = mapped_column(ForeignKey("finding_review.id"), nullable=True)
    """The finding's latest review when this one was written (None for the first)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


FINDING_TIME_INDEX = Index("ix_finding_created_at", FindingRow.created_at)
"""When findings were made: statistics select a period on it."""

FINDING_STUDY_INDEX = Index(
    "ix_finding_study_status", FindingRow.study_instance_uid, FindingRow.status
)
"""The current findings of one study: the queue compares shadow and active calls on it.

Without it SQLite, which keeps no statistics, looks a study's findings up by status alone
and reads every current finding for each one it checks.
"""
