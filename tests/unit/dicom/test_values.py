"""Normal forms used for range matching."""

from __future__ import annotations

import pytest

from pacs_ai.dicom.uids import derived_uid, is_valid_uid, new_uid
from pacs_ai.dicom.values import normalize_datetime, normalize_pn, normalize_time


@pytest.mark.parametrize(
    ("value", "upper", "expected"),
    [
        ("10", False, "100000.000000"),
        ("10", True, "105959.999999"),
        ("1030", False, "103000.000000"),
        ("103015.5", False, "103015.500000"),
        ("103015.5", True, "103015.599999"),
        ("10:30:15", False, "103015.000000"),
        ("25", False, None),
        ("abc", False, None),
    ],
)
def test_normalize_time(value: str, upper: bool, expected: str | None) -> None:
    assert normalize_time(value, upper=upper) == expected


@pytest.mark.parametrize(
    ("value", "upper", "expected"),
    [
        ("2024", False, "20240101000000.000000"),
        ("2024", True, "20241231235959.999999"),
        ("20240315103000", False, "20240315103000.000000"),
        ("20240315103000.25+0100", False, "20240315103000.250000"),
        ("2024-03", False, None),
    ],
)
def test_normalize_datetime(value: str, upper: bool, expected: str | None) -> None:
    assert normalize_datetime(value, upper=upper) == expected


def test_person_names_compare_without_case() -> None:
    assert normalize_pn(" doe^John ") == "DOE^JOHN"


def test_uids() -> None:
    assert is_valid_uid(new_uid())
    assert derived_uid("a", 1) == derived_uid("a", 1) != derived_uid("a", 2)
    assert not is_valid_uid("1.02.3")
    assert not is_valid_uid("1.2.")
