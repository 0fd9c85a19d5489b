"""The index's view of an object: its header read, checked and picked apart.

Two readers give that view. A walk over the raw bytes (:mod:`pacs_ai.dicom.scan`) serves the
plainly well-formed objects that nearly every sender sends; pydicom reads everything else,
and every object that either reader refuses, so that a refusal and its reason always come
from pydicom. :func:`parse` then checks and picks the same attributes from either reader.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Protocol

from pydicom import dcmread
from pydicom.datadict import dictionary_has_tag, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from pacs_ai.archive.errors import IngestError, IngestErrorKind
from pacs_ai.dicom.scan import PIXEL_DATA, UNDEFINED, Scan, Value, scan
from pacs_ai.dicom.uids import is_valid_uid
from pacs_ai.dicom.values import normalize_datetime, normalize_pn, normalize_time

_JPEG_FAMILY = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
}
_J2K_FAMILY = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
_RLE = "1.2.840.10008.1.2.5"
MAX_NESTING = 64
_J2K_CODESTREAM = b"\xff\x4f\xff\x51"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "


@dataclass(frozen=True)
class Parsed:
    """The index's view of one object, taken from its header."""

    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient: dict[str, str]
    study: dict[str, str]
    series: dict[str, str]
    instance: dict[str, Any]


# Value representations held in the default repertoire whatever the Specific Character Set
# (PS3.5 6.1.2.3): their bytes are their text.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
# Text whose decoding depends on the Specific Character Set.
_CHARSET_VRS = frozenset({"LO", "SH", "PN"})
# Character sets decoded by one codec, as pydicom does (no charset: its default, Latin-1);
# any other (ISO 2022 escapes, ...) goes through pydicom.
_PLAIN_CODECS = {
    "": "latin_1",
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 192": "utf_8",
}


def _plain_codec(ds: Dataset) -> str | None:
    """The one codec of the dataset's text values, or None when pydicom must decode them."""
    charset = ds.get("SpecificCharacterSet")  # pydicom converts it while reading
    if charset is None:
        return _PLAIN_CODECS[""]
    if not isinstance(charset, str):  # several values: code extensions
        return None
    return _PLAIN_CODECS.get(charset.strip())


def _raw_text(ds: Dataset, keyword: str, codec: str | None) -> str | None:
    """A single-valued text element read from its raw bytes; None: let pydicom convert it.

    Converting through pydicom costs ~10 us an element and ingest reads twenty-five of them
    for every object. Anything unusual (converted already, multi-valued, a character set that
    needs pydicom, bytes that do not decode) falls back.
    """
    tag = tag_for_keyword(keyword)
    element = ds.get_item(tag) if tag is not None else None
    if (
        not isinstance(element, RawDataElement)
        or not isinstance(element.value, bytes)
        or b"\\" in element.value
    ):
        return None
    vr = element.VR or (dictionary_VR(tag) if dictionary_has_tag(tag) else None)
    try:
        if vr in _ASCII_VRS:
            text = element.value.decode("ascii")
        elif vr in _CHARSET_VRS and codec is not None:
            text = element.value.decode(codec)
        else:
            return None
    except UnicodeDecodeError:
        return None
    return text.rstrip("\0").strip()


def _text(ds: Dataset, keyword: str, limit: int, codec: str | None = None) -> str:
    """A string attribute as DICOM writes it (values joined by backslash), cut to the column."""
    raw = _raw_text(ds, keyword, codec)
    if raw is not None:
        return raw[:limit]
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    return text.strip()[:limit]


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _uid(ds: Dataset, keyword: str) -> str:
    text = _raw_text(ds, keyword, None)
    if text is None:
        value = ds.get(keyword)
        text = str(value).strip().rstrip("\0") if value is not None else ""
    if not text:
        raise IngestError(IngestErrorKind.INVALID, f"missing {keyword}")
    if not is_valid_uid(text):
        raise IngestError(IngestErrorKind.INVALID, f"{keyword} is not a valid UID: {text[:80]!r}")
    return text


