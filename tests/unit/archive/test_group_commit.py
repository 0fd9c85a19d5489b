"""Group commit: concurrent callers share batches, each gets its own result or error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from pacs_ai.archive.db import Database
from pacs_ai.archive.group_commit import GroupCommit
from pacs_ai.archive.ingest import Ingestor, Outcome
from pacs_ai.archive.schema import Instance, Series, Study
from tests.factories import make_instance


def test_concurrent_items_share_batches_and_errors_stay_with_their_item() -> None:
    batches: list[int] = []

    def run_batch(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(len(items))
        time.sleep(0.01)  # a commit's flush
        return [ValueError(f"bad {i}") if i % 7 == 0 else i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(run_batch)

    def call(i: int) -> int | str:
        try:
            return group.submit(i)
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(1, 41)))
    assert results == [f"bad {i}" if i % 7 == 0 else i * 10 for i in range(1, 41)]
    assert sum(batches) == 40
    assert max(batches) > 1  # callers that queued during a flush went in one batch


def test_a_failing_batch_fails_each_of_its_callers() -> None:
    def run_batch(items: Sequence[int]) -> list[int]:
        raise RuntimeError("disk gone")

    group: GroupCommit[int, int] = GroupCommit(run_batch)
    with pytest.raises(RuntimeError, match="disk gone"):
        group.submit(1)


def test_concurrent_ingest_keeps_counts_exact(ingestor: Ingestor, database: Database) -> None:
    study = "1.2.826.0.1.3680043.8.498.77"
    payloads = [
        make_instance(
            study_uid=study, series_uid=f"{study}.{i % 3}", sop_uid=f"{study}.{i % 3}.{i}"
        )
        for i in range(60)
    ]
    payloads += payloads[:10]  # identical resends race with the first copies
    start = threading.Barrier(6)

    def send(chunk: list[bytes]) -> list[Outcome]:
        start.wait()
        return [ingestor.ingest(data).outcome for data in chunk]

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = [
            o for chunk in pool.map(send, [payloads[i::6] for i in range(6)]) for o in chunk
        ]
    assert outcomes.count(Outcome.STORED) == 60
    assert outcomes.count(Outcome.DUPLICATE) == 10
    with database.sessions() as session:
        assert session.execute(select(func.count()).select_from(Instance)).scalar_one() == 60
        assert session.execute(select(Study.num_series, Study.num_instances)).one() == (3, 60)
        assert sorted(session.execute(select(Series.num_instances)).scalars()) == [20, 20, 20]
