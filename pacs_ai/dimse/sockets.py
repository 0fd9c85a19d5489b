"""Socket options for every DIMSE connection.

Neither pynetdicom nor DCMTK turns Nagle's algorithm off; on loopback each DIMSE message
can then wait ~40 ms for a delayed ACK. pacs-ai sets TCP_NODELAY on every socket it accepts
or opens, through pynetdicom's connection-open event.

pynetdicom reads the rest of a PDU with blocking ``recv`` calls: a peer that announces a
4 GiB PDU and stops sending would hold the association (and its slot) for ever. A receive
timeout turns such a stall into a closed connection.
"""

from __future__ import annotations

import logging
import socket

from pynetdicom import evt

log = logging.getLogger(__name__)


def configure_socket(event: evt.Event, receive_timeout_s: float | None = None) -> None:
    """EVT_CONN_OPEN handler: disable Nagle, bound every blocking read."""
    transport = event.assoc.dul.socket
    sock = getattr(transport, "socket", None) if transport is not None else None
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if receive_timeout_s is not None:
            sock.settimeout(receive_timeout_s)
    except OSError as exc:  # a socket already closed by the peer
        log.debug("socket options not set: %s", exc)