class _Header(Protocol):
    """An object's header, from either reader; every method may raise IngestError."""

    syntax: str
    meta_class: str
    meta_instance: str

    def uid(self, keyword: str) -> str:
        """A UID attribute, which must be present and valid."""
        ...

    def text(self, keyword: str, limit: int) -> str:
        """A string attribute as DICOM writes it (values joined by backslash), cut."""
        ...

    def integer(self, keyword: str) -> int | None:
        """An integer attribute; None when absent, empty or not a single integer."""
        ...

    def priority(self) -> str:
        """Requested Procedure Priority, from the last request that states one."""
        ...

    def pixel_data(self) -> bytes | bytearray | memoryview | None:
        """The value of Pixel Data, uncopied; None when there is none."""
        ...


def _check_native_pixels(header: _Header, length: int) -> None:
    """Native pixel data must hold exactly what Rows x Columns x ... says (PS3.5 8.1.1)."""
    rows, columns = header.integer("Rows"), header.integer("Columns")
    bits = header.integer("BitsAllocated")
    if not rows or not columns or not bits:
        raise IngestError(IngestErrorKind.INVALID, "pixel data without Rows/Columns/BitsAllocated")
    samples = header.integer("SamplesPerPixel") or 1
    frames = header.integer("NumberOfFrames") or 1
    total_bits = rows * columns * samples * frames * bits
    expected = (total_bits + 7) // 8
    if length not in (expected, expected + 1):
        raise IngestError(
            IngestErrorKind.INVALID,
            f"pixel data is {length} bytes, the image header says {expected}",
        )


def _check_encapsulated_pixels(header: _Header, data: bytes, syntax: str) -> None:
    """Encapsulated pixel data must parse as items (PS3.5 A.4) and each frame start as its codec."""
    frames = header.integer("NumberOfFrames") or 1
    try:
        found = list(generate_frames(data, number_of_frames=frames))
    except Exception as exc:
        raise IngestError(
            IngestErrorKind.INVALID, f"broken encapsulated pixel data: {exc}"
        ) from exc
    if len(found) != frames:
        raise IngestError(
            IngestErrorKind.INVALID, f"{len(found)} compressed frames, header says {frames}"
        )
    for index, frame in enumerate(found, start=1):
        if syntax in _JPEG_FAMILY and not frame.startswith(b"\xff\xd8"):
            raise IngestError(IngestErrorKind.INVALID, f"frame {index} is not a JPEG stream")
        if syntax in _J2K_FAMILY and not (
            frame.startswith(_J2K_CODESTREAM) or frame.startswith(_JP2_SIGNATURE)
        ):
            raise IngestError(IngestErrorKind.INVALID, f"frame {index} is not a JPEG 2000 stream")
        if syntax == _RLE:
            segments = int.from_bytes(frame[:4], "little") if len(frame) >= 64 else 0
            first = int.from_bytes(frame[4:8], "little") if len(frame) >= 64 else 0
            if not 1 <= segments <= 15 or first != 64:
                raise IngestError(IngestErrorKind.INVALID, f"frame {index} has no valid RLE header")


def _is_sequence(element: DataElement | RawDataElement) -> bool:
    """A sequence to descend into; encapsulated pixel data (undefined length too) is not one.

    Ordered so that the common element, with its VR known and a defined length, costs two
    comparisons (a tag comparison is a Python call in pydicom).
    """
    if not isinstance(element, RawDataElement):
        return element.VR == "SQ"
    if element.VR == "SQ" or element.length == UNDEFINED:
        return element.tag != PIXEL_DATA
    return (
        element.VR is None
        and dictionary_has_tag(element.tag)
        and dictionary_VR(element.tag) == "SQ"
    )


