"""Model operations for ML engineers (``/api/models``): states, history, operations, replay.

The registry's states from the web, each change with a required reason, in the registry's
history and in the audit trail (``configure`` entries). Reading the list is open to QA staff
as well, whose statistics page plots latency per version; changing it is not.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from pacs_ai.api.deps import AuditorDep, ContextDep, CurrentUser, SessionDep, allow
from pacs_ai.api.errors import ApiError
from pacs_ai.archive.schema import aware
from pacs_ai.pipeline import replay as replays
from pacs_ai.pipeline.definition import Pipeline, PipelineError, load_pipelines
from pacs_ai.pipeline.dispatcher import Dispatcher
from pacs_ai.pipeline.operations import version_operations
from pacs_ai.registry import service as registry
from pacs_ai.registry.card import render_card
from pacs_ai.registry.errors import BundleError, RegistryError, StateConflict
from pacs_ai.registry.schema import ModelState, ModelVersion
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import Role

log = logging.getLogger(__name__)
router = APIRouter(prefix="/models", tags=["models"])

OPERATORS: frozenset[Role] = frozenset({Role.ML_ENGINEER, Role.ADMIN})
"""Who deploys, compares and retires model versions."""
VIEWERS: frozenset[Role] = frozenset({Role.ML_ENGINEER, Role.QA, Role.ADMIN})
"""Who may read the registry and its operations."""
VIEW = allow(VIEWERS, Action.QUERY)
OPERATE = allow(OPERATORS, Action.CONFIGURE)
REPLAY = allow(OPERATORS, Action.QUERY)

ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
ModelVersionName = Annotated[str, Path(pattern=r"^[A-Za-z0-9.+_-]{1,64}$")]


class PercentilesPublic(BaseModel):
    """Median and 95th percentile."""

    model_config = ConfigDict(from_attributes=True)

    p50: float
    p95: float


class OperationsPublic(BaseModel):
    """What a version's jobs did."""

    model_config = ConfigDict(from_attributes=True)

    jobs: int
    done: int
    failed: int
    waiting: int
    latency_ms: PercentilesPublic | None
    time_to_result_s: PercentilesPublic | None
    placement: dict[str, int]


class VersionPublic(BaseModel):
    """A registered model version, its state, and how it has run."""

    name: str
    version: str
    state: ModelState
    pipelines: list[str]
    registered_at: datetime
    registered_by: str
    state_changed_at: datetime
    state_changed_by: str
    state_reason: str
    weights_sha256: str
    operations: OperationsPublic


class StateChangePublic(BaseModel):
    """One entry of a version's history."""

    at: datetime
    from_state: str
    to_state: str
    actor: str
    reason: str


class VersionDetailPublic(VersionPublic):
    """A version with its history, model card and bundle metadata."""

    history: list[StateChangePublic]
    model_card_html: str | None
    metadata: dict[str, Any]


class VersionListPublic(BaseModel):
    """Every registered version, by model name then registration."""

    versions: list[VersionPublic]


class StateChange(BaseModel):
    """A change of state as asked: the new state, why, and whether to replace the active one."""

    model_config = ConfigDict(extra="forbid")

    state: ModelState
    reason: str = Field(max_length=registry.REASON_MAX)
    replace_active: bool = False


class RollbackRequest(BaseModel):
    """A rollback as asked."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=registry.REASON_MAX)


class RollbackPublic(BaseModel):
    """The version active again, and the one it replaced."""

    activated: VersionPublic
    deactivated: VersionPublic | None


class ReplayRequest(BaseModel):
    """A dry run: which stored studies (DICOM matching keys) and, if several, which pipeline."""

    model_config = ConfigDict(extra="forbid")

    query: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = (
        Field(max_length=16)
    )
    pipeline: str | None = Field(default=None, max_length=64)
    limit: int | None = Field(default=None, ge=1, le=500)


class CallPublic(BaseModel):
    """A model's call on a study."""

    model_config = ConfigDict(from_attributes=True)

    present: bool
    probability: float
    finding_id: int | None = None


class StudyReplayPublic(BaseModel):
    """The replayed call beside the active version's."""

    study_uid: str
    series_uid: str | None
    replay: CallPublic | None
    active: CallPublic | None
    agrees: bool | None
    error: str | None


