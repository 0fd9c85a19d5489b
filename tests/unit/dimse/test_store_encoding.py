"""The packed file meta and C-STORE response equal what pydicom and pynetdicom encode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
)
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from pacs_ai.dicom.encoding import file_meta
from pacs_ai.dicom.status import Status
from pacs_ai.dimse.handlers.store import command_pdus, store_response
from pacs_ai.dimse.store_receive import StoreRequest

uid = st.from_regex(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){1,6}", fullmatch=True).filter(
    lambda value: len(value) <= 64  # UI values hold at most 64 characters
)
syntax = st.sampled_from(
    [
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        JPEGBaseline8Bit,
        JPEG2000Lossless,
    ]
)
comment = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80).filter(
    lambda reason: reason == "" or reason.strip()  # reasons are empty or say something
)


@settings(max_examples=300, deadline=None)
@given(sop_class=uid, sop_instance=uid, transfer_syntax=syntax)
def test_file_meta_is_pynetdicoms(sop_class: str, sop_instance: str, transfer_syntax: str) -> None:
    meta = create_file_meta(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=transfer_syntax
    )
    assert file_meta(sop_class, sop_instance, transfer_syntax) == (
        b"\x00" * 128 + b"DICM" + encode_file_meta(meta)
    )


def _request(sop_class: str, sop_instance: str, message_id: int) -> C_STORE:
    request = C_STORE()
    request.MessageID = message_id
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_instance
    return request


def _pynetdicom_response(request: C_STORE, status: Status, reason: str) -> C_STORE_RSP:
    response = C_STORE()
    response.MessageIDBeingRespondedTo = request.MessageID
    response.AffectedSOPClassUID = request.AffectedSOPClassUID
    response.AffectedSOPInstanceUID = request.AffectedSOPInstanceUID
    response.Status = int(status)
    if reason:
        response.ErrorComment = reason[:64]
    message = C_STORE_RSP()
    message.primitive_to_message(response)
    return message


@settings(max_examples=300, deadline=None)
@given(
    sop_class=uid,
    sop_instance=uid,
    message_id=st.integers(min_value=0, max_value=65535),
    status=st.sampled_from(list(Status)),
    reason=comment,
)
def test_store_response_is_pynetdicoms(
    sop_class: str, sop_instance: str, message_id: int, status: Status, reason: str
) -> None:
    request = _request(sop_class, sop_instance, message_id)
    expected = _pynetdicom_response(request, status, reason)
    ours = store_response(StoreRequest(message_id, sop_class, sop_instance, b""), status, reason)
    [pdata] = expected.encode_msg(1, 0)
    [[_context, encoded]] = pdata.presentation_data_value_list
    assert ours == encoded[1:]


@given(max_pdu=st.sampled_from([0, 7, 16, 50, 64, 4096]), context_id=st.sampled_from([1, 7, 255]))
def test_responses_are_fragmented_like_pynetdicoms(max_pdu: int, context_id: int) -> None:
    request = _request("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", 9)
    sent = command_pdus(
        max_pdu,
        context_id,
        store_response(
            StoreRequest(9, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", b""),
            Status.CONFLICTING_DUPLICATE,
            "other content",
        ),
    )
    expected = _pynetdicom_response(request, Status.CONFLICTING_DUPLICATE, "other content")
    assert [[list(pdv) for pdv in p.presentation_data_value_list] for p in sent] == [
        [list(pdv) for pdv in p.presentation_data_value_list]
        for p in expected.encode_msg(context_id, max_pdu)
    ]
