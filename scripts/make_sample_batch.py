"""Render the sample batch in ``samples/batch``: fictional Vietnamese procedure results, scanned-looking.

The committed files are this script's output; rerun it only to change them:
``.venv/bin/python scripts/make_sample_batch.py``. Names, ID numbers and agency
codes are fictional (level-1 part ``H99`` is no real province).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "samples" / "batch"
FONT_DIR = Path("/usr/share/fonts/truetype/liberation2")
DPI = 200
A4 = (1654, 2339)  # pixels at 200 dpi

HEADER = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc")

DOCS: list[dict[str, object]] = [
    {
        "files": ["ly-lich-tu-phap.jpg"], "skew": 1.2, "rotate": 0,
        "row": {"agency_code": "000.00.12.H99", "kind": "KQ", "title": "Phiếu lý lịch tư pháp số 1",
                "issued_date": "2023-03-14", "procedure_code": "2.000488", "dossier_code": "000.00.12.H99-230314-0007",
                "register_id": "REG-0001", "holder_id": "079123004567", "scanned_at": "000.00.01.H99"},
        "pages": [[
            "SỞ TƯ PHÁP TỈNH MẪU", "PHIẾU LÝ LỊCH TƯ PHÁP SỐ 1",
            "Họ và tên: Nguyễn Thị Hồng Nhung", "Giới tính: Nữ   Ngày sinh: 12/05/1990",
            "Nơi sinh: xã Mẫu B, huyện Mẫu A, tỉnh Mẫu", "Quốc tịch: Việt Nam",
            "Số định danh cá nhân: 079123004567", "Tình trạng án tích: Không có án tích.",
            "Thông tin về việc cấm đảm nhiệm chức vụ, thành lập,",
            "quản lý doanh nghiệp, hợp tác xã: Không bị cấm.",
            "Người ký: Giám đốc Sở Tư pháp",
        ]],
    },
    {
        "files": ["khai-sinh-trang-1.jpg", "khai-sinh-trang-2.jpg"], "skew": -0.8, "rotate": 0,
        "row": {"document_id": "KS-2022-0415", "agency_code": "000.00.12.H99", "kind": "KQ",
                "title": "Trích lục khai sinh", "issued_date": "2022-04-15", "procedure_code": "1.001193",
                "register_id": "REG-0002", "holder_id": "079222001234", "scanned_at": "000.00.01.H99"},
        "pages": [
            ["SỞ TƯ PHÁP TỈNH MẪU", "TRÍCH LỤC KHAI SINH", "Họ, chữ đệm, tên: Trần Minh Khôi",
             "Ngày, tháng, năm sinh: 03/02/2022", "Giới tính: Nam   Dân tộc: Kinh",
             "Nơi sinh: Bệnh viện đa khoa tỉnh Mẫu", "Họ và tên mẹ: Lê Thị Thu Hương",
             "Họ và tên cha: Trần Quốc Bảo"],
            ["Nơi đăng ký khai sinh: Sở Tư pháp tỉnh Mẫu", "Ngày đăng ký: 15/04/2022",
             "Số định danh cá nhân: 079222001234", "Ghi chú: bản trích lục cấp lần đầu.",
             "Người ký: Phó Giám đốc Sở Tư pháp"],
        ],
    },
    {
        "files": ["quyen-su-dung-dat.png"], "skew": 0.5, "rotate": 180,
        "row": {"agency_code": "000.00.31.H99", "kind": "KQ", "title": "Giấy chứng nhận quyền sử dụng đất",
                "issued_date": "2021-09-30", "procedure_code": "1.004227", "dossier_code": "000.00.31.H99-210930-0012",
                "register_id": "REG-0010", "holder_id": "079185006789", "scanned_at": "000.00.31.H99"},
        "pages": [[
            "ỦY BAN NHÂN DÂN HUYỆN MẪU A", "GIẤY CHỨNG NHẬN QUYỀN SỬ DỤNG ĐẤT",
            "Người sử dụng đất: ông Phạm Văn Đức", "Số định danh cá nhân: 079185006789",
            "Thửa đất số: 245   Tờ bản đồ số: 17", "Địa chỉ: ấp Mỹ Lợi, xã Mẫu B",
            "Diện tích: 1.250 mét vuông", "Mục đích sử dụng: đất trồng cây lâu năm",
            "Thời hạn sử dụng: đến ngày 30/09/2071",
        ]],
    },
    {
        "files": ["ket-hon.tif"], "skew": -1.5, "rotate": 0,
        "row": {"agency_code": "000.01.31.H99", "kind": "KQ", "title": "Giấy chứng nhận kết hôn",
                "issued_date": "2024-02-20", "procedure_code": "1.000894", "register_id": "REG-0017",
                "holder_id": "079199007788", "scanned_at": "000.01.31.H99"},
        "pages": [[
            "ỦY BAN NHÂN DÂN XÃ MẪU B", "GIẤY CHỨNG NHẬN KẾT HÔN",
            "Họ, chữ đệm, tên vợ: Võ Thị Lan Anh", "Số định danh cá nhân: 079199007788",
            "Họ, chữ đệm, tên chồng: Huỳnh Tấn Phát", "Nơi cư trú: ấp Mỹ Phú, xã Mẫu B, huyện Mẫu A",
            "Đăng ký kết hôn ngày 20 tháng 02 năm 2024", "Người ký: Chủ tịch Ủy ban nhân dân xã",
        ]],
    },
    {
        "files": ["don-de-nghi.jpg"], "skew": 2.0, "rotate": 0,
        "row": {"agency_code": "000.01.31.H99", "kind": "TP", "title": "Tờ khai đăng ký khai tử",
                "issued_date": "2024-05-06", "procedure_code": "1.000656", "scanned_at": "000.01.31.H99"},
        "pages": [[
            "TỜ KHAI ĐĂNG KÝ KHAI TỬ", "Kính gửi: Ủy ban nhân dân xã Mẫu B",
            "Họ, chữ đệm, tên người yêu cầu: Đặng Văn Hùng", "Quan hệ với người đã chết: con",
            "Họ, chữ đệm, tên người đã chết: Đặng Văn Tư", "Ngày chết: 01/05/2024",
            "Tôi cam đoan những nội dung khai trên đây là đúng sự thật.",
        ]],
    },
]

CORRUPT = {"file": "bi-hong.jpg", "agency_code": "000.00.12.H99", "kind": "TP",
           "title": "Bản sao căn cước (tệp hỏng)", "issued_date": "2023-06-01", "scanned_at": "000.00.01.H99"}

COLUMNS = ["file", "document_id", "agency_code", "kind", "title", "issued_date", "procedure_code", "dossier_code",
           "register_id", "valid_until", "holder_id", "scanned_at"]


def render_page(lines: list[str], *, skew: float, rotate: int, seed: int) -> Image.Image:
    """A grey, slightly noisy, skewed page, like a flatbed scan at 200 dpi."""
    regular = ImageFont.truetype(str(FONT_DIR / "LiberationSerif-Regular.ttf"), 36)
    bold = ImageFont.truetype(str(FONT_DIR / "LiberationSerif-Bold.ttf"), 40)
    page = Image.new("L", A4, 245)
    draw = ImageDraw.Draw(page)
    y = 150
    for text in HEADER:
        width = draw.textlength(text, font=bold)
        draw.text(((A4[0] - width) / 2, y), text, font=bold, fill=25)
        y += 70
    y += 60
    for i, text in enumerate(lines):
        font = bold if i < 2 else regular
        draw.text((170, y), text, font=font, fill=30)
        y += 78
    rng = np.random.default_rng(seed)
    rotated = page.rotate(skew, resample=Image.Resampling.BICUBIC, fillcolor=245)
    pixels = np.asarray(rotated, dtype=np.float32) + rng.normal(0, 4, (A4[1], A4[0]))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.rotate(-rotate, expand=True) if rotate else image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    seed = 1
    for doc in DOCS:
        files: list[str] = doc["files"]  # type: ignore[assignment]
        pages: list[list[str]] = doc["pages"]  # type: ignore[assignment]
        for name, lines in zip(files, pages, strict=True):
            image = render_page(lines, skew=float(doc["skew"]), rotate=int(doc["rotate"]), seed=seed)  # type: ignore[arg-type]
            seed += 1
            target = OUT / name
            if name.endswith(".jpg"):
                image.save(target, quality=80, dpi=(DPI, DPI))
            elif name.endswith(".tif"):
                image.point(lambda v: 255 if v > 140 else 0).convert("1").save(
                    target, compression="group4", dpi=(DPI, DPI))
            else:
                image.save(target, dpi=(DPI, DPI), optimize=True)
            rows.append({"file": name, **doc["row"]})  # type: ignore[dict-item]
    buffer = io.BytesIO()
    render_page(["BẢN SAO"], skew=0, rotate=0, seed=99).save(buffer, "JPEG", quality=80, dpi=(DPI, DPI))
    (OUT / CORRUPT["file"]).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])  # truncated on purpose
    rows.append(CORRUPT)
    with (OUT / "manifest.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    print(f"wrote {len(rows)} files to {OUT}")


if __name__ == "__main__":
    main()
