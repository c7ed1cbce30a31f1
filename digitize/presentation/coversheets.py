"""Cover sheets an officer prints, puts on each paper file and scans with it: ``python -m digitize coversheets``.

One A4 page per sheet, drawn at 300 dpi in black and white (what an office laser prints best, and what a
scanner reads back best): a framed page whose top band says, white on black, that it is a cover sheet and not
part of the document; the sheet id twice, as a 40 mm QR code (error correction H) at the top left and a 30 mm
one at the bottom right, so that one smudge or torn corner does not lose the sheet; the id in large print; and
the lines the officer checks before scanning, the holder's ID masked (``0791••••4567``). The frame and band are
also what :func:`digitize.intake.detect_sheet` recognises when neither code can be read.

The PDF is written 0600: the rows are people's results, even with their IDs masked. Who printed which rows
is stored with the sheets (:meth:`~digitize.catalog.Catalog.register_sheets`) and in the access log.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from digitize.errors import UsageError
from digitize.personal import mask_holder_id

if TYPE_CHECKING:
    from digitize.catalog import Catalog, SheetRow
    from digitize.intake import RowError

DPI = 300
A4_MM = (210, 297)
MARKER_VI = "TRANG BÌA — không thuộc hồ sơ"
MARKER_EN = "COVER SHEET — not part of the document"
QR_MM = 40.0
"""Side of the main QR code without its quiet zone (the issue's "about 40 mm")."""
SECOND_QR_MM = 30.0
"""Side of the second QR code, in the opposite corner."""
FRAME_MM = 5.0
"""Width of the black frame around the page (the sheet's marker, with the top band)."""
MARGIN_MM = 10.0
"""White margin outside the frame (printers cannot print to the edge; the detector wants white around it)."""
BAND_MM = 30.0
"""Height of the black top band carrying the marker text."""
FONT_DIR = Path("/usr/share/fonts/truetype/liberation2")
"""Liberation Sans 2.x (Debian fonts-liberation2), which has the Vietnamese glyphs; the stamp uses its serif."""
KINDS = {"KQ": "KQ — Kết quả / Result", "TP": "TP — Thành phần hồ sơ / Dossier component"}
FILE_MODE = 0o600
MAX_DASHBOARD_SHEETS = 1000
"""Most sheets one click prints: the missing-results page's largest page."""


@dataclass(frozen=True)
class PrintedSheet:
    """One sheet as printed: its id, the row it stands for, and the issuing agency's name."""

    sheet_id: str
    row: SheetRow
    agency_name: str


def _px(mm: float) -> int:
    return round(mm / 25.4 * DPI)


@lru_cache(maxsize=8)
def _font(size_mm: float, bold: bool = False, mono: bool = False) -> ImageFont.FreeTypeFont:
    family = "LiberationMono" if mono else "LiberationSans"
    return ImageFont.truetype(str(FONT_DIR / f"{family}-{'Bold' if bold else 'Regular'}.ttf"), _px(size_mm))


def _qr(sheet_id: str, side_mm: float) -> Image.Image:
    """The QR code of ``sheet_id`` (error correction H, alphanumeric mode), scaled to ``side_mm`` plus quiet zone."""
    import qrcode

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_H, box_size=1, border=4)
    code.add_data(sheet_id)
    code.make(fit=True)
    matrix = code.get_matrix()  # with its quiet zone
    module = max(1, round(_px(side_mm) / code.modules_count))
    image = Image.new("1", (len(matrix), len(matrix)), 1)
    image.putdata([0 if dark else 1 for line in matrix for dark in line])
    return image.resize((len(matrix) * module,) * 2, Image.Resampling.NEAREST)


def _check_lines(sheet: PrintedSheet) -> list[tuple[str, str]]:
    row = sheet.row
    lines = [
        ("Mã sổ / Register ID", row.register_id or "— (ngoài sổ / planned row)"),
        ("Cơ quan / Agency", f"{sheet.agency_name} ({row.agency_code})"),
        ("Loại / Kind", KINDS.get(row.kind, row.kind)),
        ("Tên / Title", row.title),
        ("Ngày cấp / Issued", _vn_date(row.issued_date)),
        ("Số định danh / Holder ID", mask_holder_id(row.holder_id) if row.holder_id else "—"),
    ]
    if row.dossier_code:
        lines.append(("Mã hồ sơ / Dossier", row.dossier_code))
    if row.valid_until:
        lines.append(("Hiệu lực đến / Valid until", _vn_date(row.valid_until)))
    return lines


