"""Load scanned pages from PDF, multi-page TIFF, JPEG and PNG, one page at a time.

Two things come out of every page, and they are kept apart on purpose:

- the pixels (:func:`load_image`, a numpy ``uint8`` array, gray or BGR) that preprocessing and
  Tesseract need, decoded only when a worker asks for them;
- the stored image as it goes into the output PDF (:func:`encode_for_pdf`), which keeps the
  file's own compressed bytes whenever PDF can carry them (JPEG as DCT, PNG's zlib stream with
  its predictors, single-strip CCITT G4, a scanned PDF's image stream): archives must keep the
  scan the officer made, and re-encoding costs time and quality.

:func:`scan_pages` reads only headers (dimensions, dpi, compression), so a 300-page TIFF is
walked without decoding any page, and declared sizes are checked before any pixel is
decompressed (decompression bombs). :class:`PageInfo` is small and picklable: the OCR workers
(threads, or processes on other machines) receive it and decode the page themselves.
"""

from __future__ import annotations

import io
import struct
import subprocess
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pikepdf
from pikepdf.models.image import UnsupportedImageTypeError
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from digitize.errors import (
    AlreadySigned,
    CorruptFile,
    EmptyFile,
    EncryptedPdf,
    ImageTooLarge,
    LowResolution,
    MissingFile,
    UnsupportedFormat,
)

MAX_PIXELS = 100_000_000
"""Largest page accepted (width × height); an A0 sheet at 300 dpi is ~140 MP, an A3 at 600 dpi ~70 MP."""

MIN_SIDE = 32
"""Pages narrower or shorter than this many pixels are not scans (an icon, a thumbnail): LOW_RESOLUTION."""

