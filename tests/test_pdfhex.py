"""The one-call hex-string reader gives what pyHanko's own reader gives, value, type, position and errors."""

from __future__ import annotations

import io
import os

import pytest
from pyhanko.pdf_utils import generic

from digitize.signing import pdfhex

CASES = [
    b"<>",
    b"<41>",
    b"<4>",  # odd: a 0 is appended
    b"<feFF00e9>",
    b"<48 65\n6c\r6c\t6f\f21\x00>",  # every PDF whitespace between digits
    b"< 4 1 4 >",
    b"<" + os.urandom(5000).hex().encode() + b"0" * 6000 + b">",  # a signature's /Contents, over one block
    b"<" + b"ab" * 20000 + b"c>",  # odd, spanning three blocks
    b"<41 % a comment > inside\n42>",  # a comment: pyHanko's reader decides
    b"<41 % a comment\n42>",
    b"x41>",  # pyHanko skips the first byte, whatever it is
]

ERRORS = [
    b"<41 4g>",  # not a hex digit
    b"<41 42",  # no end
    b"<",
    b"<" + b"41" * 10000,  # no end, over one block
    b"<41 (42)>",
]


def _read(reader: object, data: bytes) -> tuple[object, str, int]:
    stream = io.BytesIO(data + b" /Next 1 0 R")
    value = reader(stream)  # type: ignore[operator]
    return value, type(value).__name__, stream.tell()


@pytest.mark.parametrize("data", CASES, ids=lambda d: d[:24].decode("latin-1"))
def test_same_value_type_and_position(data: bytes) -> None:
    assert _read(pdfhex.read_hex_string, data) == _read(pdfhex._PYHANKO_READER, data)


@pytest.mark.parametrize("data", ERRORS, ids=lambda d: d[:24].decode("latin-1"))
def test_same_error(data: bytes) -> None:
    with pytest.raises(Exception) as theirs:
        pdfhex._PYHANKO_READER(io.BytesIO(data))
    with pytest.raises(type(theirs.value)) as ours:
        pdfhex.read_hex_string(io.BytesIO(data))
    assert str(ours.value) == str(theirs.value)


def test_pyhankos_object_reader_uses_it_once_installed() -> None:
    """Installed (importing the signer does it), pyHanko's object reader takes strings through it."""
    import digitize.signing  # noqa: F401  (installs the reader)

    assert generic.read_hex_string_from_stream is pdfhex.read_hex_string
    stream = io.BytesIO(b"<" + b"0a" * 3000 + b"> <0b>")
    assert generic.read_object(stream, None).original_bytes == b"\n" * 3000
    assert stream.read(1) == b" "
