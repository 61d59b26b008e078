"""Background jobs move to saq: the SQLite queue's table (on PostgreSQL saq makes its own), and
runs lose their hand-kept lease (saq's heartbeats and sweeper replace it).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_table(
            "job_queue",
            sa.Column("key", sa.Text(), primary_key=True),
            sa.Column("queue", sa.Text(), nullable=False),
            sa.Column("status", sa.Text(), nullable=False),
            sa.Column("scheduled", sa.BigInteger(), nullable=False),
            sa.Column("expire_at", sa.BigInteger(), nullable=True),
            sa.Column("job", sa.Text(), nullable=False),
        )
        op.create_index("ix_job_queue_due", "job_queue", ["queue", "status", "scheduled"])
    with op.batch_alter_table("assistant_objects") as batch:
        batch.drop_column("lease_until")


def downgrade() -> None:
    with op.batch_alter_table("assistant_objects") as batch:
        batch.add_column(sa.Column("lease_until", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_job_queue_due", "job_queue")
        op.drop_table("job_queue")
