"""Dry-run replay: a model version on stored studies, compared with the active version.

Before activating a version, an ML engineer wants to see what it would say about studies the
archive already holds, beside what the active version said. Replay runs the version on the
series its pipeline would choose, through the same Ray runtime and the same threshold as the
pipeline, and returns the calls. It stores nothing, creates no job, and so changes neither
the archive nor the worklist.

Studies are chosen by a DICOM query (the one matcher of C-FIND and QIDO-RS), newest first,
at most ``replay_max_studies``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ray
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.archive.query import ATTRIBUTES, Level, Query, QueryError, build_select
from pacs_ai.archive.schema import Study
from pacs_ai.inference.actor import Prediction, PredictionError
from pacs_ai.inference.runtime import ModelKey
from pacs_ai.pipeline.definition import Pipeline
from pacs_ai.pipeline.dispatcher import Dispatcher, JobInputError
from pacs_ai.pipeline.recorder import threshold_for
from pacs_ai.pipeline.routing import choose_input, series_of
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import read_bundle

log = logging.getLogger(__name__)


class ReplayError(ValueError):
    """A replay that cannot run as asked (bad query, no pipeline); the message says why."""


class NothingMatched(ReplayError):
    """The query matches no stored study."""


@dataclass(frozen=True)
class Call:
    """One model's call on one study."""

    present: bool
    probability: float
    finding_id: int | None = None


@dataclass(frozen=True)
class StudyReplay:
    """The replayed version's call beside the active version's, for one study."""

    study_uid: str
    series_uid: str | None
    replay: Call | None
    active: Call | None
    error: str | None = None

    @property
    def agrees(self) -> bool | None:
        """Whether both called the same (None when either is missing)."""
        if self.replay is None or self.active is None:
            return None
        return self.replay.present == self.active.present


@dataclass(frozen=True)
class ReplaySummary:
    """Counts over the studies of a replay."""

    ran: int = 0
    failed: int = 0
    both_positive: int = 0
    both_negative: int = 0
    replay_only: int = 0
    active_only: int = 0


@dataclass(frozen=True)
class Replay:
    """What a replay found."""

    pipeline: str
    model_name: str
    model_version: str
    compared_with: str | None
    matched: int
    results: list[StudyReplay] = field(default_factory=list)

    @property
    def summary(self) -> ReplaySummary:
        """Counts of agreement and disagreement with the active version."""
        pairs = [(r.replay, r.active) for r in self.results if r.replay and r.active]
        return ReplaySummary(
            ran=sum(1 for r in self.results if r.replay is not None),
            failed=sum(1 for r in self.results if r.error is not None),
            both_positive=sum(1 for a, b in pairs if a.present and b.present),
            both_negative=sum(1 for a, b in pairs if not a.present and not b.present),
            replay_only=sum(1 for a, b in pairs if a.present and not b.present),
            active_only=sum(1 for a, b in pairs if not a.present and b.present),
        )


def pipeline_for(
    pipelines: Mapping[str, Pipeline], model_name: str, wanted: str | None
) -> Pipeline:
    """The pipeline a replay of ``model_name`` follows: the one named, or the only one."""
    using = [p for p in pipelines.values() if p.model_name == model_name]
    if wanted is not None:
        chosen = next((p for p in using if p.name == wanted), None)
        if chosen is None:
            raise ReplayError(f"pipeline {wanted!r} does not run model {model_name}")
        return chosen
    if len(using) != 1:
        names = ", ".join(sorted(p.name for p in using)) or "none"
        raise ReplayError(
            f"model {model_name} is run by {len(using)} pipelines ({names}): name one"
        )
    return using[0]


def matching_studies(*, session: Session, keys: Mapping[str, str], limit: int) -> list[Study]:
    """Stored studies matching a study-level query, newest first.

    ``Modality`` is taken as ``ModalitiesInStudy``, as engineers write it.
    """
    keys = {
        ("ModalitiesInStudy" if key == "Modality" else key): value for key, value in keys.items()
    }
    unknown = sorted(
        key for key in keys if key not in ATTRIBUTES or ATTRIBUTES[key].level > Level.STUDY
    )
    if unknown:
        raise ReplayError(
            f"cannot match on {', '.join(unknown)}: use patient or study attributes "
            "(e.g. PatientID, StudyDate, ModalitiesInStudy, AccessionNumber)"
        )
    try:
        statement = build_select(Query(Level.STUDY, dict(keys)))
    except QueryError as exc:
        raise ReplayError(str(exc)) from exc
    ids = [
        row[1].id
        for row in session.execute(statement.order_by(None).order_by(Study.id.desc()).limit(limit))
    ]
    return list(session.scalars(select(Study).where(Study.id.in_(ids)).order_by(Study.id.desc())))


