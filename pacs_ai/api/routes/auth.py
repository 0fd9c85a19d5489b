"""Login for the web UI, logout, and who am I (``/api/auth``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from pacs_ai.api.deps import AuditorDep, ContextDep, CurrentUser, SettingsDep, allow, public
from pacs_ai.api.errors import ApiError
from pacs_ai.security import users
from pacs_ai.security.audit import Action, Outcome
from pacs_ai.security.roles import ALL_ROLES
from pacs_ai.security.tokens import TokenKind

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginCreate(BaseModel):
    """Credentials of a web login."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginPublic(BaseModel):
    """A session token (RFC 6750 bearer) and when it expires."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    role: str


class UserPublic(BaseModel):
    """A user as others may see it."""

    username: str
    role: str


@router.post("/login", dependencies=[public()], response_model=LoginPublic)
def login(
    credentials: LoginCreate, context: ContextDep, settings: SettingsDep, auditor: AuditorDep
) -> LoginPublic:
    """Exchange a user name and password for a session token (``session_ttl_hours``)."""
    with context.database.write_sessions.begin() as session:
        user = users.authenticate(
            session=session, username=credentials.username, password=credentials.password
        )
        if user is None:
            found = None
        else:
            token, row = users.issue_token(
                session=session,
                user=user,
                kind=TokenKind.SESSION,
                ttl=timedelta(hours=settings.session_ttl_hours),
                pepper=settings.token_pepper.get_secret_value(),
            )
            found = LoginPublic(
                access_token=token,
                expires_at=row.expires_at,
                username=user.username,
                role=user.role,
            )
    if found is None:
        auditor.record(
            Action.FAILED_LOGIN,
            Outcome.FAILURE,
            detail=f"password login as {credentials.username!r}",
        )
        raise ApiError(401, "wrong user name or password", {"WWW-Authenticate": "Bearer"})
    auditor.record(Action.LOGIN, Outcome.SUCCESS, detail=f"{found.username} logged in")
    return found


@router.post("/logout", dependencies=[allow(ALL_ROLES, Action.LOGOUT)], status_code=204)
def logout(
    principal: CurrentUser, context: ContextDep, settings: SettingsDep, auditor: AuditorDep
) -> Response:
    """Revoke the token this request carries."""
    with context.database.write_sessions.begin() as session:
        users.revoke_token(
            session=session, token=principal.token, pepper=settings.token_pepper.get_secret_value()
        )
    auditor.record(Action.LOGOUT, Outcome.SUCCESS)
    return Response(status_code=204)


@router.get("/me", dependencies=[allow(ALL_ROLES, Action.QUERY)], response_model=UserPublic)
def me(principal: CurrentUser, request: Request) -> UserPublic:
    """The caller's user name and role (the web UI shows what the role allows)."""
    return UserPublic(username=principal.username, role=principal.role.value)
