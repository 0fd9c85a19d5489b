"""ORM tables of the model registry: registered bundle versions and their state history.

A version row pins a bundle folder to the SHA-256 of its weights at registration, so that
every later load can prove it runs the weights whose metrics were reviewed. Its state decides
what the pipeline does with it:

``active``
    Runs on matching studies; its findings reach the worklist. At most one version per model
    name, enforced by a partial unique index (both SQLite and PostgreSQL support them), so two
    concurrent activations cannot both succeed.
``shadow``
    Runs on matching studies and its results are stored for comparison, without effect on
    the worklist: how a new version is tried on live traffic before it is activated.
``inactive``
    Registered, not run.

Every change of state is a row of ``model_state_change``: who, when, from what, to what, why.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pacs_ai.archive.db import Base
from pacs_ai.archive.schema import utcnow


class ModelState(StrEnum):
    """What the pipeline does with a registered version."""

    ACTIVE = "active"
    SHADOW = "shadow"
    INACTIVE = "inactive"


_STATES = ", ".join(f"'{state.value}'" for state in ModelState)
_ONLY_ACTIVE = text(f"state = '{ModelState.ACTIVE.value}'")


class ModelVersion(Base):
    """One registered version of a model: a bundle folder and the digest of its weights."""

    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_version"),
        CheckConstraint(f"state IN ({_STATES})", name="ck_model_version_state"),
        Index(
            "uq_model_version_one_active",
            "name",
            unique=True,
            sqlite_where=_ONLY_ACTIVE,
            postgresql_where=_ONLY_ACTIVE,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    weights_file: Mapped[str] = mapped_column(String(255))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    bundle_metadata: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=ModelState.INACTIVE.value, index=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    registered_by: Mapped[str] = mapped_column(String(64), default="")
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state_changed_by: Mapped[str] = mapped_column(String(64), default="")
    state_reason: Mapped[str] = mapped_column(String(1024), default="")

    changes: Mapped[list[ModelStateChange]] = relationship(
        back_populates="model_version", order_by="ModelStateChange.id"
    )


class ModelStateChange(Base):
    """One change of state of a version (registration included): append-only history."""

    __tablename__ = "model_state_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_pk: Mapped[int] = mapped_column(ForeignKey("model_version.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    from_state: Mapped[str] = mapped_column(String(16), default="")
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(1024), default="")

    model_version: Mapped[ModelVersion] = relationship(back_populates="changes")