def _active_call(
    session: Session, pipeline: str, model_name: str, version: str, study_uid: str
) -> Call | None:
    """The active version's current call on the study (older versions' calls do not count)."""
    row = session.execute(
        select(FindingRow.id, FindingRow.present, FindingRow.probability)
        .join(Job, Job.id == FindingRow.job_id)
        .where(
            FindingRow.study_instance_uid == study_uid,
            FindingRow.model_name == model_name,
            FindingRow.model_version == version,
            FindingRow.shadow.is_(False),
            FindingRow.status == "current",
            Job.pipeline == pipeline,
        )
        .order_by(FindingRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Call(present=bool(row.present), probability=float(row.probability), finding_id=row.id)


def replay(
    *,
    dispatcher: Dispatcher,
    model_name: str,
    model_version: str,
    keys: Mapping[str, str],
    pipeline_name: str | None,
    limit: int,
) -> Replay:
    """Run ``model_name`` ``model_version`` on the studies ``keys`` match; store nothing.

    Raises
    ------
    RegistryError
        When the version is not registered.
    ReplayError
        When no pipeline runs the model, the query cannot be matched, or (NothingMatched) it
        matches no stored study.
    """
    pipeline = pipeline_for(dispatcher.pipelines, model_name, pipeline_name)
    settings = dispatcher.settings
    inputs: list[tuple[str, str | None, str | None]] = []  # study, series, why not
    with dispatcher.database.sessions() as session:
        registered = registry.get_by_name_version_or_raise(
            session=session, name=model_name, version=model_version
        )
        active = registry.get_active(session=session, name=model_name)
        model = dispatcher.model_key(session, registered.name, registered.version)
        studies = matching_studies(session=session, keys=keys, limit=limit)
        if not studies:
            raise NothingMatched("the query matches no stored study")
        for stored in studies:
            chosen = choose_input(pipeline, series_of(session, dispatcher.storage, stored))
            inputs.append(
                (
                    stored.study_instance_uid,
                    chosen.series_instance_uid if chosen else None,
                    None if chosen else f"no series matches pipeline {pipeline.name}",
                )
            )
        active_calls = {
            study: _active_call(session, pipeline.name, model_name, active.version, study)
            for study, _, _ in inputs
            if active is not None
        }
    runnable: list[tuple[str, str, list[Dataset]]] = []
    errors: dict[str, str] = {study: why for study, _, why in inputs if why is not None}
    for study, series, _ in inputs:
        if series is None:
            continue
        try:
            with dispatcher.database.sessions() as session:
                runnable.append((study, series, dispatcher.read_series(session, series)))
        except JobInputError as exc:
            errors[study] = str(exc)
    threshold = threshold_for(pipeline, read_bundle(model.bundle_path).extras)
    calls = _predict(dispatcher, model, runnable, settings.inference_batch_size, errors)
    results = [
        StudyReplay(
            study_uid=study,
            series_uid=series,
            replay=(
                Call(
                    present=calls[study] >= threshold, probability=min(1.0, max(0.0, calls[study]))
                )
                if study in calls
                else None
            ),
            active=active_calls.get(study),
            error=errors.get(study),
        )
        for study, series, _ in inputs
    ]
    log.info(
        "replayed %s %s on %d studies (%d failed)",
        model_name,
        model_version,
        len(inputs),
        len(errors),
    )
    return Replay(
        pipeline=pipeline.name,
        model_name=model_name,
        model_version=model_version,
        compared_with=active.version if active is not None else None,
        matched=len(inputs),
        results=results,
    )


def _predict(
    dispatcher: Dispatcher,
    model: ModelKey,
    runnable: Sequence[tuple[str, str, list[Dataset]]],
    batch_size: int,
    errors: dict[str, str],
) -> dict[str, float]:
    """Scores per study from the version's actors, batch by batch."""
    scores: dict[str, float] = {}
    timeout = dispatcher.settings.inference_timeout_s
    for start in range(0, len(runnable), batch_size):
        chunk = runnable[start : start + batch_size]
        ref = dispatcher.runtime.submit(model, [datasets for _, _, datasets in chunk])
        try:
            outcomes: list[Prediction | PredictionError] = ray.get(ref, timeout=timeout)
        except Exception as exc:  # the actor died, or timed out
            for study, _, _ in chunk:
                errors[study] = f"inference failed: {exc}"
            continue
        for (study, _, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, PredictionError):
                errors[study] = f"the model cannot take this series: {outcome.reason}"
            else:
                scores[study] = float(outcome.score)
    return scores
