"""prepare_page on synthetic Vietnamese pages with known degradations (no corpus needed).

Pages are rendered with Liberation Serif (fonts-liberation2) and then skewed, rotated, blurred, speckled,
photographed, so each assertion compares with a known truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from digitize.ocr.cleanup import PreparedPage, PreprocessOptions, prepare_page

FONT = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"
TEXT = (
    "Ủy ban nhân dân tỉnh ban hành kế hoạch số hóa hồ sơ, kết quả giải quyết thủ tục hành chính",
    "tại Bộ phận Một cửa các cấp; tỷ lệ số hóa đạt ít nhất 30% đối với cấp tỉnh, 20% cấp huyện",
    "và 15% cấp xã trong năm 2021, tăng thêm 20% mỗi năm cho đến khi đạt 100% vào năm 2025.",
    "Tổ chức, cá nhân không phải cung cấp lại giấy tờ, tài liệu đã được số hóa khi thực hiện",
    "thủ tục hành chính; cơ quan có thẩm quyền khai thác, sử dụng lại dữ liệu đã số hóa.",
)
DEFAULTS = PreprocessOptions()
# test pages are 200 dpi to stay fast; no upscaling for OCR, so ocr_image pixels line up with the input's
OPTIONS = PreprocessOptions(ocr_min_dpi=0)


def render_page(dpi: int = 200, lines: int = 30, ink: int = 20, paper: int = 245, font_pt: float = 12) -> np.ndarray:
    """A4 page (grey, uint8) of Vietnamese body text with 2.5 cm margins."""
    w, h = round(8.27 * dpi), round(11.69 * dpi)
    img = Image.new("L", (w, h), paper)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, round(font_pt * dpi / 72))
    margin = round(dpi / 2.54 * 2.5)
    pitch = round(font_pt * 1.5 * dpi / 72)
    for i in range(lines):
        draw.text((margin, margin + i * pitch), TEXT[i % len(TEXT)], font=font, fill=ink)
    return np.asarray(img).copy()


def rotate_content(img: np.ndarray, skew_deg: float, fill: int = 245) -> np.ndarray:
    """Turn the content by ``skew_deg`` (positive = counter-clockwise, like the corpus)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), skew_deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=fill)


def jpeg(img: np.ndarray, quality: int = 50) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert ok and out is not None
    return np.asarray(out, dtype=np.uint8)


def ink_count(img: np.ndarray) -> int:
    return int(np.count_nonzero(img < 128))


def orientation_detector() -> Callable[[np.ndarray], tuple[int, float]]:
    """The project's Tesseract OSD (the OCR engine's orientation detection): the tests fail without it."""
    from digitize.ocr.recognize import detect_orientation

    return detect_orientation


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    return render_page()


@pytest.mark.parametrize("skew", [-6.0, -2.7, -0.8, 0.4, 1.9, 4.6])
def test_deskew_recovers_known_skew(page: np.ndarray, skew: float) -> None:
    img = rotate_content(page, skew)
    prepared = prepare_page(img, 200, OPTIONS, None)
    assert abs(prepared.skew_deg - skew) < 0.3
    assert prepared.rotation_cw == 0
    assert not prepared.blank


def test_deskew_works_on_blurred_jpeg_page(page: np.ndarray) -> None:
    img = jpeg(cv2.GaussianBlur(rotate_content(page, -3.3), (0, 0), 1.8), 35)
    prepared = prepare_page(img, 200, OPTIONS, None)
    assert abs(prepared.skew_deg - -3.3) < 0.3


def test_deskewed_output_has_level_lines(page: np.ndarray) -> None:
    """After deskew the text rows are as sharp in the row profile as on the straight page."""

    def peakiness(img: np.ndarray) -> float:
        rows = np.count_nonzero(img < 128, axis=1).astype(float)
        rows = rows[rows > 0]
        return float(rows.std() / rows.mean())

    straight = prepare_page(page, 200, OPTIONS, None).ocr_image
    fixed = prepare_page(rotate_content(page, 3.0), 200, OPTIONS, None).ocr_image
    unfixed = prepare_page(rotate_content(page, 3.0), 200, dataclasses.replace(OPTIONS, deskew=False), None)
    assert peakiness(fixed) > 0.9 * peakiness(straight)
    assert peakiness(unfixed.ocr_image) < 0.7 * peakiness(straight)


