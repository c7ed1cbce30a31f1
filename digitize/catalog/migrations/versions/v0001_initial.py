"""Initial catalog: agencies, register, documents (with versions), files, events, code sequences.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(13), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(13), nullable=True),
        sa.Column("remote", sa.Boolean(), nullable=False),
        sa.Column("one_stop", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("successor_code", sa.String(13), nullable=True),
        sa.CheckConstraint("level IN ('province', 'district', 'commune')", name="ck_agencies_level"),
        sa.PrimaryKeyConstraint("code", name="pk_agencies"),
    )
    op.create_table(
        "register",
        sa.Column("register_id", sa.String(100), nullable=False),
        sa.Column("agency_code", sa.String(13), nullable=False),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("issued_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("holder_id", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"], name="fk_register_agency_code_agencies"),
        sa.PrimaryKeyConstraint("register_id", name="pk_register"),
    )
    op.create_index("ix_register_agency_code", "register", ["agency_code"])
    op.create_index("ix_register_dossier_code", "register", ["dossier_code"])
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code", sa.String(100), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("agency_code", sa.String(13), nullable=False),
        sa.Column("kind", sa.String(2), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("issued_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("register_id", sa.String(100), nullable=True),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("holder_id", sa.String(100), nullable=True),
        sa.Column("scanned_at", sa.String(100), nullable=True),
        sa.Column("manifest_document_id", sa.String(200), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("pdf_key", sa.Text(), nullable=True),
        sa.Column("pdf_sha256", sa.String(64), nullable=True),
        sa.Column("sidecar_key", sa.Text(), nullable=True),
        sa.Column("sidecar_sha256", sa.String(64), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("mean_confidence", sa.Float(), nullable=True),
        sa.Column("needs_review", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('RECEIVED', 'ARCHIVED', 'QUARANTINED')", name="ck_documents_status"),
        sa.CheckConstraint("kind IN ('KQ', 'TP')", name="ck_documents_kind"),
        sa.ForeignKeyConstraint(["supersedes_id"], ["documents.id"], name="fk_documents_supersedes_id_documents"),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.UniqueConstraint("fingerprint", name="uq_documents_fingerprint"),
        sa.UniqueConstraint("code", "version", name="uq_documents_code_version"),
        sa.UniqueConstraint("supersedes_id", name="uq_documents_supersedes_id"),
    )
    op.create_index("ix_documents_batch_id", "documents", ["batch_id"])
    op.create_index("ix_documents_status", "documents", ["status"])
    op.create_index("ix_documents_agency_code", "documents", ["agency_code"])
    op.create_index("ix_documents_register_id", "documents", ["register_id"])
    op.create_table(
        "document_files",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("original_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_document_files_document_id_documents"),
        sa.PrimaryKeyConstraint("document_id", "position", name="pk_document_files"),
    )
    op.create_index("ix_document_files_sha256", "document_files", ["sha256"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.String(200), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("tool_version", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('success', 'failure', 'warning')", name="ck_events_outcome"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_events_document_id_documents"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_document_id", "events", ["document_id"])
    op.create_index("ix_events_batch_id", "events", ["batch_id"])
    op.create_table(
        "code_sequences",
        sa.Column("agency_code", sa.String(13), nullable=False),
        sa.Column("kind", sa.String(2), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agency_code", "kind", "year", name="pk_code_sequences"),
    )


def downgrade() -> None:
    for table in ("code_sequences", "events", "document_files", "documents", "register", "agencies"):
        op.drop_table(table)
