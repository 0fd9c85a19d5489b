"""Kill the server while its jobs run: after a restart each job finishes exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Series, Study
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.synth import generate_ct_head, generate_cxr, write_study
from tests.integration.conftest import free_port, run_dcmtk, storescu
from tests.integration.pipeline_support import (
    MODELS,
    PIPELINES,
    register_and_activate,
    wait_for_jobs,
)

pytestmark = pytest.mark.integration

PACS_AI = str(Path(sys.executable).with_name("pacs-ai"))


@pytest.fixture
def ray_dir() -> Iterator[str]:
    """A Ray temp dir of the server's own, so that what a SIGKILL orphans can be found."""
    folder = tempfile.mkdtemp(prefix="rr-", dir="/tmp")
    yield folder
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(folder in part for part in process.info["cmdline"] or []):
                process.send_signal(signal.SIGKILL)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [PACS_AI, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if run_dcmtk("echoscu", "127.0.0.1", str(port), timeout=10).returncode == 0:
            return process
        assert process.poll() is None, "the server exited at start"
        time.sleep(0.3)
    process.kill()
    raise AssertionError("the server did not start")


def test_jobs_of_a_killed_server_finish_exactly_once(
    tmp_path: Path, database_url: str, ray_dir: str
) -> None:
    database = Database(database_url)
    database.upgrade()
    register_and_activate(database)
    port = free_port()
    env = {
        **os.environ,
        "PACS_AI_DATA_DIR": str(tmp_path / "data"),
        "PACS_AI_DATABASE_URL": database_url,
        "PACS_AI_DIMSE_PORT": str(port),
        "PACS_AI_HTTP_PORT": "0",
        "PACS_AI_PIPELINES_DIR": str(PIPELINES),
        "PACS_AI_MODELS_DIRS": str(MODELS),
        "PACS_AI_STABLE_AFTER_SECONDS": "1",
        "PACS_AI_DISPATCHER_POLL_S": "0.2",
        "PACS_AI_JOB_LEASE_S": "6",
        "PACS_AI_RAY_NUM_CPUS": "2",
        "PACS_AI_LOG_LEVEL": "WARNING",
        "RAY_TMPDIR": ray_dir,
    }
    studies = [
        generate_ct_head(31 + i, hemorrhage=i % 2 == 0, slices=24, size=128) for i in range(2)
    ]
    studies.append(generate_cxr(35, pneumothorax=False, size=256))
    files = [
        p
        for i, s in enumerate(studies)
        for p in write_study(s, tmp_path / f"s{i}")
        if p.suffix == ".dcm"
    ]

    server = start(env, port)
    for result in storescu(port, files):
        assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill as soon as a job is claimed
        with database.sessions() as session:
            running = session.execute(
                select(func.count()).select_from(Job).where(Job.state == "running")
            ).scalar_one()
        if running:
            break
        time.sleep(0.05)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    assert running, "no job was running when the server was killed"
    with database.sessions() as session:
        orphaned = session.execute(select(Job.id).where(Job.state == "running")).scalars().all()
    assert orphaned

    server = start(env, port)
    try:
        jobs = wait_for_jobs(database, count=3, timeout_s=300)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert [job.state for job in jobs] == ["done"] * 3, [(j.pipeline, j.error) for j in jobs]
    assert any(job.attempts >= 2 for job in jobs if job.id in orphaned)
    with database.sessions() as session:
        for synthetic in studies:
            uid = str(synthetic.datasets[0].StudyInstanceUID)
            sr_series = session.execute(
                select(func.count())
                .select_from(Series)
                .join(Study)
                .where(Study.study_instance_uid == uid, Series.modality == "SR")
            ).scalar_one()
            findings = session.execute(
                select(func.count())
                .select_from(FindingRow)
                .where(FindingRow.study_instance_uid == uid, FindingRow.status == "current")
            ).scalar_one()
            assert (sr_series, findings) == (1, 1), uid
    database.dispose()
