"""OpenCV clean-up of one page image before OCR, and the quality gate (blank page, low resolution).

Why each step exists (measured on degraded office scans, see bench/results/ocr.md):

- perspective: phone photos show the page as a quadrilateral on a dark desk; warping it to a rectangle
  also gives the real resolution of a file that claims 72 dpi.
- background normalisation: dividing by a large-scale estimate of the paper removes grey paper, uneven
  light and vignetting, so one global threshold fits the whole page. Dark scanner borders are painted
  white first, or their ragged edge would remain as fake strokes.
- despeckle: a 3x3 median removes pepper noise; small roundish blobs far from any text (dust) go too.
- binarisation: halfway between the paper and the stroke cores of the normalised page; only pixels at
  least 25 % darker than the paper count as stroke cores, so show-through (5-11 % darker) never becomes
  ink. Adaptive-Gaussian thresholding is not used: it invents text from show-through.
- borders and punch holes: long ink touching the image edge, round 4-12 mm blobs in the margins.
- orientation: text lines horizontal or vertical from the projection profile; upright or upside down from
  the balance of ink above and below the x-height band (accents, ascenders vs descenders); Tesseract OSD
  (through the caller's ``detect_orientation``, ~0.7 s) only when that balance is unclear, and its answer
  only above a confidence.
- deskew: projection profile of the ink over +-``max_skew_deg``, coarse then fine, on a 150 dpi copy,
  so blur does not matter and the cost stays a few milliseconds.
- blank page: the share of clearly dark ink left after all the cleaning; a blank back side with
  show-through has none.
- resolution: pages under 250 dpi are upscaled to 300 dpi for OCR (the PDF keeps the original). Tesseract
  scales each text line to a fixed height, so body text scanned above 200 dpi is binarised, then area-averaged
  to 200 dpi: OCR costs ~15 % less, the development corpus reads as well or better. Print under ~10 pt (errors
  doubled at 200 dpi) and upscaled pages (taken back down, 7 of 22 IDs misread) keep their OCR resolution.

Nothing here calls Tesseract: orientation detection is injected by the caller (``digitize.ocr.recognize``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

A4_MM = (210.0, 297.0)
MM_PER_INCH = 25.4
ANALYSIS_DPI = 150.0


@dataclass(frozen=True)
class PreprocessOptions:
    """What ``prepare_page`` does; every step can be switched off (the benchmark measures each one)."""

    orientation: bool = True
    """Detect pages turned by 90/180/270 degrees (projection profile + Tesseract OSD)."""

    osd_min_confidence: float = 2.0
    """Tesseract OSD orientation confidence below which its answer is ignored (it misreads faint photos)."""

    upright_min_ratio: float = 1.4
    """Ink above / below the x-height band at or above which a page is upright without asking OSD (and at
    or below whose inverse it is upside down when OSD is unsure)."""

    deskew: bool = True
    """Detect and correct the skew of text lines."""

    max_skew_deg: float = 10.0
    """Largest skew searched for, in degrees either way."""

    perspective: bool = True
    """Find the page quadrilateral of a photo and warp it to a rectangle."""

    normalize_background: bool = True
    """Divide the page by a smooth estimate of the paper (grey paper, uneven light, vignetting)."""

    despeckle: bool = True
    """3x3 median and removal of small isolated blobs (dust, pepper noise)."""

    remove_borders: bool = True
    """Remove dark scanner borders (ink along the image edge) and punch holes (round blobs in the margins)."""

    binarize: bool = True
    """Give Tesseract a black-and-white image (threshold halfway between paper and ink); off = cleaned grey."""

    ink_contrast_max: float = 0.75
    """A pixel is ink only if darker than this fraction of the local paper brightness (show-through is ~0.9)."""

    blank_ink_fraction: float = 0.0005
    """Page is blank when ink left after cleaning covers less than this share of its area."""

    min_dpi: float = 200.0
    """Below this effective resolution the page is flagged LOW_RESOLUTION (Decree 30/2020: >= 200 dpi)."""

    ocr_dpi: float = 300.0
    """Pages below ``ocr_min_dpi`` are upscaled to this resolution for OCR only."""

    ocr_min_dpi: float = 250.0
    """Effective resolution below which the OCR image is upscaled to ``ocr_dpi``."""

    ocr_text_dpi: float = 200.0
    """Resolution Tesseract reads a page at when its letters are at least ``ocr_min_letter_px`` tall there
    (the binarised image is area-averaged down to it); 0 = always the binarisation's resolution."""

    ocr_min_letter_px: float = 13.0
    """Median letter height (px at ``ocr_text_dpi``) below which a page keeps its resolution (13 px: ~10 pt)."""

    min_plausible_dpi: float = 100.0
    """A claimed resolution below this (phone photos say 72) is replaced by an estimate from the page size."""

    page_size_mm: tuple[float, float] = A4_MM
    """Assumed paper size (short, long side) when the resolution must be estimated."""


