"""Finding cover sheets in a scanned stack, before any OCR: the codes on a downscaled page, and the sheet's frame.

A page is downscaled to 86-170 dpi (a 40 mm QR code's modules are then 5 pixels wide or more, the 30 mm one's 4)
and zxing-cpp looks for QR codes on it in every orientation; a code whose text is a valid sheet id
(:func:`digitize.codes.parse_sheet_id`) names the sheet. On its own, that would miss a sheet whose two codes are
smudged, and the stack would merge that sheet's document into the previous one. So the page is also checked
for the sheet's marker: a thick black frame with a black top band (see
:mod:`digitize.presentation.coversheets`), one connected shape that spans most of the page, stays clear of the
image's edges (a scanner's dark background runs along them) and is mostly thick strokes (a certificate's
decorative border is thin). Only when the marker is seen and no code read does the page get a second, slower
look at twice the resolution.

This module is the only one that speaks to zxing-cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from digitize.codes import SHEET_ID_PREFIX, parse_sheet_id

__all__ = ["SheetDetection", "detect_sheet"]

LONG_SIDE = 1000
"""The page is shrunk by a whole factor to a long side of at least this many pixels before the codes are looked
for (A4 at 86 to 170 dpi: a whole factor is what OpenCV's area resampling does fastest)."""

MARKER_LONG_SIDE = 400
"""Long side of the page the marker is looked for on (A4 at 34 dpi: the frame's strokes are 7 pixels wide)."""

RETRY_LONG_SIDE = 2400
"""Long side of the second look, taken only at a page showing the sheet's marker but no readable code."""

_MIN_SPAN = 0.6
"""The frame spans at least this share of the page's width and height (it spans ~90 %; a skewed or cropped scan
less)."""

_ERODE_MM = 2.5
"""Side of the square the ink is eroded by: the frame's 5 mm strokes keep half their width, lines and text
strokes thinner than 2.5 mm vanish."""

_FILL = (0.04, 0.45)
"""Share of its bounding box the eroded frame blackens (~9 % upright, ~6 % at 10° of skew, more with blots);
above, it is a dark area, not a ring."""

_MAX_CENTRE = 0.3
"""Most of the middle of its bounding box (the central 40 % each way) a ring may cover: a sheet's middle holds
its codes and lines, separate shapes (ink blotted over both codes may reach into it)."""

_MAX_EDGE_SHARE = 0.1
"""Most of the image's edge the frame may touch: a sheet's frame sits inside a white margin (a blot or a torn
corner may reach the edge), a scanner's dark background runs along it."""


@dataclass(frozen=True)
class SheetDetection:
    """What one page shows of a cover sheet."""

    sheet_id: str | None
    """The sheet id its codes carry (canonical form), or None: no sheet, or one whose codes could not be read."""
    looks_like_sheet: bool
    """A sheet's marker or code was seen, even when the id could not be read: such a page must stop its segment."""
    symbols_decoded: int
    """How many of the sheet's codes were read (2 on a clean sheet, 1 when the other is smudged)."""


def detect_sheet(image: Image.Image | np.ndarray) -> SheetDetection:
    """Whether the page ``image`` (PIL image, or numpy array: gray, BGR/RGB or bilevel) is a cover sheet, and which.

    Works in any orientation, at up to 10° of skew, from 150 to 600 dpi, in colour, grey or black and white,
    on photocopies, and with one of the two codes smudged; a few milliseconds per page.
    """
    import zxingcpp  # here, not at the top: the DAG files and the CLI import intake without reading sheets

    gray = _gray(image)
    small = _downscaled(gray, LONG_SIDE)
    ids, damaged = _read_codes(small, zxingcpp.Binarizer.LocalAverage)
    marker = not ids and _has_marker(_downscaled(small, MARKER_LONG_SIDE, whole=False))
    if marker:
        ids, damaged_again = _read_codes(_downscaled(gray, RETRY_LONG_SIDE),
                                         binarizer=zxingcpp.Binarizer.GlobalHistogram)
        damaged = damaged or damaged_again
    distinct = set(ids)
    sheet_id = ids[0] if len(distinct) == 1 else None  # two different ids on one page: no guess
    return SheetDetection(sheet_id=sheet_id, looks_like_sheet=bool(ids) or marker or damaged,
                          symbols_decoded=len(ids) if sheet_id else 0)


def _gray(image: Image.Image | np.ndarray) -> np.ndarray:
    """The page as a 2-D uint8 array (black 0, white 255)."""
    import cv2

    if isinstance(image, Image.Image):
        if image.mode not in ("L", "1", "RGB"):
            image = image.convert("RGB")
        image = image.convert("L") if image.mode != "L" else image
        return np.asarray(image)
    array = np.asarray(image)
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 1:
            return array[:, :, 0]
        return np.asarray(cv2.cvtColor(array[:, :, :3], cv2.COLOR_BGR2GRAY))
    return array


def _downscaled(gray: np.ndarray, long_side: int, *, whole: bool = True) -> np.ndarray:
    """``gray`` shrunk to a long side of ``long_side``; with ``whole``, by the largest whole factor that keeps at
    least ``long_side``, and by bilinear sampling: ten times faster than area averaging on a 300 dpi page, and
    a QR module (5 to 15 pixels once shrunk) loses nothing by it. The marker's page is area-averaged, so that
    its thick strokes stay solid."""
    import cv2

    factor = max(gray.shape) / long_side
    if whole:
        factor = float(int(factor))
    if factor <= 1:
        return gray
    interpolation = cv2.INTER_LINEAR if whole else cv2.INTER_AREA
    return np.asarray(cv2.resize(gray, None, fx=1 / factor, fy=1 / factor, interpolation=interpolation))


def _read_codes(gray: np.ndarray, binarizer: Any) -> tuple[list[str], bool]:
    """The sheet ids the page's QR codes carry, and whether a code read as a damaged sheet id.

    Sheets carry QR codes only: looking for nothing else is faster, and reads no document's barcode."""
    import zxingcpp

    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    found = zxingcpp.read_barcodes(np.ascontiguousarray(gray), formats=qr_only,
                                   try_rotate=True, try_downscale=True, try_invert=False, binarizer=binarizer,
                                   is_pure=False)
    ids = []
    damaged = False
    for symbol in found:
        parsed = parse_sheet_id(symbol.text)
        if parsed is not None:
            ids.append(parsed)
        elif symbol.text.strip().upper().startswith(f"{SHEET_ID_PREFIX}-"):
            damaged = True
    return ids, damaged


def _has_marker(gray: np.ndarray) -> bool:
    """Whether the page shows a sheet's frame: a ring of thick black strokes around most of the page, off its
    edges. Thin lines (borders, tables) and text strokes vanish in the erosion first, so text merged with a
    certificate's border never forms the ring."""
    import cv2

    height, width = gray.shape
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    dpmm = max(height, width) / 297.0  # pixels per mm, taking the long side as A4's
    core = cv2.erode(ink, np.ones((max(2, round(_ERODE_MM * dpmm)),) * 2, np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if min(w / width, h / height) < _MIN_SPAN or not _FILL[0] <= area / (w * h) <= _FILL[1]:
            continue
        centre = labels[y + h * 3 // 10:y + h * 7 // 10, x + w * 3 // 10:x + w * 7 // 10] == label
        if centre.mean() <= _MAX_CENTRE and _edge_share(labels, label) <= _MAX_EDGE_SHARE:
            return True
    return False


def _edge_share(labels: np.ndarray, label: int) -> float:
    """Share of the image's edge pixels that belong to component ``label``."""
    edges = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return float(np.count_nonzero(edges == label)) / edges.size
