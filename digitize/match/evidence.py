"""What a scan's OCR text says about the register row it digitizes: IDs, codes, numbers, dates, agency, title.

OCR of a letterhead drops diacritics and mistakes letters for digits, so everything is read on a
*folded* copy of the text (diacritics off, ``đ`` → ``d``, lower case; the same length as the text,
so a match's position holds in both), and digit slips are repaired only inside a run that must be
digits by its shape: ``O``/``o`` → ``0``, ``I``/``l``/``|`` → ``1``, and only when most of the run
already is digits. Nothing here decides anything: :mod:`digitize.match.scoring` weighs the evidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from rapidfuzz import fuzz

_T = TypeVar("_T")

DIGIT = r"[0-9OoIl|\]]"
"""A character OCR may have made of a digit (see :func:`digits`)."""

_SLIPS = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "|": "1", "]": "1"})
_CITIZEN_ID = re.compile(rf"(?<![0-9A-Za-z]){DIGIT}{{12}}(?![0-9A-Za-z])")
_TAX_CODE = re.compile(rf"(?:ma so thue|mst)\s*[:.]?\s*({DIGIT}{{10}}(?:\s*-\s*{DIGIT}{{3}})?)(?![0-9])")
_DOSSIER = re.compile(
    rf"({DIGIT}{{3}})\s?\.\s?({DIGIT}{{2}})\s?\.\s?({DIGIT}{{2}})\s?\.\s?([a-z])\s?({DIGIT}{{2}})"
    rf"\s?-\s?({DIGIT}{{8}}|{DIGIT}{{6}})\s?-\s?({DIGIT}{{7}}|{DIGIT}{{4}})(?![0-9])")
_NUMBER = re.compile(rf"\bso\s*[:.]?\s*({DIGIT}{{1,6}})\s*/\s*([a-z0-9][a-z0-9./-]{{0,30}}[a-z0-9])")
_WRITTEN_DATE = re.compile(rf"ngay\s*({DIGIT}{{1,2}})\s*thang\s*({DIGIT}{{1,2}})\s*nam\s*({DIGIT}{{4}})")
_NUMERIC_DATE = re.compile(rf"(?<![0-9])({DIGIT}{{1,2}})\s?[/.-]\s?({DIGIT}{{1,2}})\s?[/.-]\s?({DIGIT}{{4}})(?![0-9])")
_ABBREVIATIONS = ((re.compile(r"\bubnd\b"), "uy ban nhan dan"), (re.compile(r"\bhdnd\b"), "hoi dong nhan dan"),
                  (re.compile(r"\btp\.?\s"), "thanh pho "))
_SPACES = re.compile(r"\s+")
LETTERHEAD_LINES = 12
"""Lines from the top of a page searched for the issuing agency's name (the letterhead)."""

AGENCY_MIN_SIMILARITY = 88.0
"""Below this rapidfuzz similarity (0–100) an agency's name does not count as found in the letterhead."""


def fold(text: str) -> str:
    """``text`` without diacritics, ``đ`` as ``d``, lower case, and exactly as long (one character for one)."""
    out = []
    for ch in text:
        if ch in "đĐ":
            out.append("d")
            continue
        base = unicodedata.normalize("NFD", ch)[0] if ord(ch) > 127 else ch
        out.append(base.lower() if len(base.lower()) == 1 else base)
    return "".join(out)


def digits(run: str) -> str | None:
    """The digits OCR meant in ``run`` (``O`` → 0, ``l`` → 1…), or ``None`` when fewer than 3/4 were digits.

    A run mostly made of letters is a word, not a number with slips: it is left alone.
    """
    compact = re.sub(r"\s", "", run)
    real = sum(c.isdigit() for c in compact)
    if not compact or real * 4 < len(compact) * 3:
        return None
    return compact.translate(_SLIPS)


def name_key(name: str) -> str:
    """An agency or title name as compared: folded, abbreviations spelled out, single spaces."""
    key = fold(name)
    for pattern, full in _ABBREVIATIONS:
        key = pattern.sub(full, key + " ").strip()
    return _SPACES.sub(" ", key).strip()