@dataclass(frozen=True)
class PreparedPage:
    """The image Tesseract reads and how it relates to the stored image."""

    ocr_image: np.ndarray
    """uint8 single-channel image given to Tesseract (upright, deskewed, cleaned, binarised)."""

    to_original: np.ndarray
    """3x3 homography: (x, y, 1) in ``ocr_image`` pixels -> pixels of the stored image as loaded."""

    rotation_cw: int
    """0/90/180/270: the stored image shows the page turned clockwise by this much; PDF /Rotate = (360 - it) % 360."""

    blank: bool
    """No text on the page: do not OCR it."""

    effective_dpi: float
    """Real resolution of the stored image (estimated from the page size when the file's claim is implausible)."""

    skew_deg: float
    """Skew found, degrees, positive = content turned counter-clockwise."""

    flags: tuple[str, ...]
    """Quality findings: LOW_RESOLUTION, BLANK, PHOTO, BILEVEL, NOT_COLOUR, DPI_ESTIMATED."""

    steps: tuple[str, ...]
    """Names of the steps applied, in order (for events and the benchmark)."""

    @property
    def ocr_dpi(self) -> float:
        """Resolution of ``ocr_image`` for Tesseract's ``--dpi``: the effective dpi over the local scale of
        ``to_original`` at the image centre (> 1 after upscaling a low-resolution page)."""
        h, w = self.ocr_image.shape[:2]
        pts = np.array([[w / 2.0, h / 2.0, 1.0], [w / 2.0 + 1.0, h / 2.0, 1.0], [w / 2.0, h / 2.0 + 1.0, 1.0]])
        mapped = pts @ np.asarray(self.to_original, dtype=np.float64).T
        xy = mapped[:, :2] / mapped[:, 2:3]
        d1, d2 = xy[1] - xy[0], xy[2] - xy[0]
        area = abs(float(d1[0] * d2[1] - d1[1] * d2[0]))
        return float(self.effective_dpi / np.sqrt(area)) if area > 0 else self.effective_dpi


OrientationDetector = Callable[[np.ndarray], tuple[int, float]]


