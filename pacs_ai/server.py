"""Composition root: builds the parts from the settings and starts and stops them together."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

from pynetdicom import _config as pynetdicom_config
from pynetdicom.transport import ThreadedAssociationServer

from pacs_ai.api.app import create_app
from pacs_ai.api.http import HttpServer
from pacs_ai.api.metrics import Metrics
from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import build_ingestor
from pacs_ai.archive.ingest_pool import IngestPool
from pacs_ai.config import Settings
from pacs_ai.dimse.ae import DimseServer, start_server
from pacs_ai.dimse.context import DimseContext
from pacs_ai.dimse.workers import DimseWorkers
from pacs_ai.pipeline.definition import load_pipelines
from pacs_ai.pipeline.dispatcher import Dispatcher
from pacs_ai.pipeline.metrics import PipelineCollector
from pacs_ai.pipeline.recorder import Recorder
from pacs_ai.registry import service as registry
from pacs_ai.registry.bundle import discover, read_bundle
from pacs_ai.registry.errors import BundleError, RegistryError
from pacs_ai.registry.schema import ModelState
from pacs_ai.security.audit import AuditLog

log = logging.getLogger(__name__)


def build_context(settings: Settings, *, upgrade: bool = True) -> DimseContext:
    """The shared services of one process, with the database brought up to date.

    ``upgrade=False`` for a DIMSE worker, whose main process has migrated the database.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    if upgrade:
        database.upgrade()
    ingestor = build_ingestor(settings, database)
    return DimseContext(
        settings=settings,
        database=database,
        storage=ingestor.storage,
        ingestor=ingestor,
        audit=AuditLog(database),
    )


def start_ingest_pool(context: DimseContext) -> DimseContext:
    """The context with its ingest processes running, when the settings ask for them."""
    if context.settings.ingest_processes == 0:
        return context
    pool = IngestPool(context.settings)
    pool.warm_up()
    log.info("%d ingest processes ready", pool.processes)
    return replace(context, ingest_pool=pool)


def register_models(context: DimseContext) -> None:
    """Register the bundles of ``models_dirs`` not yet registered; activate where none is.

    A bundle that fails validation is logged and skipped: a broken folder must not keep the
    archive from starting.
    """
    database = context.database
    for path in discover(context.settings.models_dirs):
        try:
            bundle = read_bundle(path)
            with database.write_sessions.begin() as session:
                version = registry.get_by_name_version(
                    session=session, name=bundle.name, version=bundle.version
                )
                if version is None:
                    version, _ = registry.register(session=session, bundle=bundle, actor="startup")
                    log.info("registered model %s %s", bundle.name, bundle.version)
                if registry.get_active(session=session, name=bundle.name) is None:
                    registry.set_state(
                        session=session,
                        model_version=version,
                        state=ModelState.ACTIVE,
                        actor="startup",
                        reason="no active version",
                    )
                    log.info("activated model %s %s", bundle.name, bundle.version)
        except (BundleError, RegistryError) as exc:
            log.warning("model bundle %s not registered: %s", path, exc)


def build_dispatcher(context: DimseContext) -> Dispatcher:
    """The AI pipeline: pipeline files, Ray (embedded or joined), the result recorder."""
    from pacs_ai.inference.runtime import InferenceRuntime

    settings = context.settings
    pipelines = load_pipelines(settings.pipelines_dir)
    log.info("pipelines: %s", ", ".join(p.name for p in pipelines) or "none")
    return Dispatcher(
        settings=settings,
        database=context.database,
        storage=context.storage,
        pipelines=pipelines,
        runtime=InferenceRuntime(settings),
        recorder=Recorder(context.ingestor, context.database, context.storage, settings.ae_title),
    )


@dataclass
class Server:
    """A running pacs-ai: the DIMSE SCP, the HTTP face, and the AI pipeline's dispatcher."""

    context: DimseContext
    dimse: ThreadedAssociationServer | None = None
    dimse_workers: DimseWorkers | None = None
    http: HttpServer | None = None
    dispatcher: Dispatcher | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start listening, and the pipeline when enabled."""
        # pynetdicom logs identifiers at INFO; what it logs must not fill the disk with PHI.
        pynetdicom_config.LOG_HANDLER_LEVEL = "none"
        # highdicom logs each module it copies into every SR and SEG at INFO: noise, not news.
        logging.getLogger("highdicom").setLevel(logging.WARNING)
        self.context = start_ingest_pool(self.context)
        if self.context.settings.pipelines_enabled:
            if self.context.settings.auto_register_models:
                register_models(self.context)
            self.dispatcher = build_dispatcher(self.context)
            self.dispatcher.start()
        settings = self.context.settings
        self.dimse = start_server(self.context)
        if settings.dimse_workers > 1:
            dimse = self.dimse
            assert isinstance(dimse, DimseServer)
            self.dimse_workers = DimseWorkers(
                settings, self.dimse_port, own_load=lambda: len(dimse.active_associations)
            )
            self.dimse_workers.start()
            dimse.dispatch = self.dimse_workers.dispatch
        metrics = Metrics(self.context.database, associations=self._open_associations)
        metrics.registry.register(PipelineCollector(self.context.database))
        self.http = HttpServer(
            create_app(self.context, metrics=metrics, dispatcher=self.dispatcher),
            settings.http_host,
            settings.http_port,
            log_level=settings.log_level,
        )
        self.http.start()

    def _open_associations(self) -> dict[int, int]:
        """Open associations per DIMSE process: 0 is this one, then the workers' slots."""
        counts = {0: len(self.dimse.active_associations) if self.dimse is not None else 0}
        if self.dimse_workers is not None:
            counts.update(self.dimse_workers.active_associations())
        return counts

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
            # Open event streams never end by themselves, and uvicorn waits for them.
            self.http.app.state.worklist.close()
            self.http.stop()
            self.http = None
        if self.dimse_workers is not None:
            self.dimse_workers.stop()
            self.dimse_workers = None
        if self.dimse is not None:
            self.dimse.shutdown()
            self.dimse = None
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher.runtime.shutdown()
            self.dispatcher = None
        if self.context.ingest_pool is not None:
            self.context.ingest_pool.close()
        if self.context.audit is not None:
            self.context.audit.close()
        self.context.database.dispose()
        self.stopped.set()


def create_server(settings: Settings) -> Server:
    """A server built from ``settings``, not yet started."""
    return Server(build_context(settings))
