"""pyHanko's hex-string reader, without reading one byte at a time.

pyHanko 0.38 reads a PDF hex string ``<…>`` one byte per call, skipping whitespace and comments between
digits. A signature's ``/Contents`` is such a string of thousands of digits, read once when it is signed and
again when it is verified: 5–15 ms of CPU per document (``python -m bench.sign_bench --a4``).

:func:`read_hex_string` reads up to the first ``>`` in one call. When everything before it is hex digits and
PDF whitespace, the value is the one pyHanko's reader gives. Anything else (a comment, a stray byte, no
``>`` before the end) is handed back to pyHanko's own reader, positioned where it would have started, so
its result or its error stays pyHanko's own. ``tests/test_pdfhex.py`` compares both on such inputs.
"""

from __future__ import annotations

import binascii
import re
from typing import IO, Any

from pyhanko.pdf_utils import generic

_PYHANKO_READER = generic.read_hex_string_from_stream
"""pyHanko's own reader: the reference, and what reads any string the fast path does not take."""

_PLAIN = re.compile(rb"[0-9A-Fa-f \n\r\t\f\x00]*")
"""Hex digits and PDF whitespace (``PDF_WHITESPACE`` of ``pyhanko.pdf_utils.misc``), nothing else."""

_WHITESPACE = re.compile(rb"[ \n\r\t\f\x00]+")

_BLOCK = 16384


def read_hex_string(stream: IO[bytes]) -> Any:
    """The hex string at ``stream``'s position (its ``<``), as pyHanko's reader returns it, the stream left
    after its ``>``."""
    start = stream.tell()
    parts: list[bytes] = []
    if stream.read(1) == b"<":
        while True:
            block = stream.read(_BLOCK)
            end = block.find(b">")
            body = block if end < 0 else block[:end]
            if not block or _PLAIN.fullmatch(body) is None:
                break  # the end of the stream, or something pyHanko's reader must judge
            parts.append(body)
            if end >= 0:
                digits = _WHITESPACE.sub(b"", b"".join(parts))
                stream.seek(start + 1 + sum(map(len, parts)) + 1)
                return generic.pdf_string(binascii.unhexlify(digits + b"0" * (len(digits) % 2)))
    stream.seek(start)
    return _PYHANKO_READER(stream)


def install() -> None:
    """Make pyHanko's object reader use :func:`read_hex_string` (idempotent).

    ``read_object`` looks the reader up in its module each time, so replacing the module's attribute is enough.
    """
    generic.read_hex_string_from_stream = read_hex_string
