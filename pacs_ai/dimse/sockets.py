"""Socket options for every DIMSE connection.

Neither pynetdicom nor DCMTK turns Nagle's algorithm off; on loopback each DIMSE message
can then wait ~40 ms for a delayed ACK. pacs-ai sets TCP_NODELAY on every socket it accepts
or opens, through pynetdicom's connection-open event.
"""

from __future__ import annotations

import logging
import socket

from pynetdicom import evt

log = logging.getLogger(__name__)


def set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: disable Nagle on the association's socket."""
    transport = event.assoc.dul.socket
    sock = getattr(transport, "socket", None) if transport is not None else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # a socket already closed by the peer
        log.debug("TCP_NODELAY not set: %s", exc)
