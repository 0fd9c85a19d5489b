"""Files on disk: dciodvfy finds no error, the same seed gives the same bytes, headers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from pacs_ai.dicom.uids import is_valid_uid
from pacs_ai.synth import SyntheticStudy, generate_ct_head, generate_cxr, write_study
from pacs_ai.synth.headers import PRIORITIES, SYNTHETIC_NOTICE

DCIODVFY = shutil.which("dciodvfy")


def _small_studies(seed: int) -> list[SyntheticStudy]:
    return [
        generate_ct_head(seed, hemorrhage=True, slices=4, size=64),
        generate_cxr(seed, pneumothorax=True, size=128),
        generate_cxr(seed, pneumothorax=False, size=128, photometric="MONOCHROME1"),
    ]


def _write_all(studies: list[SyntheticStudy], out: Path) -> list[Path]:
    return [path for study in studies for path in write_study(study, out)]


def test_dciodvfy_finds_no_error(tmp_path: Path) -> None:
    assert DCIODVFY is not None, "dciodvfy is missing: apt-get install dicom3tools"
    paths = _write_all(_small_studies(21), tmp_path)
    for path in [paths[0], paths[-2], paths[-1]]:  # a CT slice and both radiographs
        run = subprocess.run(
            [str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        lines = (run.stdout + run.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert errors == [], f"{path.name}: {errors}"


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = _write_all(_small_studies(5), tmp_path / "a")
    second = _write_all(_small_studies(5), tmp_path / "b")
    other = _write_all(_small_studies(6), tmp_path / "c")
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in second
    ]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    truths = sorted((tmp_path / "a").glob("*/truth.json"))
    for truth in truths:
        twin = tmp_path / "b" / truth.relative_to(tmp_path / "a")
        assert truth.read_bytes() == twin.read_bytes()
    for a, c in zip(first, other, strict=True):
        assert a.read_bytes() != c.read_bytes()
    assert {p.name for p in first}.isdisjoint({p.name for p in other})


def test_written_layout_and_truth(tmp_path: Path) -> None:
    study = generate_ct_head(3, hemorrhage=True, slices=4, size=32)
    paths = write_study(study, tmp_path)
    ds = study.datasets[0]
    assert paths[0] == (
        tmp_path / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    )
    truth = json.loads((tmp_path / ds.StudyInstanceUID / "truth.json").read_text())
    assert truth["label"] is True
    assert truth["kind"] == "ct_head"
    assert truth["mask_file"] == "mask.npy"
    assert len(truth["files"]) == 4
    assert all((tmp_path / ds.StudyInstanceUID / name).is_file() for name in truth["files"])


@pytest.mark.parametrize("kind", ["ct_head", "cxr"])
def test_headers_are_complete_and_say_synthetic(kind: str, tmp_path: Path) -> None:
    study = (
        generate_ct_head(7, hemorrhage=False, slices=2, size=32, case_number=1)
        if kind == "ct_head"
        else generate_cxr(7, pneumothorax=False, size=64, case_number=1)
    )
    ds = dcmread(write_study(study, tmp_path)[0])
    assert str(ds.PatientName) == "SYNTH^CASE0001"
    assert ds.PatientID.startswith("SYN")
    assert len(ds.PatientBirthDate) == 8 and ds.PatientSex in ("F", "M")
    assert ds.PatientComments == SYNTHETIC_NOTICE
    assert ds.ImageComments == SYNTHETIC_NOTICE
    assert ds.Manufacturer == "pacs-ai synth"
    assert ds.BodyPartExamined == ("HEAD" if kind == "ct_head" else "CHEST")
    for keyword in ("StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription"):
        assert ds.get(keyword), keyword
    assert ds.ReferringPhysicianName
    assert ds.SeriesNumber and ds.SeriesDescription
    request = ds.RequestAttributesSequence[0]
    assert request.RequestedProcedurePriority in PRIORITIES
    assert request.AccessionNumber == ds.AccessionNumber
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert is_valid_uid(str(uid))
    assert study.truth["priority"] == request.RequestedProcedurePriority


def test_ct_and_cxr_of_one_seed_are_different_patients() -> None:
    ct = generate_ct_head(9, hemorrhage=False, slices=1, size=32).datasets[0]
    cxr = generate_cxr(9, pneumothorax=False, size=64).datasets[0]
    assert ct.StudyInstanceUID != cxr.StudyInstanceUID
    assert ct.PatientID != cxr.PatientID
