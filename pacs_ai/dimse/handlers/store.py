"""C-STORE (Storage, PS3.4 B.2): every received object goes through the one ingest path.

C-STORE requests skip pynetdicom's service-class dispatch. That route builds a response
primitive with validated UIDs, file meta through a pydicom Dataset and a response message
through another. Together this cost as much interpreter time as parsing and indexing the
object. Here the requests come assembled from P-DATA (:mod:`pacs_ai.dimse.store_receive`),
the file meta and the response command are packed directly (:mod:`pacs_ai.dicom.encoding`),
and the network thread that received a request stores it and sends the response itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from pacs_ai.archive.ingest import IngestError, IngestErrorKind
from pacs_ai.dicom.encoding import command_set, file_meta, padded, us
from pacs_ai.dicom.status import Status
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.store_receive import StoreReceiver, StoreRequest
from pacs_ai.security.audit import Action, Outcome, record_dimse

log = logging.getLogger(__name__)

ERROR_COMMENT_MAX = 64  # ErrorComment is LO (PS3.7 C.4.2.1.3)
C_STORE_RSP = 0x8001  # Command Field (PS3.7 E.1)
NO_DATA_SET = 0x0101  # Command Data Set Type

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


def store(ctx: DimseContext, assoc: Association, data: bytes, sop_class: str) -> tuple[Status, str]:
    """Store one Part 10 object; success only once it is fsync'ed and indexed.

    Returns the status and, for a failure, its reason:
    - SUCCESS (0x0000): stored, or the identical object was already stored;
    - CONFLICTING_DUPLICATE (0xC111): same SOP Instance UID, other content, overwrite off;
    - OUT_OF_RESOURCES (0xA700): larger than ``max_object_bytes``, or the disk refused it;
    - DATASET_DOES_NOT_MATCH_SOP_CLASS (0xA900): SOP Class UID differs from the context's;
    - CANNOT_UNDERSTAND (0xC000): not parseable, missing or invalid UIDs, bad pixel data;
    - PROCESSING_FAILURE (0x0110): the index could not record it.
    """
    calling = assoc.requestor.ae_title
    try:
        result = ctx.ingestor.ingest(data, expected_sop_class=sop_class)
    except IngestError as exc:
        log.warning("C-STORE from %s refused (%s): %s", calling, exc.kind, exc.reason)
        record_dimse(ctx.audit, assoc, Action.STORE, Outcome.FAILURE, detail=exc.reason)
        return STATUS_FOR_ERROR[exc.kind], exc.reason
    except Exception:
        log.exception("C-STORE from %s failed", calling)
        record_dimse(ctx.audit, assoc, Action.STORE, Outcome.FAILURE, detail="internal error")
        return Status.PROCESSING_FAILURE, "internal error while storing"
    log.debug("C-STORE %s from %s: %s", result.sop_instance_uid, calling, result.outcome)
    record_dimse(
        ctx.audit,
        assoc,
        Action.STORE,
        Outcome.SUCCESS,
        patient_id=result.patient_id,
        study_uids=[result.study_instance_uid],
        detail=f"{result.outcome} {result.sop_instance_uid}",
    )
    return Status.SUCCESS, ""


def store_response(request: StoreRequest, status: Status, reason: str) -> bytes:
    """The encoded C-STORE-RSP command set (PS3.7 9.3.1.2) answering ``request``."""
    elements = [
        (0x0002, padded(request.sop_class_uid, b"\x00")),
        (0x0100, us(C_STORE_RSP)),
        (0x0120, us(request.message_id)),
        (0x0800, us(NO_DATA_SET)),
        (0x0900, us(int(status))),
    ]
    if reason:
        elements.append((0x0902, padded(reason[:ERROR_COMMENT_MAX], b" ")))
    elements.append((0x1000, padded(request.sop_instance_uid, b"\x00")))
    return command_set(elements)


def command_pdus(max_pdu: int, context_id: int, command: bytes) -> list[P_DATA]:
    """A command set with no data set, in P-DATA fragments that fit the peer's PDUs (PS3.8 9.3.5).

    ``max_pdu``: the peer's maximum PDU length, 0 for no limit.
    """
    size = max_pdu - 6 if max_pdu else len(command)  # 6: PDV item length, context ID, header
    primitives = []
    for offset in range(0, len(command), size):
        last = offset + size >= len(command)
        primitive = P_DATA()
        header = b"\x03" if last else b"\x01"  # command fragment, last or not (PS3.8 E.2)
        # The setter checks for [id, data] lists, whatever its annotation says.
        primitive.presentation_data_value_list = [
            [context_id, header + command[offset : offset + size]]  # type: ignore[list-item]
        ]
        primitives.append(primitive)
    return primitives


def serve_store(
    ctx: DimseContext,
    assoc: Association,
    request: StoreRequest,
    context: PresentationContext,
    send: Callable[[P_DATA], None],
) -> None:
    """Answer one C-STORE request: store its data set as a Part 10 object, then respond.

    ``send`` puts a P-DATA primitive on the wire: see :func:`store_service` for which.
    """
    data = b"".join(
        (
            file_meta(
                request.sop_class_uid, request.sop_instance_uid, str(context.transfer_syntax[0])
            ),
            request.dataset,
        )
    )
    status, reason = store(ctx, assoc, data, str(context.abstract_syntax))
    if assoc.is_established:
        response = store_response(request, status, reason)
        for primitive in command_pdus(
            assoc.dimse.maximum_pdu_size, cast(int, context.context_id), response
        ):
            send(primitive)


@functools.cache
def _is_storage(sop_class_uid: str) -> bool:
    return uid_to_service_class(sop_class_uid) is StorageServiceClass


def _as_store_request(message: C_STORE) -> StoreRequest:
    """A C-STORE primitive that pynetdicom decoded (one :class:`StoreReceiver` passed on)."""
    return StoreRequest(
        message_id=cast(int, message.MessageID),
        sop_class_uid=str(message.AffectedSOPClassUID),
        sop_instance_uid=str(message.AffectedSOPInstanceUID),
        dataset=message.DataSet.getvalue(),  # type: ignore[union-attr]
    )


def store_service(event: evt.Event, ctx: DimseContext) -> None:
    """EVT_CONN_OPEN handler: an accepted association's C-STORE requests go to serve_store.

    :class:`StoreReceiver` assembles them from P-DATA on the association's network thread,
    which then stores each one and sends its response itself, as pynetdicom's DT-1 action
    would. Handing the request to the association thread and the response back to the
    network thread cost two thread wake-ups and two turns of the interpreter lock per
    object, about 0.5 ms of a C-STORE's 5 ms on one association. The peer sends nothing
    else meanwhile: it waits for the response (one outstanding operation, PS3.7 D.3.3.3).

    A C-STORE that pynetdicom decoded instead is served the same way on the association
    thread, its response queued for the network thread. Everything else, and requests that
    pynetdicom would not serve as storage (during release, incomplete, on an unknown
    context), take pynetdicom's own route.
    """
    assoc = event.assoc
    if not assoc.is_acceptor:
        return
    serve_other = assoc._serve_request

    def accepts(context_id: int, sop_class_uid: str) -> bool:
        return context_id in assoc._accepted_cx and _is_storage(sop_class_uid)

    def send_now(primitive: P_DATA) -> None:
        assoc.dul._send(P_DATA_TF(primitive))

    def serve_received(context_id: int, request: StoreRequest) -> None:
        """On the network thread, for a context that ``accepts``.

        An exception here ends the association: pynetdicom's state machine logs it and
        stops the network thread, which closes the connection.
        """
        if assoc._sent_release:  # as pynetdicom does
            log.warning("C-STORE request received during association release, ignored")
            return
        serve_store(ctx, assoc, request, assoc._accepted_cx[context_id], send_now)

    def serve_request(message: Any, context_id: int) -> None:
        if not (
            type(message) is C_STORE
            and message.is_valid_request
            and _is_storage(str(message.AffectedSOPClassUID))
        ):
            serve_other(message, context_id)
            return
        context = assoc._accepted_cx.get(context_id)
        if assoc._sent_release:  # as pynetdicom does
            log.warning("C-STORE request received during association release, ignored")
        elif context is None:  # as pynetdicom does for a context never accepted
            log.info("DIMSE message on context ID %s, which was not accepted", context_id)
            assoc.abort()
        else:
            assoc.dimse.cancel_req = {}
            serve_store(ctx, assoc, _as_store_request(message), context, assoc.dul.send_pdu)

    StoreReceiver(assoc.dimse, accepts, serve_received).install()
    assoc._serve_request = serve_request  # type: ignore[method-assign,assignment]
