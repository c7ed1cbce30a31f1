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

This module holds the entry points and the image files (PNG, JPEG, TIFF); PDF pages are read in
:mod:`digitize.intake.pdf_pages`, and the values and size limits both share in
:mod:`digitize.intake.page_info`.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from digitize.errors import (
    CorruptFile,
    DecodedTooLarge,
    EmptyFile,
    ImageTooLarge,
    InputError,
    MissingFile,
    TooManyPages,
    UnsupportedFormat,
)
from digitize.intake.page_info import DEFAULT_LIMITS, MIB, EncodedImage, PageInfo, PageLimits, check_decoded, check_size
from digitize.intake.pdf_pages import pdf_page_count, pdf_page_infos, pdf_page_passthrough, pdf_page_picture

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
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


def scan_pages(path: Path, limits: PageLimits = DEFAULT_LIMITS) -> Iterator[PageInfo]:
    """Yield the pages of one file lazily, reading headers only; bad files raise :class:`InputError`s."""
    fmt = sniff_format(path)
    if fmt == "png":
        yield _png_info(path, limits)
    elif fmt == "jpeg":
        yield _jpeg_info(path, limits)
    elif fmt == "tiff":
        yield from _tiff_infos(path, limits)
    else:
        yield from pdf_page_infos(path, limits)


def file_pixels(path: Path) -> int | None:
    """Width × height summed over a file's pages, from its headers (no decoding): the OCR work it holds.

    ``None`` when the headers cannot be read; the file is quarantined, with its reason, when its document runs.
    """
    try:
        return sum(page.width * page.height for page in scan_pages(path))
    except (InputError, OSError):
        return None


def scan_document(sources: Sequence[Path], limits: PageLimits = DEFAULT_LIMITS) -> Iterator[PageInfo]:
    """The pages of one document's files, in order, lazily; the document is refused as a whole when it has
    more than ``max_pages`` pages (counted from the files' structure before any page is yielded) or its
    pages decode to more than ``max_decoded_bytes`` together."""
    pages = 0
    for source in sources:
        pages += count_pages(source)
        if pages > limits.max_pages:
            raise TooManyPages(f"{source.name}: the document has more than {limits.max_pages} pages, the limit "
                               "per document (DIGITIZE_MAX_PAGES)")
    decoded = 0
    for source in sources:
        for info in scan_pages(source, limits):
            decoded += info.decoded_bytes
            if decoded > limits.max_decoded_bytes:
                raise DecodedTooLarge(
                    f"{source.name}: by page {info.index + 1} the document decodes to more than "
                    f"{limits.max_decoded_bytes / MIB:.0f} MB, the limit per document (DIGITIZE_MAX_DECODED_MB)")
            yield info


def count_pages(path: Path) -> int:
    """Pages of one file from its structure alone (PDF page tree, TIFF directory chain)."""
    fmt = sniff_format(path)
    if fmt == "tiff":
        try:
            return _tiff_ifd_count(path)
        except (struct.error, OSError) as exc:  # a header cut short
            raise CorruptFile(f"{path.name}: TIFF header is damaged ({exc})") from exc
    return pdf_page_count(path) if fmt == "pdf" else 1


def load_image(info: PageInfo) -> np.ndarray:
    """Decode one page to numpy ``uint8``: 2-D gray, or 3-D BGR (OpenCV's order) for colour pages."""
    name = f"{info.source.name} page {info.index + 1}"
    if info.format == "pdf":
        return _pil_to_array(pdf_page_picture(info), name)
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
    elif info.format == "pdf":
        encoded = pdf_page_passthrough(info)
    if encoded is not None:
        return encoded
    return encode_lossless(load_image(info) if image is None else image)


def stored_gray(encoded: EncodedImage, image: np.ndarray) -> np.ndarray | None:
    """The gray samples a PDF reader decodes from ``encoded``, when ``image`` (the page as :func:`load_image`
    decoded it) holds them already (:attr:`EncodedImage.samples_loaded`); ``None`` otherwise.

    Signing reads page 1's ink from its image; in the process that made the PDF these spare it decoding the
    stream again (~30 ms of an A4 page). Gray as :mod:`digitize.signing.inkmap` makes it: OpenCV's weights.
    """
    if not (encoded.samples_loaded and encoded.decode is None and image.shape[:2] == (encoded.height, encoded.width)):
        return None
    if image.ndim == 2:
        return image
    import cv2

    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


