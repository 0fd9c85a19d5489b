"""User services: accounts, passwords (argon2id) and the tokens they hold.

Keyword-only functions taking the session, as every service of pacs-ai; the caller owns the
transaction. Passwords are hashed with argon2id (RFC 9106) through argon2-cffi's defaults,
which follow its recommendations; a wrong user name costs the same time as a wrong password,
so that login timing does not tell which accounts exist.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.archive.schema import utcnow
from pacs_ai.security.roles import Role
from pacs_ai.security.schema import ApiToken, User
from pacs_ai.security.tokens import TokenKind, new_token, token_digest

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("pacs-ai: no such user")


class UserError(ValueError):
    """A user operation that cannot be done; the message is for the operator."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted, with its parameters encoded in it)."""
    return _hasher.hash(password)


def get_by_username(*, session: Session, username: str) -> User | None:
    """The user with this name, or None."""
    return session.execute(select(User).where(User.username == username)).scalar_one_or_none()


def get_by_username_or_raise(*, session: Session, username: str) -> User:
    """The user with this name; UserError when there is none."""
    user = get_by_username(session=session, username=username)
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def list_all(*, session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.execute(select(User).order_by(User.username)).scalars())


def create(*, session: Session, username: str, role: Role, password: str | None = None) -> User:
    """A new user; UserError for a malformed or taken name or an empty password."""
    if not USERNAME.fullmatch(username):
        raise UserError(
            f"invalid user name {username!r}: 1-64 of letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    if get_by_username(session=session, username=username) is not None:
        raise UserError(f"user {username!r} exists")
    if password is not None and not password:
        raise UserError("empty password")
    user = User(
        username=username,
        role=Role(role).value,
        password_hash=hash_password(password) if password else "",
        disabled=False,
        created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, username: str, password: str) -> User | None:
    """The user if the password is right and the account enabled, else None.

    A missing user still costs one argon2 verification (against a dummy hash).
    """
    user = get_by_username(session=session, username=username)
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash or user.disabled:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def issue_token(
    *,
    session: Session,
    user: User,
    kind: TokenKind,
    ttl: timedelta,
    pepper: str,
    now: datetime | None = None,
) -> tuple[str, ApiToken]:
    """A new token for ``user``: its clear text (shown once) and its stored row."""
    created = now or utcnow()
    token = new_token()
    row = ApiToken(
        user_pk=user.id,
        digest=token_digest(token, pepper),
        kind=kind.value,
        created_at=created,
        expires_at=created + ttl,
        revoked=False,
    )
    session.add(row)
    session.flush()
    return token, row


def resolve_token(
    *, session: Session, token: str, pepper: str, now: datetime | None = None
) -> User | None:
    """The enabled user holding this unexpired, unrevoked token, or None."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_pk)
        .where(ApiToken.digest == token_digest(token, pepper))
    ).first()
    if row is None:
        return None
    stored, user = row
    expires = stored.expires_at
    if expires.tzinfo is None:  # SQLite returns naive datetimes; the index stores UTC
        expires = expires.replace(tzinfo=(now or utcnow()).tzinfo)
    if stored.revoked or user.disabled or expires <= (now or utcnow()):
        return None
    return user


def revoke_token(*, session: Session, token: str, pepper: str) -> bool:
    """Revoke a token (logout); False when it is not known."""
    stored = session.execute(
        select(ApiToken).where(ApiToken.digest == token_digest(token, pepper))
    ).scalar_one_or_none()
    if stored is None:
        return False
    stored.revoked = True
    return True
