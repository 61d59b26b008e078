"""Full-text search over chunks, for hybrid (keyword + vector) file search: FTS5 on SQLite, a GIN
index on to_tsvector('simple', text) on PostgreSQL.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id')")
        op.execute(
            "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
            "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
            "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
        op.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    else:
        op.execute("CREATE INDEX ix_chunks_text_fts ON chunks USING gin (to_tsvector('simple', text))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER chunks_fts_delete")
        op.execute("DROP TRIGGER chunks_fts_insert")
        op.execute("DROP TABLE chunks_fts")
    else:
        op.execute("DROP INDEX ix_chunks_text_fts")
