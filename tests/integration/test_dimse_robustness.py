"""The SCP under bad peers: garbage PDUs, idle associations, cancels, unknown SOP classes."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)
from sqlalchemy import select

from pacs_ai.archive.schema import Instance
from pacs_ai.dicom.status import Status
from pacs_ai.server import Server
from tests.conftest import sample_path
from tests.factories import clone_series
from tests.integration.conftest import ServerFactory, run_dcmtk, storescu
from tests.integration.processes import wait_for

pytestmark = pytest.mark.integration


def echo_ok(server: Server) -> bool:
    return run_dcmtk("echoscu", "127.0.0.1", str(server.dimse_port), timeout=30).returncode == 0


def associate(server: Server, *contexts: object) -> object:
    ae = AE(ae_title="TESTSCU")
    assoc = ae.associate(
        "127.0.0.1", server.dimse_port, contexts=list(contexts) or [build_context(Verification)]
    )
    assert assoc.is_established
    return assoc


@pytest.mark.parametrize(
    "garbage",
    [
        os.urandom(4096),
        b"\x01\x00\x00\x00\x00\x00",  # A-ASSOCIATE-RQ header, nothing after
        b"\x04\x00\xff\xff\xff\xff" + b"\x00" * 64,  # P-DATA with a length near 2**32
        b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x00",  # A-ABORT out of the blue
    ],
)
def test_pdu_garbage_is_aborted_and_server_keeps_going(
    make_server: ServerFactory, garbage: bytes
) -> None:
    server = make_server(network_timeout_s=2.0, acse_timeout_s=2.0)
    with socket.create_connection(("127.0.0.1", server.dimse_port), timeout=10) as sock:
        sock.sendall(garbage)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):  # A-ABORT, then close when the ARTIM timer expires
            answer += chunk
        assert time.monotonic() - started < 8
    assert answer == b"" or answer[0] == 0x07  # nothing, or an A-ABORT PDU (PS3.8 9.3.8)
    assert echo_ok(server)


def test_idle_association_is_dropped_and_does_not_starve_others(make_server: ServerFactory) -> None:
    server = make_server(network_timeout_s=1.0, max_associations=2)
    idle_ae = AE(ae_title="IDLE")
    idle = idle_ae.associate("127.0.0.1", server.dimse_port, contexts=[build_context(Verification)])
    assert idle.is_established
    assert echo_ok(server)  # a second association is served while the first idles
    deadline = time.monotonic() + 10
    while idle.is_established and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not idle.is_established
    assert echo_ok(server)


def test_unknown_sop_class_is_not_accepted(server: Server) -> None:
    ae = AE(ae_title="TESTSCU")
    assoc = ae.associate(
        "127.0.0.1",
        server.dimse_port,
        contexts=[build_context("1.2.3.4.5.6.7.8.9"), build_context(Verification)],
    )
    assert assoc.is_established
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    rejected = {str(cx.abstract_syntax) for cx in assoc.rejected_contexts}
    assoc.release()
    assert "1.2.3.4.5.6.7.8.9" in rejected
    assert "1.2.3.4.5.6.7.8.9" not in accepted


def test_bad_datasets_get_failure_statuses_with_reasons(server: Server) -> None:
    assoc = associate(server, build_context(CTImageStorage))
    good = dcmread(sample_path("CT_small.dcm"))
    lying = dcmread(sample_path("CT_small.dcm"))
    lying.Rows = 1024
    no_study = dcmread(sample_path("CT_small.dcm"))
    del no_study.StudyInstanceUID
    try:
        for dataset, expected in [
            (lying, Status.CANNOT_UNDERSTAND),
            (no_study, Status.CANNOT_UNDERSTAND),
        ]:
            status = assoc.send_c_store(dataset)  # type: ignore[attr-defined]
            assert status.Status == expected
            assert status.ErrorComment
        assert assoc.send_c_store(good).Status == Status.SUCCESS  # type: ignore[attr-defined]
    finally:
        assoc.release()  # type: ignore[attr-defined]
    assert echo_ok(server)


def test_get_honours_cancel(server: Server, tmp_path: Path) -> None:
    files = clone_series(sample_path("CT_small.dcm"), 20, tmp_path / "series", seed="cancel")
    for result in storescu(server.dimse_port, files):
        assert result.returncode == 0
    received: list[str] = []
    holder: dict[str, object] = {}

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        if len(received) == 1:  # cancel before answering the first sub-operation
            assoc = holder["assoc"]
            get_context = next(
                cx
                for cx in assoc.accepted_contexts  # type: ignore[attr-defined]
                if cx.abstract_syntax == StudyRootQueryRetrieveInformationModelGet
            )
            assoc.send_c_cancel(9, get_context.context_id)  # type: ignore[attr-defined]
        return 0x0000

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    role = build_role(CTImageStorage, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1", server.dimse_port, ext_neg=[role], evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert assoc.is_established
    holder["assoc"] = assoc
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = str(dcmread(files[0]).StudyInstanceUID)
    try:
        statuses = [
            status.Status
            for status, _ in assoc.send_c_get(
                identifier, StudyRootQueryRetrieveInformationModelGet, msg_id=9
            )
        ]
    finally:
        assoc.release()
    assert statuses[-1] == Status.CANCEL
    assert 1 <= len(received) < 20


def test_a_store_that_cannot_be_answered_aborts_only_its_association(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C-STOREs are served on the association's network thread: an error there must end the
    association at once, not leave the peer waiting, and leave the server serving."""
    from pacs_ai.dimse.handlers import store as store_handler

    def broken(*_args: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(store_handler, "serve_store", broken)
    assoc = associate(server, build_context(CTImageStorage))
    started = time.monotonic()
    status = assoc.send_c_store(dcmread(sample_path("CT_small.dcm")))  # type: ignore[attr-defined]
    assert not status  # no response: the server closed the association
    wait_for(lambda: not assoc.is_established, timeout_s=5.0)  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10
    monkeypatch.undo()
    assert echo_ok(server)


@pytest.mark.parametrize(
    "p_data",
    [
        b"\x04\x00\x00\x00\x00\x0a" + b"\x00\x00\x00\x20\x01\x03" + b"\x00" * 4,  # item too long
        b"\x04\x00\x00\x00\x00\x06" + b"\x00\x00\x00\x01\x01\x03",  # item without a header
    ],
)
def test_broken_p_data_on_an_established_association_is_aborted(
    server: Server, p_data: bytes
) -> None:
    assoc = associate(server)
    assoc.dul.socket.socket.sendall(p_data)  # type: ignore[attr-defined]
    wait_for(lambda: assoc.is_aborted, timeout_s=10)  # type: ignore[attr-defined]
    assert echo_ok(server)


def test_a_store_in_many_small_pdus_is_stored_whole(make_server: ServerFactory) -> None:
    """At the smallest maximum PDU a CT slice arrives in about twenty P-DATA-TF PDUs."""
    server = make_server(max_pdu_bytes=4096)
    sent = dcmread(sample_path("CT_small.dcm"))
    assoc = associate(server, build_context(CTImageStorage))
    assert assoc.acceptor.maximum_length == 4096  # type: ignore[attr-defined]
    assert assoc.send_c_store(sent).Status == Status.SUCCESS  # type: ignore[attr-defined]
    assoc.release()  # type: ignore[attr-defined]
    with server.context.database.sessions() as session:
        path = session.execute(
            select(Instance.path).where(Instance.sop_instance_uid == sent.SOPInstanceUID)
        ).scalar_one()
    stored = dcmread(server.context.storage.open(path))
    assert stored.PixelData == sent.PixelData
    assert stored.PatientName == sent.PatientName
