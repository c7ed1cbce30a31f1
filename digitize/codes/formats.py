"""Uniform codes: strict parsing, validation and formatting.

Codes are identifiers that other systems and officers rely on, so nothing is
"fixed up": lower-case letters, spaces, non-ASCII digits or impossible dates
are refused with a :class:`CodeError` that names the wrong part and what was
expected. Formats (see DESIGN.md, "Uniform codes"):

- agency code, QCVN 102:2016/BTTTT: ``DDD.DD.DD.LDD``, filled right to left;
- dossier code, Circular 01/2018/TT-VPCP Art. 19: ``<agency>-<YYMMDD>-<NNNN>``
  or the newer ``<agency>-<YYYYMMDD>-<NNNNNNN>``;
- procedure code of the national TTHC database: ``D.DDDDDD[.<agency>]``;
- document code this pipeline assigns: a configurable template, by default
  ``{agency}.{year}.{kind}.{seq:06d}`` (modelled on Decree 30/2020 Appendix VI).

Depth in the agency hierarchy is not the administrative level; the level is
data in the catalog's agencies table.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from digitize.config import DEFAULT_CODE_TEMPLATE
from digitize.errors import CodeError

__all__ = [
    "DEFAULT_CODE_TEMPLATE",
    "DOCUMENT_KINDS",
    "AgencyCode",
    "CodeError",
    "DocumentCode",
    "DossierCode",
    "ProcedureCode",
    "format_document_code",
    "format_dossier_code",
    "parse_agency_code",
    "parse_document_code",
    "parse_dossier_code",
    "parse_procedure_code",
    "validate_template",
]

DOCUMENT_KINDS = ("KQ", "TP")
"""``KQ``: result of a procedure (kết quả); ``TP``: component of a dossier (thành phần hồ sơ)."""

DossierVariant = Literal["short", "long"]

# ASCII only: ``\d`` would also accept Arabic-Indic and other Unicode digits.
_AGENCY_PATTERN = r"[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}"
_AGENCY_RE = re.compile(r"(?P<p4>[0-9]{3})\.(?P<p3>[0-9]{2})\.(?P<p2>[0-9]{2})\.(?P<p1>[A-Z][0-9]{2})")
_AGENCY_EXAMPLE = "000.00.00.H51, 000.00.29.H51, 000.18.29.H51 or 001.18.29.H51"


def _show(text: object) -> str:
    return repr(text) if isinstance(text, str) else f"a {type(text).__name__}"


@dataclass(frozen=True, order=True)
class AgencyCode:
    """Agency identification code of QCVN 102:2016 (``DDD.DD.DD.LDD``), filled right to left."""

    level1: str
    """Right-most part, a capital letter and two digits (e.g. ``H51``): the top-level unit."""

    level2: int = 0
    """Third part (``DD``), 0 when the code stops at depth 1."""

    level3: int = 0
    """Second part (``DD``), 0 when the code stops at depth 2."""

    level4: int = 0
    """Left-most part (``DDD``), 0 when the code stops at depth 3."""

    def __post_init__(self) -> None:
        parts = (self.level2, self.level3, self.level4)
        if not isinstance(self.level1, str) or not all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
            raise CodeError("agency code parts: level1 must be text, level2-level4 integers")
        if not (0 <= self.level2 < 100 and 0 <= self.level3 < 100 and 0 <= self.level4 < 1000):
            raise CodeError(f"agency code parts out of range: {self.level4}, {self.level3}, {self.level2}")
        parse_agency_code(str(self))  # the same checks as for text: an invalid code cannot be built

    @property
    def depth(self) -> int:
        """1 for ``000.00.00.H51`` … 4 for ``001.18.29.H51``; not the administrative level."""
        return 1 + sum(1 for part in (self.level2, self.level3, self.level4) if part)

    @property
    def parent(self) -> AgencyCode | None:
        """The code one step up (left-most filled part cleared), ``None`` at depth 1."""
        if self.level4:
            return AgencyCode(self.level1, self.level2, self.level3)
        if self.level3:
            return AgencyCode(self.level1, self.level2)
        if self.level2:
            return AgencyCode(self.level1)
        return None

    def __str__(self) -> str:
        return f"{self.level4:03d}.{self.level3:02d}.{self.level2:02d}.{self.level1}"

    @classmethod
    def parse(cls, text: str) -> AgencyCode:
        """Same as :func:`parse_agency_code`."""
        return parse_agency_code(text)


def parse_agency_code(text: str) -> AgencyCode:
    """Parse ``DDD.DD.DD.LDD`` strictly; the error names the part that is wrong."""
    if not isinstance(text, str):
        raise CodeError(f"agency code must be text, got {_show(text)}")
    what = f"agency code {text!r}"
    if len(text) != 13:
        raise CodeError(
            f"{what} has {len(text)} characters; expected 13 in the form DDD.DD.DD.LDD, e.g. {_AGENCY_EXAMPLE}"
        )
    for position in (3, 6, 9):
        if text[position] != ".":
            raise CodeError(
                f"{what}: character {position + 1} must be '.', got {text[position]!r} (form DDD.DD.DD.LDD)"
            )
    p4, p3, p2, p1 = text[0:3], text[4:6], text[7:9], text[10:13]
    numbered = (("level-4 part (1st)", p4, 3), ("level-3 part (2nd)", p3, 2), ("level-2 part (3rd)", p2, 2))
    for name, part, width in numbered:
        if not re.fullmatch(f"[0-9]{{{width}}}", part):
            raise CodeError(f"{what}: the {name} {part!r} must be {width} digits 0-9")
    if not re.fullmatch(r"[A-Z][0-9]{2}", p1):
        raise CodeError(f"{what}: the level-1 part (4th) {p1!r} must be a capital letter A-Z and two digits, e.g. H51")
    if int(p3) and not int(p2):
        raise CodeError(
            f"{what}: the level-3 part {p3!r} is filled but the level-2 part is '00'; codes are filled right to left "
            "(e.g. 000.18.29.H51)"
        )
    if int(p4) and not (int(p3) and int(p2)):
        raise CodeError(
            f"{what}: the level-4 part {p4!r} is filled but a part to its right is empty; codes are filled right to "
            "left (e.g. 001.18.29.H51)"
        )
    code = object.__new__(AgencyCode)
    object.__setattr__(code, "level1", p1)
    object.__setattr__(code, "level2", int(p2))
    object.__setattr__(code, "level3", int(p3))
    object.__setattr__(code, "level4", int(p4))
    return code


def _as_agency(agency: AgencyCode | str) -> AgencyCode:
    return agency if isinstance(agency, AgencyCode) else parse_agency_code(agency)


@dataclass(frozen=True)
class DossierCode:
    """Dossier code of Circular 01/2018/TT-VPCP Art. 19."""

    agency: AgencyCode
    """Agency that received the dossier."""

    received: date
    """Receipt date."""

    seq: int
    """Daily sequence number, from 1."""

    variant: DossierVariant = "short"
    """``short``: ``YYMMDD-NNNN`` (the Circular's); ``long``: ``YYYYMMDD-NNNNNNN`` (newer systems)."""

    def __str__(self) -> str:
        return format_dossier_code(self.agency, self.received, self.seq, variant=self.variant)


def format_dossier_code(
    agency: AgencyCode | str, received: date, seq: int, *, variant: DossierVariant = "short"
) -> str:
    """Format a dossier code in the configured variant; refuses a sequence that does not fit it."""
    code = _as_agency(agency)
    if variant not in ("short", "long"):
        raise CodeError(f"dossier code variant {variant!r} is unknown; expected 'short' or 'long'")
    width = 4 if variant == "short" else 7
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 10**width:
        raise CodeError(f"dossier sequence {seq!r} must be an integer from 1 to {10**width - 1} ({variant} variant)")
    if variant == "short":
        if not 2000 <= received.year <= 2099:
            raise CodeError(
                f"dossier receipt date {received.isoformat()} cannot be written as YYMMDD (years 2000-2099)"
            )
        return f"{code}-{received:%y%m%d}-{seq:04d}"
    return f"{code}-{received.year:04d}{received:%m%d}-{seq:07d}"


def parse_dossier_code(text: str) -> DossierCode:
    """Parse ``<agency>-<YYMMDD>-<NNNN>`` or ``<agency>-<YYYYMMDD>-<NNNNNNN>`` strictly."""
    if not isinstance(text, str):
        raise CodeError(f"dossier code must be text, got {_show(text)}")
    what = f"dossier code {text!r}"
    parts = text.split("-")
    if len(parts) != 3:
        raise CodeError(
            f"{what} must have three parts separated by '-': <agency code>-<YYMMDD>-<NNNN>, "
            "e.g. 000.00.00.H49-210617-0001"
        )
    agency_text, date_text, seq_text = parts
    try:
        agency = parse_agency_code(agency_text)
    except CodeError as exc:
        raise CodeError(f"{what}: {exc.message}") from None
    if re.fullmatch(r"[0-9]{6}", date_text):
        variant: DossierVariant = "short"
        year, width = 2000 + int(date_text[0:2]), 4
        month, day = int(date_text[2:4]), int(date_text[4:6])
    elif re.fullmatch(r"[0-9]{8}", date_text):
        variant = "long"
        year, width = int(date_text[0:4]), 7
        month, day = int(date_text[4:6]), int(date_text[6:8])
    else:
        raise CodeError(f"{what}: the receipt date {date_text!r} must be YYMMDD (6 digits) or YYYYMMDD (8 digits)")
    try:
        received = date(year, month, day)
    except ValueError:
        raise CodeError(f"{what}: the receipt date {date_text!r} is not a real date") from None
    if not re.fullmatch(f"[0-9]{{{width}}}", seq_text):
        raise CodeError(
            f"{what}: the sequence {seq_text!r} must be {width} digits after a {len(date_text)}-digit date"
        )
    seq = int(seq_text)
    if seq == 0:
        raise CodeError(f"{what}: the sequence must start at 1, got {seq_text!r}")
    return DossierCode(agency, received, seq, variant)


@dataclass(frozen=True)
class ProcedureCode:
    """Procedure code of the national TTHC database, ``D.DDDDDD`` optionally ``.<agency code>``."""

    group: int
    """The digit before the dot."""

    number: int
    """The six digits after it."""

    agency: AgencyCode | None = None
    """Agency suffix used in provincial catalogues."""

    @property
    def national(self) -> str:
        """The code without the agency suffix, e.g. ``1.000110``."""
        return f"{self.group}.{self.number:06d}"

    def __str__(self) -> str:
        return self.national if self.agency is None else f"{self.national}.{self.agency}"


def parse_procedure_code(text: str) -> ProcedureCode:
    """Parse ``D.DDDDDD`` or ``D.DDDDDD.<agency code>`` strictly."""
    if not isinstance(text, str):
        raise CodeError(f"procedure code must be text, got {_show(text)}")
    what = f"procedure code {text!r}"
    head, sep, tail = text[:8], text[8:9], text[9:]
    if not re.fullmatch(r"[0-9]\.[0-9]{6}", head):
        raise CodeError(f"{what}: must start with D.DDDDDD (one digit, '.', six digits), e.g. 1.000110")
    if not sep and not tail:
        return ProcedureCode(int(head[0]), int(head[2:]))
    if sep != "." or not tail:
        raise CodeError(
            f"{what}: after D.DDDDDD expected nothing or '.' and an agency code, e.g. 1.000110.000.00.00.H51"
        )
    try:
        agency = parse_agency_code(tail)
    except CodeError as exc:
        raise CodeError(f"{what}: {exc.message}") from None
    return ProcedureCode(int(head[0]), int(head[2:]), agency)


@dataclass(frozen=True)
class _Field:
    name: str
    spec: str
    pattern: str


@dataclass(frozen=True)
class _Template:
    template: str
    parts: tuple[str | _Field, ...]
    regex: re.Pattern[str]


_FIELDS = ("agency", "year", "kind", "seq")
_FIELD_PATTERNS = {"agency": _AGENCY_PATTERN, "year": "[1-9][0-9]{3}", "kind": "|".join(DOCUMENT_KINDS)}
_FIELD_SPECS = {"agency": ("",), "year": ("", "d", "04d"), "kind": ("",)}
_FIELD_EXPECTED = {
    "agency": "an agency code DDD.DD.DD.LDD",
    "year": "a four-digit year",
    "kind": f"one of {', '.join(DOCUMENT_KINDS)}",
    "seq": "the sequence number",
}
_TEMPLATES: dict[str, _Template] = {}


def _seq_pattern(template: str, spec: str) -> str:
    if spec in ("", "d"):
        return "[1-9][0-9]*"
    width_match = re.fullmatch(r"0([1-9][0-9]?)d", spec)
    if width_match:
        width = int(width_match.group(1))
        # zero-padded to the width, or longer without a leading zero once the sequence outgrows it
        return f"[0-9]{{{width}}}|[1-9][0-9]{{{width},}}"
    raise CodeError(
        f"code template {template!r}: seq format {spec!r} is not supported; "
        "use {seq} or {seq:0Nd}, e.g. {seq:06d}"
    )


def validate_template(template: str) -> None:
    """Check a document-code template: fields agency, year, kind and seq, each exactly once, with separators."""
    _compile(template)


def _compile(template: str) -> _Template:
    if not isinstance(template, str):
        raise CodeError(f"code template must be text, got {_show(template)}")
    cached = _TEMPLATES.get(template)
    if cached is not None:
        return cached
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise CodeError(f"code template {template!r} is malformed: {exc}") from None
    parts: list[str | _Field] = []
    for literal, name, spec, conversion in pieces:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name not in _FIELDS:
            raise CodeError(f"code template {template!r}: unknown field {{{name}}}; allowed: agency, year, kind, seq")
        if conversion:
            raise CodeError(f"code template {template!r}: conversion !{conversion} is not allowed in {{{name}}}")
        if any(isinstance(p, _Field) and p.name == name for p in parts):
            raise CodeError(f"code template {template!r}: field {{{name}}} appears twice")
        if parts and isinstance(parts[-1], _Field):
            raise CodeError(f"code template {template!r}: put a separator between {{{parts[-1].name}}} and {{{name}}}")
        spec = spec or ""
        if name == "seq":
            pattern = _seq_pattern(template, spec)
        elif spec in _FIELD_SPECS[name]:
            pattern = _FIELD_PATTERNS[name]
        else:
            raise CodeError(f"code template {template!r}: format {spec!r} is not allowed for {{{name}}}")
        parts.append(_Field(name, spec, pattern))
    missing = [name for name in _FIELDS if not any(isinstance(p, _Field) and p.name == name for p in parts)]
    if missing:
        raise CodeError(
            f"code template {template!r} lacks {', '.join('{' + m + '}' for m in missing)}; a code must name agency, "
            "year, kind and seq to be unique"
        )
    regex = "".join(re.escape(p) if isinstance(p, str) else f"(?P<{p.name}>{p.pattern})" for p in parts)
    compiled = _Template(template, tuple(parts), re.compile(regex))
    _TEMPLATES[template] = compiled
    return compiled


@dataclass(frozen=True)
class DocumentCode:
    """Code of a digitized document, unique per agency, kind and year of digitization."""

    agency: AgencyCode
    """Agency with authority over the document (its issuer)."""

    year: int
    """Year of digitization (sequence scope)."""

    kind: str
    """``KQ`` (procedure result) or ``TP`` (dossier component)."""

    seq: int
    """Sequence within (agency, kind, year), from 1 and gap-free."""

    template: str = field(default=DEFAULT_CODE_TEMPLATE, compare=False)
    """Template the code is written with."""

    def __str__(self) -> str:
        return format_document_code(self.template, self.agency, self.year, self.kind, self.seq)


def format_document_code(template: str, agency: AgencyCode | str, year: int, kind: str, seq: int) -> str:
    """Write a document code with ``template`` after checking every part."""
    compiled = _compile(template)
    code = _as_agency(agency)
    if not isinstance(year, int) or isinstance(year, bool) or not 1000 <= year <= 9999:
        raise CodeError(f"document code: year {year!r} must be a four-digit year")
    if kind not in DOCUMENT_KINDS:
        raise CodeError(f"document code: kind {kind!r} must be one of {', '.join(DOCUMENT_KINDS)}")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise CodeError(f"document code: sequence {seq!r} must be an integer from 1")
    values: dict[str, object] = {"agency": str(code), "year": year, "kind": kind, "seq": seq}
    out = []
    for part in compiled.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(format(values[part.name], part.spec))
    return "".join(out)


def parse_document_code(code: str, template: str = DEFAULT_CODE_TEMPLATE) -> DocumentCode:
    """Parse a document code written with ``template``; the error says which part does not fit."""
    compiled = _compile(template)
    if not isinstance(code, str):
        raise CodeError(f"document code must be text, got {_show(code)}")
    match = compiled.regex.fullmatch(code)
    if match is None:
        raise CodeError(_explain_mismatch(code, compiled))
    try:
        agency = parse_agency_code(match["agency"])
    except CodeError as exc:
        raise CodeError(f"document code {code!r}: {exc.message}") from None
    if int(match["seq"]) == 0:
        raise CodeError(f"document code {code!r}: the sequence {match['seq']!r} must start at 1")
    return DocumentCode(agency, int(match["year"]), match["kind"], int(match["seq"]), template)


def _explain_mismatch(code: str, compiled: _Template) -> str:
    """Name the first template part the code does not fit, and where."""
    prefix = ""
    position = 0
    for part in compiled.parts:
        piece = re.escape(part) if isinstance(part, str) else f"(?:{part.pattern})"
        match = re.match(prefix + piece, code)
        if match is None:
            where = f"document code {code!r} does not fit template {compiled.template!r} at character {position + 1}"
            if isinstance(part, str):
                return f"{where}: expected {part!r}"
            detail = ""
            if part.name == "agency":
                try:
                    parse_agency_code(code[position:position + 13])
                except CodeError as exc:
                    detail = f" ({exc.message})"
            return f"{where}: expected {_FIELD_EXPECTED[part.name]}{detail}"
        prefix += piece
        position = match.end()
    return (
        f"document code {code!r} does not fit template {compiled.template!r}: "
        f"unexpected text after character {position}"
    )