def _as_gray(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grey image and whether the source had real colour (not three equal channels)."""
    if image.ndim == 2:
        return image, False
    if image.shape[2] == 4:
        image = image[:, :, :3]
    small = image[::8, ::8].astype(np.int16)
    colour = bool(np.abs(small - small.mean(axis=2, keepdims=True)).max() > 12)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), colour


def _find_page_quad(gray: np.ndarray) -> np.ndarray | None:
    """Corners (tl, tr, br, bl) of a bright page clearly inside a darker frame, or None (a scan)."""
    h, w = gray.shape
    scale = 800.0 / max(h, w)
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    _, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    area = cv2.contourArea(hull) / float(mask.shape[0] * mask.shape[1])
    if not 0.2 < area < 0.9:
        return None
    quad = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
    if len(quad) != 4:
        return None
    inside = mask[mask > 0].size
    outside_mean = float(small[mask == 0].mean()) if inside < mask.size else 255.0
    if outside_mean > 0.7 * float(small[mask > 0].mean()):
        return None  # no dark frame around the page: not a photo
    pts = quad.reshape(4, 2).astype(np.float64) / scale
    s, d = pts.sum(axis=1), pts[:, 0] - pts[:, 1]
    return np.array([pts[np.argmin(s)], pts[np.argmax(d)], pts[np.argmax(s)], pts[np.argmin(d)]])


def _normalize_background(gray: np.ndarray, dpi: float, whiten_borders: bool) -> np.ndarray:
    """Divide by the paper brightness estimated at 1/8 scale (closing removes text, median smooths).

    Dark scanner borders wider than the closing become "paper" and would leave only their ragged edge as
    fake strokes, so with ``whiten_borders`` they are found first (dark, connected to the image edge) and
    painted white.
    """
    h, w = gray.shape
    f = 8
    small = cv2.resize(gray, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    k = max(3, round(dpi / f * 5.0 / MM_PER_INCH) | 1)  # ~5 mm: wider than any glyph stroke
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    bg = cv2.medianBlur(bg, 5)
    border = None
    if whiten_borders:
        paper = float(np.percentile(bg, 75))
        dark = (small < 0.6 * paper).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
        sh, sw = dark.shape
        x, y, bw, bh = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
        edge = (x == 0) | (y == 0) | (x + bw >= sw) | (y + bh >= sh)
        edge[0] = False
        if edge.any():
            mask = edge[labels].astype(np.uint8)
            mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # the blurred rim of the border too
            bg = np.where(mask > 0, np.maximum(bg, round(paper)), bg).astype(np.uint8)
            border = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.divide(gray, np.maximum(bg, 1), scale=255)
    if border is not None:
        out[border > 0] = 255
    return out


def _ink_threshold(gray: np.ndarray, contrast_max: float) -> tuple[float, float]:
    """Grey level at or below which a pixel is ink, and the paper level.

    Clearly dark = darker than ``contrast_max`` of the paper level (show-through never is). The threshold is
    the midpoint between the paper and the median of those dark pixels (the stroke cores): faint, blurred
    photo text keeps its strokes, show-through stays paper, and a bilevel scan is cut halfway.
    """
    sample = gray[::2, ::2]
    paper = float(np.percentile(sample, 90))
    dark = sample[sample <= contrast_max * paper]
    if dark.size == 0:
        return contrast_max * paper, paper
    return (float(np.median(dark)) + paper) / 2.0, paper


def _profile_score(ys: np.ndarray, xs: np.ndarray, angles_deg: np.ndarray, size: int) -> np.ndarray:
    """Sum of squared row counts of the ink after rotating by each angle (peaks when lines are level)."""
    scores = np.empty(len(angles_deg))
    for i, a in enumerate(np.deg2rad(angles_deg)):
        r = ys * np.cos(a) + xs * np.sin(a)
        hist = np.bincount((r - r.min()).astype(np.int64), minlength=size)
        scores[i] = float(np.dot(hist, hist))
    return scores


def _estimate_skew(ink: np.ndarray, max_deg: float) -> tuple[float, float]:
    """Skew in degrees (positive = content turned counter-clockwise) and a peakiness score.

    ``ink`` is a small binary image (ink > 0). Coarse search every 0.25 degree, then 0.02 degree around the best.
    A row y = y0 - x tan(a) of content turned by +a is level in r = y cos(a) + x sin(a).
    """
    ys, xs = np.nonzero(ink)
    if len(ys) < 50:
        return 0.0, 0.0
    if len(ys) > 30000:
        pick = np.random.default_rng(0).choice(len(ys), 30000, replace=False)
        ys, xs = ys[pick], xs[pick]
    ys = ys.astype(np.float64)
    xs = xs.astype(np.float64)
    size = int(np.hypot(*ink.shape)) + 2
    coarse = np.arange(-max_deg, max_deg + 1e-9, 0.25)
    sc = _profile_score(ys, xs, coarse, size)
    best = float(coarse[int(np.argmax(sc))])
    fine = np.arange(best - 0.3, best + 0.3 + 1e-9, 0.02)
    sf = _profile_score(ys, xs, fine, size)
    angle = float(fine[int(np.argmax(sf))])
    return angle, float(sf.max()) / float(len(ys)) ** 2


def _ascender_ratio(ink: np.ndarray) -> float:
    """Ink just above the x-height band over ink just below it, summed over the text lines of a level page.

    Latin script has more ascenders, capitals and (in Vietnamese above all) accents right above the
    x-height than descenders and dots below the baseline: measured 2.0-3.2 on upright pages, 0.3-0.5 on
    the same pages upside down. The bands are the rows denser than 40 % of a full line; the zones looked
    at are half a band high, so they never reach the neighbouring line. 1.0 (no opinion) when the zones
    hold too little ink to judge.
    """
    prof = np.count_nonzero(ink, axis=1).astype(np.float64)
    if not (prof > 0).any():
        return 1.0
    core = prof >= 0.4 * np.percentile(prof[prof > 0], 95)
    edges = np.diff(np.concatenate([[0], core.astype(np.int8), [0]]))
    above = below = 0.0
    for a, b in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True):
        if b - a < 3:
            continue
        zone = max(1, round(0.5 * (b - a)))
        above += float(prof[max(0, a - zone):a].sum())
        below += float(prof[b:b + zone].sum())
    if above + below < 0.05 * float(prof.sum()):
        return 1.0  # no ascenders, descenders or accents to speak of (capitals, digits): no opinion
    return above / below if below > 0 else 2.0


def _level(ink: np.ndarray, skew: float) -> np.ndarray:
    """``ink`` turned by -skew (small image, for analysis only)."""
    h, w = ink.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -skew, 1.0)
    return cv2.warpAffine(ink, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)


def _orientation_and_skew(small: np.ndarray, ink: np.ndarray, options: PreprocessOptions,
                          detect_orientation: OrientationDetector | None, steps: list[str]) -> tuple[int, float]:
    """Quarter turns counter-clockwise that make the page upright, and the skew of the upright page.

    Horizontal vs vertical lines: the projection profile (each way at its best skew). Upright vs upside
    down: the ascender/descender balance; only when it is not clearly upright is Tesseract OSD asked
    (~0.7 s), and its answer used above ``osd_min_confidence``.
    """
    skew, horizontal = _estimate_skew(ink, options.max_skew_deg)
    if not options.orientation:
        return 0, (skew if options.deskew else 0.0)
    k_ccw = 0
    _, vertical = _estimate_skew(np.ascontiguousarray(ink.T), options.max_skew_deg)
    if vertical > 1.2 * horizontal:
        k_ccw = 1
        ink = _rotate_ccw(ink, 1)
        skew, _ = _estimate_skew(ink, options.max_skew_deg)
        steps.append("orientation_profile")
    ratio = _ascender_ratio(_level(ink, skew))
    if ratio < options.upright_min_ratio:
        osd_rot, osd_conf = (detect_orientation(_rotate_ccw(small, k_ccw)) if detect_orientation is not None
                             else (0, 0.0))
        if osd_conf >= options.osd_min_confidence and osd_rot % 90 == 0:
            steps.append("orientation_osd")
            if osd_rot % 180:  # OSD says the lines run the other way: measure the skew again
                skew, _ = _estimate_skew(_rotate_ccw(ink, osd_rot // 90), options.max_skew_deg)
            k_ccw += osd_rot // 90
        elif ratio <= 1.0 / options.upright_min_ratio:
            steps.append("orientation_profile_180")
            k_ccw += 2
    return k_ccw % 4, (skew if options.deskew else 0.0)


def _rot90_matrix(k_ccw: int, w: int, h: int) -> np.ndarray:
    """Homography of turning a w x h image counter-clockwise by k_ccw * 90 degrees (as cv2.rotate does)."""
    k = k_ccw % 4
    if k == 0:
        return np.eye(3)
    if k == 1:  # ccw 90: x' = y, y' = w-1-x
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0], [0.0, 0.0, 1.0]])
    if k == 2:
        return np.array([[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0], [0.0, 0.0, 1.0]])
    return np.array([[0.0, -1.0, h - 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


_CV_ROTATE = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def _rotate_ccw(img: np.ndarray, k_ccw: int) -> np.ndarray:
    k = k_ccw % 4
    return img if k == 0 else cv2.rotate(img, _CV_ROTATE[k])


def _ink_mask(gray: np.ndarray, threshold: float) -> np.ndarray:
    """255 where ``gray`` <= ``threshold`` (ink), else 0."""
    _, mask = cv2.threshold(gray, float(np.floor(threshold)), 255, cv2.THRESH_BINARY_INV)
    return mask


def _erase(ink: np.ndarray, labels: np.ndarray, stats: np.ndarray, which: np.ndarray) -> None:
    """Set the pixels of components ``which`` to 0, working inside their bounding boxes only."""
    for i in which:
        x, y, w, h = stats[i, :4]
        box = ink[y:y + h, x:x + w]
        box[labels[y:y + h, x:x + w] == i] = 0


def _clean_ink(ink: np.ndarray, dpi: float, options: PreprocessOptions) -> np.ndarray:
    """Remove border-touching ink, punch holes and isolated specks from a binary ink mask (ink = 255)."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n <= 1:
        return ink
    h, w = ink.shape
    x, y, bw, bh, area = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4]
    drop = np.zeros(n, dtype=bool)
    mm = dpi / MM_PER_INCH
    if options.remove_borders:
        touches = (x == 0) | (y == 0) | (x + bw >= w) | (y + bh >= h)
        # a scanner border is long along an edge; a letter that merely reaches the edge is short
        drop |= touches & ((bw > 15 * mm) | (bh > 15 * mm) | (area > (4 * mm) ** 2))
        # punch holes (solid, or rings once the background is normalised): round, 4-12 mm, in the outer 20 mm
        # where the text margins leave no letters
        cx, cy = centroids[:, 0], centroids[:, 1]
        margin = np.minimum(np.minimum(cx, w - cx), np.minimum(cy, h - cy)) < 20 * mm
        drop |= (margin & (np.minimum(bw, bh) > 4 * mm) & (np.maximum(bw, bh) < 12 * mm)
                 & (np.maximum(bw, bh) <= 1.3 * np.minimum(bw, bh)))
    drop[0] = False
    out = ink.copy()
    _erase(out, labels, stats, np.nonzero(drop)[0])
    if options.despeckle:
        # dust: a roundish blob smaller than a letter (1.2 mm) more than 2 mm from anything letter-sized;
        # accents and dots sit next to their letter, a dash is elongated, a lone "1" is taller than 1.2 mm
        small = (np.maximum(bw, bh) < 1.2 * mm) & (np.maximum(bw, bh) <= 2.5 * np.minimum(bw, bh)) & ~drop
        small[0] = False
        if small.any():
            big = out.copy()
            _erase(big, labels, stats, np.nonzero(small)[0])
            reach = max(2, round(2.6 * mm))  # 2 mm from the blob's edge, measured from its centre
            near = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 2 * reach + 1)))
            idx = np.nonzero(small)[0]
            cx = np.clip(np.round(centroids[idx, 0]).astype(np.int64), 0, w - 1)
            cy = np.clip(np.round(centroids[idx, 1]).astype(np.int64), 0, h - 1)
            _erase(out, labels, stats, idx[near[cy, cx] == 0])
    return out


