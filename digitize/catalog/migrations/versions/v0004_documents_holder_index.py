"""Index ``documents.holder_id``: the reuse API lists a holder's documents by it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Without it ``GET /holders/{holder_id}/documents`` scans the whole documents table. A plain B-tree index,
created the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_documents_holder_id", "documents", ["holder_id"])


def downgrade() -> None:
    op.drop_index("ix_documents_holder_id", table_name="documents")
