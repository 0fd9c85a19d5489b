"""Socket options for every DIMSE connection.

Neither pynetdicom nor DCMTK turns Nagle's algorithm off; on loopback each DIMSE message
can then wait ~40 ms for a delayed ACK. pacs-ai sets TCP_NODELAY on every socket it accepts
or opens, through pynetdicom's connection-open event.

pynetdicom reads the rest of a PDU with blocking ``recv`` calls: a peer that announces a
4 GiB PDU and stops sending would hold the association (and its slot) for ever. A receive
timeout turns such a stall into a closed connection.

pynetdicom also reads each PDU 4 KiB at a time into a growing buffer: 130 system calls and
as many interpreter round trips for one 0.5 MB image. The socket reads straight into one
buffer of the PDU's size instead.
"""

from __future__ import annotations

import logging
import socket

from pynetdicom import evt
from pynetdicom.transport import AssociationSocket

log = logging.getLogger(__name__)


FIRST_READ_BYTES = 1 << 18
"""Buffer for a PDU at first: our default maximum PDU. A larger one grows it as its bytes
arrive, so a peer that announces 4 GiB and sends 64 bytes costs no more than this."""


class BulkReceiveSocket(AssociationSocket):
    """An association socket whose reads fill one buffer, as large as the kernel allows."""

    def recv(self, nr_bytes: int) -> bytearray:
        """``nr_bytes`` from the peer, or fewer when the connection closes first."""
        assert self.socket is not None
        buffer = bytearray(min(nr_bytes, FIRST_READ_BYTES))
        received = 0
        while received < nr_bytes:
            if received == len(buffer):
                buffer += bytes(min(nr_bytes - received, len(buffer)))
            with memoryview(buffer) as view, view[received:] as free:
                count = self.socket.recv_into(free)
            if not count:
                del buffer[received:]
                break
            received += count
        return buffer


def configure_socket(event: evt.Event, receive_timeout_s: float | None = None) -> None:
    """EVT_CONN_OPEN handler: disable Nagle, bound every blocking read, read in bulk."""
    transport = event.assoc.dul.socket
    sock = getattr(transport, "socket", None) if transport is not None else None
    if sock is None:
        return
    if type(transport) is AssociationSocket:
        transport.__class__ = BulkReceiveSocket
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if receive_timeout_s is not None:
            sock.settimeout(receive_timeout_s)
    except OSError as exc:  # a socket already closed by the peer
        log.debug("socket options not set: %s", exc)
