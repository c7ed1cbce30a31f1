"""Uniform codes: exact formats, errors that name the wrong part, and round trips under Hypothesis."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digitize.codes.formats import (
    DEFAULT_CODE_TEMPLATE,
    AgencyCode,
    CodeError,
    DossierCode,
    format_document_code,
    format_dossier_code,
    parse_agency_code,
    parse_document_code,
    parse_dossier_code,
    parse_procedure_code,
    validate_template,
)
from digitize.errors import InputError

# --- agency codes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth", "parent"),
    [
        ("000.00.00.H51", 1, None),
        ("000.00.29.H51", 2, "000.00.00.H51"),
        ("000.18.29.H51", 3, "000.00.29.H51"),
        ("001.18.29.H51", 4, "000.18.29.H51"),
        ("999.99.99.Z99", 4, "000.99.99.Z99"),
    ],
)
def test_agency_code_depth_parent_round_trip(text: str, depth: int, parent: str | None) -> None:
    code = parse_agency_code(text)
    assert code.depth == depth
    assert (str(code.parent) if code.parent else None) == parent
    assert str(code) == text
    assert AgencyCode.parse(text) == code


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("000.18.00.H51", "level-3 part '18' is filled but the level-2 part is '00'"),
        ("001.00.29.H51", "level-4 part '001' is filled"),
        ("001.18.00.H51", "level-3 part '18' is filled"),
        ("000.00.00.h51", "level-1 part (4th) 'h51' must be a capital letter"),
        ("000.00.00.H5", "has 12 characters; expected 13"),
        ("000.00.00.H51 ", "has 14 characters"),
        ("000-00.00.H51", "character 4 must be '.'"),
        ("00a.00.00.H51", "level-4 part (1st) '00a' must be 3 digits"),
        ("000.0x.00.H51", "level-3 part (2nd) '0x' must be 2 digits"),
        ("000.00.2 .H51", "level-2 part (3rd) '2 ' must be 2 digits"),
        ("\u0660\u0660\u0660.00.00.H51", "must be 3 digits 0-9"),  # Arabic-Indic digits are not digits here
        ("000.00.00.Đ51", "capital letter A-Z"),
    ],
)
def test_agency_code_errors_name_the_part(text: str, names: str) -> None:
    with pytest.raises(CodeError) as info:
        parse_agency_code(text)
    assert names in str(info.value)


def test_code_error_is_value_error_and_input_error() -> None:
    with pytest.raises(ValueError):
        parse_agency_code("nope")
    with pytest.raises(InputError) as info:
        parse_agency_code("nope")
    assert info.value.reason == "CODE_INVALID"
    with pytest.raises(CodeError, match="must be text"):
        parse_agency_code(None)  # type: ignore[arg-type]


def test_agency_code_cannot_be_built_invalid() -> None:
    assert str(AgencyCode("H51", 29, 18)) == "000.18.29.H51"
    with pytest.raises(CodeError):
        AgencyCode("H51", 0, 18)
    with pytest.raises(CodeError):
        AgencyCode("H51", 100)
    with pytest.raises(CodeError):
        AgencyCode("h51")


# --- dossier codes ----------------------------------------------------------------------------------------------


def test_dossier_code_both_variants() -> None:
    short = parse_dossier_code("000.00.00.H49-210617-0001")
    assert short == DossierCode(parse_agency_code("000.00.00.H49"), date(2021, 6, 17), 1, "short")
    assert str(short) == "000.00.00.H49-210617-0001"
    long = parse_dossier_code("000.00.00.H49-20210617-0000001")
    assert (long.received, long.seq, long.variant) == (date(2021, 6, 17), 1, "long")
    assert str(long) == "000.00.00.H49-20210617-0000001"
    # emit the configured variant
    assert format_dossier_code("000.00.00.H49", date(2021, 6, 17), 1, variant="long") == str(long)
    assert format_dossier_code(short.agency, short.received, 12) == "000.00.00.H49-210617-0012"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("000.00.00.H49-210230-0001", "'210230' is not a real date"),
        ("000.00.00.H49-20210631-0000001", "is not a real date"),
        ("000.00.00.H49-210617-001", "'001' must be 4 digits after a 6-digit date"),
        ("000.00.00.H49-20210617-0001", "must be 7 digits after a 8-digit date"),
        ("000.00.00.H49-2106170-0001", "must be YYMMDD (6 digits) or YYYYMMDD (8 digits)"),
        ("000.00.00.H49-210617-0000", "must start at 1"),
        ("000.18.00.H49-210617-0001", "level-3 part '18' is filled"),
        ("000.00.00.H49_210617_0001", "three parts separated by '-'"),
        ("000.00.00.H49-210617-0001-1", "three parts"),
    ],
)
def test_dossier_code_errors(text: str, names: str) -> None:
    with pytest.raises(CodeError) as info:
        parse_dossier_code(text)
    assert names in str(info.value)
    assert "dossier code" in str(info.value)


def test_dossier_code_format_limits() -> None:
    with pytest.raises(CodeError, match="from 1 to 9999"):
        format_dossier_code("000.00.00.H49", date(2021, 6, 17), 10000)
    assert format_dossier_code("000.00.00.H49", date(2021, 6, 17), 10000, variant="long").endswith("-0010000")
    with pytest.raises(CodeError, match="YYMMDD"):
        format_dossier_code("000.00.00.H49", date(1999, 6, 17), 1)
    with pytest.raises(CodeError, match="variant"):
        format_dossier_code("000.00.00.H49", date(2021, 6, 17), 1, variant="medium")  # type: ignore[arg-type]


# --- procedure codes --------------------------------------------------------------------------------------------


def test_procedure_codes() -> None:
    plain = parse_procedure_code("1.000110")
    assert (plain.group, plain.number, plain.agency, str(plain)) == (1, 110, None, "1.000110")
    local = parse_procedure_code("2.000488.000.00.12.H99")
    assert local.national == "2.000488" and str(local.agency) == "000.00.12.H99"
    assert str(local) == "2.000488.000.00.12.H99"
    for bad, names in [
        ("1.00011", "D.DDDDDD"),
        ("1.000110.", "expected nothing or '.' and an agency code"),
        ("1.000110-000.00.00.H51", "expected nothing or '.'"),
        ("1.000110.000.00.00.h51", "level-1 part"),
        ("1,000110", "D.DDDDDD"),
    ]:
        with pytest.raises(CodeError, match="procedure code") as info:
            parse_procedure_code(bad)
        assert names in str(info.value)


# --- document codes ---------------------------------------------------------------------------------------------


def test_document_code_default_template() -> None:
    assert DEFAULT_CODE_TEMPLATE == "{agency}.{year}.{kind}.{seq:06d}"
    code = format_document_code(DEFAULT_CODE_TEMPLATE, "000.00.00.H49", 2021, "KQ", 123)
    assert code == "000.00.00.H49.2021.KQ.000123"
    parsed = parse_document_code(code)
    assert (str(parsed.agency), parsed.year, parsed.kind, parsed.seq) == ("000.00.00.H49", 2021, "KQ", 123)
    assert str(parsed) == code
    # a sequence that outgrows the width stays unique and parseable
    big = format_document_code(DEFAULT_CODE_TEMPLATE, "000.00.00.H49", 2021, "TP", 1_234_567)
    assert big == "000.00.00.H49.2021.TP.1234567" and parse_document_code(big).seq == 1_234_567


def test_document_code_custom_template() -> None:
    template = "{kind}-{year}/{agency}#{seq:04d}"
    code = format_document_code(template, "000.01.31.H99", 2024, "TP", 7)
    assert code == "TP-2024/000.01.31.H99#0007"
    assert parse_document_code(code, template).seq == 7
    with pytest.raises(CodeError):
        parse_document_code(code)  # not the default template


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("000.00.00.H49.2021.KX.000123", "at character 20: expected one of KQ, TP"),
        ("000.00.00.H49.2021.KQ.00123", "at character 23: expected the sequence number"),
        ("000.00.00.H49.2021.KQ.0000123", "unexpected text after character 28"),
        ("000.00.00.H49/2021.KQ.000123", "at character 14: expected '.'"),
        ("000.00.00.H49.21.KQ.000123", "expected a four-digit year"),
        ("000.00.00.H49.2021.KQ.000123x", "unexpected text after character 28"),
        ("000.00.0.H49.2021.KQ.000123", "at character 1: expected an agency code"),
        ("000.18.00.H49.2021.KQ.000123", "level-3 part '18' is filled"),
        ("000.00.00.H49.2021.KQ.000000", "sequence '000000' must start at 1"),
    ],
)
def test_document_code_errors(code: str, names: str) -> None:
    with pytest.raises(CodeError) as info:
        parse_document_code(code)
    assert names in str(info.value)


def test_document_code_format_checks_parts() -> None:
    with pytest.raises(CodeError, match="kind 'XX'"):
        format_document_code(DEFAULT_CODE_TEMPLATE, "000.00.00.H49", 2021, "XX", 1)
    with pytest.raises(CodeError, match="year 21"):
        format_document_code(DEFAULT_CODE_TEMPLATE, "000.00.00.H49", 21, "KQ", 1)
    with pytest.raises(CodeError, match="sequence 0"):
        format_document_code(DEFAULT_CODE_TEMPLATE, "000.00.00.H49", 2021, "KQ", 0)
    with pytest.raises(CodeError, match="level-1 part"):
        format_document_code(DEFAULT_CODE_TEMPLATE, "000.00.00.h49", 2021, "KQ", 1)


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("{agency}.{kind}.{seq}", "lacks {year}"),
        ("{agency}{year}.{kind}.{seq}", "separator between {agency} and {year}"),
        ("{agency}.{year:x}.{kind}.{seq}", "format 'x' is not allowed for {year}"),
        ("{agency}.{year}.{kind}.{seq:6}", "seq format '6' is not supported"),
        ("{agency}.{year}.{kind}.{seq}.{seq}", "appears twice"),
        ("{agency}.{year}.{kind}.{number}", "unknown field {number}"),
        ("{agency!r}.{year}.{kind}.{seq}", "conversion !r"),
        ("{agency}.{year}.{kind}.{seq", "malformed"),
    ],
)
def test_bad_templates(template: str, names: str) -> None:
    with pytest.raises(CodeError) as info:
        validate_template(template)
    assert names in str(info.value)


# --- properties -------------------------------------------------------------------------------------------------


@st.composite
def agency_codes(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 4))
    level1 = draw(st.sampled_from("ABCGHKXZ")) + f"{draw(st.integers(0, 99)):02d}"
    level2 = draw(st.integers(1, 99)) if depth >= 2 else 0
    level3 = draw(st.integers(1, 99)) if depth >= 3 else 0
    level4 = draw(st.integers(1, 999)) if depth >= 4 else 0
    return f"{level4:03d}.{level3:02d}.{level2:02d}.{level1}"


TEMPLATES = [DEFAULT_CODE_TEMPLATE, "{agency}/{year}/{kind}/{seq}", "{kind}-{year:04d}-{agency}-{seq:03d}"]


@given(agency_codes())
def test_agency_round_trip(text: str) -> None:
    code = parse_agency_code(text)
    assert str(code) == text
    chain = [code]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    assert [c.depth for c in chain] == list(range(code.depth, 0, -1))


@given(agency_codes(), st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.integers(1, 9999), st.booleans())
def test_dossier_round_trip(agency: str, received: date, seq: int, long: bool) -> None:
    text = format_dossier_code(agency, received, seq, variant="long" if long else "short")
    assert str(parse_dossier_code(text)) == text


@given(agency_codes(), st.integers(0, 9), st.integers(0, 999999), st.booleans())
def test_procedure_round_trip(agency: str, group: int, number: int, local: bool) -> None:
    text = f"{group}.{number:06d}" + (f".{agency}" if local else "")
    assert str(parse_procedure_code(text)) == text


@given(st.sampled_from(TEMPLATES), agency_codes(), st.integers(1000, 9999), st.sampled_from(["KQ", "TP"]),
       st.integers(1, 10**9))
def test_document_round_trip(template: str, agency: str, year: int, kind: str, seq: int) -> None:
    text = format_document_code(template, agency, year, kind, seq)
    parsed = parse_document_code(text, template)
    assert (str(parsed.agency), parsed.year, parsed.kind, parsed.seq) == (agency, year, kind, seq)
    assert format_document_code(template, parsed.agency, parsed.year, parsed.kind, parsed.seq) == text


_CODE_ALPHABET = st.sampled_from(list("0123456789.-HZhK QTP/#\u0660\u00a0Đ\n"))


@given(st.one_of(st.text(), st.text(_CODE_ALPHABET, max_size=40)), st.sampled_from(TEMPLATES))
def test_random_text_raises_only_code_error(text: str, template: str) -> None:
    for parse in (parse_agency_code, parse_dossier_code, parse_procedure_code,
                  lambda t: parse_document_code(t, template)):
        try:
            parsed = parse(text)
        except CodeError:
            continue
        assert str(parsed) == text  # whatever parses must round-trip


@given(st.text(max_size=30))
def test_random_templates_raise_only_code_error(template: str) -> None:
    try:
        validate_template(template)
    except CodeError:
        return
    assert all(f"{{{name}" in template for name in ("agency", "year", "kind", "seq"))
