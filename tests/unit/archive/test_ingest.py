"""The one ingest path, on SQLite and PostgreSQL: stored, duplicate, conflict, refusals."""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import IngestError, IngestErrorKind, Ingestor, Outcome
from pacs_ai.archive.schema import Instance, Patient, Series, Study
from pacs_ai.archive.storage import Storage
from tests.conftest import sample_path
from tests.factories import make_instance, part10

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"


def counts(database: Database) -> tuple[int, int, int, int]:
    with database.sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Patient, Study, Series, Instance)
        )


def stored_files(storage: Storage) -> list[Path]:
    return sorted(p for p in storage.root.rglob("*.dcm"))


def test_every_sample_transfer_syntax_is_stored_as_received(
    ingestor: Ingestor, database: Database, storage: Storage, sample_files: dict[str, Path]
) -> None:
    for path in sample_files.values():
        data = path.read_bytes()
        result = ingestor.ingest(data)
        assert result.outcome is Outcome.STORED
        with database.sessions() as session:
            row = session.execute(
                select(Instance).where(Instance.sop_instance_uid == result.sop_instance_uid)
            ).scalar_one()
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        assert storage.open(row.path).read_bytes() == data
        assert row.transfer_syntax_uid == str(dcmread(path).file_meta.TransferSyntaxUID)
    assert counts(database)[3] == len(sample_files)


def test_index_holds_study_attributes_and_counts(ingestor: Ingestor, database: Database) -> None:
    for index in range(3):
        ingestor.ingest(
            make_instance(
                study_uid=STUDY,
                series_uid=SERIES if index < 2 else SERIES + ".1",
                sop_uid=f"{STUDY}.{index}",
                AccessionNumber="ACC1",
                PatientName="Müller^Anna",
                Modality="CT" if index < 2 else "SR",
            )
        )
    with database.sessions() as session:
        study = session.execute(select(Study)).scalar_one()
        patient = session.get(Patient, study.patient_pk)
    assert (study.num_series, study.num_instances) == (2, 3)
    assert study.accession_number == "ACC1"
    assert study.study_time_norm == "120000.000000"
    assert patient is not None and patient.patient_name == "Müller^Anna"
    assert patient.patient_name_norm == "MÜLLER^ANNA"


def test_precompiled_rows_read_back_as_the_orm_writes_them(
    ingestor: Ingestor, database: Database
) -> None:
    """The instance row and the counters are written as driver SQL; the series row by the ORM.

    Both carry the same timestamp: they must read back equal, as aware-or-naive alike, so
    the driver SQL converts values exactly as SQLAlchemy does on this database.
    """
    for index in range(2):
        ingestor.ingest(
            make_instance(study_uid=STUDY, series_uid=SERIES, sop_uid=f"{STUDY}.9{index}")
        )
    with database.sessions() as session:
        first = session.execute(
            select(Instance).where(Instance.sop_instance_uid == f"{STUDY}.90")
        ).scalar_one()
        second = session.execute(
            select(Instance).where(Instance.sop_instance_uid == f"{STUDY}.91")
        ).scalar_one()
        series = session.execute(select(Series)).scalar_one()
        study = session.execute(select(Study)).scalar_one()
    assert first.received_at == series.created_at == study.created_at
    assert type(first.received_at) is type(series.created_at)
    assert series.updated_at == study.updated_at == second.received_at > first.received_at
    assert (series.num_instances, study.num_instances, study.num_series) == (2, 2, 1)
    assert first.series_pk == series.id and first.rows is not None and first.size_bytes > 0


