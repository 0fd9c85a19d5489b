"""DIMSE status codes by name (PS3.7 Annex C, PS3.4 B.2.3, C.4).

Handlers return these names, never bare hex literals, so that a reader sees what each
answer means and a grep finds every place that gives it.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Status values used by the pacs-ai SCP and SCU."""

    SUCCESS = 0x0000
    # General failures (PS3.7 C.4)
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111  # STOW-RS FailureReason for other content under a known UID
    NO_SUCH_SOP_CLASS = 0x0118
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    # C-STORE (PS3.4 B.2.3)
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    # PS3.4 Table B.2-1 has no status for "this UID is stored with other content"; 0x0111
    # (Duplicate SOP Instance, PS3.7 C.4) belongs to N-CREATE and DCMTK shows it as unknown.
    # The Cxxx range is the storage SCP's own, so the conflict gets a code of its own there.
    CONFLICTING_DUPLICATE = 0xC111
    # Query/Retrieve (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)
    OUT_OF_RESOURCES_MATCHES = 0xA700
    OUT_OF_RESOURCES_SUBOPS = 0xA702
    MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC001
    CANCEL = 0xFE00
    SUBOPS_COMPLETE_WITH_FAILURES = 0xB000
    PENDING = 0xFF00
    PENDING_WARNING = 0xFF01
