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

pynetdicom's pause of the association thread also has a race, on the associations we open
(C-MOVE sub-operations, ``pacs-ai send``): see :class:`ExactCheckpoint`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
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


class ExactCheckpoint:
    """``Association._reactor_checkpoint`` (a ``threading.Event``) made safe to pause on.

    ``send_c_store`` and the other ``send_*`` methods pause the association thread by
    clearing the event and then waiting for ``_is_paused``. The thread sets ``_is_paused``
    *before* it waits on the event, so a sender can clear the event just after the thread
    passed it and still see ``_is_paused`` true. The thread then takes the peer's response
    off the queue, logs "Received unexpected C-STORE service message" and the sender times
    out (pynetdicom issue #875; it failed a C-MOVE in our CI).

    Here the association thread holds a lock from leaving ``wait`` until it waits again,
    and ``clear`` takes that lock: when ``clear`` returns, the thread is either waiting or
    not yet at the checkpoint, and in both cases it stops there.
    """

    HOLDER_POLL_S = 0.005

    def __init__(self) -> None:
        self._event = threading.Event()
        self._event.set()
        self._lock = threading.Lock()
        self._holder: threading.Thread | None = None  # holds _lock between two waits

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Clear once the association thread is at or before the checkpoint."""
        holder = self._holder
        if holder is threading.current_thread():  # the thread pausing itself (C-GET SCP)
            self._event.clear()
            return
        while not self._lock.acquire(timeout=self.HOLDER_POLL_S):
            holder = self._holder
            if holder is not None and not holder.is_alive():  # its reactor ended: no race left
                self._event.clear()
                return
        try:
            self._event.clear()
        finally:
            self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Called only by the association thread, at the top of each reactor turn."""
        if self._holder is threading.current_thread():
            self._holder = None
            self._lock.release()
        while True:
            self._event.wait()
            self._lock.acquire()
            if self._event.is_set():
                self._holder = threading.current_thread()
                return True
            self._lock.release()


def pause_exactly(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler for associations we request: see :class:`ExactCheckpoint`."""
    event.assoc._reactor_checkpoint = ExactCheckpoint()  # type: ignore[assignment]
