"""What is known about a page before its pixels are decoded, what goes into the output PDF, and the size limits.

Both loaders (:mod:`digitize.intake.pages` for image files, :mod:`digitize.intake.pdf_pages` for PDFs)
build these values and enforce the same limits, before any pixel is decompressed (decompression bombs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.errors import CorruptFile, DecodedTooLarge, ImageTooLarge, LowResolution

if TYPE_CHECKING:
    from digitize.config import Settings

MIB = 1024 * 1024

MAX_PIXELS = 100_000_000
"""Largest page accepted (width × height); an A0 sheet at 300 dpi is ~140 MP, an A3 at 600 dpi ~70 MP."""

MAX_PAGES = 5_000
"""Most pages in one document (``DIGITIZE_MAX_PAGES``); a scanned stack of 2,000 pages fits."""

MAX_STREAM_MB = 512
"""Most bytes one stream or page image may decode to, in MiB (``DIGITIZE_MAX_STREAM_MB``): a 100 MP page in
CMYK is 400 MB; a 1 MB PDF whose Flate streams expand to 1 GiB is refused."""

MAX_DECODED_MB = 65_536
"""Most bytes one document may decode to, in MiB (``DIGITIZE_MAX_DECODED_MB``): 2,000 A4 pages scanned in
colour at 300 dpi are ~52 GB, decoded one page at a time."""


@dataclass(frozen=True)
class PageLimits:
    """How big a document may be, checked from headers and capped decoding before any page is decoded."""

    max_pixels: int = MAX_PIXELS
    """Largest page (declared width × height)."""

    max_pages: int = MAX_PAGES
    """Most pages in one document (all its files together)."""

    max_stream_bytes: int = MAX_STREAM_MB * MIB
    """Most bytes one PDF stream, or one page image (width × height × channels), decodes to."""

    max_decoded_bytes: int = MAX_DECODED_MB * MIB
    """Most bytes all the pages and streams of one document decode to, together."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PageLimits:
        """The limits set by ``DIGITIZE_MAX_PAGES``, ``DIGITIZE_MAX_STREAM_MB`` and ``DIGITIZE_MAX_DECODED_MB``."""
        return cls(max_pages=settings.max_pages, max_stream_bytes=settings.max_stream_mb * MIB,
                   max_decoded_bytes=settings.max_decoded_mb * MIB)

MIN_SIDE = 32
"""Pages narrower or shorter than this many pixels are not scans (an icon, a thumbnail): LOW_RESOLUTION."""


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
    """A PDF page that is not one full-page scanned image: it is rendered (see :mod:`digitize.intake.pdf_pages`)."""

    decoded_bytes: int = 0
    """What decoding the page costs: its pixels (width × height × channels × bytes per sample), plus for a
    PDF page the decoded size of the other streams it is the first of its file to draw."""


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

    samples_loaded: bool = False
    """True when a PDF reader decodes :attr:`data` to exactly the pixels :func:`~digitize.intake.load_image` gave
    (lossless 8-bit gray or RGB, or CCITT G4 of a bilevel page): those pixels then stand for a decode of the
    stream (:func:`stored_gray`)."""


def check_size(path: Path, width: int, height: int, max_pixels: int, *, page: int = 0) -> None:
    """Refuse a declared size that is empty, too small to be a scan, or over ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise CorruptFile(f"{path.name}: page {page + 1} declares an empty size {width}×{height}")
    if min(width, height) < MIN_SIDE:
        raise LowResolution(f"{path.name}: page {page + 1} is only {width}×{height} pixels: not a scanned page")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{path.name}: page {page + 1} declares {width}×{height} pixels "
            f"({width * height / 1e6:.0f} MP, limit {max_pixels / 1e6:.0f} MP)"
        )


DEFAULT_LIMITS = PageLimits()
"""The built-in limits (a document's settings may differ: :meth:`PageLimits.from_settings`)."""


def check_decoded(path: Path, size: int, limits: PageLimits, *, page: int = 0) -> int:
    """Refuse a page image that decodes to more than the per-stream limit; returns ``size``."""
    if size > limits.max_stream_bytes:
        raise DecodedTooLarge(
            f"{path.name}: page {page + 1} decodes to {size / MIB:.0f} MB, over the limit of "
            f"{limits.max_stream_bytes / MIB:.0f} MB per page image (DIGITIZE_MAX_STREAM_MB)"
        )
    return size
