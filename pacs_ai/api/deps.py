"""Shared dependencies of the HTTP routes, as ``Annotated`` aliases.

Access control is declared next to each route: ``dependencies=[allow(ALL_ROLES,
Action.QUERY)]`` or ``dependencies=[public()]``. :func:`policy_of` finds that declaration, and
:func:`pacs_ai.api.app.create_app` refuses to build an app with a route that has none, so a
new route cannot be added open by accident.

Authentication is by bearer token (RFC 6750): ``401`` with ``WWW-Authenticate: Bearer`` when
the token is missing, unknown, expired or revoked, ``403`` when its user's role is not among
the route's. Bad tokens and refusals are recorded in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute

from pacs_ai.api.errors import ApiError
from pacs_ai.api.forwarded import client_address, public_base_url
from pacs_ai.config import Settings
from pacs_ai.dimse.context import DimseContext
from pacs_ai.security import users
from pacs_ai.security.audit import Action, AuditEntry, Outcome, Protocol
from pacs_ai.security.roles import Role

BEARER = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    username: str
    role: Role
    token: str


def get_context(request: Request) -> DimseContext:
    """The process's shared services, set on the app by ``create_app``."""
    context: DimseContext = request.app.state.context
    return context


ContextDep = Annotated[DimseContext, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    """The settings of this server."""
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """A read session for the request; writes open their own transaction."""
    with context.database.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Policy:
    """Who may call a route: the roles admitted, or nobody needed (public).

    Parameters
    ----------
    roles
        Roles admitted; None for a public route.
    action
        What the route does, for the audit entry of a refused call.
    public_setting
        Name of a boolean setting that, when true, makes the route public (``/metrics``).
    """

    def __init__(
        self,
        roles: Iterable[Role] | None,
        action: Action | None = None,
        public_setting: str | None = None,
    ) -> None:
        self.roles = frozenset(roles) if roles is not None else None
        self.action = action
        self.public_setting = public_setting

    def describe(self) -> str:
        """The policy in words, for the OpenAPI description and the route inventory."""
        if self.roles is None:
            return "public"
        names = ", ".join(sorted(r.value for r in self.roles))
        suffix = f" (public when {self.public_setting})" if self.public_setting else ""
        return f"roles: {names}{suffix}"

    def __call__(self, request: Request) -> Principal | None:
        """Authenticate and authorise the request; the principal is kept on ``request.state``."""
        context: DimseContext = request.app.state.context
        settings = context.settings
        request.state.principal = None
        if self.roles is None or (
            self.public_setting is not None and bool(getattr(settings, self.public_setting))
        ):
            return None
        token = _bearer_token(request)
        if token is None:
            raise ApiError(401, "a bearer token is required", BEARER)
        with context.database.sessions() as session:
            user = users.resolve_token(
                session=session, token=token, pepper=settings.token_pepper.get_secret_value()
            )
            found = (user.username, Role(user.role)) if user is not None else None
        source = client_address(request, settings.forwarded_allow_ips)
        if found is None:
            _record(
                context,
                AuditEntry(
                    protocol=Protocol.HTTP,
                    actor="",
                    source=source,
                    action=Action.FAILED_LOGIN,
                    outcome=Outcome.FAILURE,
                    detail=f"invalid or expired token on {request.method} {request.url.path}",
                ),
            )
            raise ApiError(401, "invalid or expired token", BEARER)
        username, role = found
        if role not in self.roles:
            _record(
                context,
                AuditEntry(
                    protocol=Protocol.HTTP,
                    actor=username,
                    role=role.value,
                    source=source,
                    action=self.action or Action.QUERY,
                    outcome=Outcome.DENIED,
                    detail=f"{request.method} {request.url.path}: role {role.value} not allowed",
                ),
            )
            raise ApiError(403, f"role {role.value} may not {request.method} {request.url.path}")
        principal = Principal(username=username, role=role, token=token)
        request.state.principal = principal
        return principal


def _record(context: DimseContext, entry: AuditEntry) -> None:
    if context.audit is not None:
        context.audit.record(entry)


def allow(roles: Iterable[Role], action: Action, *, public_setting: str | None = None) -> Any:
    """Route dependency admitting ``roles``; ``action`` names the access for the audit trail."""
    return Depends(Policy(roles, action, public_setting))


def public() -> Any:
    """Route dependency for a route anyone may call (health, login)."""
    return Depends(Policy(None))


def policy_of(route: BaseRoute) -> Policy | None:
    """The access policy a route declares, or None when it declares none."""
    for dependency in getattr(route, "dependencies", None) or []:
        if isinstance(dependency, DependsParam) and isinstance(dependency.dependency, Policy):
            return dependency.dependency
    return None


def route_policies(routes: Sequence[BaseRoute]) -> list[tuple[str, BaseRoute, Policy | None]]:
    """Every route as served (path with its router prefixes), with the policy it declares."""
    return [
        (context.path or "", context.original_route, policy_of(context.original_route))
        for context in iter_route_contexts(routes)
    ]


def undeclared_routes(routes: Sequence[BaseRoute]) -> list[str]:
    """Paths of the routes that declare no policy (must be empty)."""
    return [path for path, _route, policy in route_policies(routes) if policy is None]


def current_principal(request: Request) -> Principal:
    """The caller authenticated by the route's policy."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise ApiError(401, "a bearer token is required", BEARER)
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class Auditor:
    """Records the accesses of one request with its caller and source filled in."""

    context: DimseContext
    principal: Principal | None
    source: str

    def record(
        self,
        action: Action,
        outcome: Outcome,
        *,
        patient_id: str = "",
        study_uids: Iterable[str] = (),
        detail: str = "",
    ) -> None:
        """Queue one audit entry for this request."""
        _record(
            self.context,
            AuditEntry(
                protocol=Protocol.HTTP,
                actor=self.principal.username if self.principal else "",
                role=self.principal.role.value if self.principal else "",
                source=self.source,
                action=action,
                outcome=outcome,
                patient_id=patient_id,
                study_uids=tuple(study_uids),
                detail=detail,
            ),
        )


def get_auditor(request: Request, context: ContextDep) -> Auditor:
    """The auditor of this request."""
    return Auditor(
        context=context,
        principal=getattr(request.state, "principal", None),
        source=client_address(request, context.settings.forwarded_allow_ips),
    )


AuditorDep = Annotated[Auditor, Depends(get_auditor)]


def get_base_url(request: Request, context: ContextDep) -> str:
    """The server's URL as the client sees it (see :mod:`pacs_ai.api.forwarded`)."""
    return public_base_url(request, context.settings.forwarded_allow_ips)


BaseUrlDep = Annotated[str, Depends(get_base_url)]
