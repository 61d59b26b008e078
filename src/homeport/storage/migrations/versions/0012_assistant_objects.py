"""Assistants, threads, messages, runs and run steps: one table of JSON documents.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assistant_objects",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),  # assistant | thread | message | run | step
        sa.Column("project_id", sa.String(40), nullable=True),
        sa.Column("thread_id", sa.String(40), nullable=True),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_assistant_objects_kind_project", "assistant_objects", ["kind", "project_id"])
    op.create_index("ix_assistant_objects_thread", "assistant_objects", ["thread_id", "kind"])
    op.create_index("ix_assistant_objects_status", "assistant_objects", ["kind", "status"])


def downgrade() -> None:
    op.drop_table("assistant_objects")