@pytest.mark.parametrize("rotation_cw", [90, 180, 270])
def test_rotated_pages_come_out_upright(page: np.ndarray, rotation_cw: int) -> None:
    detector = orientation_detector()
    stored = cv2.rotate(rotate_content(page, 1.2), {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                                                    270: cv2.ROTATE_90_COUNTERCLOCKWISE}[rotation_cw])
    prepared = prepare_page(stored, 200, OPTIONS, detector)
    assert prepared.rotation_cw == rotation_cw
    assert abs(prepared.skew_deg - 1.2) < 0.3
    assert prepared.ocr_image.shape[0] > prepared.ocr_image.shape[1]  # portrait again


def test_sideways_page_found_without_osd(page: np.ndarray) -> None:
    """The projection profile alone turns vertical text lines horizontal (OSD then settles 90 vs 270)."""
    prepared = prepare_page(cv2.rotate(page, cv2.ROTATE_90_CLOCKWISE), 200, OPTIONS, None)
    assert prepared.rotation_cw == 90
    assert prepared.ocr_image.shape[0] > prepared.ocr_image.shape[1]


def test_upright_page_needs_no_osd_and_upside_down_is_found_cheaply(page: np.ndarray) -> None:
    """Accents and ascenders above the x-height settle up vs down; OSD is asked only when that is unclear."""
    calls: list[tuple[int, ...]] = []

    def osd(img: np.ndarray) -> tuple[int, float]:
        calls.append(img.shape)
        return 0, 0.0

    assert prepare_page(page, 200, OPTIONS, osd).rotation_cw == 0
    assert not calls
    flipped = prepare_page(cv2.rotate(page, cv2.ROTATE_180), 200, OPTIONS, None)
    assert flipped.rotation_cw == 180 and "orientation_profile_180" in flipped.steps


def test_osd_is_used_only_above_its_confidence_threshold() -> None:
    """A page whose up/down balance is unclear (capitals only) is decided by OSD when it is confident."""
    img = Image.new("L", (1654, 2338), 245)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, round(12 * 200 / 72))
    for i in range(25):
        draw.text((200, 200 + i * 60), "MOON NOON MOMO NOUN " * 3, font=font, fill=20)
    flat = np.asarray(img).copy()
    calls: list[tuple[int, ...]] = []

    def unsure(im: np.ndarray) -> tuple[int, float]:
        calls.append(im.shape)
        return 180, 0.5

    assert prepare_page(flat, 200, OPTIONS, unsure).rotation_cw == 0
    assert calls and max(calls[0]) < max(flat.shape)  # asked, on a downscaled image, and ignored
    assert prepare_page(flat, 200, OPTIONS, lambda im: (180, 12.0)).rotation_cw == 180


def show_through_back_side(page: np.ndarray, opacity: float) -> np.ndarray:
    """A blank back side: the mirrored text of the front at ``opacity``, uneven light, noise, dust, JPEG."""
    h, w = page.shape
    back = 245.0 - opacity * (245.0 - cv2.GaussianBlur(page[:, ::-1], (0, 0), 2.0).astype(float))
    yy, xx = np.mgrid[0:h, 0:w]
    back *= 1.0 - 0.12 * xx / w - 0.05 * ((yy - h / 2) / h) ** 2
    back += np.random.default_rng(1).normal(0, 3, back.shape)
    img = np.clip(back, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(2)
    for _ in range(15):
        x, y = int(rng.integers(50, w - 50)), int(rng.integers(50, h - 50))
        cv2.circle(img, (x, y), int(rng.integers(1, 3)), 30, -1)
    return jpeg(img, 60)


@pytest.mark.parametrize("opacity", [0.05, 0.12])
def test_blank_back_side_with_show_through_is_blank(page: np.ndarray, opacity: float) -> None:
    prepared = prepare_page(show_through_back_side(page, opacity), 200, OPTIONS, None)
    assert prepared.blank
    assert "BLANK" in prepared.flags


def test_text_pages_are_not_blank(page: np.ndarray) -> None:
    assert not prepare_page(page, 200, OPTIONS, None).blank
    few_lines = render_page(lines=2)
    assert not prepare_page(few_lines, 200, OPTIONS, None).blank
    faint = render_page(ink=150, paper=235)  # low-contrast photocopy
    assert not prepare_page(jpeg(cv2.GaussianBlur(faint, (0, 0), 1.0)), 200, OPTIONS, None).blank


def test_to_original_maps_a_mark_back(page: np.ndarray) -> None:
    """A solid square drawn on the stored image is found in ocr_image and mapped back onto itself."""
    stored = rotate_content(page, 2.4)
    stored = cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE)  # stored sideways
    h, w = stored.shape
    cx, cy, half = 0.8 * w, 0.3 * h, 70  # 18 mm square at 200 dpi: not a punch hole, not a speck
    cv2.rectangle(stored, (int(cx - half), int(cy - half)), (int(cx + half), int(cy + half)), 0, -1)
    prepared = prepare_page(stored, 150, DEFAULTS, lambda img: (0, 0.0))  # 150 dpi: upscaled for OCR too
    assert prepared.rotation_cw == 90
    assert "upscale" in prepared.steps
    ink = (prepared.ocr_image < 128).astype(np.uint8)
    _, _, stats, centroids = cv2.connectedComponentsWithStats(ink)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mx, my = centroids[biggest]
    ox, oy, ow = prepared.to_original @ np.array([mx, my, 1.0])
    assert abs(ox / ow - cx) < 3 and abs(oy / ow - cy) < 3