PDF_RASTER_DPI = 300
"""Resolution used when a PDF page is not a single scanned image and must be rasterised."""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_TEXT_OPERATORS = {"Tj", "TJ", "'", '"'}
# TIFF tags (numbers, not PIL constants, so the meaning is visible).
_TAG_COMPRESSION = 259
_TAG_PHOTOMETRIC = 262
_TAG_FILL_ORDER = 266
_TAG_STRIP_OFFSETS = 273
_TAG_STRIP_BYTE_COUNTS = 279
_TIFF_G4 = 4
_KNOWN_SIGNATURES = (
    (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive (e.g. DOCX/XLSX)"),
    (b"\xd0\xcf\x11\xe0", "old Microsoft Office document"),
    (b"RIFF", "RIFF container (WebP/AVI)"),
    (b"BM", "BMP image"),
    (b"\x00\x00\x00\x0cjP", "JPEG 2000 image"),
)


@dataclass(frozen=True)
class PageInfo:
    """What is known about one page without decoding its pixels; picklable, sent to OCR workers."""

    source: Path
    """The file the page comes from."""

    index: int
    """0-based position of the page inside its file."""

    format: str
    """Real file type from magic bytes: ``pdf``, ``tiff``, ``jpeg`` or ``png``."""

    width: int
    """Width in pixels of the stored image (as stored, before any rotation)."""

    height: int
    """Height in pixels of the stored image."""

    dpi: tuple[float, float]
    """Resolution (x, y) the file claims; ``(0.0, 0.0)`` when it claims none."""

    has_text_layer: bool = False
    """A PDF page that already carries text (born-digital or already OCR'd): copy it, do not OCR."""

    rasterize: bool = False
    """A PDF page that is not one full-page scanned image: it is rendered at :data:`PDF_RASTER_DPI`."""


@dataclass(frozen=True)
class EncodedImage:
    """The stored page image as a PDF image XObject needs it: compressed bytes plus their parameters."""

    data: bytes
    """Compressed image data, exactly what goes into the PDF stream."""

    filter: str
    """PDF filter name without the slash: ``DCTDecode``, ``FlateDecode`` or ``CCITTFaxDecode``."""

    width: int
    """Width in pixels."""

    height: int
    """Height in pixels."""

    bits_per_component: int
    """1 for bilevel, 8 for gray/colour (2, 4, 16 possible for PNG passthrough)."""

    color_space: str
    """``DeviceGray``, ``DeviceRGB`` or ``Indexed`` (then :attr:`palette` holds RGB triplets)."""

    decode_parms: tuple[tuple[str, int | bool], ...] = ()
    """``/DecodeParms`` entries (name without slash, value), e.g. PNG predictors or CCITT K/Columns."""

    decode: tuple[float, ...] | None = None
    """``/Decode`` array when the samples are inverted, else ``None``."""

    palette: bytes | None = None
    """RGB palette (3 bytes per entry) when :attr:`color_space` is ``Indexed``."""

    passthrough: bool = True
    """True when :attr:`data` are the original file's bytes (not re-encoded)."""


def sniff_format(path: Path) -> str:
    """The real file type from its first bytes, never its name: ``pdf``, ``tiff``, ``jpeg`` or ``png``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except FileNotFoundError as exc:
        raise MissingFile(f"{path.name}: file not found") from exc
    if not head:
        raise EmptyFile(f"{path.name}: the file is empty (0 bytes)")
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if b"%PDF-" in head:  # the PDF spec tolerates junk before the header
        return "pdf"
    for magic, kind in _KNOWN_SIGNATURES:
        if head.startswith(magic):
            raise UnsupportedFormat(f"{path.name}: this is a {kind}, not a PDF, TIFF, JPEG or PNG scan")
    raise UnsupportedFormat(f"{path.name}: not a PDF, TIFF, JPEG or PNG file (unknown content)")


def scan_pages(path: Path, *, max_pixels: int = MAX_PIXELS) -> Iterator[PageInfo]:
    """Yield the pages of one file lazily, reading headers only; bad files raise :class:`InputError`s."""
    fmt = sniff_format(path)
    if fmt == "png":
        yield _png_info(path, max_pixels)
    elif fmt == "jpeg":
        yield _jpeg_info(path, max_pixels)
    elif fmt == "tiff":
        yield from _tiff_infos(path, max_pixels)
    else:
        yield from _pdf_infos(path, max_pixels)


def load_image(info: PageInfo) -> np.ndarray:
    """Decode one page to numpy ``uint8``: 2-D gray, or 3-D BGR (OpenCV's order) for colour pages."""
    name = f"{info.source.name} page {info.index + 1}"
    if info.format == "pdf":
        with _open_pdf(info.source) as pdf:
            if info.rasterize:
                return _pil_to_array(_rasterize_pdf_page(info), name)
            return _pil_to_array(_decode_pdf_image(info, _page_image(pdf.pages[info.index])), name)
    with _open_pil(info) as img:
        return _pil_to_array(img, name)


def encode_for_pdf(info: PageInfo, *, image: np.ndarray | None = None) -> EncodedImage:
    """The page's image for the output PDF: the file's own bytes when PDF can carry them, else lossless.

    ``image`` is the page already decoded by :func:`load_image`, if the caller has it: the lossless
    fallbacks then encode it instead of decoding the file a second time.
    """
    encoded: EncodedImage | None = None
    if info.format == "jpeg":
        encoded = _jpeg_encoded(info)
    elif info.format == "png":
        encoded = _png_passthrough(info)
    elif info.format == "tiff":
        encoded = _tiff_g4_passthrough(info)
    elif info.format == "pdf" and not info.rasterize:
        with _open_pdf(info.source) as pdf:
            encoded = _pdf_image_passthrough(info, _page_image(pdf.pages[info.index]))
    if encoded is not None:
        return encoded
    return encode_lossless(load_image(info) if image is None else image)


def encode_lossless(image: np.ndarray) -> EncodedImage:
    """Losslessly encode decoded pixels: bilevel pages as CCITT G4, others as Flate (gray or RGB)."""
    height, width = image.shape[:2]
    if image.ndim == 2 and _is_bilevel(image):
        return _g4_from_pil(Image.fromarray(image).convert("1"))
    if image.ndim == 2:
        return EncodedImage(zlib.compress(image.tobytes(), 6), "FlateDecode", width, height, 8, "DeviceGray",
                            passthrough=False)
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    return EncodedImage(zlib.compress(rgb.tobytes(), 6), "FlateDecode", width, height, 8, "DeviceRGB",
                        passthrough=False)


@dataclass(frozen=True)
class Page:
    """A loaded page: header facts, decoded pixels and the encoded image for the output PDF."""

    info: PageInfo
    """Header facts (source, index, size, claimed dpi, text layer)."""

    image: np.ndarray
    """Decoded pixels, ``uint8``, gray or BGR."""

    encoded: EncodedImage
    """Stored image for the output PDF (original bytes where possible)."""


def iter_pages(path: Path, *, max_pixels: int = MAX_PIXELS) -> Iterator[Page]:
    """Load the pages of one file one at a time (decoded and encoded): convenient for single-process callers."""
    for info in scan_pages(path, max_pixels=max_pixels):
        yield Page(info, load_image(info), encode_for_pdf(info))


# --- PNG -------------------------------------------------------------------------------------------


def _png_chunks(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """Chunks of a PNG file (type, data); truncation or a missing IEND is reported as corruption."""
    data = path.read_bytes()
    pos = len(_PNG_MAGIC)
    while True:
        if pos + 8 > len(data):
            raise CorruptFile(f"{path.name}: PNG file is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            raise CorruptFile(f"{path.name}: PNG file is truncated inside a {kind.decode('latin-1')} chunk")
        yield kind, data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos = end


def _png_header(path: Path) -> dict[str, Any]:
    header: dict[str, Any] = {"idat": [], "dpi": (0.0, 0.0), "palette": None}
    for kind, body in _png_chunks(path):
        if kind == b"IHDR":
            if len(body) != 13:
                raise CorruptFile(f"{path.name}: PNG header is damaged")
            (header["width"], header["height"], header["depth"], header["color_type"], _, _,
             header["interlace"]) = struct.unpack(">IIBBBBB", body)
        elif kind == b"pHYs" and len(body) == 9:
            ppx, ppy, unit = struct.unpack(">IIB", body)
            if unit == 1:  # pixels per metre
                header["dpi"] = (round(ppx * 0.0254, 1), round(ppy * 0.0254, 1))
        elif kind == b"PLTE":
            header["palette"] = body
        elif kind == b"IDAT":
            header["idat"].append(body)
    if "width" not in header:
        raise CorruptFile(f"{path.name}: PNG file has no header chunk")
    return header


def _png_info(path: Path, max_pixels: int) -> PageInfo:
    header = _png_header(path)
    _check_size(path, header["width"], header["height"], max_pixels)
    return PageInfo(path, 0, "png", header["width"], header["height"], header["dpi"])


def _png_passthrough(info: PageInfo) -> EncodedImage | None:
    """PNG's IDAT stream is a zlib stream with per-row predictors, which PDF's Flate decodes as-is."""
    header = _png_header(info.source)
    colors = {0: 1, 2: 3, 3: 1}.get(header["color_type"])
    if colors is None or header["interlace"] != 0 or header["depth"] > (8 if header["color_type"] == 3 else 16):
        return None  # alpha channel (transparency is not wanted in PDF/A) or interlaced: decode instead
    if header["color_type"] == 3 and not header["palette"]:
        return None
    color_space = {0: "DeviceGray", 2: "DeviceRGB", 3: "Indexed"}[header["color_type"]]
    parms = (("Predictor", 15), ("Colors", colors), ("BitsPerComponent", header["depth"]), ("Columns", info.width))
    return EncodedImage(b"".join(header["idat"]), "FlateDecode", info.width, info.height, header["depth"],
                        color_space, parms, palette=header["palette"] if color_space == "Indexed" else None)


# --- JPEG ------------------------------------------------------------------------------------------


def _jpeg_info(path: Path, max_pixels: int) -> PageInfo:
    width, height, _ = _jpeg_frame(path)
    _check_size(path, width, height, max_pixels)
    return PageInfo(path, 0, "jpeg", width, height, _pil_dpi(path))


def _jpeg_frame(path: Path) -> tuple[int, int, int]:
    """Width, height and component count from the JPEG frame header (SOFn), without decoding."""
    with open(path, "rb") as handle:
        data = handle.read(1 << 20)
        pos = 2
        while True:
            while pos + 4 > len(data):
                more = handle.read(1 << 20)
                if not more:
                    raise CorruptFile(f"{path.name}: JPEG file is truncated before its frame header")
                data += more
            if data[pos] != 0xFF:
                raise CorruptFile(f"{path.name}: JPEG structure is damaged")
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                while pos + 10 > len(data):
                    more = handle.read(1 << 16)
                    if not more:
                        raise CorruptFile(f"{path.name}: JPEG file is truncated in its frame header")
                    data += more
                height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
                return width, height, data[pos + 9]
            if marker in (0xD9, 0xDA):
                raise CorruptFile(f"{path.name}: JPEG file has no frame header")
            pos += 2 + length


def _jpeg_encoded(info: PageInfo) -> EncodedImage | None:
    _, _, components = _jpeg_frame(info.source)
    if components not in (1, 3):  # CMYK needs a CMYK output intent in PDF/A: convert losslessly instead
        return None
    color_space = "DeviceGray" if components == 1 else "DeviceRGB"
    return EncodedImage(info.source.read_bytes(), "DCTDecode", info.width, info.height, 8, color_space)


# --- TIFF ------------------------------------------------------------------------------------------


def _tiff_infos(path: Path, max_pixels: int) -> Iterator[PageInfo]:
    """Walk the IFD chain frame by frame; PIL reads only tags when seeking, never pixels."""
    try:
        img = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, struct.error) as exc:
        raise CorruptFile(f"{path.name}: TIFF header is damaged ({exc})") from exc
    with img:
        index = 0
        while True:
            try:
                img.seek(index)
            except EOFError:
                if _tiff_ifd_count(path) != index:  # PIL stops quietly at a link into missing bytes
                    raise CorruptFile(f"{path.name}: TIFF file is truncated after page {index}") from None
                break
            except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error) as exc:
                raise CorruptFile(f"{path.name}: TIFF page {index + 1} cannot be read ({exc})") from exc
            width, height = img.size
            _check_size(path, width, height, max_pixels, page=index)
            dpi = img.info.get("dpi") or (0.0, 0.0)
            yield PageInfo(path, index, "tiff", width, height, (float(dpi[0]), float(dpi[1])))
            index += 1
        if index == 0:
            raise CorruptFile(f"{path.name}: TIFF file has no pages")


def _tiff_ifd_count(path: Path) -> int:
    """Pages in the TIFF's chain of directories; a link past the end of the file (truncation) is corruption."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
        order = "<" if head[:2] == b"II" else ">"
        big = head[2:4] in (b"+\x00", b"\x00+")
        count_fmt, entry_size, link_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        count_size, link_size = struct.calcsize(count_fmt), struct.calcsize(link_fmt)
        (offset,) = struct.unpack(order + link_fmt, head[8:16] if big else head[4:8])
        pages, seen = 0, set()
        while offset:
            if offset in seen or offset + count_size > size:
                raise CorruptFile(f"{path.name}: TIFF directory {pages + 1} lies outside the file (truncated)")
            seen.add(offset)
            handle.seek(offset)
            (entries,) = struct.unpack(order + count_fmt, handle.read(count_size))
            link = offset + count_size + entries * entry_size
            if link + link_size > size:
                raise CorruptFile(f"{path.name}: TIFF directory {pages + 1} is cut short (truncated)")
            handle.seek(link)
            (offset,) = struct.unpack(order + link_fmt, handle.read(link_size))
            pages += 1
    return pages


def _tiff_g4_passthrough(info: PageInfo) -> EncodedImage | None:
    """Single-strip CCITT G4 data is copied as-is (PDF cannot carry several strips in one image)."""
    with _open_pil(info) as img:
        tags = img.tag_v2
        photometric = tags.get(_TAG_PHOTOMETRIC, 0)
        offsets = tags.get(_TAG_STRIP_OFFSETS, ())
        counts = tags.get(_TAG_STRIP_BYTE_COUNTS, ())
        if not (img.mode == "1" and tags.get(_TAG_COMPRESSION) == _TIFF_G4 and len(offsets) == 1
                and len(counts) == 1 and tags.get(_TAG_FILL_ORDER, 1) == 1 and photometric in (0, 1)):
            return None
    with open(info.source, "rb") as handle:
        handle.seek(offsets[0])
        data = handle.read(counts[0])
    if len(data) != counts[0]:
        raise CorruptFile(f"{info.source.name}: TIFF page {info.index + 1} is truncated")
    # PhotometricInterpretation 0 (WhiteIsZero) = PDF's default BlackIs1 false.
    parms = (("K", -1), ("Columns", info.width), ("Rows", info.height), ("BlackIs1", photometric == 1))
    return EncodedImage(data, "CCITTFaxDecode", info.width, info.height, 1, "DeviceGray", parms)


def _g4_from_pil(img: Any) -> EncodedImage:
    """Re-encode a bilevel image as one CCITT G4 strip (PDF cannot carry several strips in one image)."""
    buffer = io.BytesIO()
    strip = (img.width + 7) // 8 * img.height
    saved = TiffImagePlugin.STRIP_SIZE
    TiffImagePlugin.STRIP_SIZE = max(strip, saved)
    try:
        img.save(buffer, format="TIFF", compression="group4")
    finally:
        TiffImagePlugin.STRIP_SIZE = saved
    buffer.seek(0)
    g4: Any
    with Image.open(buffer) as g4:
        (offset,), (count,) = g4.tag_v2[_TAG_STRIP_OFFSETS], g4.tag_v2[_TAG_STRIP_BYTE_COUNTS]
        photometric = g4.tag_v2.get(_TAG_PHOTOMETRIC, 0)
    data = buffer.getvalue()[offset : offset + count]
    parms = (("K", -1), ("Columns", img.width), ("Rows", img.height), ("BlackIs1", photometric == 1))
    return EncodedImage(data, "CCITTFaxDecode", img.width, img.height, 1, "DeviceGray", parms, passthrough=False)


# --- PDF -------------------------------------------------------------------------------------------


@contextmanager
def _open_pdf(path: Path) -> Iterator[pikepdf.Pdf]:
    """Open a PDF and map pikepdf's failures to the pipeline's input errors."""
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as exc:
        raise EncryptedPdf(f"{path.name}: the PDF is password-protected") from exc
    except (pikepdf.PdfError, OSError, ValueError) as exc:
        detail = str(exc).replace(str(path), path.name)  # qpdf names the file by its full path: not for officers
        raise CorruptFile(f"{path.name}: the PDF is damaged ({detail})") from exc
    with pdf:
        yield pdf


def _pdf_infos(path: Path, max_pixels: int) -> Iterator[PageInfo]:
    with _open_pdf(path) as pdf:
        if pdf.is_encrypted:
            raise EncryptedPdf(f"{path.name}: the PDF is encrypted (even without a password, OCR would drop it)")
        if _is_signed(pdf):
            raise AlreadySigned(f"{path.name}: the PDF carries a digital signature")
        try:
            count = len(pdf.pages)
        except pikepdf.PdfError as exc:
            raise CorruptFile(f"{path.name}: the PDF page tree is damaged ({exc})") from exc
        if count == 0:
            raise CorruptFile(f"{path.name}: the PDF has no pages")
        for index in range(count):
            yield _pdf_page_info(path, index, pdf.pages[index], max_pixels)


def _pdf_page_info(path: Path, index: int, page: pikepdf.Page, max_pixels: int) -> PageInfo:
    try:
        box = [float(v) for v in page.mediabox]
        has_text = _has_text(page.obj, set())
        image = _page_image(page)
    except (pikepdf.PdfError, ValueError, TypeError) as exc:
        raise CorruptFile(f"{path.name}: PDF page {index + 1} is damaged ({exc})") from exc
    page_w, page_h = abs(box[2] - box[0]) / 72.0, abs(box[3] - box[1]) / 72.0
    if image is None:
        width, height = round(page_w * PDF_RASTER_DPI), round(page_h * PDF_RASTER_DPI)
        _check_size(path, width, height, max_pixels, page=index)
        return PageInfo(path, index, "pdf", width, height, (float(PDF_RASTER_DPI),) * 2,
                        has_text_layer=has_text, rasterize=image is None)
    width, height = int(image.Width), int(image.Height)
    _check_size(path, width, height, max_pixels, page=index)
    if abs(width / height - page_w / page_h) > abs(width / height - page_h / page_w):
        page_w, page_h = page_h, page_w  # image drawn turned a quarter inside the page
    return PageInfo(path, index, "pdf", width, height, (round(width / page_w, 1), round(height / page_h, 1)),
                    has_text_layer=has_text)


def _is_signed(pdf: pikepdf.Pdf) -> bool:
    """A signature value (with its /ByteRange) or DocMDP permissions: rewriting the file would break them."""
    root = pdf.Root
    if "/Perms" in root:
        return True
    acroform = root.get("/AcroForm")
    if acroform is None:
        return False
    stack = list(acroform.get("/Fields", []))
    seen: set[tuple[int, int]] = set()
    while stack:
        field = stack.pop()
        if not isinstance(field, pikepdf.Dictionary):
            continue
        if field.is_indirect:
            if field.objgen in seen:
                continue
            seen.add(field.objgen)
        value = field.get("/V")
        if field.get("/FT") == pikepdf.Name.Sig and value is not None:
            return True
        if isinstance(value, pikepdf.Dictionary) and "/ByteRange" in value:
            return True
        stack.extend(field.get("/Kids", []))
    return False


def _has_text(obj: pikepdf.Object, seen: set[tuple[int, int]]) -> bool:
    """True when the page (or a form XObject it draws) shows text."""
    for instruction in pikepdf.parse_content_stream(obj):
        if str(instruction.operator) in _TEXT_OPERATORS:
            return True
    xobjects: Any = obj.get("/Resources", pikepdf.Dictionary()).get("/XObject", pikepdf.Dictionary())
    for xobject in xobjects.values():
        if xobject.get("/Subtype") == pikepdf.Name.Form and xobject.objgen not in seen:
            seen.add(xobject.objgen)
            if _has_text(xobject, seen):
                return True
    return False


def _page_image(page: pikepdf.Page) -> pikepdf.Stream | None:
    """The page's scan: its only image XObject, with the page's shape (either way round), else ``None``.

    An image of another shape is a logo or a photo on a born-digital page, not the page itself.
    """
    xobjects: Any = page.obj.get("/Resources", pikepdf.Dictionary()).get("/XObject", pikepdf.Dictionary())
    images = [x for x in xobjects.values() if x.get("/Subtype") == pikepdf.Name.Image]
    forms = [x for x in xobjects.values() if x.get("/Subtype") == pikepdf.Name.Form]
    if len(images) != 1 or forms or bool(images[0].get("/ImageMask", False)):
        return None
    image: pikepdf.Stream = images[0]
    box = [float(v) for v in page.mediabox]
    page_w, page_h = abs(box[2] - box[0]), abs(box[3] - box[1])
    width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
    if min(page_w, page_h, width, height) <= 0:
        return None
    ratio, page_ratio = width / height, page_w / page_h
    if min(abs(ratio / page_ratio - 1), abs(ratio * page_ratio - 1)) > 0.03:
        return None
    return image


def _decode_pdf_image(info: PageInfo, stream: pikepdf.Stream | None) -> Image.Image:
    if stream is None:
        raise CorruptFile(f"{info.source.name}: PDF page {info.index + 1} changed while reading")
    try:
        img = pikepdf.PdfImage(stream).as_pil_image()
        img.load()
    except (pikepdf.DependencyError, UnsupportedImageTypeError, NotImplementedError):
        return _render_image_alone(info, stream)  # e.g. JBIG2 without jbig2dec: poppler decodes it itself
    except (pikepdf.PdfError, OSError, ValueError, SyntaxError) as exc:
        raise CorruptFile(f"{info.source.name}: image of PDF page {info.index + 1} cannot be decoded ({exc})") from exc
    return img


def _render_image_alone(info: PageInfo, stream: pikepdf.Stream) -> Image.Image:
    """Decode an image pikepdf cannot by drawing it alone, one pixel per point, and rendering that with poppler."""
    fold = max(1, -(-max(info.width, info.height) // 14_000))  # PDF pages stop at 14,400 pt
    with tempfile.TemporaryDirectory(prefix="digitize-raster-") as tmp:
        alone = Path(tmp) / "image.pdf"
        with pikepdf.new() as pdf:
            page = pdf.add_blank_page(page_size=(info.width / fold, info.height / fold))
            page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.copy_foreign(stream)))
            page.obj.Contents = pdf.make_stream(f"q {info.width / fold} 0 0 {info.height / fold} 0 0 cm /Im0 Do Q"
                                                .encode("ascii"))
            pdf.save(alone)
        gray = stream.get("/ColorSpace") in (None, pikepdf.Name.DeviceGray) or bool(stream.get("/ImageMask", False))
        return _pdftoppm(alone, 0, 72 * fold, f"{info.source.name}: image of PDF page {info.index + 1}", gray=gray)


def _pdf_image_passthrough(info: PageInfo, stream: pikepdf.Stream | None) -> EncodedImage | None:
    """Copy a scanned page's image stream as-is when its filter and colour space are PDF/A-safe."""
    if stream is None:
        return None
    filters = stream.get("/Filter")
    if isinstance(filters, pikepdf.Array):
        if len(filters) != 1:
            return None
        filters = filters[0]
    name = str(filters)[1:] if filters is not None else ""
    color_space = stream.get("/ColorSpace")
    space = str(color_space)[1:] if isinstance(color_space, pikepdf.Name) else ""
    if name not in ("DCTDecode", "CCITTFaxDecode", "FlateDecode") or space not in ("DeviceGray", "DeviceRGB"):
        if not (name == "CCITTFaxDecode" and color_space is None):
            return None
        space = "DeviceGray"
    parms_obj = stream.get("/DecodeParms")
    if isinstance(parms_obj, pikepdf.Array):
        parms_obj = parms_obj[0] if len(parms_obj) == 1 else None
    parms: list[tuple[str, int | bool]] = []
    if isinstance(parms_obj, pikepdf.Dictionary):
        for key, value in parms_obj.items():
            if not isinstance(value, (bool, int)):
                return None  # e.g. JBIG2 globals: decode instead
            parms.append((key[1:], value))
    decode = stream.get("/Decode")
    try:
        data = stream.read_raw_bytes()
    except pikepdf.PdfError as exc:
        raise CorruptFile(f"{info.source.name}: image of PDF page {info.index + 1} is damaged ({exc})") from exc
    return EncodedImage(data, name, info.width, info.height, int(stream.get("/BitsPerComponent", 1)), space,
                        tuple(parms), tuple(float(v) for v in decode) if decode is not None else None)


def _rasterize_pdf_page(info: PageInfo) -> Image.Image:
    """Render a page that is not a single scan with poppler (vector pages, several images, text layers)."""
    return _pdftoppm(info.source, info.index, PDF_RASTER_DPI, f"{info.source.name}: PDF page {info.index + 1}")


def _pdftoppm(path: Path, index: int, dpi: int, what: str, *, gray: bool = False) -> Image.Image:
    with tempfile.TemporaryDirectory(prefix="digitize-raster-") as tmp:
        prefix = Path(tmp) / "page"
        page = str(index + 1)
        cmd = ["pdftoppm", "-r", str(dpi), "-f", page, "-l", page, "-singlefile", "-png", str(path), str(prefix)]
        done = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
        out = prefix.with_suffix(".png")
        if done.returncode != 0 or not out.exists():
            message = done.stderr.decode("utf-8", "replace").strip()[:200]
            raise CorruptFile(f"{what} cannot be rendered ({message})")
        with Image.open(out) as img:
            img.load()
            return img.convert("L") if gray else img.copy()


# --- shared ----------------------------------------------------------------------------------------


def _check_size(path: Path, width: int, height: int, max_pixels: int, *, page: int = 0) -> None:
    if width <= 0 or height <= 0:
        raise CorruptFile(f"{path.name}: page {page + 1} declares an empty size {width}×{height}")
    if min(width, height) < MIN_SIDE:
        raise LowResolution(f"{path.name}: page {page + 1} is only {width}×{height} pixels: not a scanned page")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{path.name}: page {page + 1} declares {width}×{height} pixels "
            f"({width * height / 1e6:.0f} MP, limit {max_pixels / 1e6:.0f} MP)"
        )


def _pil_dpi(path: Path) -> tuple[float, float]:
    try:
        with Image.open(path) as img:
            dpi = img.info.get("dpi")
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptFile(f"{path.name}: header cannot be read ({exc})") from exc
    if not dpi:
        return (0.0, 0.0)
    return (float(dpi[0]), float(dpi[1]))


@contextmanager
def _open_pil(info: PageInfo) -> Iterator[Any]:
    """Open one page of an image file with PIL (typed ``Any``: TIFF tags live on the plugin class)."""
    name = info.source.name
    kept = info.format == "tiff"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = _thread_tiff(info.source) if kept else Image.open(info.source)
            if info.index or kept:
                img.seek(info.index)
    except Image.DecompressionBombError as exc:
        _TIFFS.__dict__.pop("open", None)
        raise ImageTooLarge(f"{name}: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError, TypeError, KeyError,
            struct.error) as exc:
        _TIFFS.__dict__.pop("open", None)
        raise CorruptFile(f"{name}: page {info.index + 1} cannot be read ({exc})") from exc
    if kept:
        yield img
        return
    with img:
        yield img


_TIFFS = threading.local()


def _thread_tiff(path: Path) -> Any:
    """The TIFF this thread last opened, kept open: PIL finds page N by walking the directories of pages
    1..N-1, so reopening for every page makes a 1,000-page file quadratic; a kept image remembers where
    each page starts. One per thread (PIL images are not thread-safe); replaced when another file comes."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    cached = getattr(_TIFFS, "open", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    if cached is not None:
        cached[1].close()
    img = Image.open(path)
    _TIFFS.open = (key, img)
    return img


def _pil_to_array(img: Image.Image, name: str) -> np.ndarray:
    """Decode to numpy uint8: gray stays 2-D, colour becomes BGR, alpha is flattened onto white paper."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            mode = img.mode
            if mode in ("1", "L"):
                return np.asarray(img.convert("L") if mode == "1" else img, dtype=np.uint8).copy()
            if mode.startswith("I"):
                array = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if array.max() > 255 else 255.0
                return np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8)
            if mode in ("LA", "RGBA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
            if mode in ("P", "LA", "PA") and _channels_equal(rgb):
                return np.ascontiguousarray(rgb[:, :, 0])
            return np.ascontiguousarray(rgb[:, :, ::-1])
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, struct.error, zlib.error) as exc:
        raise CorruptFile(f"{name}: the image data is damaged or truncated ({exc})") from exc


def _channels_equal(rgb: np.ndarray) -> bool:
    return bool((rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all())


def _is_bilevel(image: np.ndarray) -> bool:
    return bool(((image == 0) | (image == 255)).all())
