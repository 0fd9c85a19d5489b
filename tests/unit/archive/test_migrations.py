"""The shipped migrations build exactly the tables the ORM declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import pacs_ai.tables  # noqa: F401
from pacs_ai.archive.db import Base, Database


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_reading_room_searches_are_indexed(database: Database) -> None:
    inspector = inspect(database.engine)
    indexed = {
        (table, column)
        for table in ("patient", "study", "series")
        for index in inspector.get_indexes(table)
        for column in index["column_names"]
    }
    for expected in [
        ("patient", "patient_id"),
        ("patient", "patient_name_norm"),
        ("study", "study_date"),
        ("study", "accession_number"),
        ("series", "modality"),
    ]:
        assert expected in indexed