@pytest.mark.parametrize(("font_pt", "ocr_dpi"), [(12, 200), (7, 300)])
def test_body_text_is_read_at_200_dpi_and_small_print_at_its_own(font_pt: float, ocr_dpi: int) -> None:
    """A 300 dpi page of 12 pt text reaches Tesseract at 200 dpi (its recogniser scales lines anyway; OCR is
    cheaper); 7 pt print keeps 300 dpi (it read 2.5x worse at 200). Either way a mark maps back onto itself."""
    stored = cv2.rotate(render_page(dpi=300, font_pt=font_pt), cv2.ROTATE_90_CLOCKWISE)  # letters lie sideways
    h, w = stored.shape
    cx, cy, half = 0.8 * w, 0.3 * h, 100
    cv2.rectangle(stored, (int(cx - half), int(cy - half)), (int(cx + half), int(cy + half)), 0, -1)
    prepared = prepare_page(stored, 300, DEFAULTS, lambda img: (0, 0.0))
    assert prepared.rotation_cw == 90
    assert abs(prepared.ocr_dpi - ocr_dpi) < 1
    assert ("downscale" in prepared.steps) == (ocr_dpi == 200)
    ink = (prepared.ocr_image < 128).astype(np.uint8)
    _, _, stats, centroids = cv2.connectedComponentsWithStats(ink)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    ox, oy, ow = prepared.to_original @ np.array([*centroids[biggest], 1.0])
    assert abs(ox / ow - cx) < 3 and abs(oy / ow - cy) < 3


def test_specks_are_removed_and_diacritics_kept(page: np.ndarray) -> None:
    img = page.copy()
    rng = np.random.default_rng(3)
    h, w = img.shape
    spots = []
    for _ in range(40):  # dust in the margins and between paragraphs below the text
        x, y = int(rng.integers(20, w - 20)), int(rng.integers(int(0.8 * h), h - 20))
        cv2.circle(img, (x, y), int(rng.integers(1, 4)), 10, -1)
        spots.append((x, y))
    noise = rng.random(img.shape) < 0.002  # pepper
    img[noise] = 0
    clean = prepare_page(page, 200, OPTIONS, lambda im: (0, 0.0)).ocr_image
    dirty = prepare_page(img, 200, OPTIONS, lambda im: (0, 0.0)).ocr_image
    assert all(dirty[y - 4:y + 5, x - 4:x + 5].min() == 255 for x, y in spots)
    assert abs(ink_count(dirty) - ink_count(clean)) < 0.01 * ink_count(clean)
    n_clean = cv2.connectedComponents((clean < 128).astype(np.uint8))[0]
    n_dirty = cv2.connectedComponents((dirty < 128).astype(np.uint8))[0]
    assert abs(n_dirty - n_clean) <= 0.01 * n_clean  # dots and accents survive, specks do not


