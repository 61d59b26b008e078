"""The audit log (append-only: triggers refuse UPDATE and DELETE on either database), and a
project's retention of its data in days (null: kept).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_SQLITE = """
CREATE TRIGGER audit_logs_no_{op} BEFORE {OP} ON audit_logs
BEGIN SELECT RAISE(ABORT, 'audit log entries are append-only'); END
"""
_POSTGRES_FUNCTION = """
CREATE FUNCTION audit_logs_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit log entries are append-only'; END $$ LANGUAGE plpgsql
"""
_POSTGRES_TRIGGER = """
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()
"""


def upgrade() -> None:
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False, index=True),
        sa.Column("effective_at", sa.BigInteger(), nullable=False, index=True),
        sa.Column("project_id", sa.String(40), nullable=True, index=True),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        op.execute(_POSTGRES_TRIGGER)
    else:
        for name in ("update", "delete"):
            op.execute(_SQLITE.format(op=name, OP=name.upper()))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("retention_days")
    op.drop_table("audit_logs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_logs_append_only()")
