"""Catalog: the SQL schema, the document store and its query methods, imports, migrations.

SQL is spoken to here only: every table is the catalog's, the search index's included (the search
package hands over its text analysis as a :class:`TextAnalyzer` and gets :class:`IndexedPage` values).
"""

from __future__ import annotations

from digitize.catalog.frames import AGENCY_COLUMNS, REGISTER_COLUMNS, SCAN_COLUMNS, SUCCESSOR_COLUMNS
from digitize.catalog.fulltext import FulltextQuery, IndexedPage, PageFields, TextAnalyzer
from digitize.catalog.history import ReferenceFile
from digitize.catalog.records import (
    Agency,
    ArchivedInfo,
    DocumentRecord,
    DocumentSpec,
    FileSpec,
    ImportSummary,
    fingerprint_of,
)
from digitize.catalog.review import RETRY_EVENT, DuplicateSighting
from digitize.catalog.schema import UtcDateTime, documents
from digitize.catalog.snapshot import SETTLE as SNAPSHOT_SETTLE
from digitize.catalog.store import Catalog

__all__ = [
    "AGENCY_COLUMNS",
    "REGISTER_COLUMNS",
    "RETRY_EVENT",
    "SCAN_COLUMNS",
    "SNAPSHOT_SETTLE",
    "SUCCESSOR_COLUMNS",
    "Agency",
    "ArchivedInfo",
    "Catalog",
    "DocumentRecord",
    "DocumentSpec",
    "DuplicateSighting",
    "FileSpec",
    "FulltextQuery",
    "ImportSummary",
    "IndexedPage",
    "PageFields",
    "ReferenceFile",
    "TextAnalyzer",
    "UtcDateTime",
    "documents",
    "fingerprint_of",
]
