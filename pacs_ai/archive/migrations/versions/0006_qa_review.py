"""QA reviews of AI findings (append-only history); indexes for QA and model operations

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 23:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "finding_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.String(length=2048), nullable=False),
        sa.Column("corrected_location", sa.String(length=64), nullable=False),
        sa.Column("corrected_volume_ml", sa.Float(), nullable=True),
        sa.Column("corrected_severity", sa.String(length=16), nullable=False),
        sa.Column("supersedes", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('accept', 'reject', 'correct')", name="ck_finding_review_decision"
        ),
        sa.ForeignKeyConstraint(["finding_id"], ["finding.id"]),
        sa.ForeignKeyConstraint(["supersedes"], ["finding_review.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("finding_review", schema=None) as batch_op:
        batch_op.create_index("ix_finding_review_finding", ["finding_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_finding_review_study_instance_uid"),
            ["study_instance_uid"],
            unique=False,
        )
    with op.batch_alter_table("pipeline_job", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_model_state", ["model_name", "model_version", "state"], unique=False
        )
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.create_index("ix_finding_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_finding_study_status", ["study_instance_uid", "status"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.drop_index("ix_finding_study_status")
        batch_op.drop_index("ix_finding_created_at")
    with op.batch_alter_table("pipeline_job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_model_state")
    with op.batch_alter_table("finding_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_review_study_instance_uid"))
        batch_op.drop_index("ix_finding_review_finding")
    op.drop_table("finding_review")
