"""Page 1's ink and words read straight from a scanned page, without rendering it (issue #19).

Rendering page 1 with ``pdftoppm`` and reading its words with ``pdftotext`` cost ~0.2 s of CPU per
document, two thirds of signing. A scanned page as the pipeline (or img2pdf) writes it is simple: one
image drawn by one matrix, and at most an invisible text layer (render mode 3) in a font whose glyphs
all have the same width. For such a page the same gray render is computed here from the image
itself, decoded near 144 dpi (a JPEG by libjpeg's scaled decoding) and placed on the page by one area
resize (a box filter, as poppler's image scaling), or sampled when it is shown turned; the caller
thresholds it as it does a render. Word boxes come from the text matrices, sized as pdftotext sizes
them. Anything else on the page (a second image, vector drawing, visible text, annotations,
``/Rotate``, a ``/Decode`` array, masks, filters other than the common ones) returns ``None`` and the
caller renders the page as before, so nothing is ever skipped.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pikepdf
from PIL import Image

from digitize.checksums import content_key

Rect = tuple[float, float, float, float]

_DRAWS_NOTHING = frozenset({"q", "Q", "cm", "Do", "BT", "ET", "Tr", "Tf", "Tm", "Tj"})
"""Operators a plain scanned page uses; any other may draw, so the page is rendered instead."""
_DECODABLE = frozenset({"/DCTDecode", "/FlateDecode", "/CCITTFaxDecode", "/LZWDecode", "/RunLengthDecode"})


SCALE = 2
"""Grid pixels per point (144 dpi), as the renderer's: thin lines stay dark before each 2x2 block is pooled."""
_DESCENT = 0.35  # of the font size below the baseline: what pdftotext puts in a box when a font gives none


@dataclass(frozen=True)
class ScannedPage:
    """Page 1 of a scan as its render would show it, and its words' boxes."""

    gray: np.ndarray
    """The visible area at :data:`SCALE` pixels per point (row 0 at its top), paper-white around the
    image: what a renderer's box-filtered render at 144 dpi shows."""

    words: tuple[Rect, ...]
    """Word boxes, (x0, y0, x1, y1) in points from the visible area's top left (as pdftotext gives them)."""


def read_scanned_page(pdf: bytes, box: Rect, rotate: int,
                      known_gray: Mapping[bytes, np.ndarray] | None = None) -> ScannedPage | None:
    """Page 1 as gray pixels and word boxes, or ``None`` when it is not a plain scanned page and must be
    rendered. ``known_gray``: gray samples the caller holds, by :func:`~digitize.checksums.content_key` of
    the image stream's raw bytes they decode (the PDF's maker has them): a match is used instead of decoding."""
    if rotate % 360:
        return None
    try:
        with pikepdf.open(io.BytesIO(pdf)) as doc:
            page = doc.pages[0]
            if len(page.obj.get("/Annots", pikepdf.Array())) > 0:
                return None
            drawn = _drawn(page)
            if drawn is None:
                return None
            image, matrix, words = drawn
            gray = _decoded_gray(image, matrix, known_gray or {})
    except (pikepdf.PikepdfError, Image.DecompressionBombError, ValueError, TypeError, KeyError, AttributeError,
            IndexError, NotImplementedError, OSError, zlib.error):
        return None  # the renderer decides what is wrong with it
    if gray is None:
        return None
    x0, _y0, _x1, y1 = box
    boxes = tuple((a - x0, y1 - d, c - x0, y1 - b) for a, b, c, d in words)
    return ScannedPage(255 - _placed(255 - gray, matrix, box), boxes)  # placed as ink on blank paper


