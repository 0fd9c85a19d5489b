"""Group commit: concurrent callers share batches, each gets its own result or error."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pacs_ai.archive.db import Database
from pacs_ai.archive.group_commit import GroupCommit
from pacs_ai.archive.header import parse
from pacs_ai.archive.ingest import Ingestor, Outcome, _IndexRequest
from pacs_ai.archive.schema import Instance, Patient, Series, Study
from pacs_ai.archive.storage import Storage
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


def _request(ingestor: Ingestor, data: bytes, *, replacing: bool = False) -> _IndexRequest:
    """What ingest hands the group commit for ``data``, its file written."""
    parsed = parse(data)
    digest = hashlib.sha256(data).hexdigest()
    relative = ingestor.storage.relative_path(parsed.sop_instance_uid, digest)
    ingestor.storage.write(relative, data)
    return _IndexRequest(parsed, relative, len(data), digest, replacing)


def test_one_batch_mixes_cached_new_failing_and_replacing_requests(
    database: Database, storage: Storage
) -> None:
    """Cached row ids, new rows, a failing savepoint and a replacement share one transaction.

    The failing request's new series goes with its savepoint; the others are committed.
    """
    ingestor = Ingestor(database, storage, overwrite=True, max_object_bytes=1 << 26)
    study = "1.2.826.0.1.3680043.8.498.88"
    series = f"{study}.1"
    ingestor.ingest(make_instance(study_uid=study, series_uid=series, sop_uid=f"{series}.1"))
    ingestor.ingest(make_instance(study_uid=study, series_uid=series, sop_uid=f"{series}.2"))
    replaced = ingestor.storage.relative_path(
        f"{series}.2",
        hashlib.sha256(
            make_instance(study_uid=study, series_uid=series, sop_uid=f"{series}.2")
        ).hexdigest(),
    )
    batch = [
        _request(  # one more instance of a known series: row ids from the cache
            ingestor, make_instance(study_uid=study, series_uid=series, sop_uid=f"{series}.3")
        ),
        _request(  # a new series: found or created rows
            ingestor,
            make_instance(study_uid=study, series_uid=f"{study}.2", sop_uid=f"{study}.2.1"),
        ),
        _request(  # a UID stored already, in a series that exists only in its savepoint
            ingestor,
            make_instance(study_uid=study, series_uid=f"{study}.3", sop_uid=f"{series}.1"),
        ),
        _request(  # other content under a known UID, overwrite on
            ingestor,
            make_instance(
                study_uid=study, series_uid=series, sop_uid=f"{series}.2", PatientName="New^Name"
            ),
            replacing=True,
        ),
    ]
    outcomes = ingestor._index_batch(batch)
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], IntegrityError)
    assert outcomes[3] == replaced
    with database.sessions() as session:
        assert sorted(session.execute(select(Instance.sop_instance_uid)).scalars()) == [
            f"{series}.1",
            f"{series}.2",
            f"{series}.3",
            f"{study}.2.1",
        ]
        assert sorted(
            session.execute(select(Series.series_instance_uid, Series.num_instances)).all()
        ) == [(series, 3), (f"{study}.2", 1)]
        assert session.execute(select(Study.num_series, Study.num_instances)).one() == (2, 4)
        assert session.execute(select(Patient.patient_name)).scalar_one() == "New^Name"
        new_path = session.execute(
            select(Instance.path).where(Instance.sop_instance_uid == f"{series}.2")
        ).scalar_one()
    assert new_path == batch[3].relative != replaced
