"""Full-text search over the OCR text of archived documents, page by page, with or without Vietnamese diacritics.

The catalog's index (``digitize.catalog.fulltext``: SQLite FTS5 or a PostgreSQL ``tsvector``) only finds
the matching pages, at most :data:`CANDIDATE_LIMIT` of them; they are ranked here, the same way on both
backends (BM25's term frequency and length normalisation over the page text and its title and codes).
Ranking in the database cost seconds at a million pages for phrases of common words: FTS5's ``bm25``
scans each phrase's whole posting list for its document frequency, and PostgreSQL ranked and rechecked
every match before applying the LIMIT. A query matching more pages says so (``truncated``): refine it,
or filter. On PostgreSQL a query that finds nothing is retried with each unknown word replaced by its
closest indexed word (``pg_trgm`` similarity over the lexicon).

The exact mode runs the folded query and keeps the pages whose own words carry the diacritics typed.
Only the latest archived version of a code is indexed. What a word is lives in ``digitize.search.text``.
"""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize.catalog import PageFields
from digitize.errors import ConfigurationError, DigitizeError, SearchQueryInvalid, TransientError
from digitize.search.text import (
    ANALYZER,
    Phrase,
    fold,
    fulltext_query,
    make_snippet,
    matches_exactly,
    parse_query,
    phrases_pattern,
)

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog, IndexedPage

MAX_LIMIT = 100
CANDIDATE_LIMIT = 300
"""Matching pages ranked at most per query; when more match, the first found are ranked (``truncated``)."""
PHRASE_CHECK_LIMIT = 2000
"""PostgreSQL: pages holding a phrase's words and word pairs whose word positions are checked at most."""
BM25_K1, BM25_B = 1.2, 0.75
META_WEIGHT = 2.0
"""An occurrence in the title or codes counts as this many in the page text."""
FUZZY_MIN_SIMILARITY = 0.3

_KINDS = ("KQ", "TP")


def extract_pages(pdf: bytes) -> list[str]:
    """The text layer of each page of ``pdf`` (poppler's ``pdftotext``, reading order), NFC."""
    with tempfile.TemporaryDirectory(prefix="digitize-search-") as scratch:
        path = Path(scratch) / "document.pdf"
        path.write_bytes(pdf)
        result = subprocess.run(["pdftotext", "-q", "-enc", "UTF-8", str(path), "-"], capture_output=True,
                                timeout=300, check=False)
    if result.returncode != 0:
        raise DigitizeError(f"pdftotext could not read the archived PDF (exit {result.returncode})",
                            hint="Verify the document (python -m digitize show CODE) and its archived PDF.")
    pages = result.stdout.decode("utf-8", errors="replace").split("\f")
    if pages and not pages[-1].strip():
        pages.pop()  # pdftotext ends every page with a form feed
    return [unicodedata.normalize("NFC", p) for p in pages]


# ------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions on the documents searched; ``None`` means no restriction."""

    agency: str | None = None
    """Agency code of the issuer (exact)."""

    kind: str | None = None
    """``KQ`` (procedure result) or ``TP`` (dossier component)."""

    issued_from: date | None = None
    """First issue date included."""

    issued_to: date | None = None
    """Last issue date included."""

    holder: str | None = None
    """Citizen ID or tax code of the holder (personal data: callers log why they filter on it)."""

    def validate(self) -> None:
        """Refuse filters that cannot match anything by mistake (wrong kind, inverted dates)."""
        if self.kind is not None and self.kind not in _KINDS:
            raise SearchQueryInvalid(f"kind {self.kind!r} must be one of {', '.join(_KINDS)}")
        if self.issued_from and self.issued_to and self.issued_to < self.issued_from:
            raise SearchQueryInvalid(f"date range is inverted: {self.issued_from} to {self.issued_to}")