@dataclass(frozen=True)
class Evidence:
    """What one page, or several pages of one document, says."""

    holder_ids: tuple[str, ...] = ()
    """12-digit citizen IDs and tax codes (10 digits, or 10-3), digits repaired."""

    dossier_codes: tuple[str, ...] = ()
    """Circular 01/2018 dossier codes, e.g. ``000.00.12.H29-210617-0003``."""

    numbers: tuple[str, ...] = ()
    """Number and symbol, e.g. ``123/QĐ-UBND`` read as ``123/QD-UBND`` (folded, upper case)."""

    written_dates: tuple[date, ...] = ()
    """Dates written out ("ngày 17 tháng 6 năm 2021"): the issue date is one of them."""

    numeric_dates: tuple[date, ...] = ()
    """dd/mm/yyyy dates (birth dates and validity ends too)."""

    text: str = field(default="", repr=False)
    """The folded text, for the title and agency comparisons."""

    letterhead: str = field(default="", repr=False)
    """The folded top lines of the first page (where the agency is named)."""

    @property
    def strong(self) -> tuple[str, ...]:
        """The identifying values: a change of these between pages means another document begins."""
        return self.holder_ids + self.dossier_codes + self.numbers

    def merged(self, other: Evidence) -> Evidence:
        """The evidence of two consecutive pages of one document."""
        return Evidence(
            holder_ids=_union(self.holder_ids, other.holder_ids),
            dossier_codes=_union(self.dossier_codes, other.dossier_codes),
            numbers=_union(self.numbers, other.numbers),
            written_dates=_union(self.written_dates, other.written_dates),
            numeric_dates=_union(self.numeric_dates, other.numeric_dates),
            text=(self.text + "\n" + other.text).strip(), letterhead=self.letterhead or other.letterhead)


def _union(a: Sequence[_T], b: Sequence[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys([*a, *b]))


def extract(text: str) -> Evidence:
    """The evidence of one page's OCR text."""
    folded = fold(unicodedata.normalize("NFC", text))
    lines = [line.strip() for line in folded.splitlines() if line.strip()]
    return Evidence(
        holder_ids=_holder_ids(folded), dossier_codes=_dossier_codes(folded), numbers=_numbers(folded),
        written_dates=_dates(_WRITTEN_DATE, folded), numeric_dates=_dates(_NUMERIC_DATE, folded),
        text=_SPACES.sub(" ", " ".join(lines)), letterhead=" ".join(lines[:LETTERHEAD_LINES]))


def _holder_ids(folded: str) -> tuple[str, ...]:
    found = [digits(m.group(0)) for m in _CITIZEN_ID.finditer(folded)]
    found += [digits(m.group(1).replace(" ", "")) for m in _TAX_CODE.finditer(folded)]
    return tuple(dict.fromkeys(f for f in found if f is not None and f[:1].isdigit()))


def _dossier_codes(folded: str) -> tuple[str, ...]:
    codes = []
    for m in _DOSSIER.finditer(folded):
        parts = [digits(g) for g in m.groups()]
        if any(p is None for p in parts[:3] + parts[4:]):
            continue
        letter, day, seq = m.group(4), m.group(6), m.group(7)
        if (len(day), len(seq)) not in ((6, 4), (8, 7)):
            continue
        codes.append(f"{parts[0]}.{parts[1]}.{parts[2]}.{letter.upper()}{parts[4]}-{parts[5]}-{parts[6]}")
    return tuple(dict.fromkeys(codes))


def _numbers(folded: str) -> tuple[str, ...]:
    found = []
    for m in _NUMBER.finditer(folded):
        number = digits(m.group(1))
        if number is not None:
            found.append(f"{int(number)}/{m.group(2).upper()}")
    return tuple(dict.fromkeys(found))


def _dates(pattern: re.Pattern[str], folded: str) -> tuple[date, ...]:
    found = []
    for m in pattern.finditer(folded):
        parts = [digits(g) for g in m.groups()]
        if any(p is None for p in parts):
            continue
        try:
            found.append(date(int(parts[2] or 0), int(parts[1] or 0), int(parts[0] or 0)))
        except ValueError:
            continue
    return tuple(dict.fromkeys(found))


def agency_similarities(evidence: Evidence, agencies: Iterable[tuple[str, str]]) -> dict[str, float]:
    """How well each agency's name (``(code, name)`` pairs) is found in the letterhead, 0–100.

    Agencies below :data:`AGENCY_MIN_SIMILARITY` are left out. The letterhead names the issuer in capitals,
    often spelled out ("ỦY BAN NHÂN DÂN XÃ TÂN PHÚ" for "UBND xã Tân Phú"): both sides are compared folded and
    spelled out, by rapidfuzz's best partial alignment.
    """
    head = name_key(evidence.letterhead)
    found = {}
    for code, name in agencies:
        key = name_key(name)
        if not key or not head:
            continue
        score = fuzz.partial_ratio(key, head)
        if score >= AGENCY_MIN_SIMILARITY:
            found[code] = float(score)
    return found


def title_similarity(evidence: Evidence, title: str) -> float:
    """How well ``title`` is found in the text, 0–100 (rapidfuzz's best partial alignment, folded)."""
    key = name_key(title)
    if not key or not evidence.text:
        return 0.0
    return float(fuzz.partial_ratio(key, name_key(evidence.text)))
