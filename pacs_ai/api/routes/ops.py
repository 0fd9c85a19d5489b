"""Operations: liveness, readiness, Prometheus metrics.

- ``/healthz`` is public: it says the process answers, nothing more.
- ``/readyz`` is public too, because orchestrators probe without credentials; it says only
  which dependency is down (database, storage), never why in detail.
- ``/metrics`` needs a token of an admin or ml_engineer, unless ``metrics_public`` is set for a
  scraper on a private network; metrics hold counts, no patient data.
"""

from __future__ import annotations

import os
import tempfile

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from pacs_ai.api.deps import ContextDep, allow, public
from pacs_ai.security.audit import Action
from pacs_ai.security.roles import METRICS_ROLES

router = APIRouter(tags=["operations"])


@router.get("/healthz", dependencies=[public()])
def healthz() -> dict[str, str]:
    """Liveness: the process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[public()])
def readyz(context: ContextDep) -> JSONResponse:
    """Readiness: the database answers and the object store takes a file."""
    checks: dict[str, str] = {}
    try:
        with context.database.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # any failure means not ready; the log of the failing part says why
        checks["database"] = "unavailable"
    try:
        with tempfile.NamedTemporaryFile(dir=context.storage.root, prefix=".ready-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
        checks["storage"] = "ok"
    except OSError:
        checks["storage"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    dependencies=[allow(METRICS_ROLES, Action.QUERY, public_setting="metrics_public")],
    response_class=Response,
)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of this server's metrics."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
