"""The durable job queue on SQLite and PostgreSQL: urgency, leases, backoff, retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import utcnow
from pacs_ai.pipeline import queue
from pacs_ai.pipeline.schema import Job

LEASE = timedelta(seconds=30)


def job_values(study: str, *, priority: int = 2, queued_minutes_ago: float = 0) -> dict[str, Any]:
    at = utcnow() - timedelta(minutes=queued_minutes_ago)
    return {
        "study_instance_uid": study,
        "series_instance_uid": study + ".1",
        "pipeline": "p",
        "pipeline_version": 1,
        "content_key": "1@x",
        "model_name": "m",
        "model_version": "1",
        "priority": priority,
        "last_instance_at": at,
        "stable_at": at,
        "queued_at": at,
        "not_before": at,
    }


def test_priorities() -> None:
    assert queue.priority_for(order_priority="STAT", urgent_pipeline=False) == 0
    assert queue.priority_for(order_priority="routine", urgent_pipeline=True) == 0
    assert queue.priority_for(order_priority="HIGH", urgent_pipeline=False) == 1
    assert queue.priority_for(order_priority="", urgent_pipeline=False) == 2


def test_one_job_per_content_and_urgent_first(database: Database) -> None:
    with database.write_sessions.begin() as session:
        assert queue.enqueue(session=session, values=job_values("1.1", queued_minutes_ago=10))
        assert not queue.enqueue(session=session, values=job_values("1.1", queued_minutes_ago=10))
        queue.enqueue(session=session, values=job_values("1.2", queued_minutes_ago=5))
        queue.enqueue(session=session, values=job_values("1.3", priority=0, queued_minutes_ago=1))
    with database.write_sessions.begin() as session:
        claimed = queue.claim(session=session, owner="a", now=utcnow(), lease=LEASE, limit=3)
        order = [job.study_instance_uid for job in claimed]
    assert order == ["1.3", "1.1", "1.2"]


def test_expired_lease_is_taken_over(database: Database) -> None:
    with database.write_sessions.begin() as session:
        queue.enqueue(session=session, values=job_values("2.1"))
    now = utcnow()
    with database.write_sessions.begin() as session:
        (job,) = queue.claim(session=session, owner="dead", now=now, lease=LEASE, limit=5)
        job_id = job.id
    with database.write_sessions.begin() as session:
        assert (
            queue.claim(
                session=session, owner="b", now=now + timedelta(seconds=10), lease=LEASE, limit=5
            )
            == []
        )
    later = now + LEASE + timedelta(seconds=1)
    with database.write_sessions.begin() as session:
        (taken,) = queue.claim(session=session, owner="b", now=later, lease=LEASE, limit=5)
        assert (taken.id, taken.lease_owner, taken.attempts) == (job_id, "b", 2)
    with database.write_sessions.begin() as session, pytest.raises(queue.QueueError):
        queue.complete(session=session, job_id=job_id, owner="dead", now=later)


def test_renewed_lease_is_not_taken_over(database: Database) -> None:
    with database.write_sessions.begin() as session:
        queue.enqueue(session=session, values=job_values("3.1"))
    now = utcnow()
    with database.write_sessions.begin() as session:
        (job,) = queue.claim(session=session, owner="a", now=now, lease=LEASE, limit=1)
        job_id = job.id
    with database.write_sessions.begin() as session:
        queue.renew(
            session=session,
            owner="a",
            job_ids=[job_id],
            now=now + timedelta(seconds=25),
            lease=LEASE,
        )
    with database.write_sessions.begin() as session:
        assert (
            queue.claim(
                session=session, owner="b", now=now + timedelta(seconds=40), lease=LEASE, limit=1
            )
            == []
        )


def test_failures_back_off_then_fail_and_can_be_retried(database: Database) -> None:
    with database.write_sessions.begin() as session:
        queue.enqueue(session=session, values=job_values("4.1"))
    now = utcnow()
    backoff = timedelta(seconds=10)
    for attempt in range(1, 4):
        with database.write_sessions.begin() as session:
            (job,) = queue.claim(session=session, owner="a", now=now, lease=LEASE, limit=1)
            failed = queue.fail(
                session=session,
                job_id=job.id,
                owner="a",
                error=f"boom {attempt}",
                now=now,
                max_attempts=3,
                backoff=backoff,
            )
            state, not_before = failed.state, failed.not_before
        if attempt < 3:
            assert state == queue.JobState.PENDING
            assert not_before == now + backoff * 2 ** (attempt - 1)
            now = not_before
        else:
            assert state == queue.JobState.FAILED
    with database.write_sessions.begin() as session:
        job = session.query(Job).one()
        assert job.error == "boom 3"
        queue.retry(session=session, job_id=job.id, now=now)
        assert job.state == queue.JobState.PENDING and job.attempts == 0
    with database.write_sessions.begin() as session, pytest.raises(queue.QueueError):
        queue.retry(session=session, job_id=job.id, now=now)


def test_not_retryable_failures_fail_at_once(database: Database) -> None:
    with database.write_sessions.begin() as session:
        queue.enqueue(session=session, values=job_values("5.1"))
        (job,) = queue.claim(session=session, owner="a", now=utcnow(), lease=LEASE, limit=1)
        failed = queue.fail(
            session=session,
            job_id=job.id,
            owner="a",
            error="wrong modality",
            now=utcnow(),
            max_attempts=3,
            backoff=timedelta(seconds=1),
            retryable=False,
        )
        assert failed.state == queue.JobState.FAILED
        assert queue.depth(session=session) == {"failed": 1}
