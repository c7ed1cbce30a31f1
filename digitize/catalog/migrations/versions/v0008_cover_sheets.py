"""Cover sheets, and where a document sits in a scanned stack.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

``cover_sheets`` holds one row per printed sheet id: the register row it stands for, or, for a planned row
(a dossier component, anything not in the register), the manifest fields the document will be built from;
and who printed it last, when. ``documents`` learns the stack it was cut from: the stack file's SHA-256 (its
one archived original), the pages of the stack it covers (1-based, inclusive, sheet page included) and the
sheet that named it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cover_sheets",
        sa.Column("sheet_id", sa.String(32), nullable=False),
        sa.Column("planned", sa.Boolean(), nullable=False),
        sa.Column("register_id", sa.String(100), nullable=True),
        sa.Column("agency_code", sa.String(13), nullable=False),
        sa.Column("kind", sa.String(2), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("issued_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("holder_id", sa.String(100), nullable=True),
        sa.Column("document_id", sa.String(200), nullable=True),
        sa.Column("printed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("printed_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("sheet_id", name="pk_cover_sheets"),
        sa.CheckConstraint("kind IN ('KQ', 'TP')", name="ck_cover_sheets_kind"),
    )
    op.create_index("ix_cover_sheets_register_id", "cover_sheets", ["register_id"])
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("stack_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("stack_first_page", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stack_last_page", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sheet_id", sa.String(32), nullable=True))
    op.create_index("ix_documents_stack_sha256", "documents", ["stack_sha256"])
    op.create_index("ix_documents_sheet_id", "documents", ["sheet_id"])


def downgrade() -> None:
    op.drop_index("ix_documents_sheet_id", table_name="documents")
    op.drop_index("ix_documents_stack_sha256", table_name="documents")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("sheet_id")
        batch.drop_column("stack_last_page")
        batch.drop_column("stack_first_page")
        batch.drop_column("stack_sha256")
    op.drop_index("ix_cover_sheets_register_id", table_name="cover_sheets")
    op.drop_table("cover_sheets")
