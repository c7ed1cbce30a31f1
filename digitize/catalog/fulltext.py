"""The search index's SQL: writing and deleting index rows, finding candidate pages, the lexicon of indexed words.

Search (``digitize.search``) decides what a word is, ranks and cuts snippets; the catalog stores and finds.
The two meet at :class:`TextAnalyzer` (search's functions that turn text into index terms, which the
catalog calls when it writes, and on SQLite deletes, an index row) and :class:`FulltextQuery` (a parsed
query as index terms, which the catalog spells in each backend's query language).

- SQLite: ``search_pages`` holds each page; the contentless FTS5 table ``search_fts`` (rowid =
  ``search_pages.id``) its words, title and codes, and adjacent word pairs joined by ``_``. Contentless:
  a delete must send back exactly the terms inserted, so both come from the same analyzer.
- PostgreSQL: ``search_pages.tsv`` (configuration ``digitize_vi`` = ``simple`` + ``unaccent``, GIN index)
  holds the title and codes (weight A), the words and the word pairs as lexemes; ``search_terms`` is the
  lexicon of folded words, for correcting misspelled queries with ``pg_trgm``.

Only the latest archived version of a code is indexed. The index only finds candidates, unranked and at
most ``limit`` of them: ranking in the database cost seconds at a million pages (see ``digitize.search``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.schema import documents, search_pages, search_terms
from digitize.errors import CatalogConflict

_PAGE_COLUMNS = ("id", "document_id", "page", "code", "version", "title", "agency_code", "kind", "dossier_code",
                 "procedure_code", "holder_id", "issued_date", "valid_until", "body")
_RECORD_COLUMNS = ("id", "status", "code", "version", "title", "agency_code", "kind", "dossier_code",
                   "procedure_code", "holder_id", "issued_date", "valid_until")


@dataclass(frozen=True)
class TextAnalyzer:
    """How search turns text into index terms; the catalog stores (and deletes) exactly what these return."""

    words: Callable[[str], str]
    """Text → its words as the index takes them, joined by spaces (the backend folds what diacritics remain)."""

    pairs: Callable[[str], Sequence[str]]
    """Text → its adjacent folded word pairs (``"quyen su"``), which make phrases of common words selective."""

    lexicon: Callable[[str], Iterable[str]]
    """Text → its folded words worth offering as corrections of a misspelled word (PostgreSQL's lexicon)."""


@dataclass(frozen=True)
class FulltextQuery:
    """A parsed query as index terms: every phrase is required."""

    phrases: tuple[tuple[str, ...], ...]
    """Each phrase's words as :attr:`TextAnalyzer.words` writes them (lower-case, ``đ`` folded)."""

    pairs: tuple[str, ...]
    """The folded word pairs (``"su dung"``) of the phrases of two words or more, which pages must hold too."""


@dataclass(frozen=True)
class PageFields:
    """A page of an archived document with the document fields search filters and shows."""

    document_id: int
    """Catalog id of the document (its latest archived version)."""
    code: str
    """Uniform document code."""
    version: int
    """Version of the document the page belongs to."""
    page: int
    """1-based page number in the signed PDF."""
    title: str
    """Name of the document."""
    agency_code: str
    """Issuer."""
    kind: str
    """``KQ`` or ``TP``."""
    dossier_code: str | None
    """Circular 01/2018 dossier code."""
    procedure_code: str | None
    """TTHC procedure code."""
    holder_id: str | None
    """Citizen ID or tax code of the holder (personal data)."""
    issued_date: date
    """Issue date."""
    valid_until: date | None
    """End of validity, ``None`` when indefinite."""


@dataclass(frozen=True)
class IndexedPage(PageFields):
    """One page in the index: its fields, its row id and its text."""

    id: int
    """Index row id (the order pages were indexed in)."""
    body: str
    """The page's text as OCR'd (NFC, diacritics kept)."""


class FulltextQueries(CatalogBase):
    """Catalog methods on the search index (``search_pages``, ``search_fts``, ``search_terms``)."""

    def index_search_pages(self, pages: Mapping[int, Sequence[tuple[int, str]]], analyzer: TextAnalyzer) -> int:
        """Replace the index rows of archived documents, in one transaction; returns the pages indexed.

        ``pages`` maps a document id to its pages with text, as (page number, NFC text). The documents'
        earlier rows, and those of older versions of their codes, are dropped; a version that has a newer
        archived version is not indexed. :class:`CatalogConflict` if a document is not archived.
        """
        if not pages:
            return 0
        with self.write() as conn:
            records: dict[int, Any] = {}
            ids = list(pages)
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                query = sa.select(*(documents.c[c] for c in _RECORD_COLUMNS)).where(documents.c.id.in_(chunk))
                records.update({r.id: r for r in conn.execute(query)})
            for document_id in ids:
                record = records.get(document_id)
                if record is None or record.status != "ARCHIVED" or record.code is None:
                    state = "not in the catalog" if record is None else record.status
                    raise CatalogConflict(f"document {document_id} is {state}: only archived documents are indexed")
            return _replace_pages(conn, self._dialect, [(records[i], pages[i]) for i in ids], analyzer)

    def delete_search_pages(self, document_ids: Iterable[int], analyzer: TextAnalyzer) -> int:
        """Drop these documents' pages from the index, in one transaction; returns the pages removed."""
        ids = sorted(set(document_ids))
        removed = 0
        with self.write() as conn:
            for start in range(0, len(ids), 500):
                removed += _delete_pages(conn, self._dialect, search_pages.c.document_id.in_(ids[start:start + 500]),
                                         analyzer)
        return removed

    def search_indexed_document_ids(self) -> set[int]:
        """Documents that have at least one page in the index."""
        with self.read() as conn:
            return set(conn.execute(sa.select(search_pages.c.document_id).distinct()).scalars())

    def search_page_candidates(
        self, query: FulltextQuery, *, limit: int, phrase_check_limit: int, agency: str | None = None,
        kind: str | None = None, issued_from: date | None = None, issued_to: date | None = None,
        holder: str | None = None,
    ) -> tuple[list[IndexedPage], bool]:
        """Pages holding every phrase, at most ``limit``, unranked, and whether more may match.

        The index stops at the limit: the first matches in its own order (the earliest indexed on SQLite,
        table order on PostgreSQL). On PostgreSQL the positions of a phrase's words are checked in at most
        ``phrase_check_limit`` pages holding its words and word pairs (more may match when that is reached).
        """
        filters = _page_filters(agency=agency, kind=kind, issued_from=issued_from, issued_to=issued_to,
                                holder=holder)
        with self.read() as conn:
            if self._dialect == "postgresql":
                rows, partial = _postgresql_candidates(conn, query, filters, limit, phrase_check_limit)
            else:
                rows, partial = _sqlite_candidates(conn, query, filters, limit), False
        return [IndexedPage(**row._asdict()) for row in rows], partial

    def closest_search_terms(self, terms: Iterable[str], *, min_similarity: float) -> dict[str, str]:
        """Each folded word the index does not know → its most similar indexed word (``pg_trgm``), if any.

        Only PostgreSQL keeps the lexicon: on SQLite the answer is always empty.
        """
        if self._dialect != "postgresql":
            return {}
        closest: dict[str, str] = {}
        with self.read() as conn:
            for term in dict.fromkeys(terms):
                known = conn.execute(sa.select(search_terms.c.term).where(search_terms.c.term == term)).first()
                if known is not None:
                    continue
                similarity = sa.func.similarity(search_terms.c.term, term)
                best = conn.execute(
                    sa.select(search_terms.c.term)
                    .where(search_terms.c.term.bool_op("%")(term), similarity >= min_similarity)
                    .order_by(similarity.desc(), search_terms.c.term).limit(1)).scalar()
                if best is not None:
                    closest[term] = best
        return closest


# ------------------------------------------------------------------------------------------ writing


def _meta_text(row: Any, analyzer: TextAnalyzer) -> str:
    """Title and codes, indexed beside each page so a code or title finds every page of the document."""
    return analyzer.words(" ".join([row.title, row.code, row.dossier_code or "", row.procedure_code or ""]))


def _fts_row(rowid: int, body: str, meta: str, analyzer: TextAnalyzer) -> dict[str, Any]:
    """The values of an FTS5 row; a delete must send exactly what was inserted, so both use this."""
    pairs = " ".join(p.replace(" ", "_") for p in analyzer.pairs(f"{meta}\n{body}"))
    return {"id": rowid, "body": analyzer.words(body), "meta": meta, "pairs": pairs}


def _delete_pages(conn: Connection, dialect: str, condition: sa.ColumnElement[bool], analyzer: TextAnalyzer) -> int:
    rows = conn.execute(sa.select(search_pages).where(condition)).all()
    if not rows:
        return 0
    if dialect == "sqlite":
        conn.execute(
            sa.text("INSERT INTO search_fts(search_fts, rowid, body, meta, pairs) "
                    "VALUES ('delete', :id, :body, :meta, :pairs)"),
            [_fts_row(r.id, r.body, _meta_text(r, analyzer), analyzer) for r in rows],
        )
    conn.execute(sa.delete(search_pages).where(search_pages.c.id.in_([r.id for r in rows])))
    return len(rows)


def _latest_archived_versions(conn: Connection, codes: Sequence[str]) -> dict[str, int]:
    latest: dict[str, int] = {}
    for start in range(0, len(codes), 500):
        chunk = codes[start:start + 500]
        # status is filtered here, not in SQL: a planner without statistics would scan the status index
        for code, version, status in conn.execute(
                sa.select(documents.c.code, documents.c.version, documents.c.status)
                .where(documents.c.code.in_(chunk))):
            if status == "ARCHIVED" and version > latest.get(code, 0):
                latest[code] = version
    return latest


def _replace_pages(conn: Connection, dialect: str, work: list[tuple[Any, Sequence[tuple[int, str]]]],
                   analyzer: TextAnalyzer) -> int:
    latest = _latest_archived_versions(conn, sorted({record.code for record, _ in work}))
    ids = [record.id for record, _ in work]
    for start in range(0, len(ids), 500):
        _delete_pages(conn, dialect, search_pages.c.document_id.in_(ids[start:start + 500]), analyzer)
    current = sorted({r.code for r, _ in work if latest.get(r.code, r.version) <= r.version})
    for start in range(0, len(current), 500):  # pages of older versions of the codes indexed now
        _delete_pages(conn, dialect, search_pages.c.code.in_(current[start:start + 500])
                      & search_pages.c.document_id.not_in(ids), analyzer)
    rows: list[dict[str, Any]] = []
    metas: list[str] = []
    for record, pages in work:
        if latest.get(record.code, record.version) > record.version:
            continue  # a newer version of this code is archived: only the latest is searchable
        meta = _meta_text(record, analyzer)
        for number, text in pages:
            rows.append({
                "document_id": record.id, "page": number, "code": record.code, "version": record.version,
                "title": record.title, "agency_code": record.agency_code, "kind": record.kind,
                "dossier_code": record.dossier_code, "procedure_code": record.procedure_code,
                "holder_id": record.holder_id, "issued_date": record.issued_date,
                "valid_until": record.valid_until, "body": text})
            metas.append(meta)
    if not rows:
        return 0
    if dialect == "postgresql":
        _insert_postgresql(conn, rows, metas, analyzer)
    else:
        new_ids = conn.execute(sa.insert(search_pages).returning(search_pages.c.id, sort_by_parameter_order=True),
                               rows).scalars().all()
        conn.execute(sa.text("INSERT INTO search_fts(rowid, body, meta, pairs) VALUES (:id, :body, :meta, :pairs)"),
                     [_fts_row(i, r["body"], m, analyzer) for i, r, m in zip(new_ids, rows, metas, strict=True)])
    return len(rows)


def _insert_postgresql(conn: Connection, rows: list[dict[str, Any]], metas: list[str],
                       analyzer: TextAnalyzer) -> None:
    columns = [c for c in _PAGE_COLUMNS if c != "id"]
    conn.execute(
        sa.text(f"INSERT INTO search_pages ({', '.join(columns)}, tsv) VALUES "
                f"({', '.join(':' + c for c in columns)}, "
                "setweight(to_tsvector('digitize_vi', :meta), 'A') || to_tsvector('digitize_vi', :tokens)"
                " || array_to_tsvector(CAST(:pairs AS text[])))"),
        [{**r, "meta": m, "tokens": analyzer.words(r["body"]), "pairs": list(analyzer.pairs(f"{m}\n{r['body']}"))}
         for r, m in zip(rows, metas, strict=True)],
    )
    lexicon = sorted({term for r in rows for term in analyzer.lexicon(r["body"])})
    for start in range(0, len(lexicon), 5000):  # sorted: concurrent indexers take the key locks in the same order
        conn.execute(pg_dialect.insert(search_terms).values([{"term": t} for t in lexicon[start:start + 5000]])
                     .on_conflict_do_nothing())


# ------------------------------------------------------------------------------------------ finding


def _page_filters(*, agency: str | None, kind: str | None, issued_from: date | None, issued_to: date | None,
                  holder: str | None) -> list[sa.ColumnElement[bool]]:
    p = search_pages.c
    conditions = []
    if agency:
        conditions.append(p.agency_code == agency)
    if kind:
        conditions.append(p.kind == kind)
    if issued_from:
        conditions.append(p.issued_date >= issued_from)
    if issued_to:
        conditions.append(p.issued_date <= issued_to)
    if holder:
        conditions.append(p.holder_id == holder)
    return conditions


def _fts5_match(query: FulltextQuery) -> str:
    """Each phrase, and first the word pairs (a rare pair lets FTS5 skip through long word lists)."""
    match = " AND ".join('"' + " ".join(p) + '"' for p in query.phrases)
    pairs = sorted(pair.replace(" ", "_") for pair in query.pairs)
    if pairs:
        match = "pairs : (" + " AND ".join(f'"{pair}"' for pair in pairs) + ") AND " + match
    return match


def _tsquery(phrases: Iterable[Sequence[str]]) -> str:
    return " & ".join("(" + " <-> ".join(f"'{t}'" for t in p) + ")" for p in phrases)


def _sqlite_candidates(conn: Connection, query: FulltextQuery, filters: list[sa.ColumnElement[bool]],
                       limit: int) -> list[Any]:
    fts = sa.table("search_fts", sa.column("rowid"))
    matched = (sa.select(fts.c.rowid).select_from(fts)
               .where(sa.literal_column("search_fts").op("MATCH")(sa.bindparam("q", _fts5_match(query)))))
    if filters:
        matched = matched.join(search_pages, search_pages.c.id == fts.c.rowid).where(*filters)
    matched = matched.order_by(fts.c.rowid).limit(limit)  # FTS5's own order: descending costs more
    columns = [search_pages.c[c] for c in _PAGE_COLUMNS]
    return list(conn.execute(sa.select(*columns).where(search_pages.c.id.in_(matched.scalar_subquery()))))


def _postgresql_candidates(conn: Connection, query: FulltextQuery, filters: list[sa.ColumnElement[bool]],
                           limit: int, phrase_check_limit: int) -> tuple[list[Any], bool]:
    # With a LIMIT the planner picks a sequential scan when it expects many matches, and reads the whole
    # table (a tsvector detoasted per row) when they are fewer than it thought; the GIN index is bounded.
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    columns = [search_pages.c[c] for c in _PAGE_COLUMNS]
    tsv: sa.ColumnElement[Any] = sa.literal_column("search_pages.tsv")
    tsq = sa.func.to_tsquery(sa.literal_column("'digitize_vi'"), sa.bindparam("q", _tsquery(query.phrases)))
    if not query.pairs:  # words only: the GIN index answers without reading any tsvector
        return list(conn.execute(sa.select(*columns).where(tsv.op("@@")(tsq), *filters).limit(limit))), False
    # A phrase: the pages holding its words and word pairs come from the index alone; checking positions
    # reads each page's tsvector (~25 µs), and a rare phrase of common pairs has few matches among
    # hundreds of thousands of such pages, so only the first phrase_check_limit of them are checked.
    pairs = " & ".join(f"'{pair}'" for pair in query.pairs)
    words_and_pairs = sa.cast(sa.bindparam("pairs", pairs), pg_dialect.TSQUERY).op("&&")(
        sa.func.to_tsquery(sa.literal_column("'digitize_vi'"),
                           sa.bindparam("w", _tsquery([(t,) for p in query.phrases for t in p]))))
    ids = list(conn.execute(sa.select(search_pages.c.id).where(tsv.op("@@")(words_and_pairs), *filters)
                            .limit(phrase_check_limit)).scalars())
    if not ids:
        return [], False
    found = (sa.select(*columns)
             .where(search_pages.c.id == sa.any_(sa.bindparam("ids", ids, type_=pg_dialect.ARRAY(sa.Integer))),
                    tsv.op("@@")(tsq))
             .limit(limit))
    return list(conn.execute(found)), len(ids) >= phrase_check_limit
