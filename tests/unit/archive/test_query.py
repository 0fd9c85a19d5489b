"""The one DICOM matcher, each matching type of PS3.4 C.2.2.2, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pacs_ai.archive.db import Database
from pacs_ai.archive.ingest import Ingestor
from pacs_ai.archive.query import Level, Query, QueryError, matching_instances, run
from tests.factories import make_instance

ROOT = "1.2.826.0.1.3680043.8.498.10"

STUDIES = [
    # (suffix, patient id, name, date, time, accession, modality, description)
    ("1", "P1", "Doe^John", "20240105", "083000", "A100", "CT", "CT HEAD"),
    ("2", "P1", "Doe^John", "20240210", "141500.5", "A200", "MR", "MR BRAIN"),
    ("3", "P2", "DOE^JANE", "20231231", "235959", "B300", "CT", "CT CHEST"),
    ("4", "P3", "Smith^Anna", "20240301", "0700", "A%_4", "DX", "CHEST 1_VIEW"),
]


@pytest.fixture
def archive(ingestor: Ingestor, database: Database) -> Database:
    for suffix, pid, name, date, time, accession, modality, description in STUDIES:
        study = f"{ROOT}.{suffix}"
        for series_index, series_modality in enumerate([modality, "SR"]):
            ingestor.ingest(
                make_instance(
                    study_uid=study,
                    series_uid=f"{study}.{series_index}",
                    sop_uid=f"{study}.{series_index}.1",
                    PatientID=pid,
                    PatientName=name,
                    StudyDate=date,
                    StudyTime=time,
                    AccessionNumber=accession,
                    Modality=series_modality,
                    StudyDescription=description,
                    SeriesNumber=series_index + 1,
                    AcquisitionDateTime=f"{date}{time.split('.')[0].ljust(6, '0')}",
                )
            )
    return database


def study_uids(database: Database, **keys: str) -> list[str]:
    query = Query(Level.STUDY, {"StudyInstanceUID": "", **keys})
    with database.sessions() as session:
        return sorted(str(ds.StudyInstanceUID)[len(ROOT) + 1 :] for ds in run(session, query))


def test_universal_matching_returns_everything(archive: Database) -> None:
    assert study_uids(archive, PatientName="") == ["1", "2", "3", "4"]
    assert study_uids(archive, PatientName="*") == ["1", "2", "3", "4"]


def test_single_value_matching_is_exact_and_case_sensitive(archive: Database) -> None:
    assert study_uids(archive, AccessionNumber="A100") == ["1"]
    assert study_uids(archive, AccessionNumber="a100") == []
    assert study_uids(archive, StudyDescription="CT HEAD") == ["1"]


def test_person_names_match_without_case(archive: Database) -> None:
    assert study_uids(archive, PatientName="doe^john") == ["1", "2"]
    assert study_uids(archive, PatientName="DOE*") == ["1", "2", "3"]


def test_wildcards(archive: Database) -> None:
    assert study_uids(archive, StudyDescription="CT*") == ["1", "3"]
    assert study_uids(archive, StudyDescription="?R BRAIN") == ["2"]
    assert study_uids(archive, StudyDescription="*HE*") == ["1", "3", "4"]


def test_sql_like_characters_are_literal(archive: Database) -> None:
    assert study_uids(archive, AccessionNumber="A%_4") == ["4"]
    assert study_uids(archive, AccessionNumber="A%*") == ["4"]
    assert study_uids(archive, StudyDescription="CHEST 1_*") == ["4"]
    assert study_uids(archive, StudyDescription="CHEST 1%*") == []


def test_date_ranges(archive: Database) -> None:
    assert study_uids(archive, StudyDate="20240101-20240228") == ["1", "2"]
    assert study_uids(archive, StudyDate="20240201-") == ["2", "4"]
    assert study_uids(archive, StudyDate="-20231231") == ["3"]
    assert study_uids(archive, StudyDate="20240105") == ["1"]


def test_time_ranges_and_partial_times(archive: Database) -> None:
    assert study_uids(archive, StudyTime="0800-1500") == ["1", "2"]
    assert study_uids(archive, StudyTime="14") == ["2"]
    assert study_uids(archive, StudyTime="2300-") == ["3"]


def test_datetime_ranges(archive: Database) -> None:
    query = Query(Level.IMAGE, {"SOPInstanceUID": "", "AcquisitionDateTime": "202402-20240301"})
    with archive.sessions() as session:
        found = {str(ds.SOPInstanceUID) for ds in run(session, query)}
    assert found == {f"{ROOT}.2.0.1", f"{ROOT}.2.1.1", f"{ROOT}.4.0.1", f"{ROOT}.4.1.1"}


def test_uid_lists(archive: Database) -> None:
    assert study_uids(archive, StudyInstanceUID=f"{ROOT}.1\\{ROOT}.3") == ["1", "3"]


def test_values_of_only_backslashes_match_everything(archive: Database) -> None:
    assert study_uids(archive, StudyInstanceUID="\\") == ["1", "2", "3", "4"]
    assert study_uids(archive, AccessionNumber="\\\\") == ["1", "2", "3", "4"]


def test_modalities_in_study(archive: Database) -> None:
    assert study_uids(archive, ModalitiesInStudy="CT") == ["1", "3"]
    assert study_uids(archive, ModalitiesInStudy="MR\\DX") == ["2", "4"]
    query = Query(Level.STUDY, {"StudyInstanceUID": f"{ROOT}.1", "ModalitiesInStudy": ""})
    with archive.sessions() as session:
        (found,) = run(session, query)
    assert list(found.ModalitiesInStudy) == ["CT", "SR"]


def test_response_holds_requested_keys_only_and_unknown_keys_empty(archive: Database) -> None:
    query = Query(
        Level.STUDY,
        {
            "StudyInstanceUID": f"{ROOT}.1",
            "PatientName": "",
            "NumberOfStudyRelatedSeries": "",
            "NumberOfStudyRelatedInstances": "",
            "InstitutionName": "ignored",
        },
    )
    with archive.sessions() as session:
        (found,) = run(session, query)
    assert str(found.PatientName) == "Doe^John"
    assert int(found.NumberOfStudyRelatedSeries) == 2
    assert int(found.NumberOfStudyRelatedInstances) == 2
    assert found.InstitutionName in (None, "")
    assert "PatientID" not in found
    assert found.QueryRetrieveLevel == "STUDY"


def test_patient_level_counts(archive: Database) -> None:
    query = Query(
        Level.PATIENT,
        {
            "PatientID": "P1",
            "NumberOfPatientRelatedStudies": "",
            "NumberOfPatientRelatedInstances": "",
        },
    )
    with archive.sessions() as session:
        (found,) = run(session, query)
    assert int(found.NumberOfPatientRelatedStudies) == 2
    assert int(found.NumberOfPatientRelatedInstances) == 4


def test_series_and_image_levels_with_paging(archive: Database) -> None:
    series_query = Query(
        Level.SERIES, {"StudyInstanceUID": f"{ROOT}.1", "SeriesInstanceUID": "", "Modality": ""}
    )
    with archive.sessions() as session:
        series = run(session, series_query)
        page = run(session, Query(Level.IMAGE, {"SOPInstanceUID": ""}), limit=3, offset=2)
        everything = run(session, Query(Level.IMAGE, {"SOPInstanceUID": ""}))
    assert sorted(str(ds.Modality) for ds in series) == ["CT", "SR"]
    assert [ds.SOPInstanceUID for ds in page] == [ds.SOPInstanceUID for ds in everything[2:5]]


def test_malformed_ranges_are_refused(archive: Database) -> None:
    with pytest.raises(QueryError):
        study_uids(archive, StudyDate="2024-01-01")
    with pytest.raises(QueryError):
        study_uids(archive, StudyDate="-")
    with pytest.raises(QueryError):
        study_uids(archive, StudyTime="25-")


def test_non_ascii_values_come_back_in_utf8(ingestor: Ingestor, database: Database) -> None:
    ingestor.ingest(
        make_instance(
            study_uid=ROOT + ".50",
            series_uid=ROOT + ".50.1",
            sop_uid=ROOT + ".50.1.1",
            SpecificCharacterSet="ISO_IR 192",
            PatientName="Ærø^Åse",
        )
    )
    with database.sessions() as session:
        (found,) = run(session, Query(Level.STUDY, {"PatientName": "ærø*"}))
    assert str(found.PatientName) == "Ærø^Åse"
    assert found.SpecificCharacterSet == "ISO_IR 192"


def test_retrieve_scope(archive: Database) -> None:
    with archive.sessions() as session:
        study = matching_instances(session, Level.STUDY, {"StudyInstanceUID": f"{ROOT}.2"})
        series = matching_instances(session, Level.SERIES, {"SeriesInstanceUID": f"{ROOT}.2.1"})
        patient = matching_instances(session, Level.PATIENT, {"PatientID": "P1"})
    assert len(study) == 2
    assert [i.sop_instance_uid for i in series] == [f"{ROOT}.2.1.1"]
    assert len(patient) == 4
