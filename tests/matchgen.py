"""Ground truth for matching scans to the register: a generated register with confusable rows, and scans of it.

The register is made to confuse: one holder with several results, titles that differ by a word or
two, several results issued the same day by the same agency, and neighbouring communes whose names
differ by a letter. Each scan renders one row as a decision page ("Số: …/QĐ-UBND", "…, ngày …
tháng … năm …", the agency's letterhead, the holder's ID, the dossier code) and is labelled with
its true row. Some pages leave out the ID, the dossier code or both (variants), as real results do;
a field counts as *legible* when its value is in the scan's ground-truth text.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.imagegen import render_page, save

PROVINCE = ("000.00.00.H29", "Ủy ban nhân dân tỉnh Tiền Giang", "province", "")
DISTRICT = ("000.00.12.H29", "Ủy ban nhân dân huyện Cái Bè", "district", "000.00.00.H29")
COMMUNES = (
    ("000.12.31.H29", "Ủy ban nhân dân xã Tân Phú", "commune", "000.00.12.H29"),
    ("000.12.32.H29", "Ủy ban nhân dân xã Tân Phước", "commune", "000.00.12.H29"),
    ("000.12.33.H29", "Ủy ban nhân dân xã An Hữu", "commune", "000.00.12.H29"),
)
AGENCIES = (PROVINCE, DISTRICT, *COMMUNES)

TITLES = (
    "Giấy phép xây dựng nhà ở riêng lẻ",
    "Giấy phép sửa chữa, cải tạo nhà ở riêng lẻ",
    "Giấy chứng nhận đăng ký hộ kinh doanh",
    "Giấy chứng nhận đăng ký thay đổi hộ kinh doanh",
    "Quyết định công nhận hòa giải viên",
    "Quyết định hỗ trợ chi phí mai táng",
    "Giấy xác nhận tình trạng hôn nhân",
    "Quyết định trợ cấp xã hội hằng tháng",
)
NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường", "Phạm Thị Dung", "Huỳnh Văn Em", "Võ Thị Giang",
         "Đặng Văn Hùng", "Bùi Thị Lan")
VARIANTS = ("full", "id_only", "code_only", "neither")
"""What a page prints of the identifying fields: both, the ID only, the dossier code only, neither."""


@dataclass(frozen=True)
class Row:
    """A register row (the columns ``register import`` reads)."""

    register_id: str
    agency_code: str
    agency_name: str
    title: str
    issued_date: date
    dossier_code: str
    holder_id: str
    holder_name: str
    valid_until: date | None


@dataclass(frozen=True)
class Scan:
    """A generated scan's ground truth: its true row, its variant and the text printed on it."""

    row: Row
    variant: str
    lines: tuple[str, ...]
    number: str

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def legible(self, field: str) -> bool:
        """Whether the row's ``field`` (holder_id, dossier_code) is printed on the page."""
        value = getattr(self.row, field)
        return bool(value) and value in self.text


def make_register(count: int, *, seed: int = 18) -> list[Row]:
    """``count`` rows: holders with 1–3 results each, shared dates, similar titles, neighbouring communes."""
    rng = random.Random(seed)
    rows: list[Row] = []
    holder = 0
    day = date(2021, 3, 1)
    while len(rows) < count:
        holder += 1
        holder_id = f"0{rng.randint(79, 89)}{rng.randint(0, 1)}{rng.randint(80, 99):02d}{rng.randint(0, 999999):06d}"
        name = NAMES[holder % len(NAMES)]
        agency = COMMUNES[rng.randrange(len(COMMUNES))]
        if rng.random() < 0.3:
            day += timedelta(days=rng.randint(1, 4))  # else: the same day as the previous holder's results
        results = rng.choice((1, 2, 2, 3))
        first = rng.randrange(0, len(TITLES), 2)  # pairs of similar titles: (0, 1), (2, 3)…
        for k in range(min(results, count - len(rows))):
            n = len(rows) + 1
            title = TITLES[(first + k) % len(TITLES)]
            seq = rng.randint(1, 9999)
            dossier = f"{agency[0]}-{day:%y%m%d}-{seq:04d}"
            until = day.replace(year=day.year + 5) if "phép" in title else None
            rows.append(Row(f"REG-{n:05d}", agency[0], agency[1], title, day, dossier, holder_id, name, until))
    return rows


