"""What is known about a page before its pixels are decoded, what goes into the output PDF, and the size limits.

Both loaders (:mod:`digitize.intake.pages` for image files, :mod:`digitize.intake.pdf_pages` for PDFs)
build these values and enforce the same limits, before any pixel is decompressed (decompression bombs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digitize.errors import CorruptFile, ImageTooLarge, LowResolution

MAX_PIXELS = 100_000_000
"""Largest page accepted (width × height); an A0 sheet at 300 dpi is ~140 MP, an A3 at 600 dpi ~70 MP."""

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
