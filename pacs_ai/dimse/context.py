"""What every DIMSE handler is given: the process's settings, database, store and ingest path."""

from __future__ import annotations

from dataclasses import dataclass

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.storage import Storage
from pacs_ai.config import Settings
from pacs_ai.security.audit import AuditLog


@dataclass(frozen=True)
class DimseContext:
    """Shared, thread-safe services; handlers never build their own."""

    settings: Settings
    database: Database
    storage: Storage
    ingestor: Ingestor
    audit: AuditLog | None = None
    """Where handlers record who did what (None: no trail, e.g. a bulk import)."""
