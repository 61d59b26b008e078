"""The dashboard's figures: each usage record's request id (the logs page links a request to its
prompt log), and hourly request counts per latency bucket with their errors (error rate and
latency percentiles without scanning raw records).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("request_id", sa.String(200), nullable=True))
    op.create_index("ix_usage_records_project_id", "usage_records", ["project_id", "id"])  # a project's latest
    op.create_index("ix_prompt_logs_request_id", "prompt_logs", ["request_id"])
    op.create_table(
        "request_stats_hourly",
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("latency_bucket", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "project_id", "model", "latency_bucket", name="pk_request_stats_hourly"),
    )


def downgrade() -> None:
    op.drop_table("request_stats_hourly")
    op.drop_index("ix_prompt_logs_request_id", table_name="prompt_logs")
    op.drop_index("ix_usage_records_project_id", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("request_id")
