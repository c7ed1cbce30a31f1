"""Full-text search over the OCR text of archived documents, page by page, with or without Vietnamese diacritics.

Officers type what they remember — "quyen su dung dat", a holder's name, a code —
and expect to find "quyền sử dụng đất". The index therefore matches folded words
(diacritics removed, ``đ`` → ``d``, which neither SQLite's ``unicode61`` nor
PostgreSQL's stock ``unaccent`` rules can be relied on to fold) and keeps the page
as OCR'd for snippets and for the exact-diacritics mode.

Both backends get the same tokens: the page is split here into words (letters and
digits; a code like ``000.00.00.H49.2021.KQ.000123`` becomes a run of adjacent
words, so it matches as a phrase), lower-cased, ``đ`` folded, and joined by spaces.

- SQLite (the embedded default): contentless FTS5 table ``search_fts`` with the
  ``unicode61 remove_diacritics 2`` tokenizer.
- Both also index adjacent word pairs (``quyen_su``, ``su_dung``, …; FTS5 column
  ``pairs`` / extra tsvector lexemes ``'quyen su'``): a phrase of common words
  then narrows on its rare pairs before positions are checked.
- PostgreSQL: a ``tsvector`` (configuration ``digitize_vi`` = ``simple`` +
  ``unaccent``) with a GIN index; a query that finds nothing is retried with
  each unknown word replaced by its closest indexed word (``pg_trgm`` similarity
  over the lexicon ``search_terms``).

The index only finds the matching pages, at most :data:`CANDIDATE_LIMIT` of them;
they are ranked here, the same way on both backends (BM25's term frequency and
length normalisation over the page text and its title and codes). Ranking in the
database cost seconds at a million pages for phrases of common words: FTS5's
``bm25`` scans each phrase's whole posting list for its document frequency, and
PostgreSQL ranked and rechecked every match before applying the LIMIT. A query
matching more pages says so (``truncated``): refine it, or filter.

The exact mode runs the folded query and keeps the pages whose own words carry
the diacritics typed. Only the latest archived version of a code is indexed.
The tables are created by migration 0002 and written through the catalog's
connection (and, on SQLite, its writer queue).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.engine import Connection

from digitize.catalog import Catalog, documents
from digitize.errors import CatalogConflict, ConfigurationError, DigitizeError, SearchQueryInvalid, TransientError

if TYPE_CHECKING:
    from digitize.archive import Archive

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
MAX_LIMIT = 100
CANDIDATE_LIMIT = 300
"""Matching pages ranked at most per query; when more match, the first found are ranked (``truncated``)."""
PHRASE_CHECK_LIMIT = 2000
"""PostgreSQL: pages holding a phrase's words and word pairs whose word positions are checked at most."""
BM25_K1, BM25_B = 1.2, 0.75
META_WEIGHT = 2.0
"""An occurrence in the title or codes counts as this many in the page text."""
FUZZY_MIN_SIMILARITY = 0.3
SNIPPET_CHARS = 200
MARK_START, MARK_END = "«", "»"

_WORD = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"?|(\S+)')
_D_FOLD = str.maketrans({"đ": "d", "Đ": "D"})
_KINDS = ("KQ", "TP")

_metadata = sa.MetaData()
search_pages = sa.Table(
    "search_pages",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.Integer, nullable=False),
    sa.Column("page", sa.Integer, nullable=False),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("agency_code", sa.String(13), nullable=False),
    sa.Column("kind", sa.String(2), nullable=False),
    sa.Column("dossier_code", sa.String(40)),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("holder_id", sa.String(100)),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date),
    sa.Column("body", sa.Text, nullable=False),
)
search_terms = sa.Table("search_terms", _metadata, sa.Column("term", sa.Text, primary_key=True))

_SELECT_COLUMNS = ("id", "document_id", "page", "code", "version", "title", "agency_code", "kind", "dossier_code",
                   "procedure_code", "holder_id", "issued_date", "valid_until", "body")


# ------------------------------------------------------------------------------------------ text


