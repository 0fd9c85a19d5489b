"""Routing: which stable (or complete) study content goes to which pipeline, as jobs.

A study is *stable* when no instance arrived for ``stable_after_seconds``; it is *complete*
at once for a pipeline whose matching series already has ``complete_at_instances``. The
marks of what was routed live in the database, so several servers sharing it agree (an
Orthanc "stable study" is a per-process notion; ours is not). New instances after a run
change the input series' content key and so make new jobs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydicom import dcmread
from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from pacs_ai.archive.schema import Instance, Series, Study
from pacs_ai.archive.storage import Storage
from pacs_ai.pipeline.definition import Pipeline
from pacs_ai.pipeline.queue import enqueue, priority_for
from pacs_ai.pipeline.schema import Job, StudyRoute

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelTarget:
    """A registered model version a pipeline's jobs run (active or shadow)."""

    name: str
    version: str
    shadow: bool


@dataclass(frozen=True)
class CandidateSeries:
    """A series of the study, with what the rules need to look at."""

    series_instance_uid: str
    instances: int
    updated_at: datetime
    header: Any


def content_key(series: CandidateSeries) -> str:
    """Names one version of a pipeline's input: the series, its instance count, its last change.

    The key is the input series' and not the study's: results stored back into the study (our
    own SR and SEG) change the study but not the input, and so never start another run.
    """
    identity = f"{series.series_instance_uid}|{series.instances}|{series.updated_at.isoformat()}"
    return hashlib.sha256(identity.encode("ascii")).hexdigest()[:40]


def series_of(session: Session, storage: Storage, study: Study) -> list[CandidateSeries]:
    """Each series with the header of its first instance (rules may name any keyword)."""
    found = []
    for series in session.execute(select(Series).where(Series.study_pk == study.id)).scalars():
        first = session.execute(
            select(Instance.path)
            .where(Instance.series_pk == series.id)
            .order_by(Instance.id)
            .limit(1)
        ).scalar()
        if first is None:
            continue
        try:
            header = dcmread(storage.open(first), stop_before_pixels=True)
        except Exception as exc:  # an unreadable file is a series no rule can match
            log.warning("series %s: cannot read a header: %s", series.series_instance_uid, exc)
            continue
        found.append(
            CandidateSeries(
                series.series_instance_uid, series.num_instances, series.updated_at, header
            )
        )
    return found


def _matching(pipeline: Pipeline, candidates: Sequence[CandidateSeries]) -> list[CandidateSeries]:
    return [
        c
        for c in candidates
        if pipeline.series_matches(
            {keyword: c.header.get(keyword) for keyword in pipeline.match}, c.instances
        )
    ]


def _choose(pipeline: Pipeline, matching: Sequence[CandidateSeries]) -> CandidateSeries:
    if pipeline.select == "latest":
        return max(matching, key=lambda c: c.updated_at)
    return max(matching, key=lambda c: (c.instances, c.updated_at))


def choose_input(
    pipeline: Pipeline, candidates: Sequence[CandidateSeries]
) -> CandidateSeries | None:
    """The series of a study that ``pipeline`` runs on, or None when no series matches."""
    matching = _matching(pipeline, candidates)
    return _choose(pipeline, matching) if matching else None


def _already_run(session: Session, study_uid: str, pipeline: str, key: str) -> bool:
    """Whether this input content has jobs of the pipeline already, of whichever version.

    Routing sees a study again whenever it changes, our own SR and SEG included; the input
    series is then the same, and its jobs were made when it was first complete. Without this
    check, a version activated (or rolled back to) in the meantime would read it again:
    activation takes effect on the next study, not on the last few.
    """
    return (
        session.execute(
            select(Job.id)
            .where(
                Job.study_instance_uid == study_uid,
                Job.pipeline == pipeline,
                Job.content_key == key,
            )
            .limit(1)
        ).first()
        is not None
    )


def _mark(session: Session, study: Study, pipeline: str, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(StudyRoute).values(
        study_pk=study.id, pipeline=pipeline, routed_updated_at=study.updated_at, routed_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["study_pk", "pipeline"],
            set_={"routed_updated_at": study.updated_at, "routed_at": now},
        )
    )


def route_study(
    *,
    session: Session,
    storage: Storage,
    study: Study,
    pipelines: Sequence[Pipeline],
    targets: dict[str, list[ModelTarget]],
    stable: bool,
    now: datetime,
) -> int:
    """Enqueue the jobs this study content calls for; returns how many were new."""
    routed = {
        row.pipeline: row.routed_updated_at
        for row in session.execute(
            select(StudyRoute).where(StudyRoute.study_pk == study.id)
        ).scalars()
    }
    candidates: list[CandidateSeries] | None = None
    created = 0
    for pipeline in pipelines:
        previous = routed.get(pipeline.name)
        if previous is not None and previous >= study.updated_at:
            continue
        if candidates is None:
            candidates = series_of(session, storage, study)
        matching = _matching(pipeline, candidates)
        complete = stable or (
            pipeline.complete_at_instances is not None
            and any(c.instances >= pipeline.complete_at_instances for c in matching)
        )
        if not complete:
            continue
        _mark(session, study, pipeline.name, now)
        if not matching:
            continue
        chosen = _choose(pipeline, matching)
        key = content_key(chosen)
        if _already_run(session, study.study_instance_uid, pipeline.name, key):
            continue
        for target in targets.get(pipeline.model_name, []):
            if pipeline.model_version is not None and target.version != pipeline.model_version:
                continue
            created += enqueue(
                session=session,
                values={
                    "study_instance_uid": study.study_instance_uid,
                    "series_instance_uid": chosen.series_instance_uid,
                    "pipeline": pipeline.name,
                    "pipeline_version": pipeline.version,
                    "content_key": key,
                    "model_name": target.name,
                    "model_version": target.version,
                    "shadow": target.shadow,
                    "priority": priority_for(
                        order_priority=study.requested_procedure_priority,
                        urgent_pipeline=pipeline.urgent,
                    ),
                    "last_instance_at": study.updated_at,
                    "stable_at": now,
                    "queued_at": now,
                    "not_before": now,
                },
            )
    return created


def studies_to_route(
    *, session: Session, now: datetime, stable_after: timedelta, early: bool, limit: int
) -> list[Study]:
    """Studies whose current content some pipeline has not routed yet.

    ``early=False``: the stable ones (quiet for ``stable_after``). ``early=True``: the ones
    still receiving, for pipelines that can tell a study complete by its series.
    """
    unrouted = ~exists().where(
        and_(StudyRoute.study_pk == Study.id, StudyRoute.routed_updated_at >= Study.updated_at)
    )
    cutoff = now - stable_after
    quiet = Study.updated_at <= cutoff if not early else Study.updated_at > cutoff
    statement = select(Study).where(quiet, unrouted).order_by(Study.updated_at).limit(limit)
    return list(session.execute(statement).scalars())


def count_unrouted(*, session: Session) -> int:
    """Studies with content not yet routed by every pipeline (for metrics)."""
    unrouted = ~exists().where(
        and_(StudyRoute.study_pk == Study.id, StudyRoute.routed_updated_at >= Study.updated_at)
    )
    return int(
        session.execute(select(func.count()).select_from(Study).where(unrouted)).scalar_one()
    )
