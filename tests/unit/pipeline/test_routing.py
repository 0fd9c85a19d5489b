"""Routing on SQLite and PostgreSQL: stable studies become jobs once per content version."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.schema import utcnow
from pacs_ai.archive.storage import Storage
from pacs_ai.pipeline.definition import load_pipelines
from pacs_ai.pipeline.routing import ModelTarget, route_study, studies_to_route
from pacs_ai.pipeline.schema import Job
from pacs_ai.synth import generate_ct_head, generate_cxr
from tests.factories import make_instance

PIPELINES = load_pipelines(Path(__file__).resolve().parents[3] / "pipelines")
TARGETS = {
    "ct-head-hemorrhage": [ModelTarget("ct-head-hemorrhage", "1.0.0", shadow=False)],
    "cxr-pneumothorax": [
        ModelTarget("cxr-pneumothorax", "1.0.0", shadow=False),
        ModelTarget("cxr-pneumothorax", "2.0.0", shadow=True),
    ],
}
STABLE = timedelta(seconds=10)


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def route_all(database: Database, storage: Storage, *, early: bool, after: float) -> int:
    now = utcnow() + timedelta(seconds=after)
    created = 0
    with database.write_sessions.begin() as session:
        for study in studies_to_route(
            session=session, now=now, stable_after=STABLE, early=early, limit=50
        ):
            created += route_study(
                session=session,
                storage=storage,
                study=study,
                pipelines=PIPELINES,
                targets=TARGETS,
                stable=not early,
                now=now,
            )
    return created


def jobs(database: Database) -> list[Job]:
    with database.sessions() as session:
        return list(session.execute(select(Job).order_by(Job.id)).scalars())


@pytest.fixture
def ct_study(ingestor: Ingestor) -> list[Dataset]:
    study = generate_ct_head(3, hemorrhage=True, slices=20, size=64)
    for ds in study.datasets[:-1]:
        ingestor.ingest(part10(ds))
    return study.datasets


def test_a_study_waits_until_stable_then_gets_one_job(
    ct_study: list[Dataset], ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    assert route_all(database, storage, early=False, after=0) == 0
    assert route_all(database, storage, early=True, after=0) == 0  # CT has no early rule
    assert route_all(database, storage, early=False, after=20) == 1
    assert route_all(database, storage, early=False, after=25) == 0  # same content: no new job
    (job,) = jobs(database)
    assert job.series_instance_uid == str(ct_study[0].SeriesInstanceUID)
    assert (job.pipeline, job.model_version, job.priority) == ("ct-head-hemorrhage", "1.0.0", 0)

    ingestor.ingest(part10(ct_study[-1]))  # a late slice: new content, new job
    assert route_all(database, storage, early=False, after=20) == 1
    first, second = jobs(database)
    assert first.content_key != second.content_key


def test_a_radiograph_is_complete_at_once_for_active_and_shadow(
    ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    cxr = generate_cxr(8, pneumothorax=True, size=128)
    ingestor.ingest(part10(cxr.datasets[0]))
    assert route_all(database, storage, early=True, after=0) == 2
    versions = sorted((job.model_version, job.shadow) for job in jobs(database))
    assert versions == [("1.0.0", False), ("2.0.0", True)]
    assert route_all(database, storage, early=False, after=20) == 0  # already routed


def test_studies_no_pipeline_wants_are_marked_without_jobs(
    ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    study = generate_ct_head(4, hemorrhage=False, slices=20, size=64)
    for ds in study.datasets:
        ds.BodyPartExamined = "ABDOMEN"
        ingestor.ingest(part10(ds))
    assert route_all(database, storage, early=False, after=20) == 0
    with database.sessions() as session:
        assert (
            studies_to_route(
                session=session,
                now=utcnow() + timedelta(seconds=30),
                stable_after=STABLE,
                early=False,
                limit=5,
            )
            == []
        )


def test_our_results_do_not_make_a_newly_active_version_read_the_study_again(
    ct_study: list[Dataset], ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    assert route_all(database, storage, early=False, after=20) == 1
    # The study changes (an SR of ours arrives: another series, the input untouched) while
    # another version has become the active one.
    ingestor.ingest(
        make_instance(
            study_uid=str(ct_study[0].StudyInstanceUID),
            series_uid="1.2.826.0.1.3680043.8.498.78",
            sop_uid="1.2.826.0.1.3680043.8.498.77",
            PatientID=str(ct_study[0].PatientID),
            Modality="SR",
        )
    )
    TARGETS["ct-head-hemorrhage"].append(ModelTarget("ct-head-hemorrhage", "1.1.0", shadow=False))
    try:
        assert route_all(database, storage, early=False, after=20) == 0
    finally:
        TARGETS["ct-head-hemorrhage"].pop()
    assert [job.model_version for job in jobs(database)] == ["1.0.0"]
