"""Write transactions on a bare connection: committed, and the connection kept while fresh."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from pacs_ai.archive import db as db_module
from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import Patient, utcnow


def add_patient(database: Database, patient_id: str) -> object:
    """Insert a patient in one write transaction; returns the connection it used."""
    with database.write_transaction() as connection:
        connection.execute(
            insert(Patient).values(
                patient_id=patient_id, issuer_of_patient_id="", created_at=utcnow()
            )
        )
        return connection


def patients(database: Database) -> int:
    with database.sessions() as session:
        return session.execute(select(func.count()).select_from(Patient)).scalar_one()


def test_consecutive_writes_share_one_connection_and_commit(database: Database) -> None:
    first = add_patient(database, "P1")
    second = add_patient(database, "P2")
    assert first is second
    assert patients(database) == 2


def test_a_failed_write_rolls_back_and_the_connection_serves_again(database: Database) -> None:
    with pytest.raises(RuntimeError), database.write_transaction() as connection:
        connection.execute(
            insert(Patient).values(patient_id="GONE", issuer_of_patient_id="", created_at=utcnow())
        )
        raise RuntimeError("refused")
    assert add_patient(database, "P3") is connection
    assert patients(database) == 1


def test_a_broken_connection_is_dropped(database: Database) -> None:
    with pytest.raises(SQLAlchemyError), database.write_transaction() as connection:
        connection.invalidate()  # what SQLAlchemy does when the database drops it
    assert add_patient(database, "P4") is not connection
    assert patients(database) == 1


def test_a_connection_idle_too_long_goes_back_to_the_pool(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = add_patient(database, "P5")
    monkeypatch.setattr(db_module, "KEPT_IDLE_S", -1.0)
    assert add_patient(database, "P6") is not first
    assert first.closed
    assert patients(database) == 2