def words(text: str) -> list[str]:
    """The words of ``text`` as the index sees them before folding: NFC, lower-case, letters and digits."""
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """A word without any diacritic: ``"Đất"`` → ``"dat"``, ``"ưởng"`` → ``"uong"``."""
    decomposed = unicodedata.normalize("NFD", word.translate(_D_FOLD).lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _letter_variants() -> dict[str, str]:
    """Each base letter → the lower-case precomposed letters folding to it (``"d"`` → ``"đ"``, ``"a"`` → ``"àá…"``)."""
    variants: dict[str, str] = {}
    for ch in map(chr, (*range(0xC0, 0x250), *range(0x1E00, 0x1F00))):
        base = fold(ch)
        if ch == ch.lower() and len(base) == 1 and base != ch:
            variants[base] = variants.get(base, "") + ch
    return variants


_VARIANTS = _letter_variants()


def phrases_pattern(phrases: Sequence[Phrase]) -> re.Pattern[str]:
    """One regex finding every phrase in lower-case NFC text whatever its diacritics; group ``p{i}`` is phrase i.

    Used to count occurrences for ranking in one pass over each page (a fold of the whole page costs more);
    longer phrases are tried first, and a word inside a matched phrase is not counted again.
    """
    alternatives = []
    for i in sorted(range(len(phrases)), key=lambda i: -len(phrases[i])):
        parts = ["".join(f"[{c}{_VARIANTS[c]}]" if c in _VARIANTS else re.escape(c) for c in fold(t))
                 for t in phrases[i]]
        alternatives.append(f"(?P<p{i}>" + r"[\W_]+".join(parts) + ")")
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + r")(?![^\W_])")


def index_text(text: str) -> str:
    """What goes into the index: the words joined by spaces, ``đ`` folded (the backend removes the rest)."""
    return " ".join(words(text)).translate(_D_FOLD)


Phrase = tuple[str, ...]