def test_dark_border_and_punch_holes_are_removed(page: np.ndarray) -> None:
    img = page.copy()
    h, w = img.shape
    img[: round(0.04 * h)] = 25  # dark scanner border along the top
    img[:, w - 30:] = 30
    for y in (0.35 * h, 0.65 * h):  # two 6 mm punch holes in the left margin
        cv2.circle(img, (60, int(y)), 24, 40, -1)
    prepared = prepare_page(img, 200, OPTIONS, lambda im: (0, 0.0))
    out = prepared.ocr_image
    assert out[: round(0.04 * h) + 5].min() == 255
    assert out[:, w - 40:].min() == 255
    assert out[:, :100].min() == 255
    assert abs(ink_count(out) - ink_count(prepare_page(page, 200, OPTIONS, None).ocr_image)) < 0.01 * ink_count(out)


def photo_of(page: np.ndarray) -> tuple[np.ndarray, float]:
    """A 3000x4000 colour 'phone photo' of ``page`` on a dark desk, with perspective; and its true dpi."""
    ph, pw = page.shape
    corners = np.array([[480, 300], [2630, 380], [2700, 3620], [320, 3560]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32), corners)
    canvas = cv2.warpPerspective(page, m, (3000, 4000), borderValue=60)
    yy, xx = np.mgrid[0:4000, 0:3000]
    lit = canvas.astype(float) * (0.72 - 0.1 * yy / 4000 + 0.05 * xx / 3000)
    bgr = np.dstack([lit * 0.85, lit * 0.95, lit]).clip(0, 255).astype(np.uint8)
    true_dpi = float(np.mean([np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1])])
                     / 11.69)
    return jpeg(cv2.GaussianBlur(bgr, (0, 0), 1.2), 75), true_dpi


def test_phone_photo_claiming_72_dpi_gets_a_plausible_dpi() -> None:
    photo, true_dpi = photo_of(render_page(dpi=280, ink=60, paper=235))
    prepared = prepare_page(photo, 72, DEFAULTS, None)
    assert abs(prepared.effective_dpi - true_dpi) < 0.05 * true_dpi
    assert {"PHOTO", "DPI_ESTIMATED"} <= set(prepared.flags)
    assert "LOW_RESOLUTION" not in prepared.flags and "NOT_COLOUR" not in prepared.flags
    assert not prepared.blank
    assert abs(prepared.skew_deg) < 0.5  # the perspective warp already squared the page
    out = prepared.ocr_image
    assert out.dtype == np.uint8 and out.ndim == 2
    assert out.shape[0] > out.shape[1] and 0.02 < np.count_nonzero(out < 128) / out.size < 0.2
    # the page's top-left corner in the OCR image maps back to the photo's corner
    x, y, s = prepared.to_original @ np.array([0.0, 0.0, 1.0])
    assert abs(x / s - 480) < 25 and abs(y / s - 300) < 25


def test_flags_for_low_resolution_and_bilevel_scans() -> None:
    low = prepare_page(render_page(dpi=150), 150, DEFAULTS, None)
    assert "LOW_RESOLUTION" in low.flags and "NOT_COLOUR" in low.flags
    # read at 300 dpi: taken back down to 200 dpi, upscaled scans' IDs and dossier codes were misread
    assert "upscale" in low.steps and "downscale" not in low.steps and abs(low.ocr_dpi - 300) < 1
    bilevel = np.where(render_page() < 128, 0, 255).astype(np.uint8)
    prepared = prepare_page(bilevel, 200, OPTIONS, None)
    assert "BILEVEL" in prepared.flags and "LOW_RESOLUTION" not in prepared.flags


def test_ocr_image_is_binary_and_every_step_can_be_switched_off(page: np.ndarray) -> None:
    prepared: PreparedPage = prepare_page(page, 200, OPTIONS, None)
    assert set(np.unique(prepared.ocr_image)) <= {0, 255}
    off = PreprocessOptions(orientation=False, deskew=False, perspective=False, normalize_background=False,
                            despeckle=False, remove_borders=False, binarize=False, ocr_min_dpi=0)
    bare = prepare_page(rotate_content(page, 2.0), 200, off, None)
    assert bare.steps == () and bare.skew_deg == 0.0
    assert np.allclose(bare.to_original, np.eye(3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.blank = True  # type: ignore[misc]


def test_rejects_what_is_not_a_page_image() -> None:
    with pytest.raises(ValueError):
        prepare_page(np.zeros((100, 100), dtype=np.float32), 300, OPTIONS, None)
