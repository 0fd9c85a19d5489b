"""WADO-RS routes (PS3.18 10.4): thin handlers over :mod:`pacs_ai.dicomweb.retrieve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse

from pacs_ai.api.deps import AuditorDep, BaseUrlDep, ContextDep, SessionDep, allow
from pacs_ai.dicomweb import media, render, retrieve
from pacs_ai.dicomweb.multipart import CRLF, closing, content_type, new_boundary, part_head
from pacs_ai.dicomweb.routes.common import (
    InstanceUID,
    SeriesUID,
    StudyUID,
    service_url,
)
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import ALL_ROLES

router = APIRouter(tags=["WADO-RS"])
RETRIEVE = allow(ALL_ROLES, Action.RETRIEVE)

FrameList = Annotated[str, Path(description="Comma-separated frame numbers, from 1")]
FrameNumber = Annotated[int, Path(description="Frame number, from 1", ge=1, le=2**31 - 1)]

_MULTIPART_DICOM: dict[str, Any] = {
    "responses": {"200": {"content": {'multipart/related; type="application/dicom"': {}}}}
}
_MULTIPART_OCTETS: dict[str, Any] = {
    "responses": {"200": {"content": {'multipart/related; type="application/octet-stream"': {}}}}
}
_JSON: dict[str, Any] = {"responses": {"200": {"content": {"application/dicom+json": {}}}}}
_IMAGE: dict[str, Any] = {
    "parameters": [
        {"name": "window", "in": "query", "schema": {"type": "string"}},
        {"name": "viewport", "in": "query", "schema": {"type": "string"}},
        {"name": "quality", "in": "query", "schema": {"type": "integer"}},
        {"name": "accept", "in": "query", "schema": {"type": "string"}},
    ],
    "responses": {"200": {"content": {"image/jpeg": {}, "image/png": {}}}},
}


def _audit(auditor: AuditorDep, found: retrieve.Resolved, request: Request) -> None:
    auditor.record(
        Action.RETRIEVE,
        Outcome.SUCCESS,
        patient_id=found.patient_id,
        study_uids=[found.instances[0].study_uid],
        detail=f"WADO-RS {request.url.path} ({len(found.instances)} instances)"[:1024],
    )


def _retrieve(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    found = retrieve.resolve(
        session=session, storage=context.storage, study=study, series=series, instance=instance
    )
    media.negotiate_instances(request.headers.get("accept"), found.syntaxes)
    _audit(auditor, found, request)
    boundary = new_boundary()
    return StreamingResponse(
        retrieve.instances_body(found.instances, boundary),
        media_type=content_type(media.DICOM, boundary),
    )


def _metadata(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
    base: str,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    media.negotiate_json(request.headers.get("accept"))
    found = retrieve.resolve(
        session=session, storage=context.storage, study=study, series=series, instance=instance
    )
    _audit(auditor, found, request)
    root = service_url(base)

    def body() -> Iterator[bytes]:
        yield b"["
        for index, item in enumerate(found.instances):
            if index:
                yield b","
            yield json.dumps(retrieve.metadata(item, root), separators=(",", ":")).encode()
        yield b"]"

    return StreamingResponse(body(), media_type=media.DICOM_JSON)


@router.get("/studies/{study}", dependencies=[RETRIEVE], openapi_extra=_MULTIPART_DICOM)
def retrieve_study(
    request: Request,
    study: StudyUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """Retrieve every instance of a study, as stored (PS3.18 10.4.1, ``RetrieveStudy``)."""
    return _retrieve(request, context, session, auditor, study)


@router.get(
    "/studies/{study}/series/{series}", dependencies=[RETRIEVE], openapi_extra=_MULTIPART_DICOM
)
def retrieve_series(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """Retrieve every instance of a series (``RetrieveSeries``)."""
    return _retrieve(request, context, session, auditor, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}",
    dependencies=[RETRIEVE],
    openapi_extra=_MULTIPART_DICOM,
)
def retrieve_instance(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """Retrieve one instance (``RetrieveInstance``)."""
    return _retrieve(request, context, session, auditor, study, series, instance)


@router.get("/studies/{study}/metadata", dependencies=[RETRIEVE], openapi_extra=_JSON)
def study_metadata(
    request: Request,
    study: StudyUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
    base: BaseUrlDep,
) -> Response:
    """Metadata of every instance of a study, bulk data by URI (``RetrieveStudyMetadata``)."""
    return _metadata(request, context, session, auditor, base, study)


@router.get(
    "/studies/{study}/series/{series}/metadata", dependencies=[RETRIEVE], openapi_extra=_JSON
)
def series_metadata(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
    base: BaseUrlDep,
) -> Response:
    """Metadata of every instance of a series (``RetrieveSeriesMetadata``)."""
    return _metadata(request, context, session, auditor, base, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    dependencies=[RETRIEVE],
    openapi_extra=_JSON,
)
def instance_metadata(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
    base: BaseUrlDep,
) -> Response:
    """Metadata of one instance (``RetrieveInstanceMetadata``)."""
    return _metadata(request, context, session, auditor, base, study, series, instance)


def _octets(parts: Iterator[bytes], part_type: media.PartType) -> StreamingResponse:
    boundary = new_boundary()

    def body() -> Iterator[bytes]:
        for part in parts:
            yield part_head(boundary, part_type.header())
            yield part
            yield CRLF
        yield closing(boundary)

    return StreamingResponse(body(), media_type=content_type(part_type.media_type, boundary))


def _one(
    context: ContextDep, session: SessionDep, study: str, series: str, instance: str
) -> retrieve.Resolved:
    return retrieve.resolve(
        session=session, storage=context.storage, study=study, series=series, instance=instance
    )


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    dependencies=[RETRIEVE],
    openapi_extra=_MULTIPART_OCTETS,
)
def retrieve_frames(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    frames: FrameList,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """Frames of an instance, as stored bitstreams or native bytes (``RetrieveFrames``)."""
    numbers = retrieve.parse_frame_list(frames)
    found = _one(context, session, study, series, instance)
    stored = found.instances[0]
    part_type = media.negotiate_pixels(request.headers.get("accept"), stored.transfer_syntax_uid)
    parts = retrieve.read_frames(stored, numbers)
    _audit(auditor, found, request)
    return _octets(parts, part_type)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}",
    dependencies=[RETRIEVE],
    openapi_extra=_MULTIPART_OCTETS,
)
def retrieve_bulkdata(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    path: str,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """A bulk data value named in metadata (PS3.18 10.4.1.1.5, ``RetrieveBulkdata``).

    Pixel Data is answered with all its frames, one part each, as ``frames`` would.
    """
    steps = retrieve.parse_bulk_path(path)
    found = _one(context, session, study, series, instance)
    stored = found.instances[0]
    if steps == [retrieve.PIXEL_DATA]:
        part_type = media.negotiate_pixels(
            request.headers.get("accept"), stored.transfer_syntax_uid
        )
        parts = retrieve.read_frames(stored, retrieve.all_frames(stored))
    else:
        part_type = media.negotiate_pixels(
            request.headers.get("accept"), media.EXPLICIT_VR_LITTLE_ENDIAN
        )
        parts = iter([retrieve.read_bulk(stored, steps)])
    _audit(auditor, found, request)
    return _octets(parts, part_type)


def _rendered(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
    ids: tuple[str, str, str],
    frame: int | None,
    *,
    thumbnail: bool,
) -> Response:
    params = request.query_params
    options = render.RenderOptions(
        media_type=media.negotiate_rendered(request.headers.get("accept"), params.get("accept")),
        window=render.parse_window(params.get("window")),
        viewport=render.parse_viewport(params.get("viewport")),
        quality=render.parse_quality(params.get("quality")),
    )
    found = _one(context, session, *ids)
    image = render.render(found.instances[0].path, frame, options, thumbnail=thumbnail)
    _audit(auditor, found, request)
    return Response(image, media_type=options.media_type)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    dependencies=[RETRIEVE],
    openapi_extra=_IMAGE,
)
def instance_rendered(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """An instance rendered as JPEG or PNG; its first frame if it has several (10.4.1.1.4)."""
    ids = (study, series, instance)
    return _rendered(request, context, session, auditor, ids, None, thumbnail=False)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
    dependencies=[RETRIEVE],
    openapi_extra=_IMAGE,
)
def frame_rendered(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    frame: FrameNumber,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """One frame rendered as JPEG or PNG."""
    ids = (study, series, instance)
    return _rendered(request, context, session, auditor, ids, frame, thumbnail=False)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
    dependencies=[RETRIEVE],
    openapi_extra=_IMAGE,
)
def instance_thumbnail(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """A small rendering of an instance (PS3.18 10.4.1.1.5 thumbnail), 128 pixels by default."""
    ids = (study, series, instance)
    return _rendered(request, context, session, auditor, ids, None, thumbnail=True)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/thumbnail",
    dependencies=[RETRIEVE],
    openapi_extra=_IMAGE,
)
def frame_thumbnail(
    request: Request,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    frame: FrameNumber,
    context: ContextDep,
    session: SessionDep,
    auditor: AuditorDep,
) -> Response:
    """A small rendering of one frame."""
    ids = (study, series, instance)
    return _rendered(request, context, session, auditor, ids, frame, thumbnail=True)