def _check_structure(ds: Dataset, depth: int = 0) -> None:
    """Refuse values cut short and sequences that do not parse, down to every nested item.

    pydicom keeps a value cut short by the end of the stream without complaint, and parses
    sequences only when asked; plain values are kept as received (a wrong VR in an element the
    index does not read harms nobody), so only lengths and sequence structure are checked.
    """
    if depth > MAX_NESTING:
        raise IngestError(IngestErrorKind.INVALID, f"sequences nested deeper than {MAX_NESTING}")
    for element in ds.values():  # as parsed, unconverted; order does not matter here
        if (
            isinstance(element, RawDataElement)
            and element.length != UNDEFINED
            and element.value is not None
            and len(element.value) != element.length
        ):
            raise IngestError(
                IngestErrorKind.INVALID,
                f"element {element.tag} is truncated: "
                f"{len(element.value)} of {element.length} bytes",
            )
        if _is_sequence(element):
            for item in ds[element.tag].value or []:
                _check_structure(item, depth + 1)


class _PydicomHeader:
    """The header as pydicom reads it, structure checked down to every nested item."""

    def __init__(self, data: bytes) -> None:
        self.ds = dcmread(BytesIO(data))
        _check_structure(self.ds)
        self.codec = _plain_codec(self.ds)
        meta = self.ds.file_meta
        self.syntax = str(meta.get("TransferSyntaxUID", "")).strip()
        self.meta_class = str(meta.get("MediaStorageSOPClassUID", "")).strip()
        self.meta_instance = str(meta.get("MediaStorageSOPInstanceUID", "")).strip()

    def uid(self, keyword: str) -> str:
        return _uid(self.ds, keyword)

    def text(self, keyword: str, limit: int) -> str:
        return _text(self.ds, keyword, limit, self.codec)

    def integer(self, keyword: str) -> int | None:
        return _int(self.ds, keyword)

    def priority(self) -> str:
        priority = ""
        for item in self.ds.get("RequestAttributesSequence", []) or []:
            priority = _text(item, "RequestedProcedurePriority", 16) or priority
        return priority

    def pixel_data(self) -> bytes | bytearray | None:
        if "PixelData" not in self.ds:
            return None
        pixels = self.ds["PixelData"].value
        if not isinstance(pixels, (bytes, bytearray)):
            raise IngestError(IngestErrorKind.INVALID, "pixel data has no value")
        return pixels


class _NotPlain(Exception):
    """A value the scan kept is not plainly what ingest reads: pydicom should read it."""


_TEXT_KEYWORDS = [
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "PatientAge",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesDate",
    "SeriesTime",
    "PerformedProcedureStepStartDate",
    "InstanceNumber",
    "AcquisitionDateTime",
    "AcquisitionDate",
    "AcquisitionTime",
]
_UID_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_INT_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "NumberOfFrames")


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return int(tag)


_VR_OF = {
    keyword: dictionary_VR(_tag(keyword))
    for keyword in (*_TEXT_KEYWORDS, *_UID_KEYWORDS, *_INT_KEYWORDS, "RequestedProcedurePriority")
}
_TAG_OF = {keyword: _tag(keyword) for keyword in _VR_OF}
_CHARSET = _tag("SpecificCharacterSet")
_REQUESTS = _tag("RequestAttributesSequence")
_PRIORITY = _TAG_OF["RequestedProcedurePriority"]
_WANTED = {
    **{tag: frozenset[int]() for tag in _TAG_OF.values()},
    _CHARSET: frozenset[int](),
    _REQUESTS: frozenset({_PRIORITY}),
}
_DIGITS = re.compile(r"\d+")
_US = struct.Struct("<H")


