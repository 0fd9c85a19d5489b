"""The FastAPI application: DICOMweb under ``/dicom-web``, the REST API under ``/api``.

Middleware, outermost first: CORS (so that refusals too carry the headers a browser needs to
read them, and preflight ``OPTIONS`` requests are answered before any authentication, as the
Fetch standard requires), then request metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware

from pacs_ai.api import errors
from pacs_ai.api.deps import public, route_policies, undeclared_routes
from pacs_ai.api.events import WorklistHub
from pacs_ai.api.metrics import Metrics, MetricsMiddleware
from pacs_ai.api.routes import audit, auth, models, ops, qa, schema, worklist
from pacs_ai.dicomweb.routes import router as dicomweb_router
from pacs_ai.dicomweb.routes.common import SERVICE
from pacs_ai.dimse.context import DimseContext

if TYPE_CHECKING:
    from pacs_ai.pipeline.dispatcher import Dispatcher

CORS_HEADERS = ["Authorization", "Content-Type", "Accept", "Range"]
EXPOSED_HEADERS = ["Warning", "Content-Type", "Content-Length", "Content-Location"]
#: The web UI: static pages, public like the login they start with; their data needs a token.
UI_DIR = Path(__file__).resolve().parent.parent / "ui"


def create_app(
    context: DimseContext,
    *,
    metrics: Metrics | None = None,
    dispatcher: Dispatcher | None = None,
) -> FastAPI:
    """The HTTP application over ``context``'s archive (and its AI pipeline, when it runs).

    Raises RuntimeError when a route declares no access policy (see :mod:`pacs_ai.api.deps`).
    """
    app = FastAPI(
        title="pacs-ai",
        summary="DICOMweb (PS3.18) and REST API of an AI-augmented PACS",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.context = context
    app.state.metrics = metrics or Metrics(context.database)
    app.state.worklist = WorklistHub(context)
    app.state.dispatcher = dispatcher
    errors.install(app)
    mounted: list[tuple[APIRouter, str]] = [
        (dicomweb_router, SERVICE),
        (auth.router, "/api"),
        (audit.router, "/api"),
        (schema.router, "/api"),
        (worklist.router, "/api"),
        (qa.router, "/api"),
        (models.router, "/api"),
        (ops.router, ""),
        (_ui_router(), ""),
    ]
    for router, prefix in mounted:
        _document_policies(router)
        app.include_router(router, prefix=prefix)
    missing = undeclared_routes(app.routes)
    if missing:
        raise RuntimeError(f"routes without an access policy: {', '.join(missing)}")
    templates = {id(route): path for path, route, _policy in route_policies(app.routes)}
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, templates=templates)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=context.settings.cors_allowed_origins,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=CORS_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )
    return app


def _ui_router() -> APIRouter:
    """``/ui/``: FastAPI's static frontend routes, checked after every API route."""
    ui = APIRouter(dependencies=[public()])
    ui.frontend("/ui", directory=UI_DIR, fallback=None, check_dir=True)
    return ui


def _document_policies(router: APIRouter) -> None:
    """Show each route's policy in the OpenAPI document (``x-pacs-ai-access``)."""
    for _path, route, policy in route_policies(router.routes):
        if isinstance(route, APIRoute) and policy is not None:
            extra: dict[str, Any] = dict(route.openapi_extra or {})
            extra["x-pacs-ai-access"] = policy.describe()
            route.openapi_extra = extra