@dataclass
class _PageInProgress:
    """The page between clean-up steps: the current image, how it maps back, what was found and done."""

    gray: np.ndarray
    """Current single-channel image."""

    to_orig: np.ndarray
    """3x3 homography from ``gray`` pixels to pixels of the stored image."""

    flags: list[str]
    """Quality findings so far, in the order found."""

    steps: list[str]
    """Steps applied so far, in order."""

    def transform(self, gray: np.ndarray, backward: np.ndarray, step: str) -> None:
        """Replace the image by ``gray``; ``backward`` maps its pixels to those of the previous image."""
        self.gray = gray
        self.to_orig = self.to_orig @ backward
        self.steps.append(step)


def prepare_page(
    image: np.ndarray,
    claimed_dpi: float,
    options: PreprocessOptions,
    detect_orientation: OrientationDetector | None,
) -> PreparedPage:
    """Turn a decoded page image into the image Tesseract should read, with the quality findings."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 16:
        raise ValueError(f"expected a uint8 grey or BGR page image, got {image.dtype} {image.shape}")
    gray, colour = _as_gray(image)
    page = _PageInProgress(gray, np.eye(3), _input_flags(gray, colour), [])
    if options.perspective:
        _unwarp_photo(page)
    dpi = _effective_dpi(page, claimed_dpi, options)
    _clean_background(page, dpi, options)
    threshold, paper = _ink_threshold(page.gray, options.ink_contrast_max)
    small, small_ink, blank = _analysis_copy(page.gray, dpi, threshold, paper, options)
    rotation_cw = 0
    skew = 0.0
    if blank:
        page.flags.append("BLANK")
    else:
        k_ccw, skew = _orientation_and_skew(small, small_ink, options, detect_orientation, page.steps)
        rotation_cw = k_ccw * 90
        _make_upright(page, k_ccw, skew, paper, options)
    ocr_dpi = dpi if blank else _upscale_for_ocr(page, dpi, options)
    image = _downscale_for_ocr(page, _ocr_image(page, threshold, ocr_dpi, options), ocr_dpi,
                               0.0 if blank or ocr_dpi > dpi else _letter_inches(small_ink, dpi, rotation_cw), options)
    return PreparedPage(
        ocr_image=np.ascontiguousarray(image),
        to_original=page.to_orig,
        rotation_cw=rotation_cw,
        blank=blank,
        effective_dpi=float(dpi),
        skew_deg=float(skew),
        flags=tuple(page.flags),
        steps=tuple(page.steps),
    )


def _input_flags(gray: np.ndarray, colour: bool) -> list[str]:
    """Findings about the file as scanned: a grey (not colour) scan, a bilevel (fax-like) scan."""
    flags = [] if colour else ["NOT_COLOUR"]
    sample = gray[::4, ::4]
    if np.count_nonzero((sample > 0) & (sample < 255)) < 0.001 * sample.size:
        flags.append("BILEVEL")
    return flags


def _unwarp_photo(page: _PageInProgress) -> None:
    """A phone photo shows the page as a quadrilateral on a desk: warp it to a rectangle (flag PHOTO)."""
    quad = _find_page_quad(page.gray)
    if quad is None:
        return
    top = np.linalg.norm(quad[1] - quad[0])
    bottom = np.linalg.norm(quad[2] - quad[3])
    left = np.linalg.norm(quad[3] - quad[0])
    right = np.linalg.norm(quad[2] - quad[1])
    pw, ph = (top + bottom) / 2.0, (left + right) / 2.0
    dst = np.array([[0, 0], [pw - 1, 0], [pw - 1, ph - 1], [0, ph - 1]], dtype=np.float64)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), dst.astype(np.float32))
    flat = cv2.warpPerspective(page.gray, warp, (round(pw), round(ph)), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    page.flags.append("PHOTO")
    page.transform(flat, np.linalg.inv(warp), "perspective")


def _effective_dpi(page: _PageInProgress, claimed_dpi: float, options: PreprocessOptions) -> float:
    """The file's claimed resolution, or an estimate from the paper size when the claim is implausible."""
    dpi = float(claimed_dpi) if claimed_dpi else 0.0
    if dpi < options.min_plausible_dpi:
        dpi = max(page.gray.shape) / (options.page_size_mm[1] / MM_PER_INCH)
        page.flags.append("DPI_ESTIMATED")
    if dpi < options.min_dpi:
        page.flags.append("LOW_RESOLUTION")
    return dpi


