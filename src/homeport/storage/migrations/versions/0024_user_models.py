"""Models users add live in the database (they were in data_dir/models.yaml, one replica's disk),
so every replica serves them.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_models",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_models")
