"""PDU reads fill one buffer, and a peer's announced length costs only what it sends."""

from __future__ import annotations

import socket
import threading
import tracemalloc

from pacs_ai.dimse.sockets import FIRST_READ_BYTES, BulkReceiveSocket


def bulk_socket(sock: socket.socket) -> BulkReceiveSocket:
    """The read side alone: ``recv`` needs nothing of an association but its socket."""
    reader = object.__new__(BulkReceiveSocket)
    reader.socket = sock
    return reader


def test_a_pdu_larger_than_the_first_buffer_arrives_whole() -> None:
    ours, peer = socket.socketpair()
    payload = bytes(range(256)) * (3 * FIRST_READ_BYTES // 256 + 7)
    sender = threading.Thread(target=peer.sendall, args=(payload,))
    sender.start()
    try:
        assert bulk_socket(ours).recv(len(payload)) == payload
    finally:
        sender.join()
        ours.close()
        peer.close()


def test_an_announced_4_gib_pdu_costs_only_what_arrives() -> None:
    ours, peer = socket.socketpair()
    peer.sendall(b"x" * 64)
    peer.close()
    tracemalloc.start()
    try:
        data = bulk_socket(ours).recv(0xFFFFFFFF)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        ours.close()
    assert data == b"x" * 64
    assert peak < 4 * FIRST_READ_BYTES
