"""The pixels of each original file, read from its headers at registration.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

``document_files.pixels`` is width × height summed over the file's pages. The DAGs balance their chunks by it
(the OCR work a document holds), where a file in S3 cannot be read again without fetching it. Rows registered
before this revision keep ``NULL``: their documents weigh nothing when chunks are cut, and run last.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document_files") as batch:
        batch.add_column(sa.Column("pixels", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_files") as batch:
        batch.drop_column("pixels")
