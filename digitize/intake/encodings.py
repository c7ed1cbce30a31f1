"""Vietnamese text encodings of manifests: UTF-8, and the legacy ones officers' spreadsheets still use.

Windows-1258, TCVN3 (ABC) and VNI-Windows are recognised by how many words read as well-formed
Vietnamese syllables, and converted only when one reading is clearly right; anything else is refused
with how to save the file as UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from digitize.errors import ManifestError
from digitize.intake.inbox import MANIFEST_NAME

# --- legacy Vietnamese encodings -------------------------------------------------------------------
# Officers' spreadsheets still come in the pre-Unicode encodings of Vietnamese Windows. Windows-1258
# decodes with Python's codec (tones as combining marks, then NFC). TCVN3 (TCVN 5712:1993, the "ABC"
# .VnTime fonts) is one byte per lower-case letter; its capitals with tones live in separate upper-case
# fonts (.VnTimeH) under the SAME bytes, so a file typed in one cannot be told from the other: such
# text is refused. VNI-Windows writes a base letter followed by mark bytes (cp1252 glyphs).
_TONES = "\u0300\u0301\u0309\u0303\u0323"  # grave, acute, hook, tilde, dot below: the order of the tables
_TCVN3_LOWER = (
    ("a", "\xb5\xb8\xb6\xb7\xb9"), ("ă", "\xbb\xbe\xbc\xbd\xc6"), ("â", "\xc7\xca\xc8\xc9\xcb"),
    ("e", "\xcc\xd0\xce\xcf\xd1"), ("ê", "\xd2\xd5\xd3\xd4\xd6"), ("i", "\xd7\xdd\xd8\xdc\xde"),
    ("o", "\xdf\xe3\xe1\xe2\xe4"), ("ô", "\xe5\xe8\xe6\xe7\xe9"), ("ơ", "\xea\xed\xeb\xec\xee"),
    ("u", "\xef\xf3\xf1\xf2\xf4"), ("ư", "\xf5\xf8\xf6\xf7\xf9"), ("y", "\xfa\xfd\xfb\xfc\xfe"),
)
_TCVN3_PLAIN = {"ă": "\xa8", "â": "\xa9", "ê": "\xaa", "ô": "\xab", "ơ": "\xac", "ư": "\xad", "đ": "\xae",
                "Ă": "\xa1", "Â": "\xa2", "Ê": "\xa3", "Ô": "\xa4", "Ơ": "\xa5", "Ư": "\xa6", "Đ": "\xa7"}
# VNI marks per tone (grave, acute, hook, tilde, dot), lower case; upper case is the cp1252 capital.
_VNI_TONE = "øùûõï"
_VNI_CIRCUMFLEX = "âàáåãä"  # no tone, then the five tones
_VNI_BREVE = "êèéúüë"
_VNI_I = "ìíæóò"
_VNI_SINGLE = {"ơ": "ô", "ư": "ö", "đ": "ñ", "ỵ": "î"}


def _tone_of(char: str) -> tuple[str, int | None]:
    """A Vietnamese letter as (letter without tone, NFC; index of its tone in _TONES or None)."""
    parts = unicodedata.normalize("NFD", char)
    tone = next((i for i, t in enumerate(_TONES) if t in parts), None)
    return unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONES)), tone


def _tcvn3_table() -> dict[str, str]:
    """Unicode letter → TCVN3 byte (as a latin-1 character)."""
    table = dict(_TCVN3_PLAIN)
    for base, codes in _TCVN3_LOWER:
        for tone, code in zip(_TONES, codes, strict=True):
            table[unicodedata.normalize("NFC", base + tone)] = code
    return table


def _vni_code(char: str) -> str | None:
    """VNI-Windows spelling (cp1252 characters) of one Vietnamese letter; ``None`` for plain ASCII or others."""
    lower = char.lower()
    upper = char != lower
    base, tone = _tone_of(lower)
    if lower in _VNI_SINGLE:
        code = _VNI_SINGLE[lower]
    elif base in ("ơ", "ư") and tone is not None:
        code = _VNI_SINGLE[base] + _VNI_TONE[tone]
    elif base == "i" and tone is not None:
        code = _VNI_I[tone]
    elif base in ("â", "ê", "ô"):
        plain = unicodedata.normalize("NFD", base)[0]
        code = plain + _VNI_CIRCUMFLEX[0 if tone is None else tone + 1]
    elif base == "ă":
        code = "a" + _VNI_BREVE[0 if tone is None else tone + 1]
    elif base in "aeouy" and len(base) == 1 and tone is not None:
        code = base + _VNI_TONE[tone]
    else:
        return None
    return code.upper() if upper else code


def _vietnamese_letters() -> list[str]:
    letters = []
    for base in ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y"):
        letters += [base] + [unicodedata.normalize("NFC", base + t) for t in _TONES]
    letters.append("đ")
    return letters + [c.upper() for c in letters]


def encode_legacy(text: str, encoding: str) -> bytes:
    """Text in ``tcvn3`` or ``vni`` (what the old Vietnamese fonts wrote); for tests and conversions.

    TCVN3 has no capitals with tones: they are written with the small letter's byte (an upper-case font
    draws it big), which is exactly why such files are ambiguous.
    """
    out = []
    tcvn3 = _tcvn3_table()
    for char in unicodedata.normalize("NFC", text):
        if encoding == "tcvn3":
            out.append(tcvn3.get(char) or tcvn3.get(char.lower()) or char)
        elif encoding == "vni":
            out.append(_vni_code(char) or char)
        else:
            raise ValueError(f"unknown legacy encoding {encoding!r}")
    return "".join(out).encode("cp1252" if encoding == "vni" else "latin-1")


@lru_cache(maxsize=1)
def _vni_decoder() -> tuple[re.Pattern[str], dict[str, str]]:
    table = {code: letter for letter in _vietnamese_letters() if (code := _vni_code(letter)) is not None}
    pattern = re.compile("|".join(re.escape(c) for c in sorted(table, key=len, reverse=True)))
    return pattern, table


def _decode_vni(raw: bytes) -> str:
    pattern, table = _vni_decoder()
    return pattern.sub(lambda m: table[m.group(0)], raw.decode("cp1252"))


def _decode_tcvn3(raw: bytes) -> str:
    table = {code: letter for letter, code in _tcvn3_table().items()}
    return "".join(table.get(chr(b)) or (bytes([b]).decode("cp1252") if b >= 0x80 else chr(b)) for b in raw)


_ONSETS = ("b", "c", "ch", "d", "đ", "g", "gh", "gi", "h", "k", "kh", "l", "m", "n", "ng", "ngh", "nh", "p", "ph",
           "qu", "r", "s", "t", "th", "tr", "v", "x", "")
_NUCLEI = frozenset(("a", "ă", "â", "e", "ê", "i", "y", "o", "ô", "ơ", "u", "ư", "ai", "ao", "au", "ay", "âu",
                     "ây", "eo", "êu", "ia", "iê", "yê", "iu", "oa", "oă", "oe", "oi", "ôi", "ơi", "oo", "ua",
                     "uâ", "uê", "ui", "uô", "uơ", "ưa", "ưi", "ươ", "ưu", "uy", "iêu", "yêu", "oai", "oay", "oao",
                     "oeo", "uây", "uôi", "ươi", "ươu", "uya", "uyê", "uyu"))
_CODAS = ("", "c", "ch", "m", "n", "ng", "nh", "p", "t", "o", "i", "u", "y")
_SYLLABLE = re.compile(rf"^({'|'.join(sorted(_ONSETS, key=len, reverse=True))})"
                       rf"([aăâeêiyoôơuư]{{1,3}})({'|'.join(sorted(_CODAS, key=len, reverse=True))})$")


def _plausible(word: str) -> bool:
    """A well-formed Vietnamese syllable: one tone at most, a known onset, vowel nucleus and coda."""
    letters, tones = [], 0
    for char in word.lower():
        base, tone = _tone_of(char)
        tones += tone is not None
        letters.append(base)
    match = _SYLLABLE.match("".join(letters))
    if tones > 1 or match is None:
        return False
    nucleus = match.group(2) + (match.group(3) if match.group(3) in ("o", "i", "u", "y") else "")
    return match.group(2) in _NUCLEI or nucleus in _NUCLEI


def _score(text: str) -> float:
    """Share of the words with non-ASCII letters that are plausible Vietnamese syllables."""
    words = [w for w in re.findall(r"[^\W\d_]+", text) if not w.isascii()]
    return sum(_plausible(w) for w in words) / len(words) if words else 0.0


def _upper_font_suspect(text: str) -> bool:
    """A word of capitals with a small toned letter inside (``GIấY``): TCVN3 typed with an upper-case font."""
    return any(sum(c.isupper() for c in w) >= 2 and any(c.islower() and not c.isascii() for c in w)
               for w in re.findall(r"[^\W\d_]+", text))


_LEGACY = (("Windows-1258", lambda raw: raw.decode("cp1258")), ("TCVN3 (ABC)", _decode_tcvn3), ("VNI", _decode_vni))


_NOT_CSV = (
    (b"PK\x03\x04", "an Excel workbook (XLSX) or another ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (XLS)"),
    (b"\xff\xfe", "UTF-16 text (Excel's 'Unicode Text')"),
    (b"\xfe\xff", "UTF-16 text"),
    (b"%PDF-", "a PDF document"),
)
"""What officers save under the name manifest.csv by mistake, recognised by its first bytes."""


def decode_manifest(raw: bytes) -> tuple[str, str]:
    """The manifest's text and its encoding: UTF-8 (BOM or not), else a legacy encoding recognised for sure.

    Each legacy decoding is scored by how many of its words are well-formed Vietnamese syllables; one
    that reads (nearly) all words right while the others do not is converted, anything else is refused.
    """
    how = "Open it in Excel and use File > Save As > 'CSV UTF-8 (Comma delimited)', then resubmit."
    for magic, kind in _NOT_CSV:
        if raw.startswith(magic):
            raise ManifestError(f"{MANIFEST_NAME} is {kind}, not CSV text", hint=how)
    try:
        return raw.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError as exc:
        position = exc.start
    scored = []
    for name, decode in _LEGACY:
        try:
            text = unicodedata.normalize("NFC", decode(raw))
        except UnicodeDecodeError:
            continue
        scored.append((_score(text), name, text))
    scored.sort(reverse=True)
    if scored and scored[0][0] >= 0.9 and (len(scored) == 1 or scored[1][0] < 0.6):
        _, name, text = scored[0]
        if name.startswith("TCVN3") and _upper_font_suspect(text):
            raise ManifestError(
                f"{MANIFEST_NAME} is in TCVN3 (ABC) typed with an upper-case font (.VnTimeH): capital and small "
                "letters with tones share the same bytes, so it cannot be converted safely.", hint=how)
        return text, name
    found = ", ".join(f"{n} {s:.0%}" for s, n, _ in scored) or "none"
    raise ManifestError(
        f"{MANIFEST_NAME} is not UTF-8 (invalid byte at position {position}) and its legacy encoding cannot be told "
        f"for sure (Windows-1258, TCVN3 or VNI; words read right: {found}).", hint=how)
