"""Where the stamp and the QR code go on page 1: in free space, never over the page's ink.

Decree 30/2020 Appendix I fixes the stamp at the top right of page 1, and Circular 01/2023 puts the QR
code at the top left; a scan's national motto and letterhead sit there too. Free space is found on a
map of page 1 in 1-pt cells, where a cell is taken if the rendered page is dark there (lines, seals and
signatures included) or a word of the text layer (the OCR words) covers it. The map is read from the
PDF itself, so the signing machine needs neither the scan nor the OCR result: from the page's image
when page 1 is a plain scan (:mod:`digitize.signing.inkmap`, ~15 times cheaper), else from poppler's
render of it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digitize.errors import ConfigurationError, CorruptFile
from digitize.signing.inkmap import SCALE as _SCALE
from digitize.signing.inkmap import read_scanned_page

Rect = tuple[float, float, float, float]
"""x0, y0, x1, y1 in PDF user space (points, y up)."""

STAMP_COVERS_INK = "STAMP_COVERS_INK"
"""Review flag: page 1 had no free space for the stamp or the QR code, which cover some of its ink."""

REVIEW_FLAGS = (STAMP_COVERS_INK,)
"""Every review flag signing can raise."""

_CLEARANCE = 3  # points kept free around the stamp and the QR code
_INK_SHARE = 0.6  # a pixel darker than this share of the paper's (median) level is ink
_SPECK = 4  # dark blobs of at most this many cells (square points) are dust: covered when nothing else is free
_STAMP_REACH = 0.4  # the stamp may move down to this share of the page height, and left to its middle
_WORD = re.compile(r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">')


@dataclass(frozen=True)
class Placement:
    """The stamp's and the QR code's rectangles on page 1, and what a reviewer must look at."""

    stamp: Rect
    qr: Rect | None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Page:
    """Page 1 as grids of 1-pt cells, row 0 at the top of the visible area: every dark cell, and without specks."""

    taken: np.ndarray
    solid: np.ndarray
    box: Rect

    def find(self, size: tuple[int, int], target: tuple[int, int], region: tuple[int, int, int, int],
             clearance: int) -> tuple[int, int] | None:
        """A spot free of any ink if there is one, else one where only dust specks lie."""
        for grid in (self.taken, self.solid):
            spot = _nearest_free(grid, size, target, region, clearance)
            if spot is not None:
                return spot
        return None

    def take(self, spot: tuple[int, int], size: tuple[int, int]) -> None:
        left, top = spot[0] - _CLEARANCE, spot[1] - _CLEARANCE
        for grid in (self.taken, self.solid):
            grid[max(0, top):top + size[1] + 2 * _CLEARANCE, max(0, left):left + size[0] + 2 * _CLEARANCE] = True

    def to_pdf(self, left: int, top: int, width: float, height: float) -> Rect:
        x0, _y0, _x1, y1 = self.box
        return (x0 + left, y1 - top - height, x0 + left + width, y1 - top)


def plan(pdf: bytes, box: Rect, rotate: int, stamp: tuple[float, float], qr_sides: Sequence[float],
         margin: float, known_gray: Mapping[bytes, np.ndarray] | None = None) -> Placement:
    """Free spots for the stamp (``stamp`` = width, height) and the QR code, at least ``margin`` from the edges.

    The stamp prefers the top right, in the top margin, then the nearest free band below or to the left.
    The QR code (``qr_sides``: its sizes, preferred first; none for no code) prefers the top left, then
    another free corner; its quiet zone (and one point more) keeps it clear of ink. With no free spot
    the stamp keeps its corner, covers ink, and the placement carries :data:`STAMP_COVERS_INK`.
    ``known_gray``: page images already decoded (:func:`~digitize.signing.inkmap.read_scanned_page`).
    """
    page = _page_map(pdf, box, rotate, known_gray)
    rows, cols = page.taken.shape
    edge = max(int(np.ceil(margin)), _CLEARANCE)
    size = (int(np.ceil(stamp[0])), int(np.ceil(stamp[1])))
    flags: list[str] = []
    corner = (cols - edge - size[0], edge)
    spot = page.find(size, corner, (cols // 2, edge, cols - edge, int(rows * _STAMP_REACH)), _CLEARANCE)
    if spot is None:
        spot = (max(edge, corner[0]), edge)
        flags.append(STAMP_COVERS_INK)
    page.take(spot, size)
    stamp_rect = page.to_pdf(spot[0], spot[1], stamp[0], stamp[1])
    if not qr_sides:
        return Placement(stamp_rect, None, tuple(flags))
    for qr in qr_sides:
        side = int(np.ceil(qr))
        for target in ((edge, edge), (cols - edge - side, rows - edge - side), (edge, rows - edge - side),
                       (cols - edge - side, edge)):  # top left (Circular 01/2023), then the other corners
            left, top = (0 if target[0] == edge else cols // 2), (0 if target[1] == edge else rows // 2)
            quarter = (left, max(edge, top), left + cols // 2, top + rows // 2)
            qr_spot = page.find((side, side), target, quarter, 1)
            if qr_spot is not None:
                return Placement(stamp_rect, page.to_pdf(qr_spot[0], qr_spot[1], qr, qr), tuple(flags))
    qr = qr_sides[0]
    return Placement(stamp_rect, page.to_pdf(edge, edge, qr, qr), tuple(dict.fromkeys([*flags, STAMP_COVERS_INK])))


def _nearest_free(taken: np.ndarray, size: tuple[int, int], target: tuple[int, int],
                  region: tuple[int, int, int, int], clearance: int) -> tuple[int, int] | None:
    """Top-left cell of the free rectangle of ``size`` (and ``clearance``) inside ``region`` nearest ``target``.

    Only the rectangles that fit the region are counted (a summed-area table over the cells they can
    cover, not the whole page), top row first.
    """
    rows, cols = taken.shape
    w, h = size[0] + 2 * clearance, size[1] + 2 * clearance
    x0, y0, x1, y1 = region
    left_lo, left_hi = max(x0, clearance), min(x1 - size[0], cols - w + clearance)
    top_lo, top_hi = max(y0, clearance), min(y1 - size[1], rows - h + clearance)
    if left_lo > left_hi or top_lo > top_hi:
        return None
    window = taken[top_lo - clearance:top_hi - clearance + h, left_lo - clearance:left_hi - clearance + w]
    table = np.zeros((window.shape[0] + 1, window.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(window, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    ny, nx = top_hi - top_lo + 1, left_hi - left_lo + 1  # the clearance box's top-left cells
    counts = table[h:h + ny, w:w + nx] - table[:ny, w:w + nx] - table[h:h + ny, :nx] + table[:ny, :nx]
    distance = (np.abs(np.arange(left_lo, left_hi + 1) - target[0])[None, :]
                + np.abs(np.arange(top_lo, top_hi + 1) - target[1])[:, None])
    masked = np.where(counts == 0, distance, np.iinfo(np.int64).max)
    best = np.unravel_index(masked.argmin(), masked.shape)
    if counts[best] != 0:
        return None
    return left_lo + int(best[1]), top_lo + int(best[0])


def _page_map(pdf: bytes, box: Rect, rotate: int, known_gray: Mapping[bytes, np.ndarray] | None) -> _Page:
    """Ink of page 1 and its text layer's word boxes, in user-space orientation.

    A plain scanned page is read from its image (:mod:`digitize.signing.inkmap`); any other page is
    rendered by poppler.
    """
    import cv2

    scanned = read_scanned_page(pdf, box, rotate, known_gray)
    words: list[tuple[float, ...]]
    if scanned is not None:
        ink, words = _ink_cells(scanned.gray), list(scanned.words)
    else:
        ink, words = _rendered_page(pdf)
    _count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    specks = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= _SPECK)
    solid = ink & ~np.isin(labels, specks[specks > 0])
    grids = []
    for grid in (ink, solid):
        _mark_words(grid, words)
        grids.append(_fit(np.rot90(grid, k=(rotate // 90) % 4), box))  # pdftoppm applied /Rotate: undo it
    return _Page(grids[0], grids[1], box)


def _rendered_page(pdf: bytes) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """Dark cells of page 1 rendered by pdftoppm, and its words' boxes as pdftotext reads them."""
    with tempfile.TemporaryDirectory(prefix="digitize-stamp-") as tmp:
        path = Path(tmp) / "in.pdf"
        path.write_bytes(pdf)
        prefix = Path(tmp) / "page"
        _run(["pdftoppm", "-r", str(72 * _SCALE), "-gray", "-cropbox", "-f", "1", "-l", "1", "-singlefile",
              str(path), str(prefix)])
        with Image.open(prefix.with_suffix(".pgm")) as img:
            gray = np.asarray(img.convert("L"), dtype=np.uint8)
        words = _run(["pdftotext", "-f", "1", "-l", "1", "-bbox", str(path), "-"]).decode("utf-8", "replace")
    return _ink_cells(gray), [tuple(float(v) for v in m.groups()) for m in _WORD.finditer(words)]


