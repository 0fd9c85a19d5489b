"""What the worklist tests share (no tests here): studies, findings and results to read.

Studies enter through the one ingest path; findings are inserted as rows, as the pipeline's
recorder writes them (a job, then its finding), so the worklist sees what it would see in
production without running a model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO

import httpx
import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import update

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.schema import Study, utcnow
from pacs_ai.dicom.codes import INTRACRANIAL_HEMORRHAGE
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.results import Algorithm, Finding, build_seg
from pacs_ai.synth import generate_ct_head
from tests.factories import make_instance

ICH = f"{INTRACRANIAL_HEMORRHAGE.scheme_designator}:{INTRACRANIAL_HEMORRHAGE.value}"
MODEL = ("ct-head-hemorrhage", "1.0.0")


def add_study(
    ingestor: Ingestor,
    *,
    modality: str = "CT",
    body_part: str = "HEAD",
    priority: str = "",
    location: str = "",
    patient_id: str = "P1",
    patient_name: str = "Test^Patient",
    accession: str = "",
    description: str = "CT HEAD",
) -> str:
    """Ingest a one-image study and return its Study Instance UID."""
    study_uid = generate_uid()
    attributes: dict[str, object] = {
        "Modality": modality,
        "BodyPartExamined": body_part,
        "PatientID": patient_id,
        "PatientName": patient_name,
        "AccessionNumber": accession or study_uid[-12:],
        "StudyDescription": description,
    }
    if priority:
        request = Dataset()
        request.RequestedProcedurePriority = priority
        attributes["RequestAttributesSequence"] = [request]
    if location:
        attributes["CurrentPatientLocation"] = location
    ingestor.ingest(
        make_instance(
            study_uid=study_uid, series_uid=generate_uid(), sop_uid=generate_uid(), **attributes
        )
    )
    return study_uid


def set_arrival(database: Database, study_uid: str, minutes_ago: float) -> None:
    """Make the study look as if it arrived ``minutes_ago``."""
    with database.write_sessions.begin() as session:
        session.execute(
            update(Study)
            .where(Study.study_instance_uid == study_uid)
            .values(created_at=utcnow() - timedelta(minutes=minutes_ago))
        )


def add_finding(
    database: Database,
    study_uid: str,
    *,
    probability: float,
    severity: str = "critical",
    present: bool | None = None,
    shadow: bool = False,
    status: str = "current",
    model: tuple[str, str] = MODEL,
    series_uid: str = "",
    result_uids: tuple[str, ...] = (),
    volume_ml: float | None = None,
) -> int:
    """Insert a job and its finding (ICH) as the recorder does; returns the finding id."""
    now = utcnow()
    positive = probability >= 0.5 if present is None else present
    with database.write_sessions.begin() as session:
        job = Job(
            study_instance_uid=study_uid,
            series_instance_uid=series_uid or generate_uid(),
            pipeline="ct-head-hemorrhage",
            pipeline_version=1,
            content_key=generate_uid(),
            model_name=model[0],
            model_version=model[1],
            shadow=shadow,
            state="done",
            result_sop_uids="\\".join(result_uids),
            last_instance_at=now,
            stable_at=now,
        )
        session.add(job)
        session.flush()
        row = FindingRow(
            job_id=job.id,
            study_instance_uid=study_uid,
            model_name=model[0],
            model_version=model[1],
            shadow=shadow,
            code_scheme=INTRACRANIAL_HEMORRHAGE.scheme_designator,
            code_value=INTRACRANIAL_HEMORRHAGE.value,
            code_meaning=INTRACRANIAL_HEMORRHAGE.meaning,
            present=positive,
            probability=probability,
            volume_ml=volume_ml,
            location="Brain" if positive else "",
            severity=severity if positive else "",
            status=status,
        )
        session.add(row)
        session.flush()
        return row.id


@dataclass(frozen=True)
class SegmentedStudy:
    """A small CT head in the archive with a SEG of its hemorrhage, and the finding row."""

    study_uid: str
    series_uid: str
    finding_id: int
    segmentation_uid: str
    key_slice_uid: str


def _part10(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def add_segmented_study(
    ingestor: Ingestor, database: Database, *, seed: int = 7, probability: float = 0.93
) -> SegmentedStudy:
    """Ingest a synthetic CT head with hemorrhage and the SEG a model would make of it.

    The finding row is not inserted when ``probability`` is negative (the caller inserts it
    later, as the pipeline would once the model ran).
    """
    study = generate_ct_head(seed, hemorrhage=True, slices=8, size=64)
    assert study.mask is not None and study.mask.any()
    for dataset in study.datasets:
        ingestor.ingest(_part10(dataset))
    mask = study.mask.astype(bool)
    seg_uid = generate_uid()
    seg = build_seg(
        source_images=study.datasets,
        findings=[Finding(code=INTRACRANIAL_HEMORRHAGE, present=True, probability=0.9, mask=mask)],
        algorithm=Algorithm(name=MODEL[0], version=MODEL[1], weights_sha256="ab" * 32),
        series_instance_uid=generate_uid(),
        sop_instance_uid=seg_uid,
        series_number=9902,
    )
    ingestor.ingest(_part10(seg))
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    key = study.datasets[int(np.argmax(areas))]
    series_uid = str(study.datasets[0].SeriesInstanceUID)
    finding_id = (
        add_finding(
            database,
            study.study_instance_uid,
            probability=probability,
            series_uid=series_uid,
            result_uids=(seg_uid,),
            volume_ml=4.2,
        )
        if probability >= 0
        else 0
    )
    return SegmentedStudy(
        study_uid=study.study_instance_uid,
        series_uid=series_uid,
        finding_id=finding_id,
        segmentation_uid=seg_uid,
        key_slice_uid=str(key.SOPInstanceUID),
    )


def read_events(
    url: str,
    headers: dict[str, str],
    *,
    until: Callable[[list[tuple[str, dict[str, object]]]], bool],
    ready: threading.Event,
    out: list[tuple[str, dict[str, object]]],
    timeout_s: float = 20.0,
) -> None:
    """Read ``url``'s event stream into ``out`` until ``until(out)``; set ``ready`` first."""
    deadline = time.monotonic() + timeout_s
    with (
        httpx.Client(timeout=timeout_s) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if name == "ready":
                    ready.set()
                else:
                    out.append((name, data))
                    if until(out):
                        return
            if time.monotonic() > deadline:
                return
