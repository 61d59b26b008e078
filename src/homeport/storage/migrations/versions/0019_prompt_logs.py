"""Prompt logs (for projects that opt in) in the database, where retention, erasure, export and
encryption at rest reach them; they used to go to the process log.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt_logs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.BigInteger(), nullable=False, index=True),
        sa.Column("project_id", sa.String(40), nullable=True, index=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("end_user", sa.String(512), nullable=True, index=True),
        sa.Column("body", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prompt_logs")
