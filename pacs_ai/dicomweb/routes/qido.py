"""QIDO-RS routes (PS3.18 10.6): thin handlers over :mod:`pacs_ai.dicomweb.search`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pacs_ai.api.deps import AuditorDep, BaseUrlDep, SessionDep, SettingsDep, allow
from pacs_ai.archive.query import Level
from pacs_ai.dicomweb import search
from pacs_ai.dicomweb.media import negotiate_json
from pacs_ai.dicomweb.retrieve import check_uids
from pacs_ai.dicomweb.routes.common import (
    DicomJSONResponse,
    SeriesUID,
    StudyUID,
    dicom_json,
    service_url,
)
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import ALL_ROLES

router = APIRouter(tags=["QIDO-RS"])
QUERY = allow(ALL_ROLES, Action.QUERY)

_PARAMETERS: list[dict[str, Any]] = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "fuzzymatching", "in": "query", "schema": {"type": "boolean"}},
    {
        "name": "includefield",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Comma-separated keywords or tags, or 'all'",
    },
    {"name": "PatientID", "in": "query", "schema": {"type": "string"}},
    {"name": "PatientName", "in": "query", "schema": {"type": "string"}},
    {"name": "StudyDate", "in": "query", "schema": {"type": "string"}},
    {"name": "Modality", "in": "query", "schema": {"type": "string"}},
    {"name": "00100020", "in": "query", "schema": {"type": "string"}},
]
_DOC: dict[str, Any] = {
    "parameters": _PARAMETERS,
    "responses": {"200": {"content": {"application/dicom+json": {}}}},
}


def _answer(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    base: str,
    auditor: AuditorDep,
    level: Level,
    scope: dict[str, str],
) -> Response:
    negotiate_json(request.headers.get("accept"))
    check_uids(*scope.values())
    parsed = search.parse(
        level,
        scope,
        request.query_params.multi_items(),
        max_results=settings.max_find_results,
    )
    answers, warnings = search.search(
        session=session, request=parsed, dicomweb_base=service_url(base)
    )
    studies = [str(a.get("0020000D", {}).get("Value", [""])[0]) for a in answers]
    auditor.record(
        Action.QUERY,
        Outcome.SUCCESS,
        patient_id=parsed.keys.get("PatientID", ""),
        study_uids=[*studies, scope.get("StudyInstanceUID", "")],
        detail=f"QIDO-RS {request.url.path}?{request.url.query}"[:1024],
    )
    return dicom_json(answers, headers=search.warning_header(warnings))


@router.get("/studies", dependencies=[QUERY], response_class=DicomJSONResponse, openapi_extra=_DOC)
def search_studies(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    auditor: AuditorDep,
) -> Response:
    """Search for studies (PS3.18 10.6.1, ``SearchForStudies``)."""
    return _answer(request, session, settings, base, auditor, Level.STUDY, {})


@router.get("/series", dependencies=[QUERY], response_class=DicomJSONResponse, openapi_extra=_DOC)
def search_series(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    auditor: AuditorDep,
) -> Response:
    """Search for series of any study (``SearchForSeries``)."""
    return _answer(request, session, settings, base, auditor, Level.SERIES, {})


@router.get(
    "/studies/{study}/series",
    dependencies=[QUERY],
    response_class=DicomJSONResponse,
    openapi_extra=_DOC,
)
def search_study_series(
    request: Request,
    study: StudyUID,
    session: SessionDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    auditor: AuditorDep,
) -> Response:
    """Search for the series of one study (``SearchForStudySeries``)."""
    scope = {"StudyInstanceUID": study}
    return _answer(request, session, settings, base, auditor, Level.SERIES, scope)


@router.get(
    "/instances", dependencies=[QUERY], response_class=DicomJSONResponse, openapi_extra=_DOC
)
def search_instances(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    auditor: AuditorDep,
) -> Response:
    """Search for instances of any study (``SearchForInstances``)."""
    return _answer(request, session, settings, base, auditor, Level.IMAGE, {})


@router.get(
    "/studies/{study}/instances",
    dependencies=[QUERY],
    response_class=DicomJSONResponse,
    openapi_extra=_DOC,
)
def search_study_instances(
    request: Request,
    study: StudyUID,
    session: SessionDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    auditor: AuditorDep,
) -> Response:
    """Search for the instances of one study (``SearchForStudyInstances``)."""
    scope = {"StudyInstanceUID": study}
    return _answer(request, session, settings, base, auditor, Level.IMAGE, scope)


@router.get(
    "/studies/{study}/series/{series}/instances",
    dependencies=[QUERY],
    response_class=DicomJSONResponse,
    openapi_extra=_DOC,
)
def search_series_instances(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    session: SessionDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    auditor: AuditorDep,
) -> Response:
    """Search for the instances of one series (``SearchForSeriesInstances``)."""
    scope = {"StudyInstanceUID": study, "SeriesInstanceUID": series}
    return _answer(request, session, settings, base, auditor, Level.IMAGE, scope)