@dataclass(frozen=True)
class SearchHit(PageFields):
    """One matching page of an archived document."""

    score: float
    """Relevance, higher is better (see :func:`_ranked`, the same on both backends); comparable within one result."""
    snippet: str
    """Text around the first match, matched words between « and »."""


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query, best first."""

    query: str
    """The query as typed."""
    exact: bool
    """Diacritics had to match as typed."""
    hits: tuple[SearchHit, ...]
    """Matching pages, best first."""
    corrected_query: str | None = None
    """The query actually run when a misspelled word was replaced by its closest indexed word (PostgreSQL)."""
    truncated: bool = False
    """:data:`CANDIDATE_LIMIT` pages or more matched (only that many were ranked), or on PostgreSQL the phrase's
    positions were checked in only :data:`PHRASE_CHECK_LIMIT` pages: more hits may exist."""


@dataclass(frozen=True)
class RebuildSummary:
    """Outcome of :func:`rebuild`."""

    documents: int
    """Documents (re-)indexed."""
    pages: int
    """Pages with text indexed."""
    removed: int
    """Index pages dropped because their document is no longer the latest archived version."""
    failures: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(code, message) of documents whose archived PDF could not be read; the others were indexed."""


# ------------------------------------------------------------------------------------------ writing


def index_document(catalog: Catalog, document_id: int, pages: Sequence[str]) -> int:
    """Index (or re-index) the text of each page of an ARCHIVED document; returns the pages indexed.

    ``pages`` is the OCR text of every page of the signed PDF in order (blank pages as ''). Idempotent:
    the document's earlier index rows, and those of older versions of its code, are replaced. A version
    that has a newer archived version is not indexed (returns 0).
    """
    return index_documents(catalog, [(document_id, pages)])


def index_documents(catalog: Catalog, items: Iterable[tuple[int, Sequence[str]]]) -> int:
    """:func:`index_document` for many documents in one transaction (rebuilds, bulk loads); returns pages indexed."""
    batch = {document_id: pages for document_id, pages in items}  # a repeated id: its last pages win
    with_text = {document_id: [(number, unicodedata.normalize("NFC", text))
                               for number, text in enumerate(pages, start=1) if text and text.strip()]
                 for document_id, pages in batch.items()}
    return catalog.index_search_pages(with_text, ANALYZER)


def remove_document(catalog: Catalog, document_id: int) -> int:
    """Drop a document's pages from the index (e.g. after a correction was refused); returns pages removed."""
    return catalog.delete_search_pages([document_id], ANALYZER)


def indexed_document_ids(catalog: Catalog) -> set[int]:
    """Documents that have at least one page in the index."""
    return catalog.search_indexed_document_ids()


def rebuild(catalog: Catalog, archive: Archive, *, missing_only: bool = False,
            on_document: Callable[[str, int], None] | None = None) -> RebuildSummary:
    """Re-extract the text of every latest ARCHIVED document from its signed PDF in the archive and index it.

    ``missing_only`` indexes only documents absent from the index (catching up after an indexing failure).
    Index rows of documents that are no longer the latest archived version are removed.
    """
    frame = catalog.archived_frame()
    wanted = {int(i): (str(c), str(k)) for i, c, k in zip(frame["id"], frame["code"], frame["pdf_key"], strict=True)}
    present = indexed_document_ids(catalog)
    done = pages = 0
    failures: list[tuple[str, str]] = []
    for document_id, (code, key) in wanted.items():
        if missing_only and document_id in present:
            continue
        try:
            count = index_document(catalog, document_id, extract_pages(archive.get(key)))
        except DigitizeError as exc:
            if isinstance(exc, (TransientError, ConfigurationError)):
                raise
            failures.append((code, exc.message))
            continue
        done += 1
        pages += count
        if on_document is not None:
            on_document(code, count)
    removed = catalog.delete_search_pages([i for i in present if i not in wanted], ANALYZER)
    return RebuildSummary(done, pages, removed, tuple(failures))


# ------------------------------------------------------------------------------------------ searching


def _candidates(catalog: Catalog, phrases: Sequence[Phrase], filters: SearchFilters) -> tuple[list[IndexedPage], bool]:
    """The matching pages, at most :data:`CANDIDATE_LIMIT` of them, unranked, and whether more may match."""
    return catalog.search_page_candidates(
        fulltext_query(phrases), limit=CANDIDATE_LIMIT, phrase_check_limit=PHRASE_CHECK_LIMIT,
        agency=filters.agency, kind=filters.kind, issued_from=filters.issued_from, issued_to=filters.issued_to,
        holder=filters.holder)