def _fit(cells: np.ndarray, box: Rect) -> np.ndarray:
    """``cells`` cut or padded to the visible area's size in points."""
    width, height = round(box[2] - box[0]), round(box[3] - box[1])
    grid = np.zeros((height, width), dtype=bool)
    rows, cols = min(height, cells.shape[0]), min(width, cells.shape[1])
    grid[:rows, :cols] = cells[:rows, :cols]
    return grid


def _ink_cells(gray: np.ndarray) -> np.ndarray:
    """Dark cells of page 1's visible area, 1 pt each: any dark pixel of the cell's 2x2 block counts."""
    dark = gray < float(np.median(gray)) * _INK_SHARE
    rows, cols = (dark.shape[0] + _SCALE - 1) // _SCALE, (dark.shape[1] + _SCALE - 1) // _SCALE
    padded = np.zeros((rows * _SCALE, cols * _SCALE), dtype=bool)
    padded[:dark.shape[0], :dark.shape[1]] = dark
    cells = np.zeros((rows, cols), dtype=bool)
    for dy in range(_SCALE):  # strided ORs: ~15x faster than any() over the block axes
        for dx in range(_SCALE):
            cells |= padded[dy::_SCALE, dx::_SCALE]
    return cells


def _mark_words(cells: np.ndarray, words: Iterable[tuple[float, ...]]) -> None:
    """Mark the text layer's word boxes (y from the top, as pdftotext gives them) as taken."""
    for x0, y0, x1, y1 in words:
        cells[max(0, int(y0)):int(np.ceil(y1)), max(0, int(x0)):int(np.ceil(x1))] = True


def _run(cmd: list[str]) -> bytes:
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise ConfigurationError(f"{cmd[0]} is missing: the stamp is placed from a render of page 1.",
                                 hint="Install poppler-utils (Debian).") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()[:200]
        raise CorruptFile(f"Page 1 of the PDF to sign cannot be rendered to place the stamp ({message}).")
    return done.stdout
