"""Live worklist updates: Server-Sent Events, and the one background task of an app.

Open worklist pages hold one ``GET /api/worklist/events`` stream each (``text/event-stream``,
the WHATWG HTML "Server-sent events" format). Events carry study UIDs only, never patient
data: a page that receives one fetches the worklist again, with its token.

``claim``, ``release`` and ``read``
    Published by the route that did the action, after its transaction committed.
``finding``
    New AI results counted for the listed studies (shadow runs are not announced).
``study``
    Studies that arrived.

The pipeline does not know about HTTP: :class:`WorklistHub`'s background task looks for new
rows once per ``worklist_poll_s`` with two index lookups (the largest finding and study keys,
:func:`pacs_ai.triage.worklist.marks`). When they grew it adds worklist entries (and patient
settings) for new studies, ranks the worklist again, and only then announces the change, so
that the pages fetching at once get the new order. It also re-ranks when the ranking is
``worklist_refresh_s`` old, so that waiting times keep ageing the order.

The task runs on the server's event loop, started by the first worklist request (the HTTP
server runs the app without lifespan events); blocking work goes to a worker thread. A row
committed out of key order (PostgreSQL sequences are not commit-ordered) is counted at the
next re-rank, at most ``worklist_refresh_s`` later, but not announced. Claims made through
another server sharing the database show at once in lists (see
:class:`~pacs_ai.triage.worklist.RankedWorklist`) but are announced by that server only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError

from pacs_ai.archive.schema import utcnow
from pacs_ai.dimse.context import DimseContext
from pacs_ai.triage import worklist
from pacs_ai.triage.worklist import Marks, RankedWorklist
from pacs_ai.triage.worklist_dicom import sync_entries

log = logging.getLogger(__name__)

#: A comment line this often keeps proxies from closing an idle stream.
HEARTBEAT_S = 15.0
#: What an ``EventSource`` waits before reconnecting (the stream's ``retry`` field), in ms.
RETRY_MS = 2000
#: Events queued for one slow page before its stream is ended (it reconnects and refetches).
QUEUE_MAX = 256
#: Study UIDs named by one event at most: after a burst (an import) pages refetch anyway.
EVENT_UIDS_MAX = 100


class EventKind(StrEnum):
    """What happened to the worklist."""

    CLAIM = "claim"
    RELEASE = "release"
    READ = "read"
    FINDING = "finding"
    STUDY = "study"


@dataclass(frozen=True)
class WorklistEvent:
    """One change of the worklist; ``reader`` for reading actions."""

    kind: EventKind
    study_uids: tuple[str, ...]
    reader: str | None = None

    def encode(self, event_id: int) -> bytes:
        """The event in the ``text/event-stream`` format."""
        data = {"type": self.kind.value, "study_uids": list(self.study_uids)}
        if self.reader is not None:
            data["reader"] = self.reader
        text = json.dumps(data, separators=(",", ":"))
        return f"id: {event_id}\nevent: {self.kind.value}\ndata: {text}\n\n".encode()


class WorklistHub:
    """An app's ranked worklist, its event streams, and the task that watches the tables.

    Parameters
    ----------
    context
        The process's services: settings, database, object store.
    """

    def __init__(self, context: DimseContext) -> None:
        self.context = context
        self.settings = context.settings
        self.ranking = RankedWorklist(context.database, context.settings)
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._marks: Marks | None = None
        self._sync_more = False

    async def start(self) -> None:
        """Start the background task on the running loop, once."""
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._watch(), name="pacs-ai-worklist")

    def close(self) -> None:
        """End every event stream and stop the task; callable from any thread.

        Call it before stopping the HTTP server: uvicorn's graceful shutdown waits for open
        responses, and an event stream never ends by itself.
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._close)

    def _close(self) -> None:
        for queue in list(self._subscribers):
            self._end(queue)
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def publish(self, event: WorklistEvent) -> None:
        """Send ``event`` to every open stream; callable from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: WorklistEvent) -> None:
        payload = event.encode(next(self._ids))
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:
                log.info(
                    "worklist events: a page fell %d events behind; its stream ends", QUEUE_MAX
                )
                self._subscribers.discard(queue)
                self._end(queue)

    @staticmethod
    def _end(queue: asyncio.Queue[bytes | None]) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[bytes | None]]:
        """A queue of encoded events for one stream; ``None`` in it ends the stream."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def stream(self) -> AsyncIterator[bytes]:
        """The body of one event stream: a ``ready`` event, then events and heartbeats."""
        async with self.subscribe() as queue:
            yield f"retry: {RETRY_MS}\nevent: ready\ndata: {{}}\n\n".encode()
            while True:
                try:
                    payload = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if payload is None:
                    return
                yield payload

    async def _watch(self) -> None:
        while True:
            try:
                events = await asyncio.to_thread(self.tick)
            except SQLAlchemyError as exc:
                log.warning("worklist watch failed, retrying: %s", exc)
                events = []
            for event in events:
                self._fan_out(event)
            await asyncio.sleep(self.settings.worklist_poll_s)

    def tick(self) -> list[WorklistEvent]:
        """One look at the tables: entries for new studies, re-rank when due, what to announce."""
        database = self.context.database
        with database.sessions() as session:
            now_marks = worklist.marks(session=session)
            previous = self._marks
            findings = (
                worklist.studies_with_findings_after(
                    session=session, finding_id=previous.finding_id
                )
                if previous is not None and now_marks.finding_id > previous.finding_id
                else []
            )
            studies = (
                worklist.studies_after(session=session, study_id=previous.study_id)
                if previous is not None and now_marks.study_id > previous.study_id
                else []
            )
        self._marks = now_marks
        settings_found = 0
        if previous is None or studies or self._sync_more:
            now = utcnow()
            horizon = self.settings.worklist_horizon_days
            synced = sync_entries(
                database=database,
                storage=self.context.storage,
                now=now,
                horizon_start=now - timedelta(days=horizon) if horizon > 0 else None,
            )
            settings_found, self._sync_more = synced.settings_found, synced.more
        changed = previous is None or now_marks != previous or settings_found > 0
        if changed or self.ranking.age_s() >= self.settings.worklist_refresh_s:
            self.ranking.refresh()
        events = []
        if findings:
            events.append(WorklistEvent(EventKind.FINDING, tuple(findings[:EVENT_UIDS_MAX])))
        if studies:
            events.append(WorklistEvent(EventKind.STUDY, tuple(studies[:EVENT_UIDS_MAX])))
        return events
