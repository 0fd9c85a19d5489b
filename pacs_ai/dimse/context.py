"""What every DIMSE handler is given: the process's settings, database, store and ingest path."""

from __future__ import annotations

from dataclasses import dataclass

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.ingest_pool import BulkIngest, IngestPool
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
    ingest_pool: IngestPool | None = None
    """Worker processes for many objects at once (``PACS_AI_INGEST_PROCESSES``), if any."""

    @property
    def bulk_ingest(self) -> BulkIngest:
        """Where a request with many objects is ingested: the pool, else this process."""
        return self.ingest_pool if self.ingest_pool is not None else self.ingestor
