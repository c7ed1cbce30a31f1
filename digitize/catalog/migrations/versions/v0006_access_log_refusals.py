"""Access log: refusals before authentication, and what an access returned.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

A request refused with 401 has no known client: ``client`` becomes nullable. ``detail`` says why a request was
refused (never the token it presented), or which documents and holders an access returned (a search filtered
by holder, a drill-down showing full holder IDs).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        batch.alter_column("client", existing_type=sa.String(100), nullable=True)
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM access_log WHERE client IS NULL")
    with op.batch_alter_table("access_log") as batch:
        batch.drop_column("detail")
        batch.alter_column("client", existing_type=sa.String(100), nullable=False)
