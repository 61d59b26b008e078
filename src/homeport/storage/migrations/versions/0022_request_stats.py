"""The dashboard's tables: each usage record's request id (the logs page links a request to its
prompt log); the hourly rollups summed per day; and every request counted per day, project, model
and latency bucket with its errors (error rate and latency percentiles without scanning raw
records). Both new tables are filled from what is already stored.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "input_micro_usd", "output_micro_usd",
         "flagged")  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("request_id", sa.String(200), nullable=True))
    op.create_index("ix_usage_records_project_id", "usage_records", ["project_id", "id"])  # a project's latest
    op.create_index("ix_prompt_logs_request_id", "prompt_logs", ["request_id"])
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("day", "kind", "project_id", "key_id", "model", name="pk_usage_daily"),
    )
    op.create_table(
        "request_stats_daily",
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("latency_bucket", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "project_id", "model", "latency_bucket", name="pk_request_stats_daily"),
    )
    sums = ", ".join(f"SUM({name})" for name in _SUMS)
    op.execute(
        f"INSERT INTO usage_daily (day, kind, project_id, key_id, model, {', '.join(_SUMS)}) "
        f"SELECT hour - hour % 86400, kind, project_id, key_id, model, {sums} FROM usage_hourly "
        "GROUP BY hour - hour % 86400, kind, project_id, key_id, model"
    )
    _count_retained_records()


def _count_retained_records() -> None:
    """Request stats from the raw records still kept (services/platform/usage.py: latency_bucket)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT ts - ts % 86400, COALESCE(project_id, ''), model, latency_ms, COUNT(*), "
        "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) FROM usage_records "
        "GROUP BY ts - ts % 86400, COALESCE(project_id, ''), model, latency_ms"
    ))  # fmt: skip
    counted: dict[tuple[int, str, str, int], list[int]] = {}
    for day, project, model, latency_ms, n, errors in rows:
        bucket = math.ceil(4 * math.log2(max(int(latency_ms), 1)))
        found = counted.setdefault((int(day), project, model, bucket), [0, 0])
        found[0] += int(n)
        found[1] += int(errors or 0)
    table = sa.table("request_stats_daily", *(sa.column(c) for c in ("day", "project_id", "model", "latency_bucket",
                                                                      "requests", "errors")))  # fmt: skip
    if counted:
        op.bulk_insert(table, [{"day": g[0], "project_id": g[1], "model": g[2], "latency_bucket": g[3],
                                "requests": n, "errors": e} for g, (n, e) in counted.items()])  # fmt: skip


def downgrade() -> None:
    op.drop_table("request_stats_daily")
    op.drop_table("usage_daily")
    op.drop_index("ix_prompt_logs_request_id", table_name="prompt_logs")
    op.drop_index("ix_usage_records_project_id", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("request_id")
