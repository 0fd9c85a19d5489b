"""FastAPI routers of DICOMweb, mounted under ``/dicom-web`` by :mod:`pacs_ai.api.app`."""

from fastapi import APIRouter

from pacs_ai.dicomweb.routes import qido, stow, wado

router = APIRouter()
router.include_router(qido.router)
router.include_router(wado.router)
router.include_router(stow.router)