class _ScannedHeader:
    """The header as the raw walk kept it; any value not plainly what is expected raises
    :class:`_NotPlain`."""

    def __init__(self, scanned: Scan) -> None:
        self.scanned = scanned
        self.syntax = scanned.transfer_syntax
        self.meta_class = self._meta_uid(0x00020002)
        self.meta_instance = self._meta_uid(0x00020003)
        charset = scanned.elements.get(_CHARSET)
        name = "" if charset is None else _decoded(charset, "CS", "ascii").strip()
        codec = _PLAIN_CODECS.get(name)
        if codec is None:
            raise _NotPlain
        self.codec = codec

    def _meta_uid(self, tag: int) -> str:
        value = self.scanned.meta.get(tag)
        return "" if value is None else _decoded(value, "UI", "ascii").rstrip("\0 ").strip()

    def uid(self, keyword: str) -> str:
        value = self.scanned.elements.get(_TAG_OF[keyword])
        text = "" if value is None else _decoded(value, "UI", "ascii").rstrip("\0").strip()
        if not text or not is_valid_uid(text):
            raise _NotPlain
        return text

    def text(self, keyword: str, limit: int) -> str:
        return self._text(self.scanned.elements, keyword)[:limit]

    def _text(self, elements: dict[int, Value], keyword: str) -> str:
        value = elements.get(_TAG_OF[keyword])
        if value is None:
            return ""
        vr = _VR_OF[keyword]
        codec = "ascii" if vr in _ASCII_VRS else self.codec if vr in _CHARSET_VRS else None
        if codec is None:
            raise _NotPlain
        return _decoded(value, vr, codec).rstrip("\0").strip()

    def integer(self, keyword: str) -> int | None:
        value = self.scanned.elements.get(_TAG_OF[keyword])
        if value is None:
            return None
        vr = _VR_OF[keyword]
        if vr == "US" and value.vr == "US" and len(value.raw) == 2:
            return int(_US.unpack(value.raw)[0])
        if vr == "IS" and value.vr == "IS":
            text = _decoded(value, "IS", "ascii").strip(" \0")
            if not text:
                return None
            if _DIGITS.fullmatch(text):
                return int(text)
        raise _NotPlain

    def priority(self) -> str:
        if _REQUESTS in self.scanned.elements:
            raise _NotPlain  # not encoded as a sequence: pydicom may read it as one
        priority = ""
        for item in self.scanned.items.get(_REQUESTS, []):
            priority = self._text(item, "RequestedProcedurePriority")[:16] or priority
        return priority

    def pixel_data(self) -> memoryview | None:
        pixels = self.scanned.pixel_data
        if pixels is not None and not len(pixels):
            raise _NotPlain  # pydicom's value for an empty element: let it say what it is
        return pixels


def _decoded(value: Value, vr: str, codec: str) -> str:
    """A single value of the expected VR, decoded; anything else is not plain."""
    if value.vr != vr or b"\\" in value.raw:
        raise _NotPlain
    try:
        return value.raw.decode(codec)
    except UnicodeDecodeError:
        raise _NotPlain from None


def parse(data: bytes) -> Parsed:
    """Parse and validate a Part 10 stream; IngestError(INVALID...) for anything unsound.

    Lengths, sequence structure, UIDs and pixel data are checked now, so that a damaged
    object is refused at the door rather than found when a viewer opens it.
    """
    scanned = scan(data, _WANTED, MAX_NESTING)
    if scanned is not None:
        try:
            return _index_view(_ScannedHeader(scanned))
        except (_NotPlain, IngestError):
            pass  # pydicom reads it, and refuses it with its reason
    try:
        return _index_view(_PydicomHeader(data))
    except IngestError:
        raise
    except InvalidDicomError as exc:
        raise IngestError(IngestErrorKind.INVALID, f"not a DICOM Part 10 stream: {exc}") from exc
    except RecursionError as exc:
        raise IngestError(IngestErrorKind.INVALID, "sequences nested too deeply") from exc
    except Exception as exc:  # pydicom raises many types on damaged input
        raise IngestError(
            IngestErrorKind.INVALID, f"cannot parse dataset: {type(exc).__name__}: {exc}"
        ) from exc


