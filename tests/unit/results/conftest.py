"""Shared inputs of the result writer tests: small synthetic studies, a model, dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from pacs_ai.results import Algorithm
from pacs_ai.synth import SyntheticStudy, generate_ct_head, generate_cxr

#: What dciodvfy says about a file: its Error lines and its Warning lines.
Verdict = tuple[list[str], list[str]]


@pytest.fixture(scope="session")
def algorithm() -> Algorithm:
    """A research-only model version."""
    return Algorithm(
        name="ct-head-hemorrhage", version="1.0.0", weights_sha256="0123456789abcdef" * 4
    )


@pytest.fixture(scope="session")
def ct_positive() -> SyntheticStudy:
    """A small CT head with hemorrhage (24 slices of 128 x 128)."""
    return generate_ct_head(1, hemorrhage=True, slices=24, size=128)


@pytest.fixture(scope="session")
def ct_negative() -> SyntheticStudy:
    """A small CT head without hemorrhage."""
    return generate_ct_head(2, hemorrhage=False, slices=24, size=128)


@pytest.fixture(scope="session")
def cxr_positive() -> SyntheticStudy:
    """A small chest radiograph with pneumothorax."""
    return generate_cxr(1, pneumothorax=True, size=128)


@pytest.fixture(scope="session")
def cxr_negative() -> SyntheticStudy:
    """A small chest radiograph without pneumothorax."""
    return generate_cxr(2, pneumothorax=False, size=128)


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], Verdict]:
    """Run dciodvfy on a file: its Error lines and its Warning lines."""
    program = shutil.which("dciodvfy")
    assert program is not None, "dciodvfy is missing: apt-get install dicom3tools"

    def run(path: Path) -> Verdict:
        done = subprocess.run(
            [program, str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        lines = (done.stdout + done.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        return errors, [line for line in lines if line.startswith("Warning")]

    return run


@pytest.fixture
def write(tmp_path: Path) -> Callable[[Dataset, str], Path]:
    """Write a dataset as a Part 10 file in a temporary folder."""

    def save(ds: Dataset, name: str) -> Path:
        path = tmp_path / name
        ds.save_as(path, enforce_file_format=True)
        return path

    return save


@pytest.fixture(scope="session")
def dsrdump() -> Callable[[Path], list[str]]:
    """Read an SR with DCMTK's dsrdump: what it complains about (content tree and IOD)."""
    program = shutil.which("dsrdump")
    assert program is not None, "dsrdump is missing: apt-get install dcmtk"

    def run(path: Path) -> list[str]:
        done = subprocess.run(
            [program, str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stderr.splitlines()

    return run
