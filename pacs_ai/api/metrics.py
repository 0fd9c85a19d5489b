"""Prometheus metrics: HTTP requests and latencies, stored objects, DIMSE associations.

Each app has its own registry (several servers can run in one test process). Request metrics
are labelled by route template (``/dicom-web/studies/{study}``), never by the raw path, so
that UIDs do not explode the label space; requests that match no route count as
``unmatched``. Archive totals are read from the index when scraped,
so they count every way in (DIMSE, STOW-RS, imports, pacs-ai's own results) without a hook in
the ingest hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Instance


class _ArchiveCollector(Collector):
    """Instances and bytes in the archive, and open DIMSE associations, read at scrape time."""

    def __init__(
        self, database: Database, associations: Callable[[], dict[int, int]] | None
    ) -> None:
        self.database = database
        self.associations = associations

    def collect(self) -> Iterator[GaugeMetricFamily]:
        instances = GaugeMetricFamily("pacs_ai_archive_instances", "Instances in the archive")
        size = GaugeMetricFamily("pacs_ai_archive_bytes", "Bytes of stored objects")
        try:
            with self.database.sessions() as session:
                count, total = session.execute(
                    select(func.count(Instance.id), func.coalesce(func.sum(Instance.size_bytes), 0))
                ).one()
            instances.add_metric([], float(count))
            size.add_metric([], float(total))
            yield instances
            yield size
        except SQLAlchemyError:
            pass  # /readyz reports the database; a scrape must not fail for it
        if self.associations is not None:
            active = GaugeMetricFamily(
                "pacs_ai_dimse_associations_active",
                "Open DIMSE associations, per DIMSE process (0: the main one)",
                labels=["process"],
            )
            for process, count in sorted(self.associations().items()):
                active.add_metric([str(process)], float(count))
            yield active


class Metrics:
    """The metrics of one server."""

    def __init__(
        self, database: Database, associations: Callable[[], dict[int, int]] | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pacs_ai_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pacs_ai_http_request_duration_seconds",
            "Time from request to the end of the response body",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.stow_instances = Counter(
            "pacs_ai_stow_instances", "Instances stored through STOW-RS", registry=self.registry
        )
        self.stow_bytes = Counter(
            "pacs_ai_stow_bytes", "Bytes stored through STOW-RS", registry=self.registry
        )
        self.registry.register(_ArchiveCollector(database, associations))

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (streaming responses pass through untouched) timing each request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: dict[int, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = self.templates.get(id(route), "unmatched")
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
