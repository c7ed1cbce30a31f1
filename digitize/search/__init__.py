"""Full-text search over the archived documents' OCR text (SQLite FTS5 or PostgreSQL)."""

from __future__ import annotations

from digitize.search.index import (
    CANDIDATE_LIMIT,
    SearchFilters,
    SearchResult,
    extract_pages,
    index_document,
    index_documents,
    iter_hits,
    rebuild,
    remove_document,
    search,
)
from digitize.search.text import SNIPPET_CHARS, fold, index_text, make_snippet, parse_query, phrases_pattern

__all__ = [
    "CANDIDATE_LIMIT",
    "SNIPPET_CHARS",
    "SearchFilters",
    "SearchResult",
    "extract_pages",
    "fold",
    "index_document",
    "index_documents",
    "index_text",
    "iter_hits",
    "make_snippet",
    "parse_query",
    "phrases_pattern",
    "rebuild",
    "remove_document",
    "search",
]
