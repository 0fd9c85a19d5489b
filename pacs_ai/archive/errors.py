"""Why the one ingest path refused an object: one error for every part that ingests.

Each part maps the kind to its protocol's answer (a DICOM status, an HTTP status).
"""

from __future__ import annotations

from enum import StrEnum


class IngestErrorKind(StrEnum):
    """Why an object was refused; each part maps it to its protocol's answer."""

    INVALID = "invalid"
    SOP_CLASS_MISMATCH = "sop_class_mismatch"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    STORAGE = "storage"
    INDEX = "index"


class IngestError(Exception):
    """An object was refused; ``reason`` is for the sender (ErrorComment, JSON body)."""

    def __init__(self, kind: IngestErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason

    def __reduce__(self) -> tuple[type[IngestError], tuple[IngestErrorKind, str]]:
        """Pickled with both arguments, so that it crosses from an ingest process intact."""
        return IngestError, (self.kind, self.reason)
