"""Reading QIDO-RS query parameters into the shared matcher's Query."""

from __future__ import annotations

import pytest

from pacs_ai.api.errors import ApiError
from pacs_ai.archive.query import Level
from pacs_ai.dicomweb.search import STUDY_DEFAULTS, parse, warning_header


def _parse(level: Level, *params: tuple[str, str], scope: dict[str, str] | None = None):
    return parse(level, scope or {}, list(params), max_results=100)


def test_defaults_and_unique_keys_are_asked_for() -> None:
    request = _parse(Level.STUDY)
    assert set(STUDY_DEFAULTS) - {"InstanceAvailability", "RetrieveURL"} <= set(request.keys)
    assert all(v == "" for v in request.keys.values())
    series = _parse(Level.SERIES, scope={"StudyInstanceUID": "1.2.3"})
    assert series.keys["StudyInstanceUID"] == "1.2.3"
    assert "PatientName" not in series.keys  # study attributes only for /series
    assert "PatientName" in _parse(Level.SERIES).keys


def test_keys_by_keyword_or_tag_and_includefield() -> None:
    request = _parse(
        Level.STUDY,
        ("00100020", "P1"),
        ("PatientName", "Doe^J*"),
        ("includefield", "00081030,PatientAge"),
        ("includefield", "IssuerOfPatientID"),
        ("fuzzymatching", "true"),
        ("limit", "10"),
        ("offset", "5"),
    )
    assert request.keys["PatientID"] == "P1"
    assert request.keys["PatientName"] == "Doe^J*"
    assert {"StudyDescription", "PatientAge", "IssuerOfPatientID"} <= set(request.keys)
    assert (request.fuzzy, request.limit, request.offset) == (True, 10, 5)
    assert request.warnings == []


def test_uid_lists_by_comma_or_backslash() -> None:
    request = _parse(Level.STUDY, ("StudyInstanceUID", "1.2.3,1.2.4"))
    assert request.keys["StudyInstanceUID"] == "1.2.3\\1.2.4"


def test_includefield_all() -> None:
    request = _parse(Level.IMAGE, ("includefield", "all"))
    assert {"PatientBirthDate", "BodyPartExamined", "AcquisitionDateTime"} <= set(request.keys)


def test_unsupported_and_misplaced_keys_warn() -> None:
    request = _parse(
        Level.STUDY,
        ("PatientWeight", "70"),
        ("Modality", "CT"),
        ("NumberOfStudyRelatedSeries", "3"),
        ("00081110.00081150", "1.2"),
    )
    assert "Modality" not in request.keys or request.keys["Modality"] == ""
    assert request.keys["NumberOfStudyRelatedSeries"] == ""
    assert len(request.warnings) == 4
    header = warning_header(request.warnings)["Warning"]
    assert header.startswith('299 pacs-ai "')


def test_limit_is_capped() -> None:
    request = _parse(Level.STUDY, ("limit", "5000"))
    assert request.limit == 100
    assert "maximum" in request.warnings[0]


@pytest.mark.parametrize(
    "param",
    [
        ("limit", "-1"),
        ("offset", "x"),
        ("offset", str(2**40)),
        ("fuzzymatching", "yes"),
        ("Foo", "bar"),
        ("includefield", "Foo"),
        ("StudyInstanceUID", "1.02.3"),
        ("PatientID", "a\x00b"),
        ("PatientID", "x" * 2000),
    ],
)
def test_bad_parameters_are_400(param: tuple[str, str]) -> None:
    with pytest.raises(ApiError) as refused:
        _parse(Level.STUDY, param)
    assert refused.value.status == 400


def test_separators_only_is_universal() -> None:
    assert _parse(Level.STUDY, ("PatientID", "\\"), ("PatientID", "")).keys["PatientID"] == ""