def _clean_background(page: _PageInProgress, dpi: float, options: PreprocessOptions) -> None:
    """Flatten the paper (grey paper, uneven light, borders) and remove pepper noise, as switched on."""
    if options.normalize_background:
        page.gray = _normalize_background(page.gray, dpi, options.remove_borders)
        page.steps.append("normalize_background")
    if options.despeckle:
        page.gray = cv2.medianBlur(page.gray, 3)
        page.steps.append("median3")


def _analysis_copy(gray: np.ndarray, dpi: float, threshold: float, paper: float,
                   options: PreprocessOptions) -> tuple[np.ndarray, np.ndarray, bool]:
    """A ~150 dpi copy (enough for OSD and a 0.05 degree skew precision, cheap to scan), its cleaned ink,
    and whether the page is blank: hardly any clearly dark ink left once borders, holes and dust are gone
    (show-through never is)."""
    f_small = min(1.0, ANALYSIS_DPI / dpi)
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, round(w * f_small)), max(1, round(h * f_small))), interpolation=cv2.INTER_AREA)
    small_ink = _clean_ink(_ink_mask(small, threshold), dpi * f_small, options)
    clear = cv2.bitwise_and(small_ink, _ink_mask(small, options.ink_contrast_max * paper))
    blank = bool(np.count_nonzero(clear) < options.blank_ink_fraction * clear.size)
    return small, small_ink, blank


