"""Small DICOM objects built in tests, as Part 10 bytes or files."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from pacs_ai.dicom.uids import derived_uid

NEAR_2_32 = [b"\xff\xff\xff\xff", b"\xfe\xff\xff\xff", b"\x00\x00\x00\x80", b"\xfe\xff\x00\xe0"]
"""Lengths near 2**32, and the item tag (which reads as one): where damage hurts most."""


def damaged(source: bytes, data: st.DataObject, *, first: int = 0, steps: int = 8) -> bytes:
    """``source`` with up to ``steps`` damages at or after byte ``first``: a changed byte, a
    cut, inserted bytes, or a 32-bit value a length or item tag could be (near 2**32)."""
    damage = bytearray(source)
    for _ in range(data.draw(st.integers(1, steps))):
        if len(damage) <= first + 8:
            break
        position = data.draw(st.integers(first, len(damage) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if action == "flip":
            damage[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del damage[position:]
        elif action == "insert":
            damage[position:position] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            damage[position : position + 4] = data.draw(st.sampled_from(NEAR_2_32))
    return bytes(damage)


def part10(ds: Dataset) -> bytes:
    """Encode a dataset (with file meta) as a Part 10 stream."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_instance(
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    pixels: bool = True,
    **attributes: Any,
) -> bytes:
    """A small Secondary Capture object; ``attributes`` set any keyword."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "Test^Patient"
    ds.PatientID = "P1"
    ds.Modality = "OT"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.ConversionType = "WSD"
    if pixels:
        ds.Rows = 4
        ds.Columns = 4
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = bytes(range(16))
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return part10(ds)


def clone_series(template: Path, count: int, out_dir: Path, *, seed: str) -> list[Path]:
    """``count`` copies of ``template`` as one new study/series, each with its own UIDs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = dcmread(template)
    study_uid = derived_uid(seed, "study")
    series_uid = derived_uid(seed, "series")
    paths = []
    for index in range(count):
        ds = base.copy()
        ds.file_meta = base.file_meta.copy()
        sop_uid = derived_uid(seed, "sop", index)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = index + 1
        ds.PatientID = f"PID-{seed}"
        path = out_dir / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
