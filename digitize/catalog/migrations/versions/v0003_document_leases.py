"""Processing leases on documents: one worker at a time takes a RECEIVED document through the stages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

``lease_owner`` names the worker (``host:pid:token``) and ``lease_expires_at`` when its claim lapses; both
are NULL while nobody processes the document. A claim is a conditional UPDATE (see
:meth:`digitize.catalog.store.Catalog.claim`), so two runs over overlapping batches never process a document twice.
Plain nullable columns: SQLite adds them without rebuilding the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("lease_owner", sa.String(200), nullable=True))
    op.add_column("documents", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
