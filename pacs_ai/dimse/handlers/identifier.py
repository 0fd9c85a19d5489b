"""Reading a Query/Retrieve request identifier into the matcher's terms (PS3.4 C.4)."""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs_ai.archive.query import Level
from pacs_ai.dicom.status import Status

_PATIENT_ROOT = {
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
}
_STUDY_ROOT = {
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
}
_SKIPPED = {"QueryRetrieveLevel", "SpecificCharacterSet"}


class IdentifierError(Exception):
    """An identifier that cannot be answered; ``status`` and ``reason`` go to the peer."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Dataset) or (
        isinstance(value, list) and value and isinstance(value[0], Dataset)
    ):
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def read_identifier(event: evt.Event) -> tuple[Level, dict[str, str]]:
    """The query level and the keys (keyword -> DICOM string value) of the request.

    Raises IdentifierError with IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS for a level the
    information model does not have (PATIENT in Study Root), or UNABLE_TO_PROCESS for an
    identifier that does not decode.
    """
    try:
        identifier = event.identifier
        level_text = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
        keys: dict[str, str] = {}
        for element in identifier:
            keyword = element.keyword
            if not keyword or keyword in _SKIPPED or element.tag.group == 0x0002:
                continue
            keys[keyword] = "" if element.VR == "SQ" else _as_text(element.value)
    except Exception as exc:  # a damaged identifier, whatever pydicom raises on it
        raise IdentifierError(
            Status.UNABLE_TO_PROCESS, f"identifier does not decode: {exc}"
        ) from exc
    level = {
        "PATIENT": Level.PATIENT,
        "STUDY": Level.STUDY,
        "SERIES": Level.SERIES,
        "IMAGE": Level.IMAGE,
    }.get(level_text)
    if level is None:
        raise IdentifierError(
            Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
            f"missing or unknown QueryRetrieveLevel {level_text!r}",
        )
    model = str(event.request.AffectedSOPClassUID)
    if model in _STUDY_ROOT and level is Level.PATIENT:
        raise IdentifierError(
            Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, "Study Root has no PATIENT level"
        )
    if model not in _PATIENT_ROOT | _STUDY_ROOT:
        raise IdentifierError(
            Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, f"unsupported information model {model}"
        )
    return level, keys
