"""STOW-RS (PS3.18 10.5): each part of the request goes through the one ingest path.

The response (PS3.18 10.5.3, Table 10.5.3-1 Store Instances Response Module) lists stored
instances in ReferencedSOPSequence with their RetrieveURL, and refused ones in
FailedSOPSequence with a FailureReason (PS3.18 Table 10.5.3-2, from PS3.4 B.2.3 and Annex C):

============================  ========  ==============================================
ingest refusal                code      meaning
============================  ========  ==============================================
invalid / not DICOM           0xC000    Error: Cannot understand
SOP class mismatch            0xA900    Error: Data Set does not match SOP Class
other study than the URL's    0xA900    (PS3.18 10.5.1: "StudyInstanceUID mismatch")
same UID, other content       0x0111    Duplicate SOP Instance (overwrite is off)
too large, disk refused       0xA700    Refused: Out of resources
index could not record        0x0110    Processing failure
part not application/dicom    0xC000    Error: Cannot understand
============================  ========  ==============================================

Each failed item also carries the reason as text in ErrorComment (0000,0902), the attribute
DIMSE uses for it. The HTTP status is 200 when all were stored, 202 when some failed and 409
when none was stored (PS3.18 10.5.3.1). A duplicate with identical content counts as stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pacs_ai.archive.ingest import IngestError, IngestErrorKind, IngestResult
from pacs_ai.archive.ingest_pool import BulkIngest
from pacs_ai.dicom.status import Status
from pacs_ai.dicomweb.media import DICOM, parse_media_type
from pacs_ai.dicomweb.multipart import Part

log = logging.getLogger(__name__)

ERROR_COMMENT_MAX = 64


FailureReason = Status  # FailureReason (0008,1197) takes the DIMSE status values

FAILURE_REASON = {
    IngestErrorKind.INVALID: FailureReason.CANNOT_UNDERSTAND,
    IngestErrorKind.SOP_CLASS_MISMATCH: FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS,
    IngestErrorKind.CONFLICT: FailureReason.DUPLICATE_SOP_INSTANCE,
    IngestErrorKind.TOO_LARGE: FailureReason.OUT_OF_RESOURCES,
    IngestErrorKind.STORAGE: FailureReason.OUT_OF_RESOURCES,
    IngestErrorKind.INDEX: FailureReason.PROCESSING_FAILURE,
}


@dataclass(frozen=True)
class Failure:
    """A refused part: what is known of it, the reason code and text."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    reason: FailureReason
    comment: str


@dataclass
class StoreOutcome:
    """What a STOW-RS request did."""

    stored: list[IngestResult] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def status_code(self) -> int:
        """200 all stored, 202 some refused, 409 none stored (PS3.18 10.5.3.1)."""
        if not self.failed:
            return 200
        return 202 if self.stored else 409

    @property
    def patient_ids(self) -> list[str]:
        """Patients whose data was stored."""
        return list(dict.fromkeys(r.patient_id for r in self.stored))

    @property
    def study_uids(self) -> list[str]:
        """Studies touched (stored or attempted)."""
        uids = [r.study_instance_uid for r in self.stored]
        uids += [f.study_uid for f in self.failed if f.study_uid]
        return list(dict.fromkeys(uids))


def _identify(data: bytes) -> tuple[str, str, str]:
    """SOP Class, SOP Instance and Study UIDs of a part, as far as its header can be read."""
    try:
        ds = dcmread(
            BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"],
        )
        return (
            str(ds.get("SOPClassUID", "")),
            str(ds.get("SOPInstanceUID", "")),
            str(ds.get("StudyInstanceUID", "")),
        )
    except Exception:  # a part that does not parse has no UIDs to report
        return "", "", ""


def _is_dicom_part(part: Part) -> bool:
    declared = part.content_type
    return declared is None or parse_media_type(declared).media_type == DICOM


def store_parts(
    *, ingestor: BulkIngest, body: Any, parts: Sequence[Part], study_uid: str | None
) -> StoreOutcome:
    """Ingest each part; with ``study_uid`` (``POST /studies/{uid}``) others are refused."""
    outcome = StoreOutcome()

    def acceptable() -> Iterator[bytes]:
        for part in parts:
            data = bytes(body[part.start : part.end])
            if not _is_dicom_part(part):
                outcome.failed.append(
                    Failure(
                        *_identify(data),
                        reason=FailureReason.CANNOT_UNDERSTAND,
                        comment=f"part is {part.content_type}, not {DICOM}",
                    )
                )
                continue
            if study_uid is not None:
                sop_class, sop_instance, study = _identify(data)
                if study and study != study_uid:
                    outcome.failed.append(
                        Failure(
                            sop_class,
                            sop_instance,
                            study,
                            FailureReason.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                            "StudyInstanceUID mismatch",
                        )
                    )
                    continue
            yield data

    for data, result in ingestor.ingest_many(acceptable()):
        if isinstance(result, IngestError):
            log.info("STOW-RS part refused (%s): %s", result.kind, result.reason)
            outcome.failed.append(
                Failure(*_identify(data), FAILURE_REASON[result.kind], result.reason)
            )
        else:
            outcome.stored.append(result)
    return outcome


def response_dataset(outcome: StoreOutcome, dicomweb_base: str, study_uid: str | None) -> Dataset:
    """The Store Instances Response Module (PS3.18 Table 10.5.3-1) of an outcome."""
    ds = Dataset()
    studies = {r.study_instance_uid for r in outcome.stored}
    target = study_uid or (next(iter(studies)) if len(studies) == 1 else None)
    if target is not None:
        ds.RetrieveURL = f"{dicomweb_base}/studies/{target}"
    referenced = []
    for result in outcome.stored:
        item = Dataset()
        item.ReferencedSOPClassUID = result.sop_class_uid
        item.ReferencedSOPInstanceUID = result.sop_instance_uid
        item.RetrieveURL = (
            f"{dicomweb_base}/studies/{result.study_instance_uid}/series/"
            f"{result.series_instance_uid}/instances/{result.sop_instance_uid}"
        )
        referenced.append(item)
    failed = []
    for failure in outcome.failed:
        item = Dataset()
        item.ReferencedSOPClassUID = failure.sop_class_uid or None
        item.ReferencedSOPInstanceUID = failure.sop_instance_uid or None
        item.FailureReason = int(failure.reason)
        item.add_new(0x00000902, "LO", failure.comment[:ERROR_COMMENT_MAX])
        failed.append(item)
    if referenced:
        ds.ReferencedSOPSequence = DicomSequence(referenced)
    if failed:
        ds.FailedSOPSequence = DicomSequence(failed)
    return ds
