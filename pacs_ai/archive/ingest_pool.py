"""The one ingest path, run in worker processes for requests that bring many objects at once.

A STOW-RS request carries dozens of objects; one Python process ingests them one after the
other on one core (parsing, hashing and indexing hold the interpreter lock). With
``PACS_AI_INGEST_PROCESSES=N`` the parts of a request go to N worker processes, each with its
own :class:`~pacs_ai.archive.ingest.Ingestor` over the same database and store, and the
answers come back in the parts' order. Nothing about an object's treatment changes: each
worker runs the same ingest path, so every object is still written, fsync'ed and indexed
before its success is reported.

A worker that dies takes only the objects it held with it: they are reported as failed
(the sender was not told "stored", so nothing acknowledged is lost) and a new pool replaces
the broken one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from pacs_ai.archive.ingest import (
    IngestError,
    IngestErrorKind,
    Ingestor,
    IngestResult,
    build_ingestor,
)
from pacs_ai.children import SPAWN, on_parent_exit
from pacs_ai.config import Settings

log = logging.getLogger(__name__)

Outcome = IngestResult | IngestError

_worker_ingestor: Ingestor | None = None


class BulkIngest(Protocol):
    """What STOW-RS needs: many objects in, one outcome per object out, in order."""

    def ingest_many(self, items: Iterable[bytes]) -> Iterator[tuple[bytes, Outcome]]:
        """Each object with its result, or the IngestError that refused it."""
        ...


class IngestPool:
    """``PACS_AI_INGEST_PROCESSES`` processes running :meth:`Ingestor.ingest`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes = settings.ingest_processes
        self.window = 2 * self.processes  # objects in flight: bounded memory, busy workers
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=SPAWN,
            initializer=_start_worker,
            initargs=(self.settings,),
        )

    def warm_up(self) -> None:
        """Start every worker now rather than on the first request."""
        futures = [self._executor.submit(_ready) for _ in range(self.processes)]
        for future in futures:
            future.result()

    def ingest_many(self, items: Iterable[bytes]) -> Iterator[tuple[bytes, Outcome]]:
        """Ingest in the workers, at most ``window`` objects at a time; answers in order."""
        pending: deque[tuple[bytes, Future[IngestResult]]] = deque()
        for data in items:
            pending.append((data, self._submit(data)))
            if len(pending) >= self.window:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    def close(self) -> None:
        """Finish what is queued and stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=False)

    def _submit(self, data: bytes) -> Future[IngestResult]:
        executor = self._executor
        try:
            return executor.submit(_ingest, data)
        except BrokenProcessPool:
            return self._replace(executor).submit(_ingest, data)

    def _collect(self, data: bytes, future: Future[IngestResult]) -> tuple[bytes, Outcome]:
        try:
            return data, future.result()
        except IngestError as exc:
            return data, exc
        except BrokenProcessPool:
            self._replace(self._executor)
            return data, IngestError(
                IngestErrorKind.INDEX, "the ingest process ended before storing; send again"
            )

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is broken:
                log.error("an ingest process died; starting a new pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
            return self._executor


def _start_worker(settings: Settings) -> None:
    """Worker initializer: the process's own database engine, store and ingest path.

    The executor's workers wait on a queue whose writing end they share, so they never see
    the server go: they end with their parent process instead, however it ended.
    """
    from pacs_ai.archive.db import Database

    on_parent_exit(lambda: os._exit(1))
    global _worker_ingestor
    _worker_ingestor = build_ingestor(settings, Database(settings.effective_database_url))


def _ready() -> bool:
    return _worker_ingestor is not None


def _ingest(data: bytes) -> IngestResult:
    assert _worker_ingestor is not None, "worker not initialised"
    return _worker_ingestor.ingest(data)
