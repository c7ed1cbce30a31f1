"""What a word is, for search: folding, query parsing, the index terms of a text, matching, snippets.

Officers type what they remember — "quyen su dung dat", a holder's name, a code — and expect to find
"quyền sử dụng đất". Words are therefore matched folded (diacritics removed, ``đ`` → ``d``, which neither
SQLite's ``unicode61`` nor PostgreSQL's stock ``unaccent`` rules can be relied on to fold), and the page
is kept as OCR'd for snippets and for the exact-diacritics mode.

Both backends get the same tokens: a text is split here into words (letters and digits; a code like
``000.00.00.H49.2021.KQ.000123`` becomes a run of adjacent words, so it matches as a phrase), lower-cased,
``đ`` folded, and joined by spaces (:data:`ANALYZER` hands these functions to the catalog, which stores
the terms). Adjacent word pairs (``quyen su``, ``su dung``, …) are indexed too: a phrase of common words
then narrows on its rare pairs before positions are checked.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache

from digitize.catalog import FulltextQuery, TextAnalyzer
from digitize.errors import SearchQueryInvalid

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
SNIPPET_CHARS = 200
MARK_START, MARK_END = "«", "»"

_WORD = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"?|(\S+)')
_D_FOLD = str.maketrans({"đ": "d", "Đ": "D"})

Phrase = tuple[str, ...]
"""A query's word, or its words in order for a quoted phrase or a code."""


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


def word_pairs(text: str) -> list[str]:
    """Adjacent folded words ("quyen su", "su dung", …), indexed beside the words to make phrases selective.

    A phrase of common words matches most pages word by word, and checking positions in every candidate
    costs seconds at a million pages; requiring its word pairs first lets the index narrow it (FTS5's
    ``pairs`` column, extra lexemes in PostgreSQL's tsvector).
    """
    folded = [fold(w) for w in words(text)]
    return sorted({f"{a} {b}" for a, b in itertools.pairwise(folded)})


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


def lexicon_words(text: str) -> set[str]:
    """The folded words of ``text`` worth offering as corrections of a misspelled query word (not numbers)."""
    return {fold(w) for w in words(text) if 2 <= len(w) <= 40 and not w.isdigit()}


ANALYZER = TextAnalyzer(words=index_text, pairs=word_pairs, lexicon=lexicon_words)
"""Search's words, as the catalog's full-text index stores them."""


def fulltext_query(phrases: Sequence[Phrase]) -> FulltextQuery:
    """``phrases`` as index terms: each word as :func:`index_text` writes it, and the phrases' folded word pairs."""
    return FulltextQuery(
        phrases=tuple(tuple(t.translate(_D_FOLD) for t in p) for p in phrases),
        pairs=tuple(sorted({f"{fold(a)} {fold(b)}" for p in phrases for a, b in itertools.pairwise(p)})),
    )
