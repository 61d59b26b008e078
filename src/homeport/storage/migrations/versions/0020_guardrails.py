"""Moderation guardrails: a project's opt-in (which side is moderated, and what a flag does), and
the flagged requests counted in usage.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("moderate", sa.String(16), nullable=True))
        batch.add_column(sa.Column("moderation_action", sa.String(8), nullable=True))
    for table in ("usage_records", "usage_hourly"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("flagged", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("usage_hourly", "usage_records"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("flagged")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("moderation_action")
        batch.drop_column("moderate")
