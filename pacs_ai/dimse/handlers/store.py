"""C-STORE (Storage, PS3.4 B.2): every received object goes through the one ingest path."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pynetdicom import evt

from pacs_ai.archive.ingest import IngestError, IngestErrorKind
from pacs_ai.dicom.status import Status
from pacs_ai.dimse.context import DimseContext
from pacs_ai.security.audit import Action, Outcome, record_dimse

log = logging.getLogger(__name__)

ERROR_COMMENT_MAX = 64  # ErrorComment is LO (PS3.7 C.4.2.1.3)

STATUS_FOR_ERROR = {
    IngestErrorKind.INVALID: Status.CANNOT_UNDERSTAND,
    IngestErrorKind.SOP_CLASS_MISMATCH: Status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
    IngestErrorKind.CONFLICT: Status.CONFLICTING_DUPLICATE,
    IngestErrorKind.TOO_LARGE: Status.OUT_OF_RESOURCES,
    IngestErrorKind.STORAGE: Status.OUT_OF_RESOURCES,
    IngestErrorKind.INDEX: Status.PROCESSING_FAILURE,
}


def failure(status: Status, reason: str) -> Dataset:
    """A status dataset with an ErrorComment, cut to what LO allows."""
    answer = Dataset()
    answer.Status = int(status)
    answer.ErrorComment = reason[:ERROR_COMMENT_MAX]
    return answer


def handle_store(event: evt.Event, ctx: DimseContext) -> Dataset | int:
    """Store one object; success leaves only after it is fsync'ed and indexed.

    Statuses:
    - SUCCESS (0x0000): stored, or the identical object was already stored;
    - CONFLICTING_DUPLICATE (0xC111): same SOP Instance UID, other content, overwrite off;
    - OUT_OF_RESOURCES (0xA700): larger than ``max_object_bytes``, or the disk refused it;
    - DATASET_DOES_NOT_MATCH_SOP_CLASS (0xA900): SOP Class UID differs from the request's;
    - CANNOT_UNDERSTAND (0xC000): not parseable, missing or invalid UIDs, bad pixel data;
    - PROCESSING_FAILURE (0x0110): the index could not record it.
    """
    calling = event.assoc.requestor.ae_title
    try:
        data = event.encoded_dataset(include_meta=True)
        result = ctx.ingestor.ingest(data, expected_sop_class=str(event.context.abstract_syntax))
    except IngestError as exc:
        log.warning("C-STORE from %s refused (%s): %s", calling, exc.kind, exc.reason)
        record_dimse(ctx.audit, event, Action.STORE, Outcome.FAILURE, detail=exc.reason)
        return failure(STATUS_FOR_ERROR[exc.kind], exc.reason)
    except Exception:
        log.exception("C-STORE from %s failed", calling)
        record_dimse(ctx.audit, event, Action.STORE, Outcome.FAILURE, detail="internal error")
        return failure(Status.PROCESSING_FAILURE, "internal error while storing")
    log.debug("C-STORE %s from %s: %s", result.sop_instance_uid, calling, result.outcome)
    record_dimse(
        ctx.audit,
        event,
        Action.STORE,
        Outcome.SUCCESS,
        patient_id=result.patient_id,
        study_uids=[result.study_instance_uid],
        detail=f"{result.outcome} {result.sop_instance_uid}",
    )
    return int(Status.SUCCESS)
