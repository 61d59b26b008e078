"""One table of rate limits (per key or project, per model, per minute and per day); admin keys;
archived projects; per-project prompt logging.

The keys' and projects' rpm/tpm columns move into `rate_limits` as limits on every model (`*`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import secrets
import string

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _id() -> str:
    return "rl_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def upgrade() -> None:
    limits = op.create_table(
        "rate_limits",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("max_requests_per_1_minute", sa.Integer(), nullable=True),
        sa.Column("max_tokens_per_1_minute", sa.Integer(), nullable=True),
        sa.Column("max_requests_per_1_day", sa.Integer(), nullable=True),
        sa.Column("max_tokens_per_1_day", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("owner_id", "model", name="uq_rate_limits_owner_model"),
    )
    bind = op.get_bind()
    rows = []
    for table in ("api_keys", "projects"):
        for owner, rpm, tpm in bind.execute(sa.text(f"SELECT id, rpm, tpm FROM {table}")):  # noqa: S608
            if rpm is not None or tpm is not None:
                rows.append({"id": _id(), "owner_id": owner, "model": "*",
                             "max_requests_per_1_minute": rpm, "max_tokens_per_1_minute": tpm})  # fmt: skip
    if rows:
        op.bulk_insert(limits, rows)
    for table in ("api_keys", "projects"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tpm")
            batch.drop_column("rpm")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("last_used_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("archived_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("log_prompts", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("log_prompts")
        batch.drop_column("archived_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("admin")
    for table in ("api_keys", "projects"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
    op.drop_table("rate_limits")