def _vn_date(day: date) -> str:
    return f"{day:%d/%m/%Y}"


def render_sheet(sheet: PrintedSheet) -> Image.Image:
    """The sheet as a 1-bit A4 page at :data:`DPI`."""
    width, height = _px(A4_MM[0]), _px(A4_MM[1])
    page = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(page)
    outer = _px(MARGIN_MM)
    inner = outer + _px(FRAME_MM)
    draw.rectangle((outer, outer, width - outer - 1, height - outer - 1), fill=0)
    draw.rectangle((inner, outer + _px(BAND_MM), width - inner - 1, height - inner - 1), fill=1)
    middle = width // 2
    draw.text((middle, outer + _px(BAND_MM * 0.33)), MARKER_VI, font=_font(8.5, bold=True), fill=1, anchor="mm")
    draw.text((middle, outer + _px(BAND_MM * 0.75)), MARKER_EN, font=_font(6, bold=True), fill=1, anchor="mm")

    top = outer + _px(BAND_MM + 8)
    big = _qr(sheet.sheet_id, QR_MM)
    page.paste(big, (inner + _px(4), top))
    left = inner + _px(8) + big.width
    draw.text((left, top + _px(6)), "Mã phiếu / Sheet id", font=_font(4.5), fill=0)
    draw.text((left, top + _px(13)), sheet.sheet_id, font=_font(7.5, bold=True, mono=True), fill=0)
    draw.text((left, top + _px(25)), f"Ký tự cuối ({sheet.sheet_id[-1]}) là ký tự kiểm tra.", font=_font(3.5), fill=0)
    draw.text((left, top + _px(30)), f"The last character ({sheet.sheet_id[-1]}) is a check character.",
              font=_font(3.5), fill=0)

    y = top + big.height + _px(6)
    label_font, value_font = _font(3.6), _font(4.6, bold=True)
    for label, value in _check_lines(sheet):
        draw.text((inner + _px(6), y), label, font=label_font, fill=0)
        wrapped = textwrap.wrap(value, width=52) or [""]
        for line in wrapped[:4]:
            draw.text((inner + _px(6), y + _px(4.5)), line, font=value_font, fill=0)
            y += _px(6.5)
        y += _px(4.5)

    second = _qr(sheet.sheet_id, SECOND_QR_MM)
    corner = (width - inner - _px(4) - second.width, height - inner - _px(4) - second.height)
    page.paste(second, corner)
    notes = ("Đặt trang này lên trên hồ sơ khi quét.", "Put this page on top of the file when scanning.",
             "Trang này không được ký số, không lưu vào tài liệu.", "It is never signed nor kept in the document.")
    for n, note in enumerate(notes):
        draw.text((inner + _px(6), corner[1] + _px(6 + 6 * n)), note, font=_font(4), fill=0)
    return page