class ReplaySummaryPublic(BaseModel):
    """Counts over the replayed studies."""

    model_config = ConfigDict(from_attributes=True)

    ran: int
    failed: int
    both_positive: int
    both_negative: int
    replay_only: int
    active_only: int


class ReplayPublic(BaseModel):
    """What a dry run found; nothing was stored."""

    pipeline: str
    model_name: str
    model_version: str
    compared_with: str | None
    matched: int
    results: list[StudyReplayPublic]
    summary: ReplaySummaryPublic


def _pipelines(request: Request) -> list[Pipeline]:
    """The pipelines this server runs; read from their folder when the pipeline is off."""
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    if dispatcher is not None:
        return list(dispatcher.pipelines.values())
    try:
        return load_pipelines(request.app.state.context.settings.pipelines_dir)
    except (PipelineError, OSError) as exc:
        log.warning("models page: pipelines unreadable: %s", exc)
        return []


def _version(session: Session, found: ModelVersion, pipelines: list[Pipeline]) -> VersionPublic:
    operations = version_operations(session=session, name=found.name, version=found.version)
    return VersionPublic(
        name=found.name,
        version=found.version,
        state=ModelState(found.state),
        pipelines=sorted(p.name for p in pipelines if p.model_name == found.name),
        registered_at=aware(found.registered_at),
        registered_by=found.registered_by,
        state_changed_at=aware(found.state_changed_at),
        state_changed_by=found.state_changed_by,
        state_reason=found.state_reason,
        weights_sha256=found.weights_sha256,
        operations=OperationsPublic.model_validate(operations),
    )


def _registered(session: Session, name: str, version: str) -> ModelVersion:
    try:
        return registry.get_by_name_version_or_raise(session=session, name=name, version=version)
    except RegistryError as exc:
        raise ApiError(404, str(exc)) from exc


def _reason(text: str) -> str:
    if not text.strip():
        raise ApiError(422, "a reason is required: it is kept in the model's history")
    return text.strip()


@router.get("", dependencies=[VIEW], response_model=VersionListPublic)
def list_versions(request: Request, session: SessionDep, auditor: AuditorDep) -> VersionListPublic:
    """Every registered version with its state and operations."""
    pipelines = _pipelines(request)
    versions = [_version(session, v, pipelines) for v in registry.list_all(session=session)]
    auditor.record(Action.QUERY, Outcome.SUCCESS, detail="model registry")
    return VersionListPublic(versions=versions)


@router.get("/{name}/{version}", dependencies=[VIEW], response_model=VersionDetailPublic)
def get_version(
    name: ModelName,
    version: ModelVersionName,
    request: Request,
    session: SessionDep,
    auditor: AuditorDep,
) -> VersionDetailPublic:
    """A version with its history and its model card, rendered."""
    found = _registered(session, name, version)
    summary = _version(session, found, _pipelines(request))
    auditor.record(Action.QUERY, Outcome.SUCCESS, detail=f"model {name} {version}")
    return VersionDetailPublic(
        **summary.model_dump(),
        history=[
            StateChangePublic(
                at=aware(change.at),
                from_state=change.from_state,
                to_state=change.to_state,
                actor=change.actor,
                reason=change.reason,
            )
            for change in found.changes
        ],
        model_card_html=render_card(FilePath(found.path)),
        metadata=found.bundle_metadata,
    )


def _refused(auditor: AuditorDep, what: str, exc: Exception) -> ApiError:
    auditor.record(Action.CONFIGURE, Outcome.FAILURE, detail=f"{what}: {exc}")
    status = 409 if isinstance(exc, StateConflict) else 404
    return ApiError(status, str(exc))


