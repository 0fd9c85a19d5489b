"""What the DICOMweb routes share: the service URL, JSON answers, path parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import JSONResponse

from pacs_ai.dicomweb.media import DICOM_JSON

SERVICE = "/dicom-web"

UID_PATTERN = r"^[0-9.]{1,64}$"
StudyUID = Annotated[str, Path(description="Study Instance UID", pattern=UID_PATTERN)]
SeriesUID = Annotated[str, Path(description="Series Instance UID", pattern=UID_PATTERN)]
InstanceUID = Annotated[str, Path(description="SOP Instance UID", pattern=UID_PATTERN)]


def service_url(base: str) -> str:
    """The DICOMweb service root as the client sees it."""
    return base + SERVICE


class DicomJSONResponse(JSONResponse):
    """``application/dicom+json`` (PS3.18 8.7.3.2), the media type of QIDO-RS and metadata."""

    media_type = DICOM_JSON


def dicom_json(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> DicomJSONResponse:
    """A DICOM JSON answer."""
    return DicomJSONResponse(content, status_code=status_code, headers=dict(headers or {}))
