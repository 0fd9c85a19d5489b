"""Fixtures shared by every test: both databases, the store, the ingest path, test files."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom.data import get_testdata_file

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.storage import Storage

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# pydicom's bundled files with distinct SOP Instance UIDs, one per transfer syntax family.
SAMPLE_FILES = {
    "explicit_le": "CT_small.dcm",
    "implicit_le": "MR_small_implicit.dcm",
    "jpeg2000": "JPEG2000.dcm",
    "rle": "SC_rgb_rle.dcm",
    "jpeg_baseline": "SC_rgb_jpeg_dcmtk.dcm",
    "jpeg_extended": "JPEG-lossy.dcm",
    "deflate": "image_dfl.dcm",
}


def sample_path(name: str) -> Path:
    """A bundled pydicom test file (never downloaded)."""
    found = get_testdata_file(name, download=False)
    assert found is not None, f"pydicom test file {name} is missing"
    return Path(str(found))


@pytest.fixture(scope="session")
def sample_files() -> dict[str, Path]:
    """Sample files by transfer-syntax family."""
    return {key: sample_path(name) for key, name in SAMPLE_FILES.items()}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema in database ``test``, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on the embedded SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database."""
    db = Database(database_url)
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    """An empty object store."""
    return Storage(tmp_path / "objects")


@pytest.fixture
def ingestor(database: Database, storage: Storage) -> Ingestor:
    """The ingest path with overwrite off."""
    return Ingestor(database, storage, overwrite=False, max_object_bytes=64 * 1024 * 1024)
