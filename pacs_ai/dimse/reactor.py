"""Event-driven waiting for pynetdicom's two per-association threads.

pynetdicom polls. The network thread of each association (``DULServiceProvider``) checks its
socket and its send queue, sleeping ``_run_loop_delay`` (1 ms) between empty looks; the
association thread checks for a decoded message every millisecond. An idle association so
costs about a tenth of a core, and under load the pollers keep taking the interpreter lock
from the thread doing the work: four busy associations spent more CPU polling than parsing.

Here both threads wait instead: the network thread in ``select`` on its socket and a
wake-up pipe that is written whenever the association queues something to send; the
association thread on its message queue. Each still looks at its flags (release, abort,
timers) at least every ``QUIET_WAIT_S``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dul import DULServiceProvider

QUIET_WAIT_S = 0.02


class QuietDUL(DULServiceProvider):
    """A DUL reactor that sleeps in ``select`` rather than in ``time.sleep``."""

    _wake_read: int
    _wake_write: int

    def _quieten(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._run_loop_delay = 0

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            os.close(self._wake_read)
            os.close(self._wake_write)

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def _wake(self) -> None:
        # A full pipe means a wake-up is pending already; a closed one, that the reactor ended.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def _is_transport_event(self) -> bool:
        if super()._is_transport_event():
            return True
        if self.to_provider_queue.empty() and self.event_queue.empty():
            self._wait()
        return False

    def _wait(self) -> None:
        """Until the peer sends, the association queues a primitive, or QUIET_WAIT_S passes."""
        transport = self.socket
        sock = getattr(transport, "socket", None) if transport is not None else None
        watched: list[Any] = [self._wake_read]
        if sock is not None and getattr(transport, "_is_connected", False):
            watched.append(sock)
        try:
            ready, _, _ = select.select(watched, [], [], QUIET_WAIT_S)
        except (OSError, ValueError):  # the socket closed under us: the reactor sees it next
            return
        if self._wake_read in ready:
            try:
                while os.read(self._wake_read, 512):
                    pass
            except BlockingIOError:
                pass


def _await_message(dimse: DIMSEServiceProvider, block: bool = False) -> Any:
    """``get_msg`` for the acceptor's reactor loop: wait a little instead of returning at once."""
    try:
        return dimse.msg_queue.get(
            block=True, timeout=dimse.dimse_timeout if block else QUIET_WAIT_S
        )
    except queue.Empty:
        return None, None


def quieten(assoc: Association) -> None:
    """Make an accepted association's threads wait for events; call before it starts."""
    if not assoc.is_acceptor or assoc.dul.is_alive():
        return
    assoc.dul.__class__ = QuietDUL
    assert isinstance(assoc.dul, QuietDUL)
    assoc.dul._quieten()
    dimse = assoc.dimse
    dimse.get_msg = lambda block=False: _await_message(dimse, block)  # type: ignore[method-assign]


def quiet_reactor(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: see :func:`quieten`."""
    quieten(event.assoc)
