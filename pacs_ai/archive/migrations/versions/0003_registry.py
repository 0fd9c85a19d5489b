"""model registry: versions of MONAI bundles and their state history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONLY_ACTIVE = sa.text("state = 'active'")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("weights_file", sa.String(length=255), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("bundle_metadata", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_changed_by", sa.String(length=64), nullable=False),
        sa.Column("state_reason", sa.String(length=1024), nullable=False),
        sa.CheckConstraint(
            "state IN ('active', 'shadow', 'inactive')", name="ck_model_version_state"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_model_version"),
    )
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_version_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_version_state"), ["state"], unique=False)
        batch_op.create_index(
            "uq_model_version_one_active",
            ["name"],
            unique=True,
            sqlite_where=ONLY_ACTIVE,
            postgresql_where=ONLY_ACTIVE,
        )

    op.create_table(
        "model_state_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_pk", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["model_version_pk"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_state_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_state_change_model_version_pk"),
            ["model_version_pk"],
            unique=False,
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("model_state_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_state_change_model_version_pk"))

    op.drop_table("model_state_change")
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_index("uq_model_version_one_active")
        batch_op.drop_index(batch_op.f("ix_model_version_state"))
        batch_op.drop_index(batch_op.f("ix_model_version_name"))

    op.drop_table("model_version")
