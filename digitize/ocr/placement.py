"""Where the recognised words go on the stored image: visual rows, the inverse transform, the display deskew.

Split from :mod:`digitize.ocr.recognize`, which runs Tesseract; this module is pure geometry on its words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from digitize.ocr.pdfa import TextWord

if TYPE_CHECKING:
    from digitize.ocr.recognize import OcrWord


def group_rows(words: Sequence[OcrWord]) -> list[list[list[OcrWord]]]:
    """Tesseract's lines grouped into visual rows (rows top to bottom, their lines left to right).

    Lines that overlap vertically by more than half the smaller height share a row: side-by-side
    blocks (letterhead, signature block) and a justified line Tesseract cut in two are one row.
    """
    by_line: dict[tuple[int, int, int, int], list[OcrWord]] = {}
    for word in words:
        by_line.setdefault(word.line_box, []).append(word)
    rows: list[tuple[int, int, list[tuple[int, list[OcrWord]]]]] = []  # top, bottom, [(left, words)]
    for box, line_words in sorted(by_line.items(), key=lambda item: (item[0][1] + item[0][3]) / 2):
        line = sorted(line_words, key=lambda w: w.box[0])
        top, bottom = box[1], box[3]
        if rows:
            row_top, row_bottom, parts = rows[-1]
            if min(bottom, row_bottom) - max(top, row_top) > 0.5 * min(bottom - top, row_bottom - row_top):
                parts.append((box[0], line))
                rows[-1] = (min(top, row_top), max(bottom, row_bottom), parts)
                continue
        rows.append((top, bottom, [(box[0], line)]))
    return [[line for _, line in sorted(parts, key=lambda part: part[0])] for _, _, parts in rows]



def display_deskew(to_original: np.ndarray) -> float | None:
    """Skew left after the quarter turn, as the counter-clockwise turn (degrees) that shows the page straight.

    ``None`` when the stored image and the OCR image are not related by a plain rotation and scale
    (a photo warped out of perspective): a PDF can only turn an image, not unwarp it.
    """
    homography = np.asarray(to_original, dtype=np.float64)
    homography = homography / homography[2, 2]
    if abs(homography[2, 0]) > 1e-9 or abs(homography[2, 1]) > 1e-9:
        return None
    to_ocr = np.linalg.inv(homography)
    clockwise = math.degrees(math.atan2(to_ocr[1, 0], to_ocr[0, 0]))  # y-down grid: positive = clockwise
    counter = -clockwise
    return counter - 90.0 * round(counter / 90.0)



def map_words(words: Sequence[OcrWord], to_original: np.ndarray, *, straighten: bool) -> tuple[TextWord, ...]:
    """Place the words on the stored image (baseline start and end, top), one row at a time.

    Every word of a visual row gets the row's top and bottom, so extractors see one line of one size.
    Mapped exactly, the rows follow the scan's skew, which :func:`display_deskew` then turns away on
    display. When it cannot (perspective), ``straighten`` lays each row along the page's quarter-turn
    axis instead: extractors (poppler, pdf.js) split a line whose baseline drifts. The row's baseline
    is taken at the page's centre column, so rows keep their spacing; the cost is a misplacement of
    the highlight by distance-from-centre × sin(skew) at the ends of a row.
    """
    homography = np.asarray(to_original, dtype=np.float64)
    centre_x = float(np.mean([(w.box[0] + w.box[2]) / 2 for w in words])) if words else 0.0
    placed: list[TextWord] = []
    for row in group_rows(words):
        row_words = [w for line in row for w in line]
        top = min(w.line_box[1] for w in row_words)
        bottom = max(w.line_box[3] for w in row_words)
        points = [(centre_x, bottom), (centre_x + 100.0, bottom), (centre_x, top)]
        for word in row_words:
            points += [(word.box[0], bottom), (word.box[2], bottom), (word.box[0], top)]
        mapped = cv2.perspectiveTransform(np.asarray(points, dtype=np.float64).reshape(-1, 1, 2),
                                          homography).reshape(-1, 2)
        if straighten:
            mapped = _straighten(mapped)
        for n, word in enumerate(row_words):
            origin, stop, top_point = mapped[3 + 3 * n], mapped[4 + 3 * n], mapped[5 + 3 * n]
            placed.append(TextWord(word.text, (float(origin[0]), float(origin[1])), (float(stop[0]), float(stop[1])),
                                   (float(top_point[0]), float(top_point[1]))))
    return tuple(placed)



def _straighten(mapped: np.ndarray) -> np.ndarray:
    """Lay a mapped row (anchor, anchor+along, anchor top, then 3 points per word) on its quarter-turn axis."""
    anchor, ahead, up = mapped[0], mapped[1], mapped[2]
    along = _axis(ahead - anchor)
    normal = np.array([along[1], -along[0]])  # a quarter turn from ``along``, towards the row's top
    if float(np.dot(up - anchor, normal)) < 0:
        normal = -normal
    baseline = float(anchor @ normal)
    height = max(1.0, abs(float(np.dot(up - anchor, normal))))
    out = mapped.copy()
    for n in range(3, len(mapped), 3):
        start, stop = float(mapped[n] @ along), float(mapped[n + 1] @ along)
        out[n] = start * along + baseline * normal
        out[n + 1] = stop * along + baseline * normal
        out[n + 2] = out[n] + height * normal
    return out



def _axis(direction: np.ndarray) -> np.ndarray:
    """The image axis (±x or ±y, unit vector) nearest to ``direction``."""
    if abs(direction[0]) >= abs(direction[1]):
        return np.array([1.0 if direction[0] >= 0 else -1.0, 0.0])
    return np.array([0.0, 1.0 if direction[1] >= 0 else -1.0])


