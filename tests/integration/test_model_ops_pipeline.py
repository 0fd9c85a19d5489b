"""Model operations against a running pipeline: rollback takes effect, replay stores nothing.

Two versions of the CT head model are registered (the shipped bundle, and a copy of it under
another version number). Activated over the API, the new version runs the next study;
rolled back, the previous one runs the study after. A dry-run replay of the new version on
stored studies compares its calls with the active version's and leaves the archive, the job
queue and the findings as they were.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from pacs_ai.archive.schema import Instance
from pacs_ai.pipeline.routing import count_unrouted
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import read_bundle
from pacs_ai.registry.schema import ModelState
from pacs_ai.security.accounts import add_user
from pacs_ai.security.roles import Role
from pacs_ai.server import Server
from pacs_ai.synth import generate_ct_head, write_study
from tests.integration.conftest import ServerFactory, storescu
from tests.integration.pipeline_support import (
    MODELS,
    PIPELINES,
    local_ray,  # noqa: F401  (fixture)
    wait_for_jobs,
)

pytestmark = pytest.mark.integration

MODEL = "ct-head-hemorrhage"


def second_version(tmp_path: Path) -> Path:
    """The shipped bundle under version 0.2.0 (same weights: a re-release)."""
    copy = tmp_path / "models" / f"{MODEL}-0.2.0"
    shutil.copytree(MODELS / MODEL, copy, ignore=shutil.ignore_patterns("eval"))
    metadata_path = copy / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["version"] = "0.2.0"
    metadata["changelog"]["0.2.0"] = "re-release for the rollback test"
    metadata_path.write_text(json.dumps(metadata, indent=2))
    return copy


def send_study(server: Server, tmp_path: Path, seed: int) -> tuple[str, str]:
    """Store a CT head with hemorrhage by DCMTK; returns its Study UID and Patient ID."""
    study = generate_ct_head(seed, hemorrhage=True, slices=24, size=128)
    files = [p for p in write_study(study, tmp_path / f"study-{seed}") if p.suffix == ".dcm"]
    for result in storescu(server.dimse_port, files):
        assert result.returncode == 0, result.stderr
    return str(study.datasets[0].StudyInstanceUID), str(study.datasets[0].PatientID)


def wait_until_routed(server: Server, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with server.context.database.sessions() as session:
            if count_unrouted(session=session) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("routing did not catch up")


def counts(server: Server) -> tuple[int, int, int]:
    with server.context.database.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Instance)) or 0,
            session.scalar(select(func.count()).select_from(Job)) or 0,
            session.scalar(select(func.count()).select_from(FindingRow)) or 0,
        )


@pytest.mark.usefixtures("local_ray")
def test_rollback_takes_effect_and_replay_stores_nothing(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    shutil.copy(PIPELINES / f"{MODEL}.yaml", pipelines)
    server = make_server(
        pipelines_enabled=True,
        pipelines_dir=pipelines,
        models_dirs=[],
        stable_after_seconds=1,
        dispatcher_poll_s=0.2,
    )
    database = server.context.database
    with database.write_sessions.begin() as session:
        first, _ = registry.register(session=session, bundle=read_bundle(MODELS / MODEL), actor="t")
        registry.register(session=session, bundle=read_bundle(second_version(tmp_path)), actor="t")
        registry.set_state(session=session, model_version=first, state=ModelState.ACTIVE, actor="t")
    token = add_user(
        database=database, settings=server.context.settings, username="eng", role=Role.ML_ENGINEER
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{server.http_port}/api/models/{MODEL}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )

    activated = api.post(
        "/0.2.0/state", json={"state": "active", "reason": "re-release", "replace_active": True}
    )
    assert activated.status_code == 200, activated.text
    new_study, new_patient = send_study(server, tmp_path, seed=41)
    (job,) = wait_for_jobs(database, count=1)
    assert (job.study_instance_uid, job.model_version, job.state) == (new_study, "0.2.0", "done")

    # Roll back at once, while routing has yet to see the SR and SEG that changed the study:
    # the version active by then must not read that study again.
    rolled = api.post("/rollback", json={"reason": "back to the validated version"})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["activated"]["version"] == "0.1.0"
    old_study, _ = send_study(server, tmp_path, seed=42)
    jobs = wait_for_jobs(database, count=2)
    wait_until_routed(server)
    jobs = wait_for_jobs(database, count=2)
    assert [(j.study_instance_uid, j.model_version, j.shadow) for j in jobs] == [
        (new_study, "0.2.0", False),
        (old_study, "0.1.0", False),
    ]
    listed = api.get(f"http://127.0.0.1:{server.http_port}/api/models").json()["versions"]
    versions = {v["version"]: v for v in listed if v["name"] == MODEL}
    assert versions["0.1.0"]["state"] == "active" and versions["0.2.0"]["state"] == "inactive"
    assert versions["0.2.0"]["operations"]["done"] == 1
    assert versions["0.2.0"]["operations"]["latency_ms"]["p50"] > 0
    assert set(versions["0.2.0"]["operations"]["placement"]) == {"cpu"}
    assert versions["0.1.0"]["pipelines"] == [MODEL]

    # Replay 0.2.0 on the study that 0.1.0 read: the same weights make the same call.
    before = counts(server)
    replayed = api.post("/0.2.0/replay", json={"query": {"PatientID": "*"}, "limit": 5})
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["compared_with"] == "0.1.0" and body["matched"] == 2
    by_study = {r["study_uid"]: r for r in body["results"]}
    assert by_study[old_study]["active"] is not None
    assert by_study[old_study]["replay"]["present"] is True
    assert by_study[old_study]["agrees"] is True
    # The study 0.2.0 itself read has no current finding of the active version to compare.
    assert by_study[new_study]["active"] is None and by_study[new_study]["agrees"] is None
    assert body["summary"]["ran"] == 2 and body["summary"]["both_positive"] == 1
    assert counts(server) == before

    one = api.post("/0.2.0/replay", json={"query": {"PatientID": new_patient}})
    assert one.status_code == 200 and one.json()["matched"] == 1
    nothing = api.post("/0.2.0/replay", json={"query": {"PatientID": "NOBODY-HERE"}})
    assert nothing.status_code == 422 and "matches no stored study" in nothing.json()["error"]
    wrong_key = api.post("/0.2.0/replay", json={"query": {"SOPInstanceUID": "1.2.3"}})
    assert wrong_key.status_code == 400 and "SOPInstanceUID" in wrong_key.json()["error"]
    unknown = api.post("/9.9.9/replay", json={"query": {"PatientID": "*"}})
    assert unknown.status_code == 404
    assert counts(server) == before
    api.close()
