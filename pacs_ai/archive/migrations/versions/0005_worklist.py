"""reading worklist: reading state per study, readers' agreement with AI findings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "worklist_entry",
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("patient_setting", sa.String(length=16), nullable=False),
        sa.Column("setting_checked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('unread', 'in_progress', 'read')", name="ck_worklist_entry_status"
        ),
        sa.CheckConstraint(
            "(status = 'unread') = (reader IS NULL)", name="ck_worklist_entry_reader"
        ),
        sa.ForeignKeyConstraint(["study_pk"], ["study.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("study_pk"),
    )
    with op.batch_alter_table("worklist_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worklist_entry_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_worklist_entry_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "finding_agreement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("agrees", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["finding.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("finding_id", "reader", name="uq_finding_agreement"),
    )
    with op.batch_alter_table("finding_agreement", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_finding_agreement_finding_id"), ["finding_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_finding_agreement_study_instance_uid"),
            ["study_instance_uid"],
            unique=False,
        )

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index("ix_worklist_study_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index("ix_worklist_study_created_at")

    with op.batch_alter_table("finding_agreement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_agreement_study_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_finding_agreement_finding_id"))
    op.drop_table("finding_agreement")

    with op.batch_alter_table("worklist_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worklist_entry_updated_at"))
        batch_op.drop_index(batch_op.f("ix_worklist_entry_status"))
    op.drop_table("worklist_entry")
