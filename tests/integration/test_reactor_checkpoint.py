"""Requested associations pause their reactor exactly: a response is never taken from a sender.

pynetdicom's association thread marks itself paused just before it passes its checkpoint, so
a ``send_*`` call that pauses it in that gap can have its response stolen and time out. The
theft needs two gaps: the association thread between passing the checkpoint and looking for
a message, and the sender between sending and waiting for the response. On a loaded machine
both are a lost time slice; here they are widened to 50 and 100 ms, which makes the race
happen on every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from pacs_ai.dimse.reactor import ExactCheckpoint

pytestmark = pytest.mark.integration

GAP_S = 0.05
SENDER_STALL_S = 0.1


class WideGapEvent(threading.Event):
    """pynetdicom's own checkpoint, with the gap after each pass widened."""

    def wait(self, timeout: float | None = None) -> bool:
        passed = super().wait(timeout)
        time.sleep(GAP_S)
        return passed


class WideGapCheckpoint(ExactCheckpoint):
    def wait(self, timeout: float | None = None) -> bool:
        passed = super().wait(timeout)
        time.sleep(GAP_S)
        return passed


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    ae = AE(ae_title="ECHOSCP")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    yield server.server_address[1]
    server.shutdown()


def echoes(port: int, checkpoint: type[threading.Event] | type[ExactCheckpoint]) -> list[int]:
    """Statuses of five C-ECHOs over one association whose reactor uses ``checkpoint``."""

    def install(event: evt.Event) -> None:
        event.assoc._reactor_checkpoint = checkpoint()

    ae = AE(ae_title="PAUSER")
    ae.add_requested_context(Verification)
    ae.dimse_timeout = 1.0
    assoc: Association = ae.associate(
        "127.0.0.1", port, evt_handlers=[(evt.EVT_CONN_OPEN, install)]
    )
    assert assoc.is_established
    send_msg = assoc.dimse.send_msg

    def send_then_stall(*args: object) -> None:
        send_msg(*args)  # type: ignore[arg-type]
        time.sleep(SENDER_STALL_S)

    assoc.dimse.send_msg = send_then_stall  # type: ignore[method-assign]
    statuses = []
    for _ in range(5):
        status = assoc.send_c_echo()
        statuses.append(getattr(status, "Status", -1))
        if not assoc.is_established:
            break
    if assoc.is_established:
        assoc.release()
    return statuses


def test_the_race_is_real_with_pynetdicoms_checkpoint(echo_port: int) -> None:
    """Shows that the test below can fail. Once pynetdicom fixes its reactor, this fails and
    ``pause_exactly`` can go."""
    assert echoes(echo_port, WideGapEvent) != [0x0000] * 5


def test_every_response_reaches_its_sender(echo_port: int) -> None:
    assert echoes(echo_port, WideGapCheckpoint) == [0x0000] * 5


def test_clear_does_not_wait_for_a_reactor_that_ended() -> None:
    checkpoint = ExactCheckpoint()
    reactor = threading.Thread(target=checkpoint.wait)  # ends holding the lock
    reactor.start()
    reactor.join()
    started = time.monotonic()
    checkpoint.clear()
    assert not checkpoint.is_set()
    assert time.monotonic() - started < 1.0


def test_the_reactor_may_pause_itself() -> None:
    """pynetdicom's C-GET SCP sends C-STOREs from the association thread itself."""
    checkpoint = ExactCheckpoint()
    done = threading.Event()

    def reactor() -> None:
        checkpoint.wait()
        checkpoint.clear()
        checkpoint.set()
        checkpoint.wait()
        done.set()

    thread = threading.Thread(target=reactor)
    thread.start()
    thread.join(timeout=2.0)
    assert done.is_set()
