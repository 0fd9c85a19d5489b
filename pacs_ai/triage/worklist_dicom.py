"""What the worklist reads from DICOM objects: the patient setting, and key images of findings.

The rest of the worklist reads the index and the finding table only; this module is where it
opens stored objects, each for a reason the index cannot serve.

Patient setting
---------------
Triage weighs an emergency patient above an inpatient above an outpatient (HL7 v2 PV1-2). The
archive does not index it, so :func:`sync_entries` reads Current Patient Location (0038,0300)
from the first instance of each new study, once, and keeps the result on the study's
worklist entry. The value is free text (PS3.3 C.3.4, Visit Status): an HL7 patient class code
(``E``, ``I``, ``O``) or name is taken as it is, else a few usual words decide (``ER``,
``ED``, ``Emergency``; ``Ward``, ``ICU``; ``Clinic``, ``OPD``), else the setting stays
unknown and the score leaves it out. Sites that know the patient class put the code there.

Key images
----------
A finding's key image is the source image where its segmentation (the SEG the pipeline
stored, read with highdicom's ``segread``) covers the most pixels, rendered as WADO-RS renders
it (:func:`pacs_ai.dicomweb.render.render`) with the mask filled and outlined in red. A
finding without a segmentation (a radiograph classifier) shows the middle image of the series
the model read.
"""

from __future__ import annotations

import io
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Instance, Series, Study
from pacs_ai.archive.storage import Storage, StorageError
from pacs_ai.dicomweb.render import RenderOptions, render
from pacs_ai.pipeline.schema import Job
from pacs_ai.triage.schema import WorklistEntry
from pacs_ai.triage.score import PatientSetting
from pacs_ai.triage.worklist import StoredFinding
from pacs_ai.triage.worklist_reading import ensure_entries

log = logging.getLogger(__name__)

#: Patient settings read per call of :func:`sync_entries`, so that a first start over a full
#: archive does not hold the background task for long.
SYNC_BATCH = 500

_LOCATION_WORDS = {
    PatientSetting.EMERGENCY: frozenset({"EMERGENCY", "EMERG", "ER", "ED", "A&E", "CASUALTY"}),
    PatientSetting.INPATIENT: frozenset({"INPATIENT", "WARD", "ICU", "ITU", "HDU", "BED"}),
    PatientSetting.OUTPATIENT: frozenset({"OUTPATIENT", "OPD", "CLINIC", "AMBULATORY"}),
}
_FILL = (255, 48, 48)
_FILL_ALPHA = 0.3
_OUTLINE = (255, 64, 64)


def setting_from_location(text: str) -> PatientSetting | None:
    """The setting a Current Patient Location names, or None when it names none we know."""
    parsed = PatientSetting.parse(text) if text.strip() else None
    if parsed is not None:
        return parsed
    words = set(re.split(r"[^A-Z&]+", text.upper()))
    for setting, known in _LOCATION_WORDS.items():
        if words & known:
            return setting
    return None


def read_patient_setting(path: Path) -> PatientSetting | None:
    """The patient setting in one object's header (Current Patient Location)."""
    ds = dcmread(path, stop_before_pixels=True, specific_tags=["CurrentPatientLocation"])
    return setting_from_location(str(ds.get("CurrentPatientLocation", "") or ""))


@dataclass(frozen=True)
class Synced:
    """What one :func:`sync_entries` call did."""

    settings_found: int
    """Patient settings found: the ranking changes only when this is not zero."""
    more: bool
    """Whether entries still wait for their setting (the next call goes on)."""