def _make_upright(page: _PageInProgress, k_ccw: int, skew: float, paper: float, options: PreprocessOptions) -> None:
    """Turn the page by quarter turns, then level its skew (when deskew is on and the skew is measurable)."""
    if k_ccw:
        sh, sw = page.gray.shape
        page.gray = _rotate_ccw(page.gray, k_ccw)
        page.to_orig = page.to_orig @ np.linalg.inv(_rot90_matrix(k_ccw, sw, sh))
    if not (options.deskew and abs(skew) >= 0.05):
        return
    sh, sw = page.gray.shape
    m = cv2.getRotationMatrix2D((sw / 2.0, sh / 2.0), -skew, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(sw * c + sh * s)), int(np.ceil(sw * s + sh * c))
    m[0, 2] += (nw - sw) / 2.0
    m[1, 2] += (nh - sh) / 2.0
    # black outside the page keeps dark scanner borders connected to the edge, where they are removed
    fill = 0 if options.binarize and options.remove_borders else int(paper)
    levelled = cv2.warpAffine(page.gray, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=fill)
    page.transform(levelled, np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]])), "deskew")


def _upscale_for_ocr(page: _PageInProgress, dpi: float, options: PreprocessOptions) -> float:
    """Upscale a low-resolution page for OCR only (the PDF keeps the stored image); the OCR image's dpi."""
    if dpi >= options.ocr_min_dpi:
        return dpi
    f = options.ocr_dpi / dpi
    sh, sw = page.gray.shape
    larger = cv2.resize(page.gray, (round(sw * f), round(sh * f)), interpolation=cv2.INTER_CUBIC)
    page.transform(larger, np.diag([1.0 / f, 1.0 / f, 1.0]), "upscale")
    return options.ocr_dpi


