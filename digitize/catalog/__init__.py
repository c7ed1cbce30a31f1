"""Catalog: the SQL schema, the document store and its query methods, imports, migrations.

SQL is spoken to here only: every table is the catalog's.
"""

from __future__ import annotations

from digitize.catalog.store import (
    Agency,
    ArchivedInfo,
    Catalog,
    DocumentRecord,
    DocumentSpec,
    FileSpec,
    ImportSummary,
    UtcDateTime,
    documents,
)

__all__ = [
    "Agency",
    "ArchivedInfo",
    "Catalog",
    "DocumentRecord",
    "DocumentSpec",
    "FileSpec",
    "ImportSummary",
    "UtcDateTime",
    "documents",
]
