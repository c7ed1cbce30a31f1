"""Search index of archived pages (FTS5 / tsvector + trigram lexicon) and the reuse API's tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

SQLite: a contentless FTS5 table ``search_fts`` (``unicode61 remove_diacritics 2``, plus a column of
adjacent word pairs) whose rowid is ``search_pages.id``; the text stored in ``search_pages.body`` is the
page as OCR'd (NFC, diacritics kept).
PostgreSQL: ``search_pages.tsv`` (text search configuration ``digitize_vi`` = ``simple`` + ``unaccent``)
with a GIN index, and ``search_terms``, the lexicon of indexed words, with a ``pg_trgm`` GIN index for
misspelled queries. ``unaccent`` and ``pg_trgm`` are trusted extensions (PostgreSQL 13+): the database
owner may create them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TOKEN_TYPES = ("asciiword, word, numword, asciihword, hword, numhword, hword_asciipart, hword_part, "
                "hword_numpart")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "search_pages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("agency_code", sa.String(13), nullable=False),
        sa.Column("kind", sa.String(2), nullable=False),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("holder_id", sa.String(100), nullable=True),
        sa.Column("issued_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_search_pages_document_id_documents"),
        sa.PrimaryKeyConstraint("id", name="pk_search_pages"),
        sa.UniqueConstraint("document_id", "page", name="uq_search_pages_document_id_page"),
    )
    for column in ("code", "agency_code", "holder_id", "issued_date"):
        op.create_index(f"ix_search_pages_{column}", "search_pages", [column])
    if dialect == "sqlite":
        # pairs: adjacent folded words joined by '_' (kept inside tokens by tokenchars) for fast phrases
        op.execute("CREATE VIRTUAL TABLE search_fts USING fts5(body, meta, pairs, content='', "
                   "tokenize=\"unicode61 remove_diacritics 2 tokenchars '_'\")")
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'digitize_vi') THEN
                    CREATE TEXT SEARCH CONFIGURATION digitize_vi (COPY = simple);
                END IF;
            END $$""")
        op.execute(f"ALTER TEXT SEARCH CONFIGURATION digitize_vi ALTER MAPPING FOR {_TOKEN_TYPES} "
                   "WITH unaccent, simple")
        op.execute("ALTER TABLE search_pages ADD COLUMN tsv tsvector NOT NULL")
        op.execute("CREATE INDEX ix_search_pages_tsv ON search_pages USING gin (tsv)")
        op.create_table("search_terms", sa.Column("term", sa.Text(), nullable=False),
                        sa.PrimaryKeyConstraint("term", name="pk_search_terms"))
        op.execute("CREATE INDEX ix_search_terms_trgm ON search_terms USING gin (term gin_trgm_ops)")

    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_clients"),
        sa.UniqueConstraint("name", name="uq_api_clients_name"),
        sa.UniqueConstraint("token_sha256", name="uq_api_clients_token_sha256"),
    )
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_log"),
    )
    op.create_index("ix_access_log_at", "access_log", ["at"])
    op.create_index("ix_access_log_client", "access_log", ["client"])
    op.create_table(
        "reuse_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("caller_system", sa.String(200), nullable=False),
        sa.Column("new_dossier_code", sa.String(40), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("reused_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_reuse_events_document_id_documents"),
        sa.PrimaryKeyConstraint("id", name="pk_reuse_events"),
        sa.UniqueConstraint("document_id", "new_dossier_code", name="uq_reuse_events_document_id_new_dossier_code"),
    )
    op.create_index("ix_reuse_events_reused_at", "reuse_events", ["reused_at"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("reuse_events")
    op.drop_table("access_log")
    op.drop_table("api_clients")
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts")
    elif dialect == "postgresql":
        op.drop_table("search_terms")
    op.drop_table("search_pages")
    if dialect == "postgresql":
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS digitize_vi")
