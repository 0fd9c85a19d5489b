"""The raw walk and pydicom read the same header: wherever the walk vouches, both agree.

The walk serves most objects (the tests below make sure it does), so a difference would
index objects other than pydicom reads them. Every refusal comes from pydicom.
"""

from __future__ import annotations

import struct
import warnings
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from pacs_ai.archive import header
from pacs_ai.archive.errors import IngestError
from pacs_ai.archive.header import Parsed, parse, parse_with_pydicom
from pacs_ai.synth import generate_ct_head, write_study
from tests.conftest import sample_path
from tests.factories import damaged

CHECKED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fast(data: bytes) -> Parsed | None:
    """What the walk alone gives, None where it leaves the object to pydicom."""
    scanned = header.scan(data, header._WANTED, header.MAX_NESTING)
    if scanned is None:
        return None
    try:
        return header._index_view(header._ScannedHeader(scanned))
    except (header._NotPlain, IngestError):
        return None


def agree(data: bytes) -> Parsed | None:
    """The walk's view equals pydicom's wherever the walk gives one."""
    seen = fast(data)
    if seen is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert seen == parse_with_pydicom(data)
    return seen


@pytest.mark.parametrize(
    "name",
    ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm"],
)
def test_common_objects_take_the_walk(name: str) -> None:
    assert agree(sample_path(name).read_bytes()) is not None


def test_synthetic_ct_slices_take_the_walk(tmp_path: Path) -> None:
    study = generate_ct_head(11, hemorrhage=True, slices=3, size=64)
    paths = [p for p in write_study(study, tmp_path) if p.suffix == ".dcm"]
    assert paths
    for path in paths:
        assert agree(path.read_bytes()) is not None


def _text(max_codepoint: int) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(min_codepoint=32, max_codepoint=max_codepoint, blacklist_categories=("Cs",)),
        max_size=12,
    )


def _element(keyword: str, vr: str, value: bytes, implicit: bool) -> bytes:
    """An element as a sender encoded it, whatever it holds (pydicom's writer would check)."""
    tag = Tag(keyword)
    value += b" " * (len(value) % 2)
    head = struct.pack("<HH", tag.group, tag.elem)
    if implicit:
        return head + struct.pack("<L", len(value)) + value
    if vr in ("SQ", "UN"):
        return head + vr.encode() + b"\0\0" + struct.pack("<L", len(value)) + value
    return head + vr.encode() + struct.pack("<H", len(value)) + value


def _item(content: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<L", len(content)) + content


@st.composite
def objects(draw: st.DrawFn) -> bytes:
    """Objects as senders make them, odd values and all."""
    syntax = draw(
        st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit])
    )
    charset = draw(st.sampled_from([None, "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 87", ""]))
    highest = {None: 126, "": 126, "ISO_IR 100": 0xFF, "ISO_IR 192": 0x2FFF}.get(charset, 126)
    codec = "utf-8" if charset == "ISO_IR 192" else "latin-1"
    implicit = syntax == ImplicitVRLittleEndian
    charset_vrs = ("PN", "LO", "SH")
    extra: list[bytes] = []  # appended after what pydicom writes: tag order is not checked
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    sop_uid = draw(st.sampled_from(["1.2.3.4", "1.2.3.5", "1.2.x", ""]))
    ds.file_meta.MediaStorageSOPInstanceUID = draw(st.sampled_from([sop_uid or "1.2.9", "1.2.3.4"]))
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CTImageStorage
    if sop_uid:
        ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = draw(st.sampled_from(["1.2.3.1", "1.2.3.1\0", " 1.2.3.1"]))
    for keyword, vr in [
        ("PatientName", "PN"),
        ("PatientID", "LO"),
        ("AccessionNumber", "SH"),
        ("StudyDescription", "LO"),
        ("ReferringPhysicianName", "PN"),
        ("Modality", "CS"),
        ("StudyDate", "DA"),
        ("StudyTime", "TM"),
        ("SeriesNumber", "IS"),
        ("AcquisitionDateTime", "DT"),
    ]:
        if draw(st.booleans()):
            value = draw(_text(highest if vr in ("PN", "LO", "SH") else 126))
            extra.append(
                _element(
                    keyword, vr, value.encode(codec if vr in charset_vrs else "ascii"), implicit
                )
            )
    if draw(st.booleans()):
        items = b""
        for _ in range(draw(st.integers(0, 3))):
            content = b""
            if draw(st.booleans()):
                value = draw(_text(highest)).encode(codec)
                content = _element("RequestedProcedurePriority", "SH", value, implicit)
            items += _item(content)
        extra.append(_element("RequestAttributesSequence", "SQ", items, implicit))
    nested = Dataset()
    nested.CodeValue = "X"
    for _ in range(draw(st.integers(0, 3))):
        outer = Dataset()
        outer.ContentSequence = Sequence([nested])
        nested = outer
    ds.ContentSequence = Sequence([nested])
    if draw(st.booleans()):
        ds.add_new(0x00091010, "LO", "PRIVATE")
    ds.Rows = ds.Columns = draw(st.integers(1, 8))
    ds.BitsAllocated = 8
    ds.SamplesPerPixel = 1
    frames = draw(st.sampled_from(["1", "2", " 2 ", "+1", "x", "", None]))
    if frames is not None:
        extra.append(_element("NumberOfFrames", "IS", frames.encode(), implicit))
    if syntax == JPEGBaseline8Bit:
        count = draw(st.integers(1, 3))
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + b"\0" * 8] * count)
        ds["PixelData"].VR = "OB"
    else:
        size = ds.Rows * ds.Columns * draw(st.integers(1, 2)) + draw(st.integers(-1, 1))
        ds.PixelData = b"\x01" * max(size, 0)
    odd = draw(st.sampled_from([None, "PatientID", "PixelData", "Requests as UN", "Rows as UN"]))
    if odd in ("PatientID", "PixelData"):  # a value, or pixel data, as a sequence
        extra.append(
            _element(odd, "SQ", _item(_element("CodeValue", "SH", b"X", implicit)), implicit)
        )
    elif odd == "Requests as UN":  # a sequence pydicom may decode from UN (implicit inside)
        inner = _item(_element("RequestedProcedurePriority", "SH", b"STAT", True))
        extra.append(_element("RequestAttributesSequence", "UN", inner, implicit))
    elif odd == "Rows as UN":
        extra.append(_element("Rows", "UN", b"\x02\x00", implicit))
    out = BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return out.getvalue() + b"".join(extra)


@CHECKED
@given(objects())
def test_the_readers_agree_on_generated_objects(data: bytes) -> None:
    agree(data)


@CHECKED
@given(objects(), st.data())
def test_the_readers_agree_on_damaged_objects(source: bytes, data: st.DataObject) -> None:
    agree(damaged(source, data, steps=4))


def test_refusals_come_from_pydicom_with_its_reason() -> None:
    truncated = sample_path("CT_small.dcm").read_bytes()[:-100]
    assert fast(truncated) is None
    with pytest.raises(IngestError, match="truncated"):
        parse(truncated)


def test_rle_and_big_endian_objects_parse_either_way() -> None:
    for name in ["MR_small_bigendian.dcm", "SC_rgb_rle.dcm"]:
        data = sample_path(name).read_bytes()
        assert parse(data) == parse_with_pydicom(data)
