"""Usage records carry their cost; hourly rollups keep reports fast at millions of rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_GROUP = ["hour", "kind", "project_id", "key_id", "model"]


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("input_micro_usd", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("output_micro_usd", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "usage_hourly",
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),  # '' for none: part of the key
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("input_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("output_micro_usd", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_GROUP, name="pk_usage_hourly"),
    )
    # Existing successful records seed the rollups.
    op.execute(
        "INSERT INTO usage_hourly (hour, kind, project_id, key_id, model, requests, prompt_tokens, "
        "completion_tokens, cached_tokens, input_micro_usd, output_micro_usd) "
        "SELECT ts - ts % 3600, kind, COALESCE(project_id, ''), COALESCE(key_id, ''), model, COUNT(*), "
        "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), 0, 0 FROM usage_records "
        "WHERE status < 400 GROUP BY ts - ts % 3600, kind, COALESCE(project_id, ''), COALESCE(key_id, ''), model"
    )
    op.create_index("ix_usage_records_ts", "usage_records", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_ts", table_name="usage_records")
    op.drop_table("usage_hourly")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("output_micro_usd")
        batch.drop_column("input_micro_usd")
