"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data, straight from the store.

The instances a request names are found by the shared matcher
(:func:`pacs_ai.archive.query.matching_instances`), the same that answers C-GET and C-MOVE.
Objects are sent as stored (no transcoding) and streamed from disk in chunks; frames are read
by seeking to them in the file (native data) or by walking the encapsulated items from the
Pixel Data's offset (PS3.5 A.4), never by loading a whole multi-frame object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.uid import UID
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.api.errors import ApiError
from pacs_ai.archive.query import Level, matching_instances
from pacs_ai.archive.schema import Patient, Series, Study
from pacs_ai.archive.storage import Storage, StorageError
from pacs_ai.dicom.uids import is_valid_uid
from pacs_ai.dicomweb.media import DICOM
from pacs_ai.dicomweb.multipart import CHUNK_BYTES, CRLF, closing, file_chunks, part_head

log = logging.getLogger(__name__)

BULK_DATA_THRESHOLD = 1024
"""Binary values longer than this are replaced by a BulkDataURI in metadata (PS3.18 8.7.4)."""

BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
PIXEL_DATA = 0x7FE00010
AVAILABLE_TRANSFER_SYNTAX = "00083002"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass(frozen=True)
class StoredInstance:
    """An instance a request resolved to, with what answering it needs."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    size_bytes: int


@dataclass(frozen=True)
class Resolved:
    """The instances of a request and the patient they belong to (for the audit trail)."""

    instances: list[StoredInstance]
    patient_id: str

    @property
    def syntaxes(self) -> set[str]:
        """The transfer syntaxes the instances are stored in."""
        return {i.transfer_syntax_uid for i in self.instances}


def check_uids(*uids: str | None) -> None:
    """400 for a path segment that is not a UID (PS3.5 9.1)."""
    for uid in uids:
        if uid is not None and not is_valid_uid(uid):
            raise ApiError(400, f"not a valid UID: {uid[:70]!r}")


def resolve(
    *,
    session: Session,
    storage: Storage,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Resolved:
    """The stored instances under the path's study, series or instance; 404 when none."""
    check_uids(study, series, instance)
    keys = {"StudyInstanceUID": study}
    level = Level.STUDY
    if series is not None:
        keys["SeriesInstanceUID"] = series
        level = Level.SERIES
    if instance is not None:
        keys["SOPInstanceUID"] = instance
        level = Level.IMAGE
    rows = matching_instances(session, level, keys)
    if not rows:
        raise ApiError(404, f"no such {level.name.lower()} in the archive")
    series_uids: dict[int, str] = {
        pk: uid
        for pk, uid in session.execute(
            select(Series.id, Series.series_instance_uid).where(
                Series.id.in_({r.series_pk for r in rows})
            )
        )
    }
    patient_id = (
        session.execute(
            select(Patient.patient_id)
            .join(Study, Study.patient_pk == Patient.id)
            .where(Study.study_instance_uid == study)
        ).scalar()
        or ""
    )
    found = []
    for row in rows:
        try:
            path = storage.open(row.path)
        except StorageError as exc:
            log.error("WADO-RS: %s", exc)
            raise ApiError(503, "an object file is missing from the store") from exc
        found.append(
            StoredInstance(
                study_uid=study,
                series_uid=series_uids[row.series_pk],
                sop_instance_uid=row.sop_instance_uid,
                sop_class_uid=row.sop_class_uid,
                transfer_syntax_uid=row.transfer_syntax_uid,
                path=path,
                size_bytes=row.size_bytes,
            )
        )
    return Resolved(found, patient_id)