def sheets_pdf(sheets: Sequence[PrintedSheet]) -> bytes:
    """Every sheet as one page of a PDF (A4, 300 dpi images: what printers print without rescaling)."""
    import img2pdf

    pages = []
    for sheet in sheets:
        buffer = io.BytesIO()
        render_sheet(sheet).save(buffer, format="PNG", dpi=(DPI, DPI), optimize=True)
        pages.append(buffer.getvalue())
    layout = img2pdf.get_fixed_dpi_layout_fun((DPI, DPI))
    pdf = img2pdf.convert(pages, layout_fun=layout, producer="digitize coversheets", creationdate=None)
    assert pdf is not None
    return bytes(pdf)


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` with mode 0600 from the start (no moment where others can read it), then move it in place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, FILE_MODE)  # an existing temp file kept its mode through O_CREAT
    os.replace(tmp, path)


def print_sheets(catalog: Catalog, rows: Iterable[SheetRow], *, printed_by: str) -> tuple[list[PrintedSheet], bytes]:
    """Store the rows' sheets in the catalog and draw them: the sheets (in the rows' order) and the PDF."""
    rows = list(rows)
    ids = catalog.register_sheets(rows, printed_by=printed_by)
    names: dict[str, str] = {}
    sheets = []
    for sheet_id, row in zip(ids, rows, strict=True):
        if row.agency_code not in names:
            agency = catalog.get_agency(row.agency_code)
            names[row.agency_code] = agency.name if agency is not None else row.agency_code
        sheets.append(PrintedSheet(sheet_id, row, names[row.agency_code]))
    return sheets, sheets_pdf(sheets)


def access_detail(sheets: Sequence[PrintedSheet]) -> str:
    """What the access log records of a printing: the rows (register ids or sheet ids), never a full holder ID."""
    shown = [s.row.register_id or s.sheet_id for s in sheets]
    holders = sum(1 for s in sheets if s.row.holder_id)
    return f"{len(sheets)} cover sheet(s) printed ({holders} with a masked holder ID): {', '.join(shown)}"


# ------------------------------------------------------------------------------------------ selections


def _register_rows(frame: pd.DataFrame) -> list[SheetRow]:
    """Sheet rows of register rows as ``Catalog.register_frame`` gives them (NaT/NaN as None)."""
    from digitize.catalog import SheetRow

    rows = []
    for record in frame.to_dict("records"):
        values = {k: (None if v is None or (not isinstance(v, str) and pd.isna(v)) else v) for k, v in record.items()}
        for column in ("issued_date", "valid_until"):
            day = values[column]
            if day is not None:
                values[column] = day.date()
        rows.append(SheetRow.from_register(values))
    return rows


def register_selection(catalog: Catalog, register_ids: Sequence[str]) -> list[SheetRow]:
    """The given register rows, in the order given; :class:`UsageError` naming any the register does not have."""
    frame = catalog.register_frame().set_index("register_id", drop=False)
    unknown = [r for r in register_ids if r not in frame.index]
    if unknown:
        raise UsageError(f"not in the register: {', '.join(unknown[:20])}{' …' if len(unknown) > 20 else ''}",
                         hint="Check the register ids (python -m digitize coverage --drill-down missing lists them), "
                              "or import the register first.")
    return _register_rows(frame.loc[list(dict.fromkeys(register_ids))])


def missing_selection(catalog: Catalog, day: date, *, agency: str | None = None, level: str | None = None,
                      limit: int | None = None) -> list[SheetRow]:
    """The officers' to-do list: register rows valid on ``day`` and not yet digitized, in register order (the
    rows of the dashboard's "not yet digitized" page and of ``coverage --drill-down missing``)."""
    from digitize.coverage import drill_down

    register = catalog.register_frame()
    missing = drill_down(catalog.agencies_frame(), register, catalog.archived_frame(), day, level=level,
                         agency=agency, part="missing", indicator="stock")
    chosen = register[register["register_id"].isin(set(missing["register_id"]))]
    return _register_rows(chosen.head(limit) if limit is not None else chosen)


def planned_selection(path: Path) -> tuple[list[SheetRow], list[RowError]]:
    """The valid rows of a planned-rows file (manifest columns without ``file``) and the refused ones."""
    from digitize.catalog import SheetRow
    from digitize.intake import read_planned

    documents, errors = read_planned(path)
    rows = [SheetRow(agency_code=d.agency_code, kind=d.kind, title=d.title, issued_date=d.issued_date,
                     register_id=d.register_id, valid_until=d.valid_until, dossier_code=d.dossier_code,
                     procedure_code=d.procedure_code, holder_id=d.holder_id,
                     document_id=None if d.key.startswith("row-") else d.key, planned=True) for d in documents]
    return rows, errors


def print_for_dashboard(catalog_url: str, register_ids: Sequence[str], *, user: str, path: str) -> bytes:
    """The PDF of the sheets of the register rows a dashboard page showed, printed by the Airflow user ``user``:
    stored with their name, and the access logged (method POST, ``path`` the page's route)."""
    from digitize.catalog import Catalog

    if not 1 <= len(register_ids) <= MAX_DASHBOARD_SHEETS:
        raise UsageError(f"{len(register_ids)} rows asked for: print between 1 and {MAX_DASHBOARD_SHEETS} at once",
                         hint="Filter the page (agency, level) or page through it, and print each page.")
    catalog = Catalog(catalog_url)
    try:
        sheets, pdf = print_sheets(catalog, register_selection(catalog, register_ids), printed_by=user[:200])
        catalog.log_access(client=f"airflow:{user}"[:100], method="POST", path=path, action="coversheets",
                           subject=None, purpose="", status=200, detail=access_detail(sheets))
    finally:
        catalog.close()
    return pdf
