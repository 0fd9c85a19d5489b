"""STOW-RS routes (PS3.18 10.5): thin handlers over :mod:`pacs_ai.dicomweb.store`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from pacs_ai.api.deps import AuditorDep, BaseUrlDep, ContextDep, allow
from pacs_ai.api.errors import ApiError
from pacs_ai.dicomweb import media, store
from pacs_ai.dicomweb.multipart import MultipartError, request_boundary, split_parts, spool
from pacs_ai.dicomweb.retrieve import check_uids
from pacs_ai.dicomweb.routes.common import StudyUID, dicom_json, service_url
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import STORE_ROLES

router = APIRouter(tags=["STOW-RS"])
STORE = allow(STORE_ROLES, Action.STORE)

_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            'multipart/related; type="application/dicom"': {
                "schema": {"type": "string", "format": "binary"}
            }
        },
    },
    "responses": {
        "200": {"description": "all stored", "content": {"application/dicom+json": {}}},
        "202": {"description": "some refused", "content": {"application/dicom+json": {}}},
        "409": {"description": "none stored", "content": {"application/dicom+json": {}}},
    },
}


async def _store(
    request: Request,
    context: ContextDep,
    auditor: AuditorDep,
    base: str,
    study: str | None,
) -> Response:
    if study is not None:
        check_uids(study)
    boundary = request_boundary(request.headers.get("content-type"), media.DICOM)
    settings = context.settings
    body = await spool(
        request.stream(),
        limit=settings.max_request_bytes,
        declared_length=request.headers.get("content-length"),
        folder=settings.data_dir / "incoming",
    )
    try:
        try:
            parts = await run_in_threadpool(split_parts, body.view, boundary)
        except MultipartError as exc:
            raise ApiError(400, f"malformed multipart body: {exc}") from exc
        if not parts:
            raise ApiError(400, "the request has no parts")
        outcome = await run_in_threadpool(
            lambda: store.store_parts(
                ingestor=context.bulk_ingest, body=body.view, parts=parts, study_uid=study
            )
        )
    finally:
        body.close()
    metrics = request.app.state.metrics
    metrics.stow_instances.inc(len(outcome.stored))
    metrics.stow_bytes.inc(sum(r.size_bytes for r in outcome.stored))
    auditor.record(
        Action.STORE,
        Outcome.SUCCESS if not outcome.failed else Outcome.FAILURE,
        patient_id=next(iter(outcome.patient_ids), ""),
        study_uids=outcome.study_uids,
        detail=f"STOW-RS: {len(outcome.stored)} stored, {len(outcome.failed)} refused"
        + "".join(f"; {f.comment}" for f in outcome.failed[:5]),
    )
    answer = store.response_dataset(outcome, service_url(base), study)
    return dicom_json(answer.to_json_dict(), status_code=outcome.status_code)


@router.post("/studies", dependencies=[STORE], openapi_extra=_DOC)
async def store_instances(
    request: Request, context: ContextDep, auditor: AuditorDep, base: BaseUrlDep
) -> Response:
    """Store instances of any study (PS3.18 10.5.1, ``StoreInstances``)."""
    return await _store(request, context, auditor, base, None)


@router.post("/studies/{study}", dependencies=[STORE], openapi_extra=_DOC)
async def store_study_instances(
    request: Request, study: StudyUID, context: ContextDep, auditor: AuditorDep, base: BaseUrlDep
) -> Response:
    """Store instances of one study; instances of another study are refused (0xA900)."""
    return await _store(request, context, auditor, base, study)