def instance_url(base: str, instance: StoredInstance) -> str:
    """The WADO-RS URL of one instance."""
    return (
        f"{base}/studies/{instance.study_uid}/series/{instance.series_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )


def instances_body(instances: Sequence[StoredInstance], boundary: str) -> Iterator[bytes]:
    """The multipart body of a retrieve: each object file, as stored, in chunks.

    Small objects are gathered into chunks of about :data:`CHUNK_BYTES`: each chunk handed to
    the server costs a thread hop, which would otherwise dominate a series of small images.
    """
    buffer = bytearray()
    for instance in instances:
        buffer += part_head(boundary, f"{DICOM}; transfer-syntax={instance.transfer_syntax_uid}")
        for chunk in file_chunks(instance.path):
            buffer += chunk
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
        buffer += CRLF
    buffer += closing(boundary)
    yield bytes(buffer)


def _vr_of_raw(raw: RawDataElement, ds: Dataset) -> str:
    if raw.VR:
        return str(raw.VR)
    try:
        vr = dictionary_VR(raw.tag)
    except KeyError:
        return "UN"
    if "or" in vr:
        if raw.tag == PIXEL_DATA:
            return "OW" if int(ds.get("BitsAllocated", 16) or 16) > 8 else "OB"
        return vr.split(" or ")[-1]
    return vr


def _json_dataset(ds: Dataset, uri: str, path: list[str]) -> dict[str, Any]:
    """DICOM JSON (PS3.18 F.2) with large binary values as BulkDataURIs (F.2.6)."""
    out: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        if tag.element == 0 or tag.group == 0x0002:
            continue  # group lengths and file meta are not part of the metadata
        key = f"{int(tag):08X}"
        raw = ds.get_item(tag, keep_deferred=True)
        bulk_uri = f"{uri}/bulkdata/{'/'.join([*path, key])}"
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
            out[key] = {"vr": _vr_of_raw(raw, ds), "BulkDataURI": bulk_uri}
            continue
        element = ds[tag]
        if element.VR == "SQ":
            items = [
                _json_dataset(item, uri, [*path, key, str(index)])
                for index, item in enumerate(element.value)
            ]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        large = element.VR in BINARY_VRS and len(element.value or b"") > BULK_DATA_THRESHOLD
        if large or (int(tag) in PIXEL_TAGS and not path and element.value):
            out[key] = {"vr": element.VR, "BulkDataURI": bulk_uri}
            continue
        try:
            out[key] = element.to_json_dict(None, BULK_DATA_THRESHOLD)
        except (ValueError, TypeError, OverflowError):
            log.warning("metadata: value of %s does not convert to JSON; sent empty", key)
            out[key] = {"vr": element.VR}
    return out


def metadata(instance: StoredInstance, base: str) -> dict[str, Any]:
    """The DICOM JSON metadata of one instance (PS3.18 10.4.1.1.2), from its file's header.

    Values longer than :data:`BULK_DATA_THRESHOLD` are never read (deferred), and the stored
    transfer syntax is given as AvailableTransferSyntaxUID (0008,3002), so that a viewer knows
    what the frames will be.
    """
    ds = dcmread(instance.path, defer_size=BULK_DATA_THRESHOLD)
    out = _json_dataset(ds, instance_url(base, instance), [])
    out[AVAILABLE_TRANSFER_SYNTAX] = {"vr": "UI", "Value": [instance.transfer_syntax_uid]}
    return dict(sorted(out.items()))


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` as frame numbers; 400 for anything else (PS3.18 10.4.1.1.3)."""
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise ApiError(400, f"frame list must be comma-separated numbers: {text[:40]!r}") from exc
    if not numbers or any(n < 1 for n in numbers) or len(numbers) > 10_000:
        raise ApiError(400, "frame numbers start at 1")
    return numbers


def _int(ds: Dataset, keyword: str, default: int) -> int:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def frame_count(ds: Dataset) -> int:
    """Number of Frames, 1 when absent."""
    return max(_int(ds, "NumberOfFrames", 1), 1)


def all_frames(instance: StoredInstance) -> list[int]:
    """The numbers of every frame of an instance."""
    ds = dcmread(instance.path, stop_before_pixels=True)
    return list(range(1, frame_count(ds) + 1))


def _check_frames(ds: Dataset, numbers: Sequence[int]) -> int:
    if "PixelData" not in ds:
        raise ApiError(404, "this instance has no pixel data, so no frames")
    count = frame_count(ds)
    missing = [n for n in numbers if n > count]
    if missing:
        raise ApiError(404, f"frame {missing[0]} does not exist; the instance has {count}")
    return count


def _native_frames(ds: Dataset, path: Path, syntax: str, numbers: Sequence[int]) -> Iterator[bytes]:
    """Check the frame geometry now, then read the frames lazily by offset."""
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    samples, bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 8)
    frame_bits = rows * columns * samples * bits
    if frame_bits % 8 or not frame_bits:
        raise ApiError(422, "1-bit frames that do not end on a byte boundary are not served")
    size = frame_bits // 8
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    data: bytes | None = None
    if syntax == DEFLATED:
        data = dcmread(path).PixelData  # a deflated file cannot be read at an offset
    elif not (isinstance(raw, RawDataElement) and raw.value is None):
        data = ds.PixelData
    offset = raw.value_tell if isinstance(raw, RawDataElement) else 0

    def frames() -> Iterator[bytes]:
        with path.open("rb") as handle:
            for number in numbers:
                if data is not None:
                    frame = bytes(data[(number - 1) * size : number * size])
                else:
                    handle.seek(offset + (number - 1) * size)
                    frame = handle.read(size)
                if syntax == BIG_ENDIAN and bits in (16, 32):
                    swapped = np.frombuffer(frame, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}")
                    frame = swapped.tobytes()
                yield frame

    return frames()


def _encapsulated_frames(
    ds: Dataset, path: Path, numbers: Sequence[int], count: int
) -> Iterator[bytes]:
    """One frame is read now (so a damaged one is a 422, not a broken stream); more, lazily."""
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    deferred = isinstance(raw, RawDataElement) and raw.value is None
    start = raw.value_tell if isinstance(raw, RawDataElement) else 0

    def source(handle: Any) -> Any:
        if deferred:
            handle.seek(start)
            return handle
        return ds.PixelData

    if len(numbers) == 1:
        with path.open("rb") as handle:
            try:
                frame = get_frame(
                    source(handle), numbers[0] - 1, number_of_frames=count, extended_offsets=offsets
                )
            except (ValueError, KeyError, IndexError) as exc:
                raise ApiError(422, f"frame {numbers[0]} cannot be read: {exc}") from exc
        return iter([frame])

    def frames() -> Iterator[bytes]:
        wanted = set(numbers)
        found: dict[int, bytes] = {}
        with path.open("rb") as handle:
            every = generate_frames(
                source(handle), number_of_frames=count, extended_offsets=offsets
            )
            for index, frame in enumerate(every, start=1):
                if index in wanted:
                    found[index] = frame
                if len(found) == len(wanted):
                    break
        for number in numbers:
            yield found[number]

    return frames()


def read_frames(instance: StoredInstance, numbers: Sequence[int]) -> Iterator[bytes]:
    """The bytes of the requested frames, in the order asked (PS3.18 10.4.1.1.3).

    Native frames are Explicit VR Little Endian pixel bytes (big endian data is byte-swapped,
    which is no change of representation); compressed frames are the stored bitstreams.
    """
    ds = dcmread(instance.path, defer_size=BULK_DATA_THRESHOLD)
    count = _check_frames(ds, numbers)
    syntax = instance.transfer_syntax_uid
    if UID(syntax).is_encapsulated:
        return _encapsulated_frames(ds, instance.path, numbers, count)
    return _native_frames(ds, instance.path, syntax, numbers)


def parse_bulk_path(text: str) -> list[int | str]:
    """``7FE00010`` or ``00420011`` or ``00540016/0/00181074`` as alternating tags and indexes."""
    pieces = [p for p in text.split("/") if p]
    if not pieces or len(pieces) % 2 == 0:
        raise ApiError(400, "bulk data path must be tag(/index/tag)*")
    path: list[int | str] = []
    for position, piece in enumerate(pieces):
        if position % 2 == 0:
            if len(piece) != 8:
                raise ApiError(400, f"not a tag: {piece[:20]!r}")
            try:
                path.append(int(piece, 16))
            except ValueError as exc:
                raise ApiError(400, f"not a tag: {piece[:20]!r}") from exc
        else:
            if not piece.isdigit():
                raise ApiError(400, f"not an item index: {piece[:20]!r}")
            path.append(piece)
    return path


def read_bulk(instance: StoredInstance, path: list[int | str]) -> bytes:
    """The value of a binary element named by a bulk data path; 404 when it is not there."""
    ds: Any = dcmread(instance.path)
    for position, step in enumerate(path):
        if isinstance(step, str):
            index = int(step)
            if index >= len(ds):
                raise ApiError(404, "no such sequence item")
            ds = ds[index]
            continue
        if step not in ds:
            raise ApiError(404, f"no element {step:08X} in this instance")
        element = ds[step]
        if position == len(path) - 1:
            if element.VR not in BINARY_VRS or not isinstance(element.value, bytes):
                raise ApiError(404, f"element {step:08X} is not bulk data")
            return bytes(element.value)
        if element.VR != "SQ":
            raise ApiError(404, f"element {step:08X} is not a sequence")
        ds = element.value
    raise ApiError(404, "no such bulk data")
