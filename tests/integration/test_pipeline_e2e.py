"""Stored study -> stable -> routed -> Ray -> SR and SEG back in the archive, end to end.

DCMTK's storescu sends a CT head with hemorrhage, one without, a chest radiograph, and a CT
series of mixed geometry; within a bounded wait the SR and SEG are found by C-FIND, retrieved by
C-GET, validated by dciodvfy and read back by highdicom; the SEG overlaps the ground truth; the
results are forwarded to a peer; the broken series' job fails with its reason and writes
nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import select

from pacs_ai.dimse import nodes
from pacs_ai.pipeline.schema import FindingRow
from pacs_ai.server import Server
from pacs_ai.synth import SyntheticStudy, generate_ct_head, generate_cxr, write_study
from tests.integration.conftest import ServerFactory, run_dcmtk, storescp, storescu
from tests.integration.pipeline_support import (
    MODELS,
    PIPELINES,
    local_ray,  # noqa: F401  (fixture)
    register_and_activate,
    wait_for_jobs,
)

pytestmark = pytest.mark.integration


def series_of(server: Server, study_uid: str) -> dict[str, list[str]]:
    """Modality -> series UIDs of a study, by C-FIND."""
    found = run_dcmtk(
        "findscu",
        "-v",
        "-S",
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-k",
        "SeriesInstanceUID",
        "-k",
        "Modality",
        "127.0.0.1",
        str(server.dimse_port),
    )
    assert found.returncode == 0, found.stderr
    result: dict[str, list[str]] = {}
    modality = None
    for line in found.stderr.split("Find Response", 1)[-1].splitlines():
        if "[" not in line:
            continue
        if "(0008,0060)" in line:
            modality = line.split("[", 1)[1].split("]", 1)[0].strip()
        if "(0020,000e)" in line and modality is not None:
            uid = line.split("[", 1)[1].split("]", 1)[0].strip().rstrip("\x00")
            result.setdefault(modality, []).append(uid)
            modality = None
    return result


def get_series(server: Server, study_uid: str, series_uid: str, out: Path) -> Path:
    out.mkdir(parents=True)
    got = run_dcmtk(
        "getscu",
        "-S",
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-k",
        f"SeriesInstanceUID={series_uid}",
        "-od",
        str(out),
        "127.0.0.1",
        str(server.dimse_port),
    )
    assert got.returncode == 0, got.stderr
    (path,) = out.iterdir()
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(
        ["/usr/bin/dciodvfy", str(path)], capture_output=True, text=True, check=False
    )
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def mixed_geometry(study: SyntheticStudy) -> None:
    """One slice of the series at half the matrix: a series no CT model can stack."""
    odd = study.datasets[len(study.datasets) // 2]
    odd.PixelData = odd.pixel_array[::2, ::2].copy().tobytes()
    odd.Rows, odd.Columns = odd.Rows // 2, odd.Columns // 2
    odd.PixelSpacing = [float(v) * 2 for v in odd.PixelSpacing]


@pytest.mark.usefixtures("local_ray")
def test_studies_get_sr_and_seg(make_server: ServerFactory, tmp_path: Path) -> None:
    pipelines = tmp_path / "pipelines"
    shutil.copytree(PIPELINES, pipelines)
    ct_pipeline = pipelines / "ct-head-hemorrhage.yaml"
    ct_pipeline.write_text(ct_pipeline.read_text() + "forward_to: [DEST]\n")
    server = make_server(
        pipelines_enabled=True,
        pipelines_dir=pipelines,
        models_dirs=[MODELS],
        stable_after_seconds=2,
        dispatcher_poll_s=0.2,
    )
    register_and_activate(server.context.database)
    positive = generate_ct_head(21, hemorrhage=True, slices=32, size=256)
    negative = generate_ct_head(22, hemorrhage=False, slices=32, size=256)
    cxr = generate_cxr(23, pneumothorax=True, size=512)
    broken = generate_ct_head(24, hemorrhage=True, slices=32, size=256)
    mixed_geometry(broken)
    files = []
    for index, study in enumerate((positive, negative, cxr, broken)):
        files += [p for p in write_study(study, tmp_path / f"in{index}") if p.suffix == ".dcm"]
    with storescp(tmp_path / "forwarded") as port:
        with server.context.database.write_sessions.begin() as session:
            nodes.create_or_update(session=session, ae_title="DEST", host="127.0.0.1", port=port)
        for result in storescu(server.dimse_port, files):
            assert result.returncode == 0, result.stderr
        jobs = wait_for_jobs(server.context.database, count=4)
        forwarded = {str(dcmread(p).Modality) for p in (tmp_path / "forwarded").iterdir()}

    by_study = {job.study_instance_uid: job for job in jobs}
    failed = by_study.pop(str(broken.datasets[0].StudyInstanceUID))
    assert failed.state == "failed" and "cannot take this series" in failed.error
    assert "SR" not in series_of(server, failed.study_instance_uid)  # nothing written
    assert [job.state for job in by_study.values()] == ["done"] * 3
    assert forwarded == {"SR", "SEG"}  # the CT pipeline forwards its results to DEST

    # Positive CT: an SR and a SEG that overlaps the truth.
    study_uid = str(positive.datasets[0].StudyInstanceUID)
    series = series_of(server, study_uid)
    assert len(series["SR"]) == 1 and len(series["SEG"]) == 1 and len(series["CT"]) == 1
    seg_path = get_series(server, study_uid, series["SEG"][0], tmp_path / "seg")
    sr_path = get_series(server, study_uid, series["SR"][0], tmp_path / "sr")
    assert dciodvfy_errors(seg_path) == [] and dciodvfy_errors(sr_path) == []
    seg = hd.seg.segread(seg_path)
    source_uids = [str(ds.SOPInstanceUID) for ds in positive.datasets]
    referenced = {str(uid) for _, _, uid in seg.get_source_image_uids()}
    pixels = seg.get_pixels_by_source_instance(
        [uid for uid in source_uids if uid in referenced], segment_numbers=[1]
    )[..., 0]
    predicted = np.zeros_like(positive.mask, dtype=bool)
    rows = [i for i, uid in enumerate(source_uids) if uid in referenced]
    predicted[rows] = pixels > 0
    overlap = dice(predicted, positive.mask)
    print(f"SEG Dice against the ground truth: {overlap:.3f}")
    assert overlap > 0.5
    sr = hd.sr.srread(sr_path)
    assert "ct-head-hemorrhage" in str(sr.SeriesDescription)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert groups, "the SR has an image-coordinate group for the finding"

    # Negative CT: an SR that says absent, and no SEG.
    negative_series = series_of(server, str(negative.datasets[0].StudyInstanceUID))
    assert len(negative_series["SR"]) == 1 and "SEG" not in negative_series

    # Chest radiograph: an SR.
    assert len(series_of(server, str(cxr.datasets[0].StudyInstanceUID))["SR"]) == 1

    with server.context.database.sessions() as session:
        findings = {
            row.study_instance_uid: row for row in session.execute(select(FindingRow)).scalars()
        }
    assert findings[study_uid].present and findings[study_uid].volume_ml
    assert not findings[str(negative.datasets[0].StudyInstanceUID)].present
    retrieved = dcmread(sr_path)
    assert retrieved.StudyInstanceUID == study_uid