@router.post(
    "/{name}/{version}/state",
    dependencies=[OPERATE],
    response_model=VersionPublic,
    responses={409: {"description": "Refused by the registry's rules as things stand"}},
)
def change_state(
    name: ModelName,
    version: ModelVersionName,
    body: StateChange,
    request: Request,
    principal: CurrentUser,
    context: ContextDep,
    auditor: AuditorDep,
) -> VersionPublic:
    """Activate, shadow or deactivate a version, with a reason."""
    reason = _reason(body.reason)
    what = f"model {name} {version} -> {body.state.value}"
    try:
        with context.database.write_sessions.begin() as session:
            found = registry.get_by_name_version_or_raise(
                session=session, name=name, version=version
            )
            registry.set_state(
                session=session,
                model_version=found,
                state=body.state,
                actor=principal.username,
                reason=reason,
                replace_active=body.replace_active,
            )
            changed = _version(session, found, _pipelines(request))
    except RegistryError as exc:
        raise _refused(auditor, what, exc) from exc
    auditor.record(Action.CONFIGURE, Outcome.SUCCESS, detail=f"{what}: {reason}")
    return changed


@router.post(
    "/{name}/rollback",
    dependencies=[OPERATE],
    response_model=RollbackPublic,
    responses={409: {"description": "No earlier active version"}},
)
def rollback(
    name: ModelName,
    body: RollbackRequest,
    request: Request,
    principal: CurrentUser,
    context: ContextDep,
    auditor: AuditorDep,
) -> RollbackPublic:
    """Make the version active before the current one active again."""
    reason = _reason(body.reason)
    try:
        with context.database.write_sessions.begin() as session:
            restored, replaced = registry.rollback(
                session=session, name=name, actor=principal.username, reason=reason
            )
            pipelines = _pipelines(request)
            result = RollbackPublic(
                activated=_version(session, restored, pipelines),
                deactivated=_version(session, replaced, pipelines) if replaced else None,
            )
    except RegistryError as exc:
        raise _refused(auditor, f"rollback of {name}", exc) from exc
    auditor.record(
        Action.CONFIGURE,
        Outcome.SUCCESS,
        detail=f"rollback of {name} to {result.activated.version}: {reason}",
    )
    return result


@router.post(
    "/{name}/{version}/replay",
    dependencies=[REPLAY],
    response_model=ReplayPublic,
    responses={
        422: {"description": "The query matches no stored study"},
        503: {"description": "The pipeline runtime is off"},
    },
)
def replay(
    name: ModelName,
    version: ModelVersionName,
    body: ReplayRequest,
    request: Request,
    context: ContextDep,
    auditor: AuditorDep,
) -> ReplayPublic:
    """Run a version on stored studies and compare with the active version; store nothing."""
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    if dispatcher is None:
        raise ApiError(503, "replay needs the AI pipeline: this server runs without it")
    limit = min(
        body.limit or context.settings.replay_max_studies, context.settings.replay_max_studies
    )
    try:
        found = replays.replay(
            dispatcher=dispatcher,
            model_name=name,
            model_version=version,
            keys=body.query,
            pipeline_name=body.pipeline,
            limit=limit,
        )
    except replays.NothingMatched as exc:
        auditor.record(Action.QUERY, Outcome.FAILURE, detail=f"replay of {name} {version}: {exc}")
        raise ApiError(422, str(exc)) from exc
    except replays.ReplayError as exc:
        auditor.record(Action.QUERY, Outcome.FAILURE, detail=f"replay of {name} {version}: {exc}")
        raise ApiError(400, str(exc)) from exc
    except RegistryError as exc:
        raise ApiError(404, str(exc)) from exc
    except BundleError as exc:
        raise ApiError(409, f"model {name} {version} cannot run: {exc}") from exc
    auditor.record(
        Action.QUERY,
        Outcome.SUCCESS,
        study_uids=[r.study_uid for r in found.results],
        detail=f"replay of {name} {version} on {found.matched} studies (dry run)",
    )
    return ReplayPublic(
        pipeline=found.pipeline,
        model_name=found.model_name,
        model_version=found.model_version,
        compared_with=found.compared_with,
        matched=found.matched,
        results=[
            StudyReplayPublic(
                study_uid=r.study_uid,
                series_uid=r.series_uid,
                replay=CallPublic.model_validate(r.replay) if r.replay else None,
                active=CallPublic.model_validate(r.active) if r.active else None,
                agrees=r.agrees,
                error=r.error,
            )
            for r in found.results
        ],
        summary=ReplaySummaryPublic.model_validate(found.summary),
    )