def scans_for(rows: list[Row], *, seed: int = 18) -> list[Scan]:
    """One scan per row, variants spread evenly (``VARIANTS`` in turn, shuffled by ``seed``)."""
    rng = random.Random(seed)
    out = []
    for i, row in enumerate(rows):
        variant = VARIANTS[(i + rng.randint(0, 3)) % len(VARIANTS)]
        number = f"{rng.randint(1, 999)}/QĐ-UBND"
        out.append(Scan(row, variant, decision_lines(row, variant, number), number))
    return out


def decision_lines(row: Row, variant: str, number: str) -> tuple[str, ...]:
    """The text of a decision page in the layout of Decree 30/2020 (letterhead, number, place and date)."""
    commune = row.agency_name.replace("Ủy ban nhân dân xã ", "")
    lines = [
        "ỦY BAN NHÂN DÂN HUYỆN CÁI BÈ",
        row.agency_name.upper(),
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        f"Số: {number}",
        f"{commune}, ngày {row.issued_date.day} tháng {row.issued_date.month} năm {row.issued_date.year}",
        "QUYẾT ĐỊNH",
        f"Về việc cấp {row.title[0].lower() + row.title[1:]}",
        f"Cấp cho: {row.holder_name}",
    ]
    if variant in ("full", "id_only"):
        lines.append(f"Số định danh cá nhân: {row.holder_id}")
    if variant in ("full", "code_only"):
        lines.append(f"Mã hồ sơ: {row.dossier_code}")
    if row.valid_until:
        lines.append(f"Có giá trị đến ngày {row.valid_until:%d/%m/%Y}")
    lines.append("Chủ tịch Ủy ban nhân dân")
    return tuple(lines)


def write_reference(rows: list[Row], folder: Path) -> tuple[Path, Path]:
    """agencies.csv and register.csv for ``agencies import`` and ``register import``."""
    agencies = folder / "agencies.csv"
    with agencies.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("code", "name", "level", "parent_code", "valid_from"))
        for code, name, level, parent in AGENCIES:
            writer.writerow((code, name, level, parent, "2000-01-01"))
    register = folder / "register.csv"
    with register.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("register_id", "agency_code", "title", "issued_date", "dossier_code", "holder_id",
                         "valid_until"))
        for r in rows:
            writer.writerow((r.register_id, r.agency_code, r.title, r.issued_date.isoformat(), r.dossier_code,
                             r.holder_id, r.valid_until.isoformat() if r.valid_until else ""))
    return agencies, register


def render_scan(scan: Scan, path: Path, *, dpi: int = 200) -> Path:
    """The scan as a scanner would store it: an A4-wide grey page at ``dpi``."""
    image = render_page(scan.lines, dpi=dpi, width_in=8.0, height_in=0.8 + 0.3 * len(scan.lines), font_pt=12.0)
    return save(image, path, dpi=dpi)


def office_with_register(root: Path, catalog_url: str, count: int, batch_name: str) -> tuple[Any, Path, list[Scan]]:
    """An upgraded catalog holding ``count`` generated register rows and their agencies, and an inbox batch
    ``root/inbox/batch_name`` of their rendered scans with no manifest: (catalog, batch, scans)."""
    from digitize.catalog import Catalog

    rows = make_register(count)
    scans = scans_for(rows)
    catalog = Catalog(catalog_url)
    catalog.upgrade()
    agencies, register = write_reference(rows, root)
    catalog.import_agencies(agencies)
    catalog.import_register(register)
    batch = root / "inbox" / batch_name
    batch.mkdir(parents=True)
    for i, scan in enumerate(scans):
        render_scan(scan, batch / f"scan-{i}.png")
    return catalog, batch, scans
