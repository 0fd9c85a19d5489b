"""The durable, urgency-aware job queue, in the database every server shares.

Jobs are claimed with a lease that the dispatcher renews while the job runs; a server that
dies stops renewing, its leases expire, and another dispatcher (or the same one after a
restart) claims the jobs again. On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so
that several dispatchers never take the same job; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from pacs_ai.pipeline.schema import Job


class JobState(StrEnum):
    """Where a job is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class QueueError(ValueError):
    """A queue operation that cannot be done (unknown job, wrong state)."""


URGENT_PRIORITIES = {"STAT", "EMERGENCY", "ASAP"}


def priority_for(*, order_priority: str, urgent_pipeline: bool) -> int:
    """0 for STAT/emergency orders and urgent pipelines, 1 for HIGH orders, else 2.

    RequestedProcedurePriority (0040,1003) takes STAT, HIGH, ROUTINE, MEDIUM, LOW.
    """
    value = order_priority.strip().upper()
    if urgent_pipeline or value in URGENT_PRIORITIES:
        return 0
    if value == "HIGH":
        return 1
    return 2


def enqueue(*, session: Session, values: dict[str, Any]) -> bool:
    """Add a job unless one exists for the same study content, pipeline and model version."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    inserted = session.execute(
        insert(Job).values(**values).on_conflict_do_nothing().returning(Job.id)
    ).scalar()
    return inserted is not None


def claim(
    *, session: Session, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Job]:
    """Take up to ``limit`` runnable jobs, most urgent then oldest first, under a lease.

    Runnable: pending and due, or running under a lease that expired (its server died).
    """
    claimable = or_(
        and_(Job.state == JobState.PENDING, Job.not_before <= now),
        and_(Job.state == JobState.RUNNING, Job.lease_expires_at < now),
    )
    statement = select(Job).where(claimable).order_by(Job.priority, Job.queued_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    jobs = list(session.execute(statement).scalars())
    for job in jobs:
        job.state = JobState.RUNNING
        job.lease_owner = owner
        job.lease_expires_at = now + lease
        job.attempts += 1
        job.started_at = now
        job.error = ""
    session.flush()
    return jobs


def renew(
    *, session: Session, owner: str, job_ids: Sequence[int], now: datetime, lease: timedelta
) -> None:
    """Heartbeat: extend the leases this owner holds."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.lease_owner == owner, Job.state == JobState.RUNNING)
            .values(lease_expires_at=now + lease)
        )


def _held(session: Session, job_id: int, owner: str) -> Job:
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.lease_owner != owner or job.state != JobState.RUNNING:
        raise QueueError(f"job {job_id} is not held by {owner}")
    return job


def complete(*, session: Session, job_id: int, owner: str, now: datetime) -> Job:
    """Mark a held job done."""
    job = _held(session, job_id, owner)
    job.state = JobState.DONE
    job.finished_at = now
    job.lease_owner = None
    job.lease_expires_at = None
    return job


def fail(
    *,
    session: Session,
    job_id: int,
    owner: str,
    error: str,
    now: datetime,
    max_attempts: int,
    backoff: timedelta,
    retryable: bool = True,
) -> Job:
    """Record a failed attempt: back to pending after an exponential backoff, or failed."""
    job = _held(session, job_id, owner)
    job.error = error[:4000]
    job.lease_owner = None
    job.lease_expires_at = None
    if retryable and job.attempts < max_attempts:
        job.state = JobState.PENDING
        job.not_before = now + backoff * (2 ** (job.attempts - 1))
    else:
        job.state = JobState.FAILED
        job.finished_at = now
    return job


def retry(*, session: Session, job_id: int, now: datetime) -> Job:
    """Put a failed job back in the queue (``pacs-ai jobs retry``)."""
    job = session.get(Job, job_id)
    if job is None:
        raise QueueError(f"no job {job_id}")
    if job.state != JobState.FAILED:
        raise QueueError(f"job {job_id} is {job.state}, only failed jobs can be retried")
    job.state = JobState.PENDING
    job.attempts = 0
    job.not_before = now
    job.error = ""
    return job


def depth(*, session: Session) -> dict[str, int]:
    """Jobs per state (for metrics and ``pacs-ai jobs list``)."""
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
    return {state: count for state, count in rows}
