"""From a model's prediction to the archive: SEG and SR through the one ingest path, then rows.

Results are optionally forwarded by C-STORE to the known nodes a pipeline names.

Result UIDs derive from the job's identity (study content, pipeline, model version), so a job
that is retried after its objects were stored makes the same UIDs again: the archive keeps the
first copy and never holds two SRs for one run. The finding rows and the job's completion are
written in one transaction afterwards; older runs of the same model on the same study are then
marked superseded, and their findings no longer drive the worklist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import IngestError, IngestErrorKind, Ingestor
from pacs_ai.archive.schema import Instance
from pacs_ai.archive.storage import Storage
from pacs_ai.dicom.codes import BRAIN, PLEURA
from pacs_ai.dicom.uids import derived_uid
from pacs_ai.dimse.nodes import get_by_ae_title
from pacs_ai.dimse.scu import send_files
from pacs_ai.inference.actor import Prediction
from pacs_ai.inference.runtime import ModelKey
from pacs_ai.pipeline.definition import Output, Pipeline
from pacs_ai.pipeline.schema import FindingRow, Job
from pacs_ai.registry.bundle import PacsAiExtras, read_bundle
from pacs_ai.registry.preprocess import resample_volume, slice_position
from pacs_ai.results import Algorithm, Finding, Location, build_seg, build_sr, volume_ml

log = logging.getLogger(__name__)

SR_SERIES_NUMBER = 9901
SEG_SERIES_NUMBER = 9902
SITE_FOR_BODY_PART = {"HEAD": BRAIN, "BRAIN": BRAIN, "CHEST": PLEURA}


class ResultError(ValueError):
    """The prediction cannot be turned into results (the model's bundle lacks a finding code)."""


@dataclass(frozen=True)
class StoredResults:
    """What a job left in the archive, and the finding to record."""

    sop_instance_uids: list[str]
    code: Code
    present: bool
    probability: float
    volume_ml: float | None
    location: str
    severity: str


def _ordered(datasets: list[Dataset]) -> list[Dataset]:
    """Source images in the order the model stacked them (along the slice normal)."""
    return sorted(datasets, key=slice_position) if len(datasets) > 1 else list(datasets)


def _source_mask(
    probability_map: NDArray[np.float32] | None, images: list[Dataset], present: bool
) -> NDArray[np.bool_] | None:
    """The finding's mask on the source grid: the model's map resampled, then thresholded."""
    if probability_map is None or not present:
        return None
    shape = (len(images), int(images[0].Rows), int(images[0].Columns))
    volume = probability_map if probability_map.ndim == 3 else probability_map[None]
    resampled = resample_volume(volume.astype(np.float32), shape)
    mask = resampled >= 0.5
    return mask if mask.any() else None


def _part10(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


class ForwardError(RuntimeError):
    """A result could not be sent to a peer the pipeline names; the job is retried."""


def threshold_for(pipeline: Pipeline, extras: PacsAiExtras) -> float:
    """The score at which the finding is called present: the pipeline's triage threshold for
    the code, else the bundle's operating point, else 0.5."""
    if extras.finding is not None:
        mapping = pipeline.triage.get(f"{extras.finding.coding_scheme}:{extras.finding.code_value}")
        if mapping is not None:
            return mapping.threshold
    if extras.operating_point is not None:
        return extras.operating_point.threshold
    return 0.5


class Recorder:
    """Builds, stores, forwards and records the results of a job."""

    def __init__(
        self, ingestor: Ingestor, database: Database, storage: Storage, ae_title: str
    ) -> None:
        self.ingestor = ingestor
        self.database = database
        self.storage = storage
        self.ae_title = ae_title

    def forward(self, *, pipeline: Pipeline, sop_instance_uids: list[str]) -> None:
        """C-STORE the stored results to each peer of ``forward_to`` (known nodes only).

        Runs inside the job: a peer that refuses or is down fails the attempt, and the queue's
        retries (durable, in the database) try again; results are not built twice since their
        UIDs are the job's.
        """
        if not pipeline.forward_to or not sop_instance_uids:
            return
        with self.database.sessions() as session:
            paths = [
                self.storage.open(path)
                for path in session.execute(
                    select(Instance.path).where(Instance.sop_instance_uid.in_(sop_instance_uids))
                ).scalars()
            ]
            peers = {
                title: get_by_ae_title(session=session, ae_title=title)
                for title in pipeline.forward_to
            }
        for title, node in peers.items():
            if node is None:
                raise ForwardError(f"forward destination {title} is not a known node")
            report = send_files(
                paths, node.host, node.port, called_ae=node.ae_title, calling_ae=self.ae_title
            )
            if report.failed:
                reasons = "; ".join(sorted(set(report.failed.values())))
                raise ForwardError(f"forward to {title} failed: {reasons}")

    def _store(self, dataset: Dataset) -> str:
        try:
            self.ingestor.ingest(_part10(dataset))
        except IngestError as exc:
            if exc.kind is not IngestErrorKind.CONFLICT:
                raise
            # A retried job: an earlier attempt stored this UID already (with other timestamps).
            log.info("result %s was stored by an earlier attempt", dataset.SOPInstanceUID)
        return str(dataset.SOPInstanceUID)

    def store(
        self,
        *,
        job: Job,
        pipeline: Pipeline,
        model: ModelKey,
        prediction: Prediction,
        datasets: list[Dataset],
    ) -> StoredResults:
        """Build the SEG and SR the pipeline asks for and store them; no transaction is open."""
        extras = read_bundle(model.bundle_path).extras
        if extras.finding is None:
            raise ResultError(f"bundle {model.name}@{model.version} declares no finding code")
        code = Code(
            extras.finding.code_value, extras.finding.coding_scheme, extras.finding.code_meaning
        )
        mapping = pipeline.triage.get(f"{extras.finding.coding_scheme}:{extras.finding.code_value}")
        present = prediction.score >= threshold_for(pipeline, extras)
        images = _ordered(datasets)
        mask = _source_mask(prediction.probability_map, images, present)
        site = SITE_FOR_BODY_PART.get((extras.body_part or "").upper())
        finding = Finding(
            code=code,
            present=present,
            probability=min(1.0, max(0.0, prediction.score)),
            mask=mask,
            location=Location(site=site) if site is not None else None,
        )
        algorithm = Algorithm(
            name=model.name,
            version=model.version,
            weights_sha256=model.weights_sha256,
            research_only=extras.not_for_clinical_use,
        )
        identity = (
            "pacs-ai-result",
            job.study_instance_uid,
            job.series_instance_uid,
            job.pipeline,
            job.pipeline_version,
            model.name,
            model.version,
            job.content_key,
        )
        stored: list[str] = []
        seg: Any = None
        if Output.SEG in pipeline.outputs and finding.is_segmented:
            seg = build_seg(
                source_images=images,
                findings=[finding],
                algorithm=algorithm,
                series_instance_uid=derived_uid(*identity, "seg-series"),
                sop_instance_uid=derived_uid(*identity, "seg"),
                series_number=SEG_SERIES_NUMBER,
            )
            stored.append(self._store(seg))
        if Output.SR in pipeline.outputs:
            sr = build_sr(
                source_images=images,
                findings=[finding],
                algorithm=algorithm,
                seg=seg,
                series_instance_uid=derived_uid(*identity, "sr-series"),
                sop_instance_uid=derived_uid(*identity, "sr"),
                series_number=SR_SERIES_NUMBER,
            )
            stored.append(self._store(sr))
        return StoredResults(
            sop_instance_uids=stored,
            code=code,
            present=present,
            probability=finding.probability,
            volume_ml=volume_ml(mask, images) if mask is not None and len(images) > 1 else None,
            location=site.meaning if site is not None else "",
            severity=mapping.severity.value if mapping is not None and present else "",
        )

    @staticmethod
    def record(*, session: Session, job: Job, results: StoredResults) -> None:
        """This job's finding row; runs of this model on older content of the study are superseded.

        Jobs are created in content order, so a smaller job id is older content. A job that
        finishes after a newer one of the same model is recorded as superseded at once.
        """
        same_model = (
            Job.study_instance_uid == job.study_instance_uid,
            Job.pipeline == job.pipeline,
            Job.model_name == job.model_name,
            Job.model_version == job.model_version,
        )
        older = select(Job.id).where(*same_model, Job.id < job.id)
        session.execute(
            update(FindingRow)
            .where(FindingRow.job_id.in_(older), FindingRow.status == "current")
            .values(status="superseded")
        )
        session.execute(update(Job).where(Job.id.in_(older)).values(superseded=True))
        newer_done = session.execute(
            select(Job.id).where(*same_model, Job.id > job.id, Job.state == "done").limit(1)
        ).first()
        job.superseded = newer_done is not None
        session.execute(delete(FindingRow).where(FindingRow.job_id == job.id))
        session.add(
            FindingRow(
                job_id=job.id,
                study_instance_uid=job.study_instance_uid,
                model_name=job.model_name,
                model_version=job.model_version,
                shadow=job.shadow,
                code_scheme=results.code.scheme_designator,
                code_value=results.code.value,
                code_meaning=results.code.meaning,
                present=results.present,
                probability=results.probability,
                volume_ml=results.volume_ml,
                location=results.location,
                severity=results.severity,
                status="superseded" if job.superseded else "current",
            )
        )
