"""Papers a holder had to hand in again: the other outcome of a reuse lookup.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

``POST /holders/{holder_id}/supplied-again`` records, for a new dossier, a paper the one-stop office had to
ask the holder for again (nothing digitized here, only an expired copy, or one it could not use). With
``reuse_events`` it gives the coverage report the denominator of "citizens not asked again": dossiers whose
needed papers were looked up here. One row per (dossier, holder, paper), so a retried call adds nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supplied_again_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("holder_id", sa.String(100), nullable=False),
        sa.Column("new_dossier_code", sa.String(40), nullable=False),
        sa.Column("document", sa.String(200), nullable=False),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("caller_system", sa.String(200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_supplied_again_events"),
        sa.UniqueConstraint("new_dossier_code", "holder_id", "document",
                            name="uq_supplied_again_events_new_dossier_code_holder_id_document"),
    )
    op.create_index("ix_supplied_again_events_recorded_at", "supplied_again_events", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_supplied_again_events_recorded_at", table_name="supplied_again_events")
    op.drop_table("supplied_again_events")