def _letter_inches(small_ink: np.ndarray, dpi: float, rotation_cw: int) -> float:
    """Median height of the letter-like components of the analysis copy's ink, in inches."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(small_ink, connectivity=8)
    sideways = rotation_cw in (90, 270)  # turned a quarter: a letter's height is its width here
    tall = stats[1:, cv2.CC_STAT_WIDTH if sideways else cv2.CC_STAT_HEIGHT]
    wide = stats[1:, cv2.CC_STAT_HEIGHT if sideways else cv2.CC_STAT_WIDTH]
    letters = (tall >= 3) & (wide <= 3 * tall)  # not specks, accents or rules
    return float(np.median(tall[letters])) / (dpi * min(1.0, ANALYSIS_DPI / dpi)) if letters.any() else 0.0


def _downscale_for_ocr(page: _PageInProgress, image: np.ndarray, ocr_dpi: float, letter_inches: float,
                       options: PreprocessOptions) -> np.ndarray:
    """The binarised page area-averaged down to ``ocr_text_dpi`` when its letters stay tall enough there."""
    target = options.ocr_text_dpi
    if not target or ocr_dpi <= 1.02 * target or letter_inches * target < options.ocr_min_letter_px:
        return image
    h, w = image.shape
    size = (max(1, round(w * target / ocr_dpi)), max(1, round(h * target / ocr_dpi)))
    page.transform(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.diag([w / size[0], h / size[1], 1.0]),
                   "downscale")
    return page.gray


def _ocr_image(page: _PageInProgress, threshold: float, ocr_dpi: float, options: PreprocessOptions) -> np.ndarray:
    """Black ink on white with borders, holes and dust removed; or the cleaned grey when binarize is off."""
    if not options.binarize:
        return page.gray
    ink = _ink_mask(page.gray, threshold)
    page.steps.append("binarize")
    if options.remove_borders or options.despeckle:
        ink = _clean_ink(ink, ocr_dpi, options)
        page.steps.append("clean_ink")
    return 255 - ink
