"""Users, passwords and tokens as services over a real (SQLite) database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.archive.db import Database
from pacs_ai.archive.schema import utcnow
from pacs_ai.config import Settings
from pacs_ai.security import users
from pacs_ai.security.roles import Role
from pacs_ai.security.schema import ApiToken
from pacs_ai.security.tokens import TOKEN_PREFIX, TokenKind, token_digest

PEPPER = "unit-test-pepper-unit-test-pepper"


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    database.upgrade()
    with database.write_sessions() as opened:
        yield opened
    database.dispose()


def test_password_login(session: Session) -> None:
    users.create(session=session, username="ann", role=Role.QA, password="pw-1")
    assert users.authenticate(session=session, username="ann", password="pw-1") is not None
    assert users.authenticate(session=session, username="ann", password="pw-2") is None
    assert users.authenticate(session=session, username="bob", password="pw-1") is None
    stored = users.get_by_username_or_raise(session=session, username="ann").password_hash
    assert stored.startswith("$argon2id$") and "pw-1" not in stored


def test_token_only_users_cannot_log_in_with_a_password(session: Session) -> None:
    users.create(session=session, username="robot", role=Role.ML_ENGINEER)
    assert users.authenticate(session=session, username="robot", password="") is None


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "-lead", "semi;colon"])
def test_invalid_names_are_refused(session: Session, name: str) -> None:
    with pytest.raises(users.UserError):
        users.create(session=session, username=name, role=Role.QA)


def test_duplicate_names_are_refused(session: Session) -> None:
    users.create(session=session, username="ann", role=Role.QA)
    with pytest.raises(users.UserError):
        users.create(session=session, username="ann", role=Role.ADMIN)


def test_tokens_are_stored_as_keyed_digests_and_expire(session: Session) -> None:
    user = users.create(session=session, username="ann", role=Role.RADIOLOGIST)
    token, row = users.issue_token(
        session=session, user=user, kind=TokenKind.API, ttl=timedelta(hours=1), pepper=PEPPER
    )
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    digests = list(session.execute(select(ApiToken.digest)).scalars())
    assert digests == [token_digest(token, PEPPER)] and token not in digests[0]
    assert users.resolve_token(session=session, token=token, pepper=PEPPER) is user
    assert users.resolve_token(session=session, token=token, pepper="other-pepper") is None
    later = utcnow() + timedelta(hours=2)
    assert users.resolve_token(session=session, token=token, pepper=PEPPER, now=later) is None
    assert row.expires_at > utcnow()


def test_disabled_users_and_revoked_tokens(session: Session) -> None:
    user = users.create(session=session, username="ann", role=Role.RADIOLOGIST)
    token, _ = users.issue_token(
        session=session, user=user, kind=TokenKind.SESSION, ttl=timedelta(hours=1), pepper=PEPPER
    )
    user.disabled = True
    assert users.resolve_token(session=session, token=token, pepper=PEPPER) is None
    user.disabled = False
    assert users.revoke_token(session=session, token=token, pepper=PEPPER)
    assert users.resolve_token(session=session, token=token, pepper=PEPPER) is None
    assert not users.revoke_token(session=session, token="pacs_unknown", pepper=PEPPER)


def test_production_refuses_the_default_pepper(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    with pytest.raises(ValueError, match="TOKEN_PEPPER"):
        Settings(environment="production", database_url=url)
    with pytest.raises(ValueError, match="TOKEN_PEPPER"):
        Settings(environment="production", database_url=url, token_pepper="short")
    ok = Settings(environment="production", database_url=url, token_pepper="p" * 40)
    assert ok.token_pepper.get_secret_value() == "p" * 40
    assert "p" * 40 not in repr(ok)


def test_list_settings_split_on_commas() -> None:
    settings = Settings(cors_allowed_origins="https://a.example, https://b.example")
    assert settings.cors_allowed_origins == ["https://a.example", "https://b.example"]