@functools.lru_cache(maxsize=64)
def _is_encapsulated(syntax: str) -> bool:
    """Cached (pydicom checks a UID against a regular expression each time one is made);
    bounded, as senders choose the UID."""
    return UID(syntax).is_encapsulated


def parse_with_pydicom(data: bytes) -> Parsed:
    """What :func:`parse` gives when pydicom reads ``data``: for tests comparing the readers."""
    return _index_view(_PydicomHeader(data))


def _index_view(header: _Header) -> Parsed:
    """The checks and the attributes, the same whichever reader read the header."""
    syntax = header.syntax
    if not syntax or not is_valid_uid(syntax):
        raise IngestError(IngestErrorKind.INVALID, "file meta has no valid TransferSyntaxUID")
    sop_class = header.uid("SOPClassUID")
    sop_instance = header.uid("SOPInstanceUID")
    meta_class, meta_instance = header.meta_class, header.meta_instance
    if meta_class and meta_class != sop_class:
        raise IngestError(
            IngestErrorKind.SOP_CLASS_MISMATCH,
            f"dataset SOPClassUID {sop_class} does not match {meta_class}",
        )
    if meta_instance and meta_instance != sop_instance:
        raise IngestError(
            IngestErrorKind.INVALID,
            f"dataset SOPInstanceUID {sop_instance} does not match {meta_instance}",
        )
    study_uid = header.uid("StudyInstanceUID")
    series_uid = header.uid("SeriesInstanceUID")
    pixels = header.pixel_data()
    if pixels is not None:
        if _is_encapsulated(syntax):
            _check_encapsulated_pixels(header, bytes(pixels), syntax)
        else:
            _check_native_pixels(header, len(pixels))
    text = header.text
    study_time = text("StudyTime", 16)
    acquired = text("AcquisitionDateTime", 26) or (
        text("AcquisitionDate", 8) + text("AcquisitionTime", 16)
    )
    priority = header.priority()
    patient_name = text("PatientName", 324)
    referring = text("ReferringPhysicianName", 324)
    return Parsed(
        transfer_syntax_uid=syntax,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        series_instance_uid=series_uid,
        study_instance_uid=study_uid,
        patient={
            "patient_id": text("PatientID", 64),
            "issuer_of_patient_id": text("IssuerOfPatientID", 64),
            "patient_name": patient_name,
            "patient_name_norm": normalize_pn(patient_name),
            "patient_birth_date": text("PatientBirthDate", 8),
            "patient_sex": text("PatientSex", 16),
        },
        study={
            "study_date": text("StudyDate", 8),
            "study_time": study_time,
            "study_time_norm": normalize_time(study_time) or "",
            "accession_number": text("AccessionNumber", 16),
            "study_id": text("StudyID", 16),
            "study_description": text("StudyDescription", 64),
            "referring_physician_name": referring,
            "referring_physician_name_norm": normalize_pn(referring),
            "patient_age": text("PatientAge", 4),
            "requested_procedure_priority": priority,
        },
        series={
            "modality": text("Modality", 16),
            "series_number": text("SeriesNumber", 12),
            "series_description": text("SeriesDescription", 64),
            "body_part_examined": text("BodyPartExamined", 16),
            "series_date": text("SeriesDate", 8),
            "series_time": text("SeriesTime", 16),
            "performed_procedure_step_start_date": text("PerformedProcedureStepStartDate", 8),
        },
        instance={
            "sop_class_uid": sop_class,
            "instance_number": text("InstanceNumber", 12),
            "transfer_syntax_uid": syntax,
            "rows": header.integer("Rows"),
            "columns": header.integer("Columns"),
            "number_of_frames": header.integer("NumberOfFrames"),
            "acquisition_datetime": acquired,
            "acquisition_datetime_norm": normalize_datetime(acquired) or "",
        },
    )