def encode_lossless(image: np.ndarray) -> EncodedImage:
    """Losslessly encode decoded pixels: bilevel pages as CCITT G4, others as Flate with PNG predictors.

    The predictors (each row coded against the one above, PNG's adaptive filters, which PDF's
    ``/Predictor 15`` undoes) take a scan's smooth paper and strokes far below plain Flate: what
    OCRmyPDF's ``--optimize 1`` does. JBIG2 would beat G4 on bilevel pages, but no JBIG2 encoder is
    packaged here (``jbig2enc`` is not in Debian's or PyPI's lists), so G4 it is.
    """
    height, width = image.shape[:2]
    if image.ndim == 2 and _is_bilevel(image):
        return _g4_from_pil(Image.fromarray(image).convert("1"))
    colors = 1 if image.ndim == 2 else 3
    buffer = io.BytesIO()
    Image.fromarray(image if colors == 1 else np.ascontiguousarray(image[:, :, ::-1])).save(
        buffer, format="PNG", compress_level=6)
    parms = (("Predictor", 15), ("Colors", colors), ("BitsPerComponent", 8), ("Columns", width))
    return EncodedImage(_idat(buffer.getvalue()), "FlateDecode", width, height, 8,
                        "DeviceGray" if colors == 1 else "DeviceRGB", parms, passthrough=False, samples_loaded=True)


def _idat(png: bytes) -> bytes:
    """The zlib stream of a PNG made here (IDAT chunks, in order)."""
    parts, pos = [], len(_PNG_MAGIC)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            parts.append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    return b"".join(parts)


@dataclass(frozen=True)
class Page:
    """A loaded page: header facts, decoded pixels and the encoded image for the output PDF."""

    info: PageInfo
    """Header facts (source, index, size, claimed dpi, text layer)."""

    image: np.ndarray
    """Decoded pixels, ``uint8``, gray or BGR."""

    encoded: EncodedImage
    """Stored image for the output PDF (original bytes where possible)."""


def iter_pages(path: Path, limits: PageLimits = DEFAULT_LIMITS) -> Iterator[Page]:
    """Load the pages of one file one at a time (decoded and encoded): convenient for single-process callers."""
    for info in scan_pages(path, limits):
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
    header: dict[str, Any] = {"idat": [], "dpi": (0.0, 0.0), "palette": None, "transparency": False}
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
        elif kind == b"tRNS":
            header["transparency"] = True
        elif kind == b"IDAT":
            header["idat"].append(body)
    if "width" not in header:
        raise CorruptFile(f"{path.name}: PNG file has no header chunk")
    return header


def _png_info(path: Path, limits: PageLimits) -> PageInfo:
    header = _png_header(path)
    width, height = header["width"], header["height"]
    check_size(path, width, height, limits.max_pixels)
    channels = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}.get(header["color_type"], 4) * (2 if header["depth"] == 16 else 1)
    decoded = check_decoded(path, width * height * channels, limits)
    return PageInfo(path, 0, "png", width, height, header["dpi"], decoded_bytes=decoded)


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
    # load_image decodes an 8-bit gray or RGB PNG to these very samples, unless a tRNS chunk made it flatten them
    loaded = header["depth"] == 8 and header["color_type"] in (0, 2) and not header["transparency"]
    return EncodedImage(b"".join(header["idat"]), "FlateDecode", info.width, info.height, header["depth"],
                        color_space, parms, palette=header["palette"] if color_space == "Indexed" else None,
                        samples_loaded=loaded)


# --- JPEG ------------------------------------------------------------------------------------------


def _jpeg_info(path: Path, limits: PageLimits) -> PageInfo:
    width, height, components = _jpeg_frame(path)
    check_size(path, width, height, limits.max_pixels)
    decoded = check_decoded(path, width * height * max(components, 1), limits)
    return PageInfo(path, 0, "jpeg", width, height, _pil_dpi(path), decoded_bytes=decoded)


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


def _tiff_infos(path: Path, limits: PageLimits) -> Iterator[PageInfo]:
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
            if index >= limits.max_pages:
                raise TooManyPages(f"{path.name}: more than {limits.max_pages} pages, the limit per document "
                                   "(DIGITIZE_MAX_PAGES)")
            width, height = img.size
            check_size(path, width, height, limits.max_pixels, page=index)
            decoded = check_decoded(path, width * height * _mode_bytes(img.mode), limits, page=index)
            dpi = img.info.get("dpi") or (0.0, 0.0)
            yield PageInfo(path, index, "tiff", width, height, (float(dpi[0]), float(dpi[1])), decoded_bytes=decoded)
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
    return EncodedImage(data, "CCITTFaxDecode", info.width, info.height, 1, "DeviceGray", parms, samples_loaded=True)


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
    return EncodedImage(data, "CCITTFaxDecode", img.width, img.height, 1, "DeviceGray", parms, passthrough=False,
                        samples_loaded=True)  # only made from pages of 0 and 255 alone: G4 keeps them exactly


# --- shared ----------------------------------------------------------------------------------------


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


def _mode_bytes(mode: str) -> int:
    """Bytes per pixel of a PIL mode once decoded (a bilevel pixel takes a byte)."""
    sample = 4 if mode in ("I", "F") else 2 if "16" in mode else 1
    return int(Image.getmodebands(mode)) * sample if mode in Image.MODES else 4


def _channels_equal(rgb: np.ndarray) -> bool:
    return bool((rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all())


def _is_bilevel(image: np.ndarray) -> bool:
    return bool(((image == 0) | (image == 255)).all())
