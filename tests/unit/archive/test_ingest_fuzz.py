"""Property-based tests: damaged input never crashes ingest and never changes the archive."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import func, select

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import IngestError, Ingestor
from pacs_ai.archive.schema import Instance
from pacs_ai.archive.storage import Storage
from tests.conftest import sample_path
from tests.factories import damaged, make_instance

VALID = sample_path("CT_small.dcm").read_bytes()
COMPRESSED = sample_path("JPEG2000.dcm").read_bytes()
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Archive:
    """A throw-away SQLite archive; hypothesis runs many examples against one instance."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pacs-fuzz-"))
        self.database = Database(f"sqlite:///{self.folder / 'index.sqlite'}")
        self.database.upgrade()
        self.storage = Storage(self.folder / "objects")
        self.ingestor = Ingestor(
            self.database, self.storage, overwrite=False, max_object_bytes=1 << 24
        )

    def instance_count(self) -> int:
        with self.database.sessions() as session:
            return int(session.execute(select(func.count()).select_from(Instance)).scalar_one())

    def file_count(self) -> int:
        return sum(1 for _ in self.storage.root.rglob("*.dcm"))


ARCHIVE = Archive()


def check_ingest(data: bytes) -> None:
    """Either stored (and then indexed with its file), or refused with nothing changed."""
    before = (ARCHIVE.instance_count(), ARCHIVE.file_count())
    try:
        ARCHIVE.ingestor.ingest(data)
    except IngestError as exc:
        assert exc.reason
        assert (ARCHIVE.instance_count(), ARCHIVE.file_count()) == before
    else:
        assert ARCHIVE.instance_count() == ARCHIVE.file_count()


@FUZZ
@given(st.data())
def test_mutated_bytes(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([VALID, COMPRESSED]))
    check_ingest(damaged(source, data, first=132))


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(blob: bytes) -> None:
    check_ingest(blob)
    check_ingest(b"\0" * 128 + b"DICM" + blob)


def _nested(depth: int) -> Sequence:
    item = Dataset()
    item.CodeValue = "X"
    sequence = Sequence([item])
    for _ in range(depth):
        outer = Dataset()
        outer.ContentSequence = sequence
        sequence = Sequence([outer])
    return sequence


@FUZZ
@given(
    depth=st.integers(0, 400),
    rows=st.integers(1, 64),
    pixel_bytes=st.integers(0, 64 * 64 + 3),
    uid_suffix=st.text(alphabet="0123456789./\\\0x ", min_size=1, max_size=12),
)
def test_structured_mutations(depth: int, rows: int, pixel_bytes: int, uid_suffix: str) -> None:
    data = make_instance(
        study_uid="1.2.3.4",
        series_uid="1.2.3.4.5",
        sop_uid="1.2.3.4.5." + uid_suffix,
        Rows=rows,
        Columns=rows,
        PixelData=b"\x01" * pixel_bytes,
        ContentSequence=_nested(depth),
    )
    check_ingest(data)