def test_identical_resend_is_success_without_duplicates(
    ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    data = sample_path("CT_small.dcm").read_bytes()
    assert ingestor.ingest(data).outcome is Outcome.STORED
    assert ingestor.ingest(data).outcome is Outcome.DUPLICATE
    assert counts(database) == (1, 1, 1, 1)
    assert len(stored_files(storage)) == 1


def test_identical_resend_restores_a_lost_file(ingestor: Ingestor, storage: Storage) -> None:
    data = sample_path("CT_small.dcm").read_bytes()
    ingestor.ingest(data)
    (lost,) = stored_files(storage)
    lost.unlink()
    assert ingestor.ingest(data).outcome is Outcome.DUPLICATE
    assert lost.read_bytes() == data


def test_other_content_under_a_known_uid_is_refused(
    ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    original = sample_path("MR_small.dcm").read_bytes()
    other = sample_path("MR_small_implicit.dcm").read_bytes()  # same SOP Instance UID
    ingestor.ingest(original)
    with pytest.raises(IngestError) as refused:
        ingestor.ingest(other)
    assert refused.value.kind is IngestErrorKind.CONFLICT
    (kept,) = stored_files(storage)
    assert kept.read_bytes() == original
    assert counts(database) == (1, 1, 1, 1)


def test_overwrite_replaces_atomically(database: Database, storage: Storage) -> None:
    ingestor = Ingestor(database, storage, overwrite=True, max_object_bytes=1 << 26)
    first = make_instance(
        study_uid=STUDY, series_uid=SERIES, sop_uid=STUDY + ".9", PatientName="Old^Name"
    )
    second = make_instance(
        study_uid=STUDY, series_uid=SERIES, sop_uid=STUDY + ".9", PatientName="New^Name"
    )
    ingestor.ingest(first)
    assert ingestor.ingest(second).outcome is Outcome.REPLACED
    (kept,) = stored_files(storage)
    assert kept.read_bytes() == second
    assert counts(database) == (1, 1, 1, 1)
    with database.sessions() as session:
        assert session.execute(select(Patient.patient_name)).scalar_one() == "New^Name"
        assert session.execute(select(Study.num_instances)).scalar_one() == 1


def test_overwrite_can_move_an_instance_to_another_study(
    database: Database, storage: Storage
) -> None:
    ingestor = Ingestor(database, storage, overwrite=True, max_object_bytes=1 << 26)
    ingestor.ingest(make_instance(study_uid=STUDY, series_uid=SERIES, sop_uid=STUDY + ".9"))
    ingestor.ingest(
        make_instance(study_uid=STUDY + ".5", series_uid=SERIES + ".5", sop_uid=STUDY + ".9")
    )
    with database.sessions() as session:
        studies = session.execute(select(Study.study_instance_uid, Study.num_instances)).all()
    assert studies == [(STUDY + ".5", 1)]


def test_size_limit(database: Database, storage: Storage) -> None:
    ingestor = Ingestor(database, storage, overwrite=False, max_object_bytes=1000)
    with pytest.raises(IngestError) as refused:
        ingestor.ingest(sample_path("CT_small.dcm").read_bytes())
    assert refused.value.kind is IngestErrorKind.TOO_LARGE
    assert stored_files(storage) == []


def _without(keyword: str) -> bytes:
    ds = dcmread(sample_path("CT_small.dcm"))
    delattr(ds, keyword)
    return part10(ds)


def _with(**attributes: object) -> bytes:
    ds = dcmread(sample_path("CT_small.dcm"))
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return part10(ds)


def _lying_pixels() -> bytes:
    ds = dcmread(sample_path("CT_small.dcm"))
    ds.Rows = ds.Rows * 2
    return part10(ds)


def _garbage_frame(name: str) -> bytes:
    data = bytearray(sample_path(name).read_bytes())
    ds = dcmread(sample_path(name))
    start = data.find(b"\xff\xd8") if b"\xff\xd8" in data[-ds.PixelData.__len__() :] else -1
    marker = bytes(data).rfind(b"\xff\x4f\xff\x51") if start < 0 else start
    data[marker : marker + 4] = b"JUNK"
    return bytes(data)


BAD_INPUTS = {
    "not dicom": lambda: b"hello world" * 100,
    "empty": lambda: b"",
    "truncated": lambda: sample_path("CT_small.dcm").read_bytes()[:5000],
    "no SOP Instance UID": lambda: _without("SOPInstanceUID"),
    "no Study UID": lambda: _without("StudyInstanceUID"),
    "no Series UID": lambda: _without("SeriesInstanceUID"),
    "path tricks in UID": lambda: _with(SOPInstanceUID="1.2/../../../etc/x"),
    "dots in UID": lambda: _with(StudyInstanceUID=".."),
    "NUL in UID": lambda: _with(SeriesInstanceUID="1.2.3\x00.4"),
    "pixel data lies": _lying_pixels,
    "garbage J2K frame": lambda: _garbage_frame("JPEG2000.dcm"),
    "garbage JPEG frame": lambda: _garbage_frame("SC_rgb_jpeg_dcmtk.dcm"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(
    name: str, ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    ingestor.ingest(sample_path("MR_small.dcm").read_bytes())
    before = counts(database)
    with pytest.raises(IngestError) as refused:
        ingestor.ingest(BAD_INPUTS[name]())
    assert refused.value.kind in {IngestErrorKind.INVALID, IngestErrorKind.SOP_CLASS_MISMATCH}
    assert refused.value.reason
    assert counts(database) == before
    assert len(stored_files(storage)) == 1


def test_request_sop_class_must_match_dataset(ingestor: Ingestor) -> None:
    with pytest.raises(IngestError) as refused:
        ingestor.ingest(
            sample_path("CT_small.dcm").read_bytes(), expected_sop_class="1.2.840.10008.5.1.4.1.1.4"
        )
    assert refused.value.kind is IngestErrorKind.SOP_CLASS_MISMATCH


def test_file_meta_naming_another_instance_is_refused(
    ingestor: Ingestor, database: Database
) -> None:
    # pydicom's rtplan.dcm says one SOP Instance UID in its file meta and another in its dataset.
    with pytest.raises(IngestError, match="does not match"):
        ingestor.ingest(sample_path("rtplan.dcm").read_bytes())
    assert counts(database) == (0, 0, 0, 0)


def test_object_without_pixels_is_stored(ingestor: Ingestor) -> None:
    data = make_instance(study_uid=STUDY, series_uid=SERIES, sop_uid=STUDY + ".77", pixels=False)
    assert ingestor.ingest(data).outcome is Outcome.STORED


def test_a_large_object_written_while_parsed_is_stored_whole(
    ingestor: Ingestor, database: Database, storage: Storage
) -> None:
    """The file is written in a thread while the object is hashed and parsed."""
    ds = dcmread(BytesIO(make_instance(study_uid=STUDY, series_uid=SERIES, sop_uid=STUDY + ".9")))
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(range(256)) * 1024
    data = part10(ds)
    assert ingestor.ingest(data).outcome is Outcome.STORED
    with database.sessions() as session:
        stored = session.execute(select(Instance.sha256, Instance.path)).one()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.open(stored.path).read_bytes() == data
    assert ingestor.ingest(data).outcome is Outcome.DUPLICATE
    ds.PixelData = bytes(reversed(range(256))) * 1024
    with pytest.raises(IngestError) as refused:
        ingestor.ingest(part10(ds))
    assert refused.value.kind is IngestErrorKind.CONFLICT
    assert list(storage.incoming.iterdir()) == []  # the refused object's staged file is gone
