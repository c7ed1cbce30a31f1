"""What a PDF page costs once decoded, measured before pikepdf or poppler decode anything.

A PDF of 1 MB can hold streams that inflate to gigabytes (Flate of zeros expands ~1,000 times, and
filters chain), images whose data decodes to far more than their declared size, and form XObjects
nested thousands deep. pikepdf's ``read_bytes`` decodes a stream whole, and poppler renders whatever
it is given, so the limits are checked here first:

- every stream a page draws (its contents, images, forms, fonts, patterns, annotation appearances) is
  decoded through its general-purpose filters (Flate, LZW, RunLength, ASCIIHex, ASCII85) one chunk at
  a time, counting bytes and stopping at the limit, never holding more than a filter's output;
- an image's declared size (width × height × components × bits) must fit the per-stream limit, and its
  data must not decode to much more than that declared size;
- form XObjects may nest :data:`MAX_FORM_DEPTH` deep and never draw themselves (checked without recursion).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf

from digitize.errors import DecodedTooLarge, PdfTooComplex
from digitize.intake.page_info import MIB, PageLimits

MAX_FORM_DEPTH = 32
"""Deepest nesting of form XObjects accepted; scans and office documents use a few levels."""

_IMAGE_CODECS = frozenset({"/DCTDecode", "/DCT", "/JPXDecode", "/CCITTFaxDecode", "/CCF", "/JBIG2Decode"})
_SKIPPED_KEYS = frozenset({"/Parent", "/P", "/Pg"})
"""Links back up to the page tree or to a page: following them would walk the whole document from every page."""
_COMPONENTS = {"/DeviceGray": 1, "/CalGray": 1, "/G": 1, "/DeviceRGB": 3, "/CalRGB": 3, "/RGB": 3, "/Lab": 3,
               "/DeviceCMYK": 4, "/CMYK": 4}
_CHUNK = 1 << 20


class _Over(Exception):
    """A stream decodes to more than its cap."""


class StreamBudget:
    """Decoded sizes of the streams a PDF's pages draw, each stream counted once per document."""

    def __init__(self, path: Path, limits: PageLimits) -> None:
        self.path, self.limits = path, limits
        self._seen: set[tuple[int, int]] = set()

    def page_cost(self, index: int, page: pikepdf.Page) -> int:
        """Decoded bytes of the streams this page is the first to draw; a stream over its limit, or forms
        nested too deep, refuse the document."""
        check_form_nesting(self.path, index, page.obj)
        total = 0
        stack: list[Any] = [page.obj.get(k) for k in ("/Contents", "/Resources", "/Annots")]
        while stack:
            obj = stack.pop()
            if not isinstance(obj, pikepdf.Object):
                continue
            if obj.is_indirect:
                if obj.objgen in self._seen:
                    continue
                self._seen.add(obj.objgen)
            if isinstance(obj, pikepdf.Stream):
                total += self._stream_cost(index, obj)
                stack.extend(v for k, v in obj.stream_dict.items() if k not in _SKIPPED_KEYS)
            elif isinstance(obj, pikepdf.Dictionary):
                stack.extend(v for k, v in obj.items() if k not in _SKIPPED_KEYS)
            elif isinstance(obj, pikepdf.Array):
                stack.extend(obj)
        return total

    def _stream_cost(self, index: int, stream: pikepdf.Stream) -> int:
        limit = self.limits.max_stream_bytes
        where = f"{self.path.name}: PDF page {index + 1}"
        if stream.get("/Subtype") == pikepdf.Name.Image:
            declared = image_bytes(stream)
            if declared > limit:
                raise DecodedTooLarge(f"{where}: an image decodes to {declared / MIB:.0f} MB, over the limit of "
                                      f"{limit / MIB:.0f} MB per stream (DIGITIZE_MAX_STREAM_MB)")
            cap = min(limit, 2 * declared + 64 * 1024)  # room for predictor bytes and sloppy writers
            try:
                decoded_size(stream, cap)
            except _Over:
                raise DecodedTooLarge(f"{where}: an image declared {int(stream.get('/Width', 0))}×"
                                      f"{int(stream.get('/Height', 0))} holds data that decodes to far more "
                                      "(a decompression bomb)") from None
            return declared
        try:
            return decoded_size(stream, limit)
        except _Over:
            raise DecodedTooLarge(f"{where}: a stream decodes to more than {limit / MIB:.0f} MB, the limit per "
                                  "stream (DIGITIZE_MAX_STREAM_MB)") from None


