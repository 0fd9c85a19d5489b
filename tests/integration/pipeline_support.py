"""What the pipeline tests share: Ray once per session, registered models, waiting for jobs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from sqlalchemy import select

from pacs_ai.archive.db import Database
from pacs_ai.pipeline.schema import Job
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import discover, read_bundle
from pacs_ai.registry.schema import ModelState

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
PIPELINES = REPO / "pipelines"


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """One local Ray for the whole test session, with fixed CPUs."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


def register_and_activate(database: Database, folder: Path = MODELS) -> list[tuple[str, str]]:
    """Register every bundle under ``folder`` and make it the active version of its model."""
    registered = []
    for path in discover([folder]):
        bundle = read_bundle(path)
        with database.write_sessions.begin() as session:
            version = registry.get_by_name_version(
                session=session, name=bundle.name, version=bundle.version
            )
            if version is None:
                version, _report = registry.register(session=session, bundle=bundle, actor="tests")
            if version.state != ModelState.ACTIVE:
                registry.set_state(
                    session=session, model_version=version, state=ModelState.ACTIVE, actor="tests"
                )
            registered.append((version.name, version.version))
    return registered


def wait_for_jobs(database: Database, count: int, timeout_s: float = 240) -> list[Job]:
    """Wait until ``count`` jobs exist and all of them ended (done or failed)."""
    deadline = time.monotonic() + timeout_s
    jobs: list[Job] = []
    while time.monotonic() < deadline:
        with database.sessions() as session:
            jobs = list(session.execute(select(Job).order_by(Job.id)).scalars())
        if len(jobs) >= count and all(job.state in ("done", "failed") for job in jobs):
            return jobs
        time.sleep(0.5)
    states = [(job.id, job.pipeline, job.state, job.error) for job in jobs]
    raise AssertionError(f"jobs did not end in {timeout_s} s: {states}")
