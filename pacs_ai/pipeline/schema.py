"""Tables of the pipeline: jobs (the durable queue), routing marks, and findings.

Everything that must survive a restart lives here, in the database shared by every server:
which study content was routed, which jobs exist and who holds their lease, and what each
model found.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pacs_ai.archive.db import Base
from pacs_ai.archive.schema import utcnow


class StudyRoute(Base):
    """The study content (by its last change) that routing has turned into a pipeline's jobs."""

    __tablename__ = "pipeline_study_route"

    study_pk: Mapped[int] = mapped_column(
        ForeignKey("study.id", ondelete="CASCADE"), primary_key=True
    )
    pipeline: Mapped[str] = mapped_column(String(64), primary_key=True)
    routed_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    routed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """One run of one pipeline version over one version of a study's content."""

    __tablename__ = "pipeline_job"
    __table_args__ = (
        UniqueConstraint(
            "study_instance_uid",
            "pipeline",
            "pipeline_version",
            "model_version",
            "content_key",
            name="uq_job",
        ),
        Index("ix_job_claim", "state", "priority", "queued_at"),
        # Per-version operations (jobs, failures, latency) on the models page.
        Index("ix_job_model_state", "model_name", "model_version", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    pipeline: Mapped[str] = mapped_column(String(64))
    pipeline_version: Mapped[int] = mapped_column(Integer)
    content_key: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    priority: Mapped[int] = mapped_column(Integer, default=2)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    error: Mapped[str] = mapped_column(Text, default="")
    placement: Mapped[str] = mapped_column(String(64), default="")
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    result_sop_uids: Mapped[str] = mapped_column(Text, default="")
    last_instance_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stable_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    inferred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FindingRow(Base):
    """What a model said about a study: kept as rows for the worklist and QA."""

    __tablename__ = "finding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("pipeline_job.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    code_scheme: Mapped[str] = mapped_column(String(16))
    code_value: Mapped[str] = mapped_column(String(64))
    code_meaning: Mapped[str] = mapped_column(String(64))
    present: Mapped[bool] = mapped_column(Boolean)
    probability: Mapped[float] = mapped_column(Float)
    volume_ml: Mapped[float | None] = mapped_column(Float, nullable=True)
    location: Mapped[str] = mapped_column(String(64), default="")
    severity: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[str] = mapped_column(String(16), default="current", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