def sync_entries(
    *, database: Database, storage: Storage, now: datetime, horizon_start: datetime | None
) -> Synced:
    """Add entries for studies that have none, then read up to :data:`SYNC_BATCH` settings.

    Files are read outside any transaction, and a write transaction is opened only when there
    is something to write.
    """
    missing = (
        select(Study.id)
        .outerjoin(WorklistEntry, WorklistEntry.study_pk == Study.id)
        .where(WorklistEntry.study_pk.is_(None))
    )
    if horizon_start is not None:
        missing = missing.where(Study.created_at >= horizon_start)
    with database.sessions() as session:
        new = list(session.scalars(missing))
    if new:
        with database.write_sessions.begin() as session:
            ensure_entries(session=session, study_pks=new, now=now)
    with database.sessions() as session:
        pending = list(
            session.scalars(
                select(WorklistEntry.study_pk)
                .where(WorklistEntry.setting_checked.is_(False))
                .limit(SYNC_BATCH + 1)
            )
        )
        more = len(pending) > SYNC_BATCH
        pending = pending[:SYNC_BATCH]
        paths = _first_instances(session, pending)
    found = {pk: _setting_of(storage, paths.get(pk)) for pk in pending}
    if found:
        with database.write_sessions.begin() as session:
            session.execute(
                update(WorklistEntry),
                [
                    {
                        "study_pk": pk,
                        "patient_setting": setting.value if setting else "",
                        "setting_checked": True,
                    }
                    for pk, setting in found.items()
                ],
            )
    return Synced(sum(1 for setting in found.values() if setting is not None), more)


def _first_instances(session: Session, study_pks: list[int]) -> dict[int, str]:
    """Stored path of the first instance received for each study."""
    if not study_pks:
        return {}
    first = (
        select(Series.study_pk, func.min(Instance.id).label("instance_pk"))
        .join(Instance, Instance.series_pk == Series.id)
        .where(Series.study_pk.in_(study_pks))
        .group_by(Series.study_pk)
        .subquery()
    )
    rows = session.execute(
        select(first.c.study_pk, Instance.path).join(Instance, Instance.id == first.c.instance_pk)
    )
    return {pk: path for pk, path in rows}


def _setting_of(storage: Storage, relative: str | None) -> PatientSetting | None:
    if relative is None:
        return None
    try:
        return read_patient_setting(storage.open(relative))
    except (StorageError, InvalidDicomError, OSError) as exc:
        log.warning("worklist: cannot read the patient setting from %s: %s", relative, exc)
        return None


@dataclass(frozen=True)
class KeyImage:
    """The source image that best shows a finding, and the segmentation drawn on it."""

    finding_id: int
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    segmentation_uid: str | None


@dataclass(frozen=True)
class _Stored:
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    path: str


def _instances(session: Session, *where: object) -> list[_Stored]:
    rows = session.execute(
        select(
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.path,
        )
        .join(Series, Series.id == Instance.series_pk)
        .where(*where)  # type: ignore[arg-type]
        .order_by(Instance.id)
    )
    return [_Stored(*row) for row in rows]


def _segmentation(session: Session, job: Job) -> _Stored | None:
    results = [uid for uid in job.result_sop_uids.split("\\") if uid]
    if not results:
        return None
    found = _instances(
        session,
        Instance.sop_instance_uid.in_(results),
        Instance.sop_class_uid == SegmentationStorage,
    )
    return found[0] if found else None


def _segments(seg: hd.seg.Segmentation, finding: StoredFinding) -> list[int]:
    """The segments of ``finding``'s code; every segment when none is coded so."""
    code = Code(finding.code_value, finding.code_scheme, finding.code_meaning)
    numbers = list(seg.get_segment_numbers(segmented_property_type=code))
    return numbers or list(seg.segment_numbers)