def _drawn(page: pikepdf.Page) -> tuple[pikepdf.Object, np.ndarray, list[Rect]] | None:
    """The one image, the matrix drawing it and the invisible words' boxes, if that is all the page draws."""
    resources = page.obj.get("/Resources", pikepdf.Dictionary())
    xobjects = resources.get("/XObject", pikepdf.Dictionary())
    fonts = resources.get("/Font", pikepdf.Dictionary())
    image: pikepdf.Object | None = None
    matrix: np.ndarray | None = None
    runs: list[tuple[float, float, np.ndarray]] = []  # (width, size, text matrix x CTM) of each shown string
    ctm, mode, advance, size, text_matrix = np.eye(3), 0, None, 1.0, np.eye(3)
    saved: list[tuple[np.ndarray, int, float | None, float]] = []  # q saves the graphics state, text state included
    for instruction in pikepdf.parse_content_stream(page):
        if not isinstance(instruction, pikepdf.ContentStreamInstruction):
            return None  # an inline image
        operands, op = instruction.operands, str(instruction.operator)
        if op not in _DRAWS_NOTHING:
            return None
        if op == "q":
            saved.append((ctm, mode, advance, size))
        elif op == "Q":
            if not saved:
                return None
            ctm, mode, advance, size = saved.pop()
        elif op == "cm":
            ctm = _matrix(operands) @ ctm
        elif op == "Do":
            xobject = xobjects.get(str(operands[0]))
            if image is not None or xobject is None or xobject.get("/Subtype") != pikepdf.Name.Image:
                return None
            image, matrix = xobject, ctm
        elif op == "BT":
            text_matrix = np.eye(3)
        elif op == "Tr":
            mode = int(operands[0])
        elif op == "Tf":
            advance, size = _advance(fonts.get(str(operands[0]))), float(operands[1])
        elif op == "Tm":
            text_matrix = _matrix(operands)
        elif op == "Tj":
            if mode != 3 or advance is None or not isinstance(operands[0], pikepdf.String):
                return None  # visible text, or a font whose widths vary: render it
            runs.append((len(bytes(operands[0])) // 2 * advance * size, size, text_matrix @ ctm))
    if image is None or matrix is None:
        return None
    return image, matrix, _word_boxes(runs)


def _matrix(operands: Iterable[Any]) -> np.ndarray:
    """A PDF matrix ``a b c d e f`` as a 3x3 acting on row vectors (x, y, 1)."""
    a, b, c, d, e, f = (float(v) for v in operands)
    return np.array([[a, b, 0.0], [c, d, 0.0], [e, f, 1.0]])


def _advance(font: pikepdf.Object | None) -> float | None:
    """Width of every glyph (text space, size 1) of a two-byte font whose glyphs are all as wide; else ``None``."""
    if font is None or font.get("/Subtype") != pikepdf.Name.Type0:
        return None
    if font.get("/Encoding") != pikepdf.Name("/Identity-H"):
        return None
    descendant = font.DescendantFonts[0]
    if "/W" in descendant:
        return None
    return float(descendant.get("/DW", 1000)) / 1000.0


def _word_boxes(runs: list[tuple[float, float, np.ndarray]]) -> list[Rect]:
    """Page-space bounding boxes of the runs: their advance wide, from the descent to one em above the baseline."""
    if not runs:
        return []
    width = np.array([r[0] for r in runs])
    size = np.array([r[1] for r in runs])
    m = np.stack([r[2] for r in runs])  # (n, 3, 3)
    xs = np.stack([np.zeros_like(width), width, np.zeros_like(width), width], axis=1)
    ys = np.stack([-_DESCENT * size, -_DESCENT * size, size, size], axis=1)
    px = xs * m[:, None, 0, 0] + ys * m[:, None, 1, 0] + m[:, None, 2, 0]
    py = xs * m[:, None, 0, 1] + ys * m[:, None, 1, 1] + m[:, None, 2, 1]
    return list(zip(px.min(1).tolist(), py.min(1).tolist(), px.max(1).tolist(), py.max(1).tolist(), strict=True))


def _decoded_gray(image: pikepdf.Object, matrix: np.ndarray, known: Mapping[bytes, np.ndarray]) -> np.ndarray | None:
    """The image's gray pixels: ``known``'s for its bytes, else decoded (a JPEG straight at about :data:`SCALE`
    pixels per point)."""
    if any(key in image for key in ("/Decode", "/SMask", "/Mask")) or image.get("/ImageMask", False):
        return None
    filters = image.get("/Filter")
    names = [str(f) for f in (filters if isinstance(filters, pikepdf.Array) else [filters] if filters else [])]
    if any(name not in _DECODABLE for name in names):
        return None
    if known:
        gray = known.get(content_key(image.read_raw_bytes()))
        if gray is not None and gray.shape == (int(image.Height), int(image.Width)):
            return gray
    if names and names[-1] == "/DCTDecode" and set(names[:-1]) <= {"/FlateDecode"}:
        data = image.read_raw_bytes()
        for _ in names[:-1]:
            data = zlib.decompress(data)
        img = Image.open(io.BytesIO(data))
        if img.mode not in ("L", "RGB"):
            return None
        img.draft("L", _shrunk((int(image.Width), int(image.Height)), matrix, SCALE))
        return np.asarray(img.convert("L"), dtype=np.uint8)
    samples = None if "/CCITTFaxDecode" in names else _samples(image)
    if samples is not None:
        return samples
    if not isinstance(image, pikepdf.Stream):
        return None
    with pikepdf.PdfImage(image).as_pil_image() as decoded:
        return np.asarray(decoded.convert("L"), dtype=np.uint8)


def _samples(image: pikepdf.Object) -> np.ndarray | None:
    """Gray pixels straight from the decoded samples of an 8-bit gray or RGB, or 1-bit gray, image.

    pikepdf's ``as_pil_image`` would re-encode a Flate image as PNG for Pillow to decode again.
    """
    width, height = int(image.Width), int(image.Height)
    bits, space = int(image.get("/BitsPerComponent", 8)), image.get("/ColorSpace")
    channels = {"/DeviceGray": 1, "/DeviceRGB": 3}.get(str(space)) if isinstance(space, pikepdf.Name) else None
    if channels is None or (bits, channels) not in ((8, 1), (8, 3), (1, 1)):
        return None
    data = np.frombuffer(image.read_bytes(), dtype=np.uint8)
    if bits == 1:
        stride = (width + 7) // 8
        packed = data[:stride * height].reshape(height, stride)
        return np.unpackbits(packed, axis=1)[:, :width] * np.uint8(255)  # 1 is white in DeviceGray
    pixels = data[:width * height * channels].reshape(height, width, channels)
    if channels == 1:
        return pixels[:, :, 0]
    import cv2

    return np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY))


