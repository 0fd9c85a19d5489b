"""Account operations for the command line (``pacs-ai users ...``) and for tests.

Each opens its own transaction on the process's database; the CLI only parses and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pacs_ai.archive.db import Database
from pacs_ai.config import Settings
from pacs_ai.security import users
from pacs_ai.security.roles import Role
from pacs_ai.security.tokens import TokenKind


@dataclass(frozen=True)
class UserSummary:
    """A user as ``pacs-ai users list`` shows it."""

    username: str
    role: str
    has_password: bool
    disabled: bool
    created_at: datetime


def add_user(
    *,
    database: Database,
    settings: Settings,
    username: str,
    role: Role,
    password: str | None = None,
) -> str:
    """Create a user and return a first API token for it (UserError if the name is taken)."""
    with database.write_sessions.begin() as session:
        user = users.create(session=session, username=username, role=role, password=password)
        token, _row = users.issue_token(
            session=session,
            user=user,
            kind=TokenKind.API,
            ttl=timedelta(hours=settings.token_ttl_hours),
            pepper=settings.token_pepper.get_secret_value(),
        )
    return token


def issue_api_token(
    *, database: Database, settings: Settings, username: str, ttl: timedelta | None = None
) -> str:
    """Another API token for an existing user (``token_ttl_hours`` unless ``ttl`` is given)."""
    with database.write_sessions.begin() as session:
        user = users.get_by_username_or_raise(session=session, username=username)
        token, _row = users.issue_token(
            session=session,
            user=user,
            kind=TokenKind.API,
            ttl=ttl or timedelta(hours=settings.token_ttl_hours),
            pepper=settings.token_pepper.get_secret_value(),
        )
    return token


def list_users(*, database: Database) -> list[UserSummary]:
    """Every user, by name."""
    with database.sessions() as session:
        return [
            UserSummary(
                username=u.username,
                role=u.role,
                has_password=bool(u.password_hash),
                disabled=u.disabled,
                created_at=u.created_at,
            )
            for u in users.list_all(session=session)
        ]