def _key_source(seg: hd.seg.Segmentation, segments: list[int]) -> str | None:
    """The source SOP Instance UID whose frames of ``segments`` cover the most pixels.

    Frame attributes are per frame, or shared by all frames (PS3.3 C.7.6.16): a SEG with one
    segment states its Segment Identification once, in the shared functional groups.
    """
    frames = np.asarray(seg.pixel_array)
    if frames.ndim == 2:
        frames = frames[None]
    shared = seg.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    areas: dict[str, int] = defaultdict(int)
    for index, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        identification = group.get("SegmentIdentificationSequence") or shared.get(
            "SegmentIdentificationSequence"
        )
        if int(identification[0].ReferencedSegmentNumber) not in segments:
            continue
        derivations = group.get("DerivationImageSequence") or shared.get(
            "DerivationImageSequence", []
        )
        for derivation in derivations:
            for source in derivation.get("SourceImageSequence", []):
                areas[str(source.ReferencedSOPInstanceUID)] += int(np.count_nonzero(frames[index]))
    return max(areas, key=lambda uid: (areas[uid], uid)) if areas else None


def key_image(
    *, session: Session, storage: Storage, finding: StoredFinding
) -> tuple[KeyImage, NDArray[np.bool_] | None] | None:
    """The key image of ``finding`` and the mask to draw on it; None when nothing is stored."""
    job = session.get(Job, finding.job_id)
    if job is None:
        return None
    stored = _segmentation(session, job)
    if stored is not None:
        seg = hd.seg.segread(storage.open(stored.path))
        segments = _segments(seg, finding)
        source_uid = _key_source(seg, segments)
        if source_uid is not None:
            pixels = seg.get_pixels_by_source_instance(
                [source_uid], segment_numbers=segments, assert_missing_frames_are_empty=True
            )
            mask: NDArray[np.bool_] = np.asarray(np.asarray(pixels[0]).any(axis=-1), dtype=bool)
            sources = _instances(session, Instance.sop_instance_uid == source_uid)
            if sources:
                return (
                    KeyImage(
                        finding_id=finding.id,
                        study_uid=finding.study_instance_uid,
                        series_uid=sources[0].series_uid,
                        sop_instance_uid=source_uid,
                        segmentation_uid=stored.sop_instance_uid,
                    ),
                    mask,
                )
    series = _instances(session, Series.series_instance_uid == job.series_instance_uid)
    if not series:
        return None
    middle = series[len(series) // 2]
    return (
        KeyImage(
            finding_id=finding.id,
            study_uid=finding.study_instance_uid,
            series_uid=middle.series_uid,
            sop_instance_uid=middle.sop_instance_uid,
            segmentation_uid=None,
        ),
        None,
    )


def outline(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The pixels of ``mask`` that touch a pixel outside it (4-neighbourhood)."""
    inside = np.pad(mask.astype(bool), 1, constant_values=False)
    interior = (
        inside[1:-1, 1:-1]
        & inside[:-2, 1:-1]
        & inside[2:, 1:-1]
        & inside[1:-1, :-2]
        & inside[1:-1, 2:]
    )
    return np.asarray(inside[1:-1, 1:-1] & ~interior)


def draw_overlay(image: Image.Image, mask: NDArray[np.bool_]) -> Image.Image:
    """``image`` in colour with ``mask`` tinted and outlined, as a reader expects a SEG shown."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    if mask.shape != rgb.shape[:2]:
        scaled = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (rgb.shape[1], rgb.shape[0]), Image.Resampling.NEAREST
        )
        mask = np.asarray(scaled) > 0
    fill = np.array(_FILL, dtype=np.float32)
    rgb[mask] = (1 - _FILL_ALPHA) * rgb[mask] + _FILL_ALPHA * fill
    rgb[outline(mask)] = np.array(_OUTLINE, dtype=np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def render_key_image(
    *, session: Session, storage: Storage, key: KeyImage, mask: NDArray[np.bool_] | None
) -> bytes:
    """The key image as PNG, with the finding's segmentation drawn when it has one."""
    sources = _instances(session, Instance.sop_instance_uid == key.sop_instance_uid)
    path = storage.open(sources[0].path)
    png = render(path, None, RenderOptions(media_type="image/png"), thumbnail=False)
    if mask is None:
        return png
    image = draw_overlay(Image.open(io.BytesIO(png)), mask)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