def _ranked(rows: Sequence[IndexedPage], phrases: Sequence[Phrase]) -> list[tuple[IndexedPage, float]]:
    """``rows`` best first: BM25's term-frequency saturation and length normalisation over each phrase.

    Every phrase weighs the same (no inverse document frequency: it would need the corpus-wide count of
    each phrase, the full posting-list scan avoided above); the page's length in characters is compared
    with the candidates' mean; an occurrence in the title or codes counts :data:`META_WEIGHT` times.
    """
    pattern = phrases_pattern(phrases)
    groups = [f"p{i}" for i in range(len(phrases))]
    counted = []
    for row in rows:
        meta = " ".join((row.title, row.code, row.dossier_code or "", row.procedure_code or ""))
        in_body = Counter(m.lastgroup for m in pattern.finditer(row.body.lower()))
        in_meta = Counter(m.lastgroup for m in pattern.finditer(unicodedata.normalize("NFC", meta).lower()))
        tfs = [in_body[g] + META_WEIGHT * in_meta[g] for g in groups]
        counted.append((row, tfs, len(row.body) + len(meta)))
    mean = max(1.0, sum(length for _, _, length in counted) / max(1, len(counted)))
    scored = []
    for row, tfs, length in counted:
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / mean)
        scored.append((row, sum(tf * (BM25_K1 + 1) / (tf + norm) for tf in tfs)))
    scored.sort(key=lambda item: (-item[1], item[0].id))
    return scored


def _hit(row: IndexedPage, score: float, phrases: Sequence[Phrase], exact: bool) -> SearchHit:
    shared = {field.name: getattr(row, field.name) for field in dataclasses.fields(PageFields)}
    return SearchHit(**shared, score=round(score, 6), snippet=make_snippet(row.body, phrases, exact=exact))


def _corrected(catalog: Catalog, phrases: Sequence[Phrase]) -> tuple[Phrase, ...] | None:
    """Each word unknown to the lexicon replaced by its most similar indexed word (PostgreSQL); None if no change."""
    folded = {token: fold(token) for phrase in phrases for token in phrase}
    closest = catalog.closest_search_terms(
        [f for f in folded.values() if len(f) >= 3 and not f.isdigit()], min_similarity=FUZZY_MIN_SIMILARITY)
    if not closest:
        return None
    return tuple(tuple(closest.get(folded[token], token) for token in phrase) for phrase in phrases)


def search(catalog: Catalog, query: str, *, filters: SearchFilters | None = None, exact: bool = False,
           limit: int = 20, offset: int = 0) -> SearchResult:
    """Pages matching every word and phrase of ``query``, best first, each with its page number and a snippet.

    Diacritics and case are ignored unless ``exact``; then words must carry the diacritics typed (a word typed
    without any still matches only its unaccented form, as typed).
    """
    phrases = parse_query(query)
    filters = filters or SearchFilters()
    filters.validate()
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise SearchQueryInvalid(f"limit must be 1..{MAX_LIMIT} and offset ≥ 0, got {limit} and {offset}")
    rows, partial = _candidates(catalog, phrases, filters)
    corrected = None
    if not rows and not partial and not exact:
        fixed = _corrected(catalog, phrases)
        if fixed is not None:
            rows, partial = _candidates(catalog, fixed, filters)
            corrected = " ".join('"' + " ".join(p) + '"' if len(p) > 1 else p[0] for p in fixed)
            phrases = fixed
    ranked: Iterable[tuple[IndexedPage, float]] = _ranked(rows, phrases)
    if exact:  # checked best first, only as far as the page asked for
        ranked = ((row, score) for row, score in ranked if matches_exactly(f"{row.title}\n{row.body}", phrases))
    page = list(itertools.islice(ranked, offset, offset + limit))
    return SearchResult(query, exact, tuple(_hit(r, s, phrases, exact) for r, s in page), corrected,
                        truncated=partial or len(rows) >= CANDIDATE_LIMIT)


def iter_hits(results: Iterable[SearchHit]) -> Iterable[dict[str, Any]]:
    """Hits as JSON-ready dicts (dates ISO 8601)."""
    for hit in results:
        yield {
            "document_id": hit.document_id, "code": hit.code, "version": hit.version, "page": hit.page,
            "title": hit.title, "agency_code": hit.agency_code, "kind": hit.kind, "dossier_code": hit.dossier_code,
            "procedure_code": hit.procedure_code, "holder_id": hit.holder_id,
            "issued_date": hit.issued_date.isoformat(),
            "valid_until": hit.valid_until.isoformat() if hit.valid_until else None,
            "score": hit.score, "snippet": hit.snippet,
        }
