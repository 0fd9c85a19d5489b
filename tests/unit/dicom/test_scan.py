"""The raw walk: what it keeps, and every stream it leaves to pydicom."""

from __future__ import annotations

import struct
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from pacs_ai.dicom.scan import scan

PATIENT_ID = 0x00100020
REQUESTS = 0x00400275
PRIORITY = 0x00401003
CONTENT = 0x0040A730
WANTED = {PATIENT_ID: frozenset[int](), REQUESTS: frozenset({PRIORITY})}


def encoded(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def nested(depth: int) -> Sequence:
    inner = Dataset()
    inner.CodeValue = "X"
    sequence = Sequence([inner])
    for _ in range(depth - 1):
        outer = Dataset()
        outer.ContentSequence = sequence
        sequence = Sequence([outer])
    return sequence


def with_requests(*priorities: str) -> Dataset:
    ds = Dataset()
    ds.PatientID = "P-1"
    items = []
    for priority in priorities:
        item = Dataset()
        item.RequestedProcedurePriority = priority
        items.append(item)
    ds.RequestAttributesSequence = Sequence(items)
    return ds


def test_keeps_wanted_values_and_items_in_both_encodings() -> None:
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        found = scan(encoded(with_requests("HIGH", "STAT"), syntax), WANTED, 64)
        assert found is not None
        assert found.transfer_syntax == syntax
        assert found.elements[PATIENT_ID].raw == b"P-1 "
        assert found.elements[PATIENT_ID].vr == "LO"
        assert [item[PRIORITY].raw for item in found.items[REQUESTS]] == [b"HIGH", b"STAT"]


def test_undefined_length_sequences_and_items() -> None:
    data = encoded(with_requests("LOW"))
    ds = dcmread(BytesIO(data))
    ds["RequestAttributesSequence"].is_undefined_length = True
    for item in ds.RequestAttributesSequence:
        item.is_undefined_length_sequence_item = True
    out = BytesIO()
    ds.save_as(out)
    found = scan(out.getvalue(), WANTED, 64)
    assert found is not None
    assert found.items[REQUESTS][0][PRIORITY].raw == b"LOW "


def test_nesting_up_to_the_limit() -> None:
    ds = Dataset()
    ds.ContentSequence = nested(5)
    assert scan(encoded(ds), WANTED, 5) is not None
    assert scan(encoded(ds), WANTED, 4) is None


def test_encapsulated_pixel_data_is_what_pydicom_reads() -> None:
    ds = Dataset()
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0frame-one", b"\xff\xd8\xff\xe0two!"])
    ds["PixelData"].VR = "OB"
    data = encoded(ds, JPEGBaseline8Bit)
    found = scan(data, WANTED, 64)
    assert found is not None and found.pixel_data is not None
    assert bytes(found.pixel_data) == dcmread(BytesIO(data)).PixelData


def test_native_pixel_data() -> None:
    ds = Dataset()
    ds.add_new("PixelData", "OW", b"\x01\x02" * 8)
    found = scan(encoded(ds), WANTED, 64)
    assert found is not None and found.pixel_data is not None
    assert bytes(found.pixel_data) == b"\x01\x02" * 8


def test_left_to_pydicom() -> None:
    plain = encoded(with_requests("HIGH"))
    assert scan(plain, WANTED, 64) is not None
    cases = {
        "truncated value": plain[:-3],
        "cut inside a header": plain + b"\x10\x00",
        "no preamble": plain[132:],
        "item at the top level": plain + b"\xfe\xff\x00\xe0\x00\x00\x00\x00",
        "length past the end": plain[:-8] + b"\x10\x00\x20\x00LO\xff\x7f",
        "unknown VR": plain + b"\x10\x00\x30\x00QQ\x00\x00",
        "big endian": encoded(with_requests("HIGH"), ExplicitVRBigEndian),
        "deflated": encoded(with_requests("HIGH"), DeflatedExplicitVRLittleEndian),
    }
    for name, data in cases.items():
        assert scan(data, WANTED, 64) is None, name


def test_implicit_data_under_an_explicit_syntax_is_left_to_pydicom() -> None:
    implicit = encoded(with_requests("HIGH"), ImplicitVRLittleEndian)
    explicit = encoded(with_requests("HIGH"))
    lying = explicit[: meta_end(explicit)] + implicit[meta_end(implicit) :]
    assert scan(lying, WANTED, 64) is None


def meta_end(data: bytes) -> int:
    """Where the data set starts: after the file meta, whose group length says how long."""
    return 132 + 12 + struct.unpack_from("<L", data, 132 + 8)[0]


def test_private_sequence_of_undefined_length_in_implicit_vr() -> None:
    ds = Dataset()
    ds.PatientID = "P-2"
    block = ds.private_block(0x0009, "ACME", create=True)
    item = Dataset()
    item.CodeValue = "Y"
    block.add_new(0x10, "SQ", Sequence([item]))
    ds[0x00091010].is_undefined_length = True
    found = scan(encoded(ds, ImplicitVRLittleEndian), WANTED, 64)
    assert found is not None
    assert found.elements[PATIENT_ID].raw == b"P-2 "


def test_pixel_data_encoded_as_a_sequence_is_left_to_pydicom() -> None:
    plain = encoded(with_requests("HIGH"))
    item = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # one empty item
    as_sequence = b"\xe0\x7f\x10\x00SQ\x00\x00\xff\xff\xff\xff" + item + b"\xfe\xff\xdd\xe0\0\0\0\0"
    assert scan(plain + as_sequence, WANTED, 64) is None
