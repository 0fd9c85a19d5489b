"""Accepted associations wait for events instead of polling, and still answer at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from pacs_ai.dimse.reactor import QuietDUL
from pacs_ai.server import Server
from tests.integration.processes import wait_for

pytestmark = pytest.mark.integration

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def test_idle_associations_cost_no_cpu_and_answer_at_once(server: Server) -> None:
    assert server.dimse is not None
    ae = AE(ae_title="IDLER")
    ae.add_requested_context(Verification)
    requestors = [ae.associate("127.0.0.1", server.dimse_port) for _ in range(4)]
    assert all(a.is_established for a in requestors)
    wait_for(lambda: len(server.dimse.active_associations) == 4)  # type: ignore[union-attr]
    accepted = server.dimse.active_associations
    assert all(isinstance(a.dul, QuietDUL) for a in accepted)
    threads = [t.native_id for a in accepted for t in (a, a.dul)]
    assert all(t is not None for t in threads)

    before = sum(thread_cpu_s(t) for t in threads)  # type: ignore[arg-type]
    time.sleep(2.0)
    spent = sum(thread_cpu_s(t) for t in threads) - before  # type: ignore[arg-type]
    # Polling every millisecond cost ~0.09 CPU-s per association per second here (0.7 s).
    assert spent < 0.2, f"idle associations used {spent:.2f} CPU-s in 2 s"

    for requestor in requestors:
        started = time.monotonic()
        status = requestor.send_c_echo()
        assert status.Status == 0x0000
        assert time.monotonic() - started < 0.5

    requestors[0].abort()
    for requestor in requestors[1:]:
        requestor.release()
    wait_for(lambda: not server.dimse.active_associations, timeout_s=2.0)  # type: ignore[union-attr]
