"""ORM tables of the security part: users, their tokens, and the audit trail.

Tokens are kept as keyed digests only (:mod:`pacs_ai.security.tokens`), so a copy of the
database does not give access. Audit rows are append-only: nothing in pacs-ai updates or
deletes them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pacs_ai.archive.db import Base
from pacs_ai.archive.schema import utcnow


class User(Base):
    """A person or a machine with one role; ``password_hash`` is empty for token-only users."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """A bearer token: ``api`` for machines (long-lived), ``session`` from a web login."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship(back_populates="tokens")


class AuditEvent(Base):
    """One access: who, when, from where, what, and how it ended (IHE ATNA's questions)."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    protocol: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(16), index=True)
    outcome: Mapped[str] = mapped_column(String(8))
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_uids: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(String(1024), default="")
