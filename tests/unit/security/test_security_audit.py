"""The batched audit writer: nothing lost, nothing slow, filters that find entries."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pacs_ai.archive.db import Database
from pacs_ai.security import audit
from pacs_ai.security.audit import Action, AuditEntry, AuditFilter, AuditLog, Outcome, Protocol


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade()
    yield db
    db.dispose()


def _entry(n: int, **kw: object) -> AuditEntry:
    values: dict[str, object] = {
        "protocol": Protocol.DIMSE,
        "actor": f"AE{n % 3}",
        "action": Action.STORE,
        "outcome": Outcome.SUCCESS,
        "patient_id": f"P{n % 5}",
        "study_uids": (f"1.2.{n}",),
    }
    values.update(kw)
    return AuditEntry(**values)  # type: ignore[arg-type]


def _count(database: Database) -> int:
    with database.sessions() as session:
        return int(session.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def test_entries_are_batched_and_flushed(database: Database) -> None:
    log = AuditLog(database, flush_interval_s=5.0, batch_size=1000)
    start = time.perf_counter()
    for n in range(2000):
        log.record(_entry(n))
    queued = time.perf_counter() - start
    assert queued < 0.5  # recording is a queue put, not a commit
    assert log.flush()
    assert _count(database) == 2000
    log.close()


def test_entries_recorded_in_one_interval_go_in_transactions_of_batch_size(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(database, flush_interval_s=0.3, batch_size=40)
    written: list[int] = []
    write = log._write
    monkeypatch.setattr(log, "_write", lambda batch: (written.append(len(batch)), write(batch)))
    for n in range(100):
        log.record(_entry(n))
    deadline = time.monotonic() + 10
    while _count(database) < 100 and time.monotonic() < deadline:  # written without a flush
        time.sleep(0.05)
    assert written == [40, 40, 20]
    log.close()


def test_close_writes_what_is_queued_and_later_entries_synchronously(database: Database) -> None:
    log = AuditLog(database, flush_interval_s=60.0, batch_size=10_000)
    for n in range(50):
        log.record(_entry(n))
    log.close()
    assert _count(database) == 50
    log.record(_entry(99))
    assert _count(database) == 51


def test_filters(database: Database) -> None:
    log = AuditLog(database)
    for n in range(30):
        log.record(_entry(n, study_uids=(f"1.2.{n}", "1.2.1000")))
    log.record(
        _entry(
            7,
            actor="web",
            patient_id="PX",
            action=Action.QUERY,
            outcome=Outcome.DENIED,
            protocol=Protocol.HTTP,
        )
    )
    log.close()
    with database.sessions() as session:

        def find(**kw: object) -> list[dict[str, object]]:
            rows = audit.search(session=session, filters=AuditFilter(**kw), limit=100)  # type: ignore[arg-type]
            return [audit.as_dict(r) for r in rows]

        assert len(find(actor="AE1")) == 10
        assert len(find(patient_id="P2")) == 6
        assert [e["study_uids"] for e in find(study_uid="1.2.3")] == [["1.2.3", "1.2.1000"]]
        assert len(find(study_uid="1.2.1000")) == 30
        assert len(find(study_uid="1.2")) == 0
        denied = find(outcome=Outcome.DENIED)
        assert [(e["action"], e["protocol"]) for e in denied] == [("query", "http")]
        newest = find()
        assert [e["id"] for e in newest] == sorted((e["id"] for e in newest), reverse=True)
        older = find(before_id=newest[5]["id"])
        assert older[0]["id"] == newest[6]["id"]
        assert [e.id for e in audit.iterate(session=session, filters=AuditFilter())] == sorted(
            e["id"] for e in newest
        )


def test_entries_that_cannot_be_stored_are_logged_not_dropped(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with database.write_sessions.begin() as session:
        session.execute(text("DROP TABLE audit_event"))
    log = AuditLog(database)
    with caplog.at_level(logging.ERROR, logger="pacs_ai.security.audit"):
        log.record(_entry(1, patient_id="LOST-ONE"))
        log.close()
    assert any("LOST-ONE" in record.getMessage() for record in caplog.records)


def test_long_lists_are_cut_with_a_note() -> None:
    row = _entry(1, study_uids=tuple(f"1.2.{n}" for n in range(500))).row()
    assert row["study_uids"].count("\\") == audit.STUDY_UIDS_MAX - 1
    assert "500 studies" in row["detail"]
