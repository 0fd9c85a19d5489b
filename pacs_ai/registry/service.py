"""Registry services: keyword-only functions over a session, as every part of pacs-ai has them.

The database says which bundle versions exist and what state each is in; the bundle folder
holds the model itself. The two are tied by the SHA-256 of the weights taken at registration,
checked again whenever a version is validated, activated or loaded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pacs_ai.archive.schema import utcnow
from pacs_ai.registry.bundle import Bundle, read_bundle, verify_weights
from pacs_ai.registry.errors import BundleError, RegistryError, StateConflict
from pacs_ai.registry.runner import BundleModel
from pacs_ai.registry.schema import ModelState, ModelStateChange, ModelVersion
from pacs_ai.registry.validate import ValidationReport, validate_bundle

ACTOR_MAX = 64
REASON_MAX = 1024


def get(*, session: Session, pk: int) -> ModelVersion | None:
    """The version with primary key ``pk``, or None."""
    return session.get(ModelVersion, pk)


def get_by_name_version(*, session: Session, name: str, version: str) -> ModelVersion | None:
    """The registered ``name`` ``version``, or None."""
    return session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    ).one_or_none()


def get_by_name_version_or_raise(*, session: Session, name: str, version: str) -> ModelVersion:
    """The registered ``name`` ``version``, or :class:`RegistryError` naming what is missing."""
    found = get_by_name_version(session=session, name=name, version=version)
    if found is None:
        known = [v.version for v in list_all(session=session, name=name)]
        hint = f"; registered versions: {', '.join(known)}" if known else "; no version registered"
        raise RegistryError(f"model {name} version {version} is not registered{hint}")
    return found


def get_active(*, session: Session, name: str) -> ModelVersion | None:
    """The active version of model ``name``, or None."""
    return session.scalars(
        select(ModelVersion).where(
            ModelVersion.name == name, ModelVersion.state == ModelState.ACTIVE.value
        )
    ).one_or_none()


def list_all(*, session: Session, name: str | None = None) -> list[ModelVersion]:
    """Every registered version (of ``name`` when given), by name then registration order."""
    query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
    if name is not None:
        query = query.where(ModelVersion.name == name)
    return list(session.scalars(query))


def list_running(*, session: Session) -> list[ModelVersion]:
    """The versions the pipeline runs: active ones and shadow ones."""
    running = (ModelState.ACTIVE.value, ModelState.SHADOW.value)
    return [v for v in list_all(session=session) if v.state in running]


def _clip(value: str, limit: int) -> str:
    return value.strip()[:limit]


def _record(
    session: Session,
    model_version: ModelVersion,
    *,
    to_state: ModelState,
    actor: str,
    reason: str,
    at: datetime,
) -> None:
    session.add(
        ModelStateChange(
            model_version=model_version,
            at=at,
            from_state=model_version.state if model_version.id is not None else "",
            to_state=to_state.value,
            actor=_clip(actor, ACTOR_MAX),
            reason=_clip(reason, REASON_MAX),
        )
    )
    model_version.state = to_state.value
    model_version.state_changed_at = at
    model_version.state_changed_by = _clip(actor, ACTOR_MAX)
    model_version.state_reason = _clip(reason, REASON_MAX)


def create(
    *, session: Session, bundle: Bundle, weights_sha256: str, actor: str, reason: str = ""
) -> ModelVersion:
    """Register a read bundle as an inactive version (a first history row says who and why).

    Raises
    ------
    RegistryError
        When the name and version are already registered: a version names one set of
        weights forever, so changed weights need a new version number.
    """
    existing = get_by_name_version(session=session, name=bundle.name, version=bundle.version)
    if existing is not None:
        same = existing.weights_sha256 == weights_sha256
        raise RegistryError(
            f"model {bundle.name} version {bundle.version} is already registered"
            + (" (same weights)" if same else " with other weights: bump the bundle's version")
        )
    now = utcnow()
    model_version = ModelVersion(
        name=bundle.name,
        version=bundle.version,
        path=str(bundle.path),
        weights_file=str(bundle.weights_file.relative_to(bundle.path)),
        weights_sha256=weights_sha256,
        bundle_metadata=bundle.describe(),
        state=ModelState.INACTIVE.value,
        registered_at=now,
        registered_by=_clip(actor, ACTOR_MAX),
    )
    session.add(model_version)
    _record(
        session, model_version, to_state=ModelState.INACTIVE, actor=actor, reason=reason, at=now
    )
    try:
        session.flush()
    except IntegrityError as exc:
        raise RegistryError(
            f"model {bundle.name} version {bundle.version} was registered concurrently"
        ) from exc
    return model_version


def read_registered_bundle(model_version: ModelVersion) -> Bundle:
    """The bundle of a registered version, its weights checked against the registered digest.

    Raises
    ------
    BundleError
        When the folder is gone or broken, names another model or version, or the weights
        changed since registration.
    """
    bundle = read_bundle(model_version.path)
    if (bundle.name, bundle.version) != (model_version.name, model_version.version):
        raise BundleError(
            f"{bundle.path} now holds {bundle.name} {bundle.version}, "
            f"not the registered {model_version.name} {model_version.version}"
        )
    verify_weights(bundle, model_version.weights_sha256)
    return bundle


def set_state(
    *,
    session: Session,
    model_version: ModelVersion,
    state: ModelState,
    actor: str,
    reason: str = "",
    replace_active: bool = True,
) -> ModelVersion:
    """Move a version to ``state``, recording who and why.

    Activating checks the weights first and replaces the version active before it (which
    becomes inactive, with a history row saying by which version): at most one version of
    a model is active, and the partial unique index turns a concurrent second activation
    into an error instead of two active versions. With ``replace_active`` false, an active
    version is not replaced but named in the refusal: the web asks before it swaps models.

    Raises
    ------
    StateConflict
        When the version is already in that state, its bundle no longer matches what was
        registered (activation), another version is active and ``replace_active`` is false,
        or another activation won a race.
    """
    if model_version.state == state.value:
        raise StateConflict(
            f"model {model_version.name} version {model_version.version} is already {state.value}"
        )
    now = utcnow()
    if state is ModelState.ACTIVE:
        try:
            read_registered_bundle(model_version)
        except BundleError as exc:
            raise StateConflict(f"cannot activate: {exc}") from exc
        previous = get_active(session=session, name=model_version.name)
        if previous is not None and not replace_active:
            raise StateConflict(
                f"version {previous.version} of {model_version.name} is active: one version "
                "per model (and so per pipeline) is active; confirm to replace it"
            )
        if previous is not None:
            _record(
                session,
                previous,
                to_state=ModelState.INACTIVE,
                actor=actor,
                reason=f"replaced by version {model_version.version}",
                at=now,
            )
            session.flush()
    _record(session, model_version, to_state=state, actor=actor, reason=reason, at=now)
    try:
        session.flush()
    except IntegrityError as exc:
        raise StateConflict(
            f"another version of {model_version.name} was activated at the same time; try again"
        ) from exc
    return model_version


def previous_active(*, session: Session, name: str) -> ModelVersion | None:
    """The version of ``name`` that was active last, other than the one active now."""
    current = get_active(session=session, name=name)
    query = (
        select(ModelVersion)
        .join(ModelStateChange, ModelStateChange.model_version_pk == ModelVersion.id)
        .where(ModelVersion.name == name, ModelStateChange.to_state == ModelState.ACTIVE.value)
        .order_by(ModelStateChange.id.desc())
        .limit(1)
    )
    if current is not None:
        query = query.where(ModelVersion.id != current.id)
    return session.scalars(query).first()


def rollback(
    *, session: Session, name: str, actor: str, reason: str
) -> tuple[ModelVersion, ModelVersion | None]:
    """Make the previously active version of ``name`` active again; returns (it, the replaced).

    Raises
    ------
    StateConflict
        When no other version of the model was ever active.
    """
    current = get_active(session=session, name=name)
    previous = previous_active(session=session, name=name)
    if previous is None:
        raise StateConflict(f"no earlier active version of {name} to roll back to")
    set_state(
        session=session,
        model_version=previous,
        state=ModelState.ACTIVE,
        actor=actor,
        reason=f"rollback: {reason}" if reason else "rollback",
    )
    return previous, current


def validate(
    *, session: Session, bundle: Bundle, runs: int = 3
) -> tuple[ValidationReport, ModelVersion | None]:
    """Validate a bundle, against its registered digest when its version is registered."""
    registered = get_by_name_version(session=session, name=bundle.name, version=bundle.version)
    expected = registered.weights_sha256 if registered is not None else None
    return validate_bundle(bundle, expected_sha256=expected, runs=runs), registered


def register(
    *, session: Session, bundle: Bundle, actor: str, reason: str = "", runs: int = 1
) -> tuple[ModelVersion, ValidationReport]:
    """Validate a bundle and register it as an inactive version: broken bundles never enter."""
    existing = get_by_name_version(session=session, name=bundle.name, version=bundle.version)
    if existing is not None:
        raise RegistryError(f"model {bundle.name} version {bundle.version} is already registered")
    report = validate_bundle(bundle, runs=runs)
    model_version = create(
        session=session,
        bundle=bundle,
        weights_sha256=report.weights_sha256,
        actor=actor,
        reason=reason,
    )
    return model_version, report


def load(*, model_version: ModelVersion, device: str = "cpu") -> BundleModel:
    """Load a registered version for inference, refusing weights changed since registration."""
    return BundleModel(read_registered_bundle(model_version), device=device)
