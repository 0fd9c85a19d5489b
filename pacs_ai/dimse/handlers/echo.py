"""C-ECHO (Verification, PS3.4 A.4)."""

from __future__ import annotations

from pynetdicom import evt

from pacs_ai.dicom.status import Status
from pacs_ai.dimse.context import DimseContext


def handle_echo(event: evt.Event, ctx: DimseContext) -> int:
    """Answer a verification request.

    Statuses: SUCCESS (0x0000), always; the association itself is the check.
    """
    return int(Status.SUCCESS)
