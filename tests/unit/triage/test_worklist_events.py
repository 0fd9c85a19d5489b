"""The worklist's event streams: the SSE format, fan-out, slow pages, and closing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs_ai.api.events import QUEUE_MAX, EventKind, WorklistEvent, WorklistHub
from pacs_ai.config import Settings
from pacs_ai.dimse.context import DimseContext
from pacs_ai.server import build_context


@pytest.fixture
def context(tmp_path: Path) -> Iterator[DimseContext]:
    built = build_context(Settings(data_dir=tmp_path, dimse_port=0, http_port=0))
    yield built
    built.database.dispose()


def test_an_event_in_the_event_stream_format() -> None:
    event = WorklistEvent(EventKind.CLAIM, ("1.2.3",), "alice")
    assert event.encode(7) == (
        b'id: 7\nevent: claim\ndata: {"type":"claim","study_uids":["1.2.3"],"reader":"alice"}\n\n'
    )
    finding = WorklistEvent(EventKind.FINDING, ("1.2", "1.3")).encode(8)
    assert finding.endswith(b'data: {"type":"finding","study_uids":["1.2","1.3"]}\n\n')


def test_streams_get_events_from_any_thread_and_end_on_close(context: DimseContext) -> None:
    hub = WorklistHub(context)

    async def scenario() -> list[bytes]:
        await hub.start()
        streams = [hub.stream(), hub.stream()]
        ready = [await anext(stream) for stream in streams]
        assert all(b"event: ready" in chunk for chunk in ready)
        sender = threading.Thread(
            target=hub.publish, args=(WorklistEvent(EventKind.READ, ("9.9",), "bob"),)
        )
        sender.start()
        sender.join()
        received = [await asyncio.wait_for(anext(stream), 5) for stream in streams]
        hub.close()
        for stream in streams:
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(anext(stream), 5)
        return received

    received = asyncio.run(scenario())
    assert len(received) == 2 and received[0] == received[1]
    assert b"event: read" in received[0] and b'"reader":"bob"' in received[0]


def test_a_page_that_falls_behind_loses_its_stream(context: DimseContext) -> None:
    hub = WorklistHub(context)

    async def scenario() -> None:
        await hub.start()
        slow = hub.stream()
        await anext(slow)
        for _ in range(QUEUE_MAX + 1):
            hub.publish(WorklistEvent(EventKind.STUDY, ("1.2",)))
        await asyncio.sleep(0.1)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(slow), 5)
        hub.close()

    asyncio.run(scenario())
