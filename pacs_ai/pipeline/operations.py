"""How each model version has run: jobs, failures, latency, time to result, placement.

ML engineers compare versions on these before and after they activate one, so they come from
the job table itself (what every dispatcher of the cluster recorded), not from one process's
Prometheus counters. Latency and time to result are taken over the most recent finished jobs
of each version (:data:`RECENT_JOBS`), which keeps the page fast on a long-lived archive and
shows the version as it runs now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs_ai.archive.schema import aware
from pacs_ai.pipeline.queue import JobState
from pacs_ai.pipeline.schema import Job

RECENT_JOBS = 1000


@dataclass(frozen=True)
class Percentiles:
    """Median and 95th percentile of a duration."""

    p50: float
    p95: float


@dataclass(frozen=True)
class VersionOperations:
    """What one model version's jobs did."""

    jobs: int = 0
    done: int = 0
    failed: int = 0
    waiting: int = 0
    """Pending or running now."""
    latency_ms: Percentiles | None = None
    """Inference: job started -> the model answered."""
    time_to_result_s: Percentiles | None = None
    """Study stable -> its SR/SEG stored."""
    placement: dict[str, int] = field(default_factory=dict)
    """Finished jobs per device kind (``cpu``, ``cuda``)."""


def _percentiles(values: list[float]) -> Percentiles | None:
    if not values:
        return None
    p50, p95 = np.percentile(np.asarray(values), [50, 95])
    return Percentiles(float(p50), float(p95))


def _device(placement: str) -> str:
    """``cuda:0@node`` -> ``cuda``; ``cpu@node`` -> ``cpu``."""
    return placement.split("@", 1)[0].split(":", 1)[0] or "unknown"


def version_operations(*, session: Session, name: str, version: str) -> VersionOperations:
    """The operations of ``name`` ``version``."""
    of_version = (Job.model_name == name, Job.model_version == version)
    states: dict[str, int] = {
        state: int(count)
        for state, count in session.execute(
            select(Job.state, func.count()).where(*of_version).group_by(Job.state)
        )
    }
    recent = session.execute(
        select(Job.started_at, Job.inferred_at, Job.stable_at, Job.stored_at, Job.placement)
        .where(*of_version, Job.state == JobState.DONE.value)
        .order_by(Job.id.desc())
        .limit(RECENT_JOBS)
    ).all()
    latency = [
        (aware(row.inferred_at) - aware(row.started_at)).total_seconds() * 1000
        for row in recent
        if row.started_at is not None and row.inferred_at is not None
    ]
    to_result = [
        (aware(row.stored_at) - aware(row.stable_at)).total_seconds()
        for row in recent
        if row.stored_at is not None
    ]
    placement = Counter(_device(row.placement) for row in recent if row.placement)
    return VersionOperations(
        jobs=sum(states.values()),
        done=states.get(JobState.DONE.value, 0),
        failed=states.get(JobState.FAILED.value, 0),
        waiting=states.get(JobState.PENDING.value, 0) + states.get(JobState.RUNNING.value, 0),
        latency_ms=_percentiles(latency),
        time_to_result_s=_percentiles(to_result),
        placement=dict(sorted(placement.items())),
    )
