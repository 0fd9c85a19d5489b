"""Composition root: builds the parts from the settings and starts and stops them together."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from pynetdicom import _config as pynetdicom_config
from pynetdicom.transport import ThreadedAssociationServer

from pacs_ai.api.app import create_app
from pacs_ai.api.http import HttpServer
from pacs_ai.api.metrics import Metrics
from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.storage import Storage
from pacs_ai.config import Settings
from pacs_ai.dimse.ae import start_server
from pacs_ai.dimse.context import DimseContext
from pacs_ai.security.audit import AuditLog

log = logging.getLogger(__name__)


def build_context(settings: Settings) -> DimseContext:
    """The shared services of one process, with the database brought up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.upgrade()
    storage = Storage(settings.storage_dir)
    ingestor = Ingestor(
        database,
        storage,
        overwrite=settings.overwrite,
        max_object_bytes=settings.max_object_bytes,
    )
    return DimseContext(
        settings=settings,
        database=database,
        storage=storage,
        ingestor=ingestor,
        audit=AuditLog(database),
    )


@dataclass
class Server:
    """A running pacs-ai: the DIMSE SCP today; the HTTP face and the pipeline join it here."""

    context: DimseContext
    dimse: ThreadedAssociationServer | None = None
    http: HttpServer | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start listening."""
        # pynetdicom logs identifiers at INFO; what it logs must not fill the disk with PHI.
        pynetdicom_config.LOG_HANDLER_LEVEL = "none"
        self.dimse = start_server(self.context)
        metrics = Metrics(self.context.database, associations=self._open_associations)
        settings = self.context.settings
        self.http = HttpServer(
            create_app(self.context, metrics=metrics),
            settings.http_host,
            settings.http_port,
            log_level=settings.log_level,
        )
        self.http.start()

    def _open_associations(self) -> int:
        return len(self.dimse.active_associations) if self.dimse is not None else 0

    @property
    def http_port(self) -> int:
        """The bound HTTP port (useful when the settings asked for port 0)."""
        assert self.http is not None
        return self.http.port

    @property
    def dimse_port(self) -> int:
        """The bound DIMSE port (useful when the settings asked for port 0)."""
        assert self.dimse is not None
        return int(self.dimse.server_address[1])

    def stop(self) -> None:
        """Stop accepting, end open associations, write the audit trail, close the pool."""
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.dimse is not None:
            self.dimse.shutdown()
            self.dimse = None
        if self.context.audit is not None:
            self.context.audit.close()
        self.context.database.dispose()
        self.stopped.set()


def create_server(settings: Settings) -> Server:
    """A server built from ``settings``, not yet started."""
    return Server(build_context(settings))