def _shrunk(size: tuple[int, int], matrix: np.ndarray, scale: float) -> tuple[int, int]:
    """The image's size at ``scale`` pixels per point on the page (never enlarged)."""
    reach = (math.hypot(matrix[0, 0], matrix[0, 1]) * scale / size[0],
             math.hypot(matrix[1, 0], matrix[1, 1]) * scale / size[1])
    return max(1, round(size[0] * min(1.0, reach[0]))), max(1, round(size[1] * min(1.0, reach[1])))


def _placed(ink: np.ndarray, matrix: np.ndarray, box: Rect) -> np.ndarray:
    """``ink`` (0 = none) put on the visible area's grid of :data:`SCALE` pixels per point by ``matrix``, 0
    around the image, as poppler renders it: an upright image is box-filtered to its size on the grid; a
    turned or skewed one is sampled at the nearest pixel (so a dust speck stays one speck, as in the
    render). The grid is anchored at the page's bottom edge, as poppler's is."""
    import cv2

    rows, cols = round(box[3] - box[1]) * SCALE, round(box[2] - box[0]) * SCALE
    (a, b, _), (c, d, _), (e, f, _) = matrix
    if abs(b) < 1e-9 and abs(c) < 1e-9 and a > 0 and d > 0:  # upright and straight: one area resize
        left, top = round((e - box[0]) * SCALE), round(rows - (f + d - box[1]) * SCALE)
        size = (max(1, round(a * SCALE)), max(1, round(d * SCALE)))
        placed = cv2.resize(ink, size, interpolation=cv2.INTER_AREA)
        canvas = np.zeros((rows, cols), dtype=np.uint8)
        y0, x0, y1, x1 = max(0, top), max(0, left), min(rows, top + size[1]), min(cols, left + size[0])
        if y1 > y0 and x1 > x0:
            canvas[y0:y1, x0:x1] = placed[y0 - top:y1 - top, x0 - left:x1 - left]
        return canvas
    h, w = ink.shape
    # decoded pixel centre (i + 0.5) -> unit square (u right, v up) -> page points -> grid pixel centre
    to_unit = np.array([[1.0 / w, 0.0, 0.0], [0.0, -1.0 / h, 0.0], [0.5 / w, 1.0 - 0.5 / h, 1.0]])
    shift = (-box[0] * SCALE - 0.5, rows + box[1] * SCALE - 0.5)
    to_grid = np.array([[SCALE, 0.0, 0.0], [0.0, -SCALE, 0.0], [shift[0], shift[1], 1.0]])
    m = to_unit @ matrix @ to_grid
    return cv2.warpAffine(ink, np.ascontiguousarray(m[:, :2].T), (cols, rows), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
