"""C-STORE requests assembled from P-DATA equal what the peer sent; the rest is pynetdicom's."""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu_primitives import P_DATA

from pacs_ai.dimse.store_receive import (
    StoreReceiver,
    StoreRequest,
    command_elements,
    store_command,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
uid = st.from_regex(r"[1-9][0-9]{0,8}(\.(0|[1-9][0-9]{0,8})){1,6}", fullmatch=True).filter(
    lambda value: len(value) <= 64  # UI values hold at most 64 characters
)


def store_message(message_id: int, sop_class: str, sop_instance: str, data: bytes) -> C_STORE_RQ:
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = 2
    primitive.DataSet = BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return message


def echo_message(message_id: int) -> C_ECHO_RQ:
    primitive = C_ECHO()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    return message


def receiver(accepted: bool = True) -> tuple[Association, list[Any]]:
    """A real association's DIMSE provider behind a StoreReceiver; what pynetdicom was given."""
    assoc = Association(AE(), "acceptor")
    passed_on: list[Any] = []
    original = assoc.dimse.receive_primitive

    def record(primitive: Any) -> None:
        passed_on.append(primitive)
        original(primitive)

    assoc.dimse.receive_primitive = record  # type: ignore[method-assign]
    StoreReceiver(
        assoc.dimse,
        lambda _context, _sop_class: accepted,
        lambda context, request: assoc.dimse.msg_queue.put((context, request)),  # type: ignore[arg-type]
    ).install()
    return assoc, passed_on


def queued(assoc: Association) -> list[tuple[int, Any]]:
    """What came out, in order: requests served from here, and pynetdicom's messages."""
    items = []
    while not assoc.dimse.msg_queue.empty():
        items.append(assoc.dimse.msg_queue.get())
    return items


@settings(max_examples=200, deadline=None)
@given(
    message_id=st.integers(min_value=0, max_value=65535),
    sop_instance=uid,
    data=st.binary(min_size=1, max_size=3000),
    max_pdu=st.sampled_from([0, 16, 64, 200, 1024, 16384]),
    context_id=st.sampled_from([1, 3, 255]),
)
def test_fragmented_store_requests_come_out_whole(
    message_id: int, sop_instance: str, data: bytes, max_pdu: int, context_id: int
) -> None:
    assoc, passed_on = receiver()
    for primitive in store_message(message_id, CT, sop_instance, data).encode_msg(
        context_id, max_pdu
    ):
        assoc.dimse.receive_primitive(primitive)
    assert passed_on == []
    assert queued(assoc) == [(context_id, StoreRequest(message_id, CT, sop_instance, data))]


def test_several_messages_in_a_row_and_in_one_primitive() -> None:
    assoc, passed_on = receiver()
    first = list(store_message(1, CT, "1.2.3.1", b"first").encode_msg(1, 0))
    echo = list(echo_message(2).encode_msg(1, 0))
    second = list(store_message(3, CT, "1.2.3.3", b"second").encode_msg(1, 0))
    together = P_DATA()
    together.presentation_data_value_list = [
        list(pdv) for p in [*first, *second] for pdv in p.presentation_data_value_list
    ]
    assoc.dimse.receive_primitive(together)
    for primitive in echo:
        assoc.dimse.receive_primitive(primitive)
    items = queued(assoc)
    assert items[0] == (1, StoreRequest(1, CT, "1.2.3.1", b"first"))
    assert items[1] == (1, StoreRequest(3, CT, "1.2.3.3", b"second"))
    [(_context, echo_request)] = items[2:]
    assert isinstance(echo_request, C_ECHO) and echo_request.MessageID == 2
    assert len(passed_on) == 1  # the echo only


def test_stores_not_accepted_here_are_pynetdicoms_whole() -> None:
    assoc, passed_on = receiver(accepted=False)
    fragments = list(store_message(7, CT, "1.2.3.7", b"x" * 500).encode_msg(5, 64))
    for primitive in fragments:
        assoc.dimse.receive_primitive(primitive)
    [(context_id, request)] = queued(assoc)
    assert context_id == 5 and isinstance(request, C_STORE)
    assert request.DataSet.getvalue() == b"x" * 500  # type: ignore[union-attr]
    replayed = [pdv for p in passed_on for pdv in p.presentation_data_value_list]
    sent = [list(pdv) for p in fragments for pdv in p.presentation_data_value_list]
    assert [list(pdv) for pdv in replayed] == sent


def test_a_data_fragment_without_a_command_goes_to_pynetdicom() -> None:
    assoc, passed_on = receiver()
    stray = P_DATA()
    stray.presentation_data_value_list = [[1, b"\x02data"]]
    assoc.dimse.receive_primitive(stray)
    assert [[list(pdv) for pdv in p.presentation_data_value_list] for p in passed_on] == [
        [[1, b"\x02data"]]
    ]
    assert queued(assoc) == []


def _elements(encoded: bytes) -> dict[int, bytes]:
    elements = command_elements(encoded)
    assert elements is not None
    return elements


def _encode(elements: dict[int, bytes]) -> bytes:
    return b"".join(
        struct.pack("<HHI", 0, number, len(value)) + value
        for number, value in sorted(elements.items())
    )


def _command_bytes(message: C_STORE_RQ) -> bytes:
    first = next(iter(message.encode_msg(1, 0)))
    [[_context, data]] = first.presentation_data_value_list
    assert data[0] == 0x03  # the command, in one fragment
    return bytes(data[1:])


ENCODED = _command_bytes(store_message(1, CT, "1.2.3.4", b"d"))


def test_a_store_command_is_read() -> None:
    command = store_command(ENCODED)
    assert command is not None
    assert (command.message_id, command.sop_class_uid, command.sop_instance_uid) == (
        1,
        CT,
        "1.2.3.4",
    )


@pytest.mark.parametrize("element", [0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000])
def test_a_command_missing_a_required_element_is_declined(element: int) -> None:
    elements = _elements(ENCODED)
    del elements[element]
    assert store_command(_encode(elements)) is None


@pytest.mark.parametrize(
    ("element", "value"),
    [
        (0x1000, b"1.2/../etc\0"),
        (0x0002, b"1.2.03"),
        (0x0100, struct.pack("<H", 0x0030)),  # C-ECHO-RQ
        (0x0800, struct.pack("<H", 0x0101)),  # no data set
        (0x0110, b"\x01"),  # a US of one byte
    ],
)
def test_a_command_with_an_odd_value_is_declined(element: int, value: bytes) -> None:
    elements = _elements(ENCODED)
    elements[element] = value
    assert store_command(_encode(elements)) is None


@given(cut=st.integers(min_value=0, max_value=len(ENCODED) - 1))
def test_a_truncated_command_is_declined(cut: int) -> None:
    assert store_command(ENCODED[:cut]) is None