def parse_query(query: str) -> tuple[Phrase, ...]:
    """Words and ``"quoted phrases"``, all required; a code or hyphenated word is a phrase of its parts."""
    if not isinstance(query, str) or not query.strip():
        raise SearchQueryInvalid("the search query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchQueryInvalid(f"the search query has {len(query)} characters; at most {MAX_QUERY_CHARS}")
    phrases: list[Phrase] = []
    for quoted, bare in _PHRASE.findall(query):
        tokens = tuple(words(quoted or bare))
        if tokens and tokens not in phrases:
            phrases.append(tokens)
    if not phrases:
        raise SearchQueryInvalid(f"the search query {query!r} holds no word or number")
    if len(phrases) > MAX_TERMS:
        raise SearchQueryInvalid(f"the search query has {len(phrases)} terms; at most {MAX_TERMS}")
    return tuple(phrases)


def _fts5_query(phrases: Sequence[Phrase]) -> str:
    """Each phrase, and first the word pairs of phrases (a rare pair lets FTS5 skip through long word lists)."""
    query = " AND ".join('"' + " ".join(t.translate(_D_FOLD) for t in p) + '"' for p in phrases)
    pairs = sorted({f"{fold(a)}_{fold(b)}" for p in phrases for a, b in itertools.pairwise(p)})
    if pairs:
        query = "pairs : (" + " AND ".join(f'"{pair}"' for pair in pairs) + ") AND " + query
    return query


def _tsquery(phrases: Sequence[Phrase]) -> str:
    return " & ".join("(" + " <-> ".join(f"'{t.translate(_D_FOLD)}'" for t in p) + ")" for p in phrases)


def word_pairs(text: str) -> list[str]:
    """Adjacent folded words ("quyen su", "su dung", …): extra PostgreSQL lexemes that make phrases selective.

    A phrase of common words matches most pages word by word, and checking positions in every candidate's
    tsvector costs seconds at a million pages; requiring its word pairs first lets the GIN index narrow it.
    """
    folded = [fold(w) for w in words(text)]
    return sorted({f"{a} {b}" for a, b in itertools.pairwise(folded)})


def _pairs_query(phrases: Sequence[Phrase]) -> str | None:
    """tsquery literal requiring the word pairs of every phrase of two words or more (None if there is none)."""
    pairs = sorted({f"{fold(a)} {fold(b)}" for p in phrases for a, b in itertools.pairwise(p)})
    return " & ".join(f"'{pair}'" for pair in pairs) or None


def _contains(tokens: Sequence[str], phrase: Phrase) -> int:
    """Index of the first occurrence of ``phrase`` in ``tokens``, or -1."""
    n = len(phrase)
    first = phrase[0]
    for i, token in enumerate(tokens):
        if token == first and tuple(tokens[i:i + n]) == phrase:
            return i
    return -1


def matches_exactly(text: str, phrases: Sequence[Phrase]) -> bool:
    """Every phrase occurs in ``text`` with the diacritics typed (case does not matter)."""
    tokens = words(text)
    return all(_contains(tokens, p) >= 0 for p in phrases)


def make_snippet(text: str, phrases: Sequence[Phrase], *, exact: bool = False, width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text`` around the first match, each matched word between « and »."""
    flat = " ".join(unicodedata.normalize("NFC", text).split())
    spans = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(flat)]
    if not spans:
        return ""
    key: Callable[[str], str] = (lambda w: w) if exact else fold
    tokens = [key(w) for _, _, w in spans]
    marked: set[int] = set()
    for phrase in phrases:
        wanted = tuple(key(t) for t in phrase)
        for i in range(len(tokens) - len(wanted) + 1):
            if tuple(tokens[i:i + len(wanted)]) == wanted:
                marked.update(range(i, i + len(wanted)))
    first = min(marked) if marked else 0
    start = max(0, spans[first][0] - width // 3)
    if start > 0:
        start = next((s for s, _, _ in spans if s >= start), start)
    end = min(len(flat), start + width)
    if end < len(flat):
        end = max((e for _, e, _ in spans if e <= end), default=end)
    pieces: list[str] = ["…" if start > 0 else ""]
    cursor = start
    i = 0
    while i < len(spans):  # a run of adjacent matched words gets one pair of marks
        if i in marked and spans[i][0] >= start:
            j = i
            while j + 1 in marked and spans[j + 1][1] <= end:
                j += 1
            if spans[j][1] <= end:
                pieces += [flat[cursor:spans[i][0]], MARK_START, flat[spans[i][0]:spans[j][1]], MARK_END]
                cursor = spans[j][1]
            i = j
        i += 1
    pieces += [flat[cursor:end], "…" if end < len(flat) else ""]
    return "".join(pieces)


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
class SearchHit:
    """One matching page of an archived document."""

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


def _meta_text(row: Any) -> str:
    """Title and codes, indexed beside each page so a code or title finds every page of the document."""
    parts = [row.title, row.code, row.dossier_code or "", row.procedure_code or ""]
    return index_text(" ".join(parts))


def _fts_row(rowid: int, body: str, meta: str) -> dict[str, Any]:
    """The values of an FTS5 row; a delete must send exactly what was inserted, so both use this."""
    pairs = " ".join(p.replace(" ", "_") for p in word_pairs(f"{meta}\n{body}"))
    return {"id": rowid, "body": index_text(body), "meta": meta, "pairs": pairs}


def _delete_pages(conn: Connection, dialect: str, condition: sa.ColumnElement[bool]) -> int:
    rows = conn.execute(sa.select(search_pages).where(condition)).all()
    if not rows:
        return 0
    if dialect == "sqlite":
        conn.execute(
            sa.text("INSERT INTO search_fts(search_fts, rowid, body, meta, pairs) "
                    "VALUES ('delete', :id, :body, :meta, :pairs)"),
            [_fts_row(r.id, r.body, _meta_text(r)) for r in rows],
        )
    conn.execute(sa.delete(search_pages).where(search_pages.c.id.in_([r.id for r in rows])))
    return len(rows)


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
    if not batch:
        return 0
    dialect = catalog.dialect
    with catalog.write() as conn:
        records: dict[int, Any] = {}
        ids = list(batch)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            records.update({r.id: r for r in conn.execute(sa.select(documents).where(documents.c.id.in_(chunk)))})
        for document_id in ids:
            record = records.get(document_id)
            if record is None or record.status != "ARCHIVED" or record.code is None:
                state = "not in the catalog" if record is None else record.status
                raise CatalogConflict(f"document {document_id} is {state}: only archived documents are indexed")
        return _index_many(conn, dialect, [(records[i], batch[i]) for i in ids])


def _index_many(conn: Connection, dialect: str, work: list[tuple[Any, Sequence[str]]]) -> int:
    codes = sorted({record.code for record, _ in work})
    latest: dict[str, int] = {}
    for start in range(0, len(codes), 500):
        chunk = codes[start:start + 500]
        # status is filtered here, not in SQL: a planner without statistics would scan the status index
        for code, version, status in conn.execute(
                sa.select(documents.c.code, documents.c.version, documents.c.status)
                .where(documents.c.code.in_(chunk))):
            if status == "ARCHIVED" and version > latest.get(code, 0):
                latest[code] = version
    ids = [record.id for record, _ in work]
    for start in range(0, len(ids), 500):
        _delete_pages(conn, dialect, search_pages.c.document_id.in_(ids[start:start + 500]))
    current = sorted({r.code for r, _ in work if latest.get(r.code, r.version) <= r.version})
    for start in range(0, len(current), 500):  # pages of older versions of the codes indexed now
        _delete_pages(conn, dialect, search_pages.c.code.in_(current[start:start + 500])
                      & search_pages.c.document_id.not_in(ids))
    rows: list[dict[str, Any]] = []
    metas: list[str] = []
    for record, pages in work:
        if latest.get(record.code, record.version) > record.version:
            continue  # a newer version of this code is archived: only the latest is searchable
        meta = _meta_text(record)
        for number, text in enumerate(pages, start=1):
            if text and text.strip():
                rows.append({
                    "document_id": record.id, "page": number, "code": record.code, "version": record.version,
                    "title": record.title, "agency_code": record.agency_code, "kind": record.kind,
                    "dossier_code": record.dossier_code, "procedure_code": record.procedure_code,
                    "holder_id": record.holder_id, "issued_date": record.issued_date,
                    "valid_until": record.valid_until, "body": unicodedata.normalize("NFC", text)})
                metas.append(meta)
    if not rows:
        return 0
    if dialect == "postgresql":
        _insert_postgresql(conn, rows, metas)
    else:
        new_ids = conn.execute(sa.insert(search_pages).returning(search_pages.c.id, sort_by_parameter_order=True),
                               rows).scalars().all()
        conn.execute(sa.text("INSERT INTO search_fts(rowid, body, meta, pairs) VALUES (:id, :body, :meta, :pairs)"),
                     [_fts_row(i, r["body"], m) for i, r, m in zip(new_ids, rows, metas, strict=True)])
    return len(rows)


def _insert_postgresql(conn: Connection, rows: list[dict[str, Any]], metas: list[str]) -> None:
    columns = [c for c in _SELECT_COLUMNS if c != "id"]
    conn.execute(
        sa.text(f"INSERT INTO search_pages ({', '.join(columns)}, tsv) VALUES "
                f"({', '.join(':' + c for c in columns)}, "
                "setweight(to_tsvector('digitize_vi', :meta), 'A') || to_tsvector('digitize_vi', :tokens)"
                " || array_to_tsvector(CAST(:pairs AS text[])))"),
        [{**r, "meta": m, "tokens": index_text(r["body"]), "pairs": word_pairs(f"{m}\n{r['body']}")}
         for r, m in zip(rows, metas, strict=True)],
    )
    lexicon = sorted({fold(w) for r in rows for w in words(r["body"]) if 2 <= len(w) <= 40 and not w.isdigit()})
    for start in range(0, len(lexicon), 5000):  # sorted: concurrent indexers take the key locks in the same order
        conn.execute(pg_dialect.insert(search_terms).values([{"term": t} for t in lexicon[start:start + 5000]])
                     .on_conflict_do_nothing())


def remove_document(catalog: Catalog, document_id: int) -> int:
    """Drop a document's pages from the index (e.g. after a correction was refused); returns pages removed."""
    with catalog.write() as conn:
        return _delete_pages(conn, catalog.dialect, search_pages.c.document_id == document_id)


def indexed_document_ids(catalog: Catalog) -> set[int]:
    """Documents that have at least one page in the index."""
    with catalog.read() as conn:
        return set(conn.execute(sa.select(search_pages.c.document_id).distinct()).scalars())


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
    with catalog.write() as conn:
        stale = [i for i in present if i not in wanted]
        removed = 0
        for start in range(0, len(stale), 500):
            removed += _delete_pages(conn, catalog.dialect, search_pages.c.document_id.in_(stale[start:start + 500]))
    return RebuildSummary(done, pages, removed, tuple(failures))


# ------------------------------------------------------------------------------------------ searching


def _filtered(query: sa.Select[Any], filters: SearchFilters) -> sa.Select[Any]:
    p = search_pages.c
    if filters.agency:
        query = query.where(p.agency_code == filters.agency)
    if filters.kind:
        query = query.where(p.kind == filters.kind)
    if filters.issued_from:
        query = query.where(p.issued_date >= filters.issued_from)
    if filters.issued_to:
        query = query.where(p.issued_date <= filters.issued_to)
    if filters.holder:
        query = query.where(p.holder_id == filters.holder)
    return query


def _candidates(conn: Connection, dialect: str, phrases: Sequence[Phrase],
                filters: SearchFilters) -> tuple[list[Any], bool]:
    """The matching pages, at most :data:`CANDIDATE_LIMIT` of them, unranked, and whether more may match.

    No rank in SQL: FTS5's bm25 counts the pages holding each phrase over its whole posting list, and
    PostgreSQL would rank (and recheck) every match before the LIMIT. Here the index stops at the limit:
    the first matches in the index's order (the earliest indexed on SQLite, table order on PostgreSQL).
    """
    columns = [search_pages.c[c] for c in _SELECT_COLUMNS]
    if dialect == "postgresql":
        # With a LIMIT the planner picks a sequential scan when it expects many matches, and reads the whole
        # table (a tsvector detoasted per row) when they are fewer than it thought; the GIN index is bounded.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        tsv: sa.ColumnElement[Any] = sa.literal_column("search_pages.tsv")
        tsq = sa.func.to_tsquery(sa.literal_column("'digitize_vi'"), sa.bindparam("q", _tsquery(phrases)))
        pairs = _pairs_query(phrases)
        if pairs is None:  # words only: the GIN index answers without reading any tsvector
            query = _filtered(sa.select(*columns).where(tsv.op("@@")(tsq)), filters).limit(CANDIDATE_LIMIT)
            return list(conn.execute(query)), False
        # A phrase: the pages holding its words and word pairs come from the index alone; checking positions
        # reads each page's tsvector (~25 µs), and a rare phrase of common pairs has few matches among
        # hundreds of thousands of such pages, so only the first PHRASE_CHECK_LIMIT of them are checked.
        words_and_pairs = sa.cast(sa.bindparam("pairs", pairs), pg_dialect.TSQUERY).op("&&")(
            sa.func.to_tsquery(sa.literal_column("'digitize_vi'"),
                               sa.bindparam("w", _tsquery([(t,) for p in phrases for t in p]))))
        ids = list(conn.execute(_filtered(sa.select(search_pages.c.id).where(tsv.op("@@")(words_and_pairs)),
                                          filters).limit(PHRASE_CHECK_LIMIT)).scalars())
        if not ids:
            return [], False
        query = (sa.select(*columns)
                 .where(search_pages.c.id == sa.any_(sa.bindparam("ids", ids, type_=pg_dialect.ARRAY(sa.Integer))),
                        tsv.op("@@")(tsq))
                 .limit(CANDIDATE_LIMIT))
        return list(conn.execute(query)), len(ids) >= PHRASE_CHECK_LIMIT
    fts = sa.table("search_fts", sa.column("rowid"))
    matched = (sa.select(fts.c.rowid).select_from(fts)
               .where(sa.literal_column("search_fts").op("MATCH")(sa.bindparam("q", _fts5_query(phrases)))))
    if filters != SearchFilters():
        matched = _filtered(matched.join(search_pages, search_pages.c.id == fts.c.rowid), filters)
    matched = matched.order_by(fts.c.rowid).limit(CANDIDATE_LIMIT)  # FTS5's own order: descending costs more
    query = sa.select(*columns).where(search_pages.c.id.in_(matched.scalar_subquery()))
    return list(conn.execute(query)), False


def _ranked(rows: Sequence[Any], phrases: Sequence[Phrase]) -> list[tuple[Any, float]]:
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


def _hit(row: Any, score: float, phrases: Sequence[Phrase], exact: bool) -> SearchHit:
    return SearchHit(
        document_id=row.document_id, code=row.code, version=row.version, page=row.page, title=row.title,
        agency_code=row.agency_code, kind=row.kind, dossier_code=row.dossier_code,
        procedure_code=row.procedure_code, holder_id=row.holder_id, issued_date=row.issued_date,
        valid_until=row.valid_until, score=round(score, 6), snippet=make_snippet(row.body, phrases, exact=exact),
    )


def _corrected(conn: Connection, phrases: Sequence[Phrase]) -> tuple[Phrase, ...] | None:
    """Each word unknown to the lexicon replaced by its most similar indexed word (pg_trgm); None if no change."""
    changed = False
    out: list[Phrase] = []
    for phrase in phrases:
        fixed: list[str] = []
        for token in phrase:
            folded = fold(token)
            if len(folded) < 3 or folded.isdigit() or conn.execute(
                    sa.select(search_terms.c.term).where(search_terms.c.term == folded)).first() is not None:
                fixed.append(token)
                continue
            similarity = sa.func.similarity(search_terms.c.term, folded)
            best = conn.execute(
                sa.select(search_terms.c.term)
                .where(search_terms.c.term.bool_op("%")(folded), similarity >= FUZZY_MIN_SIMILARITY)
                .order_by(similarity.desc(), search_terms.c.term).limit(1)).scalar()
            changed |= best is not None
            fixed.append(best if best is not None else token)
        out.append(tuple(fixed))
    return tuple(out) if changed else None


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
    dialect = catalog.dialect
    with catalog.read() as conn:
        rows, partial = _candidates(conn, dialect, phrases, filters)
        corrected = None
        if not rows and not partial and not exact and dialect == "postgresql":
            fixed = _corrected(conn, phrases)
            if fixed is not None:
                rows, partial = _candidates(conn, dialect, fixed, filters)
                corrected = " ".join('"' + " ".join(p) + '"' if len(p) > 1 else p[0] for p in fixed)
                phrases = fixed
    ranked: Iterable[tuple[Any, float]] = _ranked(rows, phrases)
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
