"""Small synthetic Vietnamese pages rendered with PIL, so OCR tests need no corpus on disk."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf")

LINES = (
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
    "Độc lập - Tự do - Hạnh phúc",
    "Kế hoạch số hóa hồ sơ thủ tục hành chính",
    "Ủy ban nhân dân tỉnh ban hành quyết định",
    "về việc công bố danh mục thủ tục mới.",
)

PARAGRAPH = (
    "Ủy ban nhân dân tỉnh ban hành Kế hoạch số hóa hồ sơ, giấy tờ,",
    "kết quả giải quyết thủ tục hành chính tại Bộ phận Một cửa các cấp.",
    "Các sở, ban, ngành tỉnh chủ động phối hợp triển khai thực hiện",
    "Đề án và Kế hoạch này theo nhiệm vụ được phân công, bảo đảm",
    "thiết thực, hiệu quả, đúng tiến độ; kết nối, chia sẻ dữ liệu",
    "trong giải quyết thủ tục hành chính trên môi trường điện tử.",
    "Tăng tỷ lệ số hóa, ký số và lưu trữ điện tử đối với hồ sơ",
    "đã được giải quyết thành công trong mỗi năm thêm hai mươi phần trăm.",
)


def document_page(*, dpi: int = 200) -> np.ndarray:
    """A fuller page (letterhead and a paragraph): enough text for Tesseract's orientation detection."""
    return render_page(LINES + PARAGRAPH, dpi=dpi, width_in=7.0, height_in=7.5, font_pt=13.0)


def render_page(
    lines: tuple[str, ...] = LINES,
    *,
    dpi: int = 200,
    width_in: float = 5.0,
    height_in: float = 3.5,
    font_pt: float = 14.0,
) -> np.ndarray:
    """A gray page (uint8, 2-D) with ``lines`` of black text on white paper at ``dpi``."""
    width, height = round(width_in * dpi), round(height_in * dpi)
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT_PATH), round(font_pt * dpi / 72))
    y = round(0.4 * dpi)
    pitch = round(font_pt * 1.6 * dpi / 72)
    for line in lines:
        draw.text((round(0.4 * dpi), y), line, font=font, fill=0)
        y += pitch
    return np.asarray(img).copy()


def blank_page(*, dpi: int = 200, width_in: float = 5.0, height_in: float = 3.5) -> np.ndarray:
    """A white page without any text."""
    return np.full((round(height_in * dpi), round(width_in * dpi)), 255, dtype=np.uint8)


def rotate_cw(image: np.ndarray, degrees: int) -> np.ndarray:
    """The page as a scanner stores it when the paper lies turned clockwise by ``degrees`` (0/90/180/270)."""
    return np.ascontiguousarray(np.rot90(image, k=-(degrees // 90) % 4))


def save(image: np.ndarray, path: Path, *, dpi: int = 200, fmt: str | None = None, **kwargs: object) -> Path:
    """Write ``image`` (gray or BGR) with its dpi; ``fmt`` defaults to the suffix."""
    pil = Image.fromarray(image if image.ndim == 2 else image[:, :, ::-1])
    pil.save(path, format=fmt, dpi=(dpi, dpi), **kwargs)
    return path


def save_tiff(pages: list[np.ndarray], path: Path, *, dpi: int = 200, bilevel: bool = True) -> Path:
    """A multi-page TIFF; bilevel pages are stored CCITT G4 like office scanners do."""
    images = [Image.fromarray(p) for p in pages]
    if bilevel:
        images = [img.convert("1", dither=Image.Dither.NONE) for img in images]
    compression = "group4" if bilevel else "tiff_lzw"
    images[0].save(path, format="TIFF", save_all=True, append_images=images[1:], dpi=(dpi, dpi),
                   compression=compression)
    return path


def image_only_pdf(image: np.ndarray, path: Path, *, dpi: int = 200) -> Path:
    """An image-only PDF (a JPEG on a page sized from ``dpi``), like a scanner's PDF output."""
    import img2pdf

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90, dpi=(dpi, dpi))
    path.write_bytes(img2pdf.convert(buffer.getvalue()))
    return path