def image_bytes(stream: pikepdf.Stream) -> int:
    """Bytes an image XObject takes once decoded: width × height × components × bytes per sample."""
    width, height = int(stream.get("/Width", 0)), int(stream.get("/Height", 0))
    bits = int(stream.get("/BitsPerComponent", 8))
    return max(width, 0) * max(height, 0) * _components(stream) * max(1, -(-bits // 8))


def _components(stream: pikepdf.Stream) -> int:
    if bool(stream.get("/ImageMask", False)):
        return 1
    space = stream.get("/ColorSpace")
    if isinstance(space, pikepdf.Array) and len(space) > 0:
        family = str(space[0])
        if family in ("/ICCBased",) and len(space) > 1 and isinstance(space[1], pikepdf.Stream):
            return int(space[1].get("/N", 3))
        if family in ("/Indexed", "/I"):
            return 3  # expanded to RGB
        if family == "/DeviceN" and len(space) > 1 and isinstance(space[1], pikepdf.Array):
            return max(1, len(space[1]))
        return 1 if family == "/Separation" else _COMPONENTS.get(family, 3)
    return _COMPONENTS.get(str(space), 3) if space is not None else 3


def check_form_nesting(path: Path, index: int, page: pikepdf.Object) -> None:
    """Refuse form XObjects nested more than :data:`MAX_FORM_DEPTH` deep or drawing themselves, without recursion.

    The depth of each form explored is remembered, so forms shared by many others are walked once.
    """
    what = f"{path.name}: PDF page {index + 1}"
    depth: dict[tuple[int, int], int] = {}
    for root in child_forms(page):
        if root.objgen in depth:
            continue
        trail, todo = [root], [iter(child_forms(root))]
        while todo:
            child = next(todo[-1], None)
            if child is None:
                node = trail.pop()
                todo.pop()
                depth[node.objgen] = 1 + max((depth[c.objgen] for c in child_forms(node)), default=0)
                continue
            if any(child.objgen == t.objgen for t in trail):
                raise PdfTooComplex(f"{what}: a drawing (form XObject) draws itself, endlessly")
            if len(trail) + depth.get(child.objgen, 1) > MAX_FORM_DEPTH:
                raise PdfTooComplex(f"{what}: drawings (form XObjects) are nested more than {MAX_FORM_DEPTH} deep")
            if child.objgen not in depth:
                trail.append(child)
                todo.append(iter(child_forms(child)))


def child_forms(obj: pikepdf.Object) -> list[pikepdf.Stream]:
    """The form XObjects listed in an object's (page's or form's) resources."""
    resources = obj.get("/Resources")
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    if not isinstance(xobjects, pikepdf.Dictionary):
        return []
    return [x for x in xobjects.values()
            if isinstance(x, pikepdf.Stream) and x.is_indirect and x.get("/Subtype") == pikepdf.Name.Form]


def decoded_size(stream: pikepdf.Stream, cap: int) -> int:
    """Bytes the stream's general-purpose filters produce (image codecs at the end of the chain excluded:
    their output is bounded by the declared size); raises :class:`_Over` past ``cap``, holding at most one
    intermediate filter's output (itself within ``cap``)."""
    filters, parms = _filters(stream)
    while filters and filters[-1] in _IMAGE_CODECS:
        filters.pop()
    if not filters:
        return int(stream.get("/Length", 0))
    if any(name not in _DECODERS for name in filters):
        return int(stream.get("/Length", 0))  # nothing (qpdf, poppler) can decode it either
    data: bytes = stream.read_raw_bytes()
    count = len(data)
    for position, name in enumerate(filters):
        last = position == len(filters) - 1
        data, count = _DECODERS[name](data, cap, not last, parms[position])
    return count


def _filters(stream: pikepdf.Stream) -> tuple[list[str], list[Any]]:
    raw = stream.get("/Filter")
    names = [str(f) for f in raw] if isinstance(raw, pikepdf.Array) else [str(raw)] if raw is not None else []
    raw_parms = stream.get("/DecodeParms")
    parms = list(raw_parms) if isinstance(raw_parms, pikepdf.Array) else [raw_parms] * len(names)
    return names, (parms + [None] * len(names))[: len(names)]


def _flate(data: bytes, cap: int, keep: bool, _parms: Any) -> tuple[bytes, int]:
    inflater, out, count, pending = zlib.decompressobj(), bytearray(), 0, data
    try:
        while pending and not inflater.eof:
            chunk = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            count += len(chunk)
            if count > cap:
                raise _Over
            if keep:
                out += chunk
            if not chunk and not pending:
                break
    except zlib.error:
        pass  # damaged data: qpdf keeps what decoded, and so does the count
    return bytes(out), count


def _lzw(data: bytes, cap: int, keep: bool, parms: Any) -> tuple[bytes, int]:
    early = int(parms.get("/EarlyChange", 1)) if isinstance(parms, pikepdf.Dictionary) else 1
    table: list[bytes] = [bytes([i]) for i in range(256)] + [b"", b""]
    out, count, bits, buffer, held, previous = bytearray(), 0, 9, 0, 0, b""
    for byte in data:
        buffer, held = (buffer << 8) | byte, held + 8
        while held >= bits:
            held -= bits
            code = (buffer >> held) & ((1 << bits) - 1)
            buffer &= (1 << held) - 1
            if code == 256:
                table, bits, previous = table[:258], 9, b""
                continue
            if code == 257:
                return bytes(out), count
            if code < len(table) and code != 256:
                entry = table[code]
                if previous:
                    table.append(previous + entry[:1])
            elif code == len(table) and previous:
                entry = previous + previous[:1]
                table.append(entry)
            else:
                return bytes(out), count  # damaged data
            count += len(entry)
            if count > cap:
                raise _Over
            if keep:
                out += entry
            previous = entry
            if len(table) + early >= (1 << bits) and bits < 12:
                bits += 1
    return bytes(out), count


def _run_length(data: bytes, cap: int, keep: bool, _parms: Any) -> tuple[bytes, int]:
    out, count, pos = bytearray(), 0, 0
    while pos < len(data) and data[pos] != 128:
        length = data[pos]
        if length < 128:
            piece, pos = data[pos + 1 : pos + 2 + length], pos + 2 + length
        else:
            piece, pos = data[pos + 1 : pos + 2] * (257 - length), pos + 2
        count += len(piece)
        if count > cap:
            raise _Over
        if keep:
            out += piece
    return bytes(out), count


def _ascii_hex(data: bytes, _cap: int, _keep: bool, _parms: Any) -> tuple[bytes, int]:
    digits = re.sub(rb"[^0-9A-Fa-f]", b"", data.split(b">", 1)[0])
    decoded = binascii.unhexlify(digits + b"0" * (len(digits) % 2))
    return decoded, len(decoded)  # never longer than the raw data


def _ascii85(data: bytes, _cap: int, _keep: bool, _parms: Any) -> tuple[bytes, int]:
    text = data.split(b"~>", 1)[0].removeprefix(b"<~")
    try:
        decoded = base64.a85decode(text, ignorechars=b" \t\n\r\x0b\x0c\x00")
    except ValueError:
        return data, len(data)  # damaged: at most 4 × the raw data ('z'), which is bounded by the file
    return decoded, len(decoded)


_Decoder = Callable[[bytes, int, bool, Any], tuple[bytes, int]]
_DECODERS: dict[str, _Decoder] = {
    "/FlateDecode": _flate, "/Fl": _flate, "/LZWDecode": _lzw, "/LZW": _lzw, "/RunLengthDecode": _run_length,
    "/RL": _run_length, "/ASCIIHexDecode": _ascii_hex, "/AHx": _ascii_hex, "/ASCII85Decode": _ascii85,
    "/A85": _ascii85,
}
