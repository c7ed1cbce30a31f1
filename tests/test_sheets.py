"""Cover sheets end to end: printed by ``python -m digitize coversheets``, rendered by poppler, spoiled the ways
scanning spoils paper, and found again by :func:`digitize.intake.detect_sheet` before any OCR. (What detection
costs is measured by bench/intake_sheets.py, not here: timings never go in tests.)"""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pikepdf
import pytest
import sheetgen
import sqlalchemy as sa
from imagegen import document_page as small_document_page
from PIL import Image, ImageDraw
from test_catalog import SAMPLES

from digitize.catalog import Catalog
from digitize.codes import parse_sheet_id
from digitize.intake import detect_sheet, load_image, scan_pages

REGISTER_IDS = ("REG-0001", "REG-0002", "REG-0003", "REG-0004")


@dataclass(frozen=True)
class Printed:
    url: str
    pdf: Path
    pages: list[Image.Image]
    ids: list[str]
    stdout: str


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Printed]:
    """Sheets for four register rows, printed by the command on a catalog holding the sample province."""
    folder = tmp_path_factory.mktemp("sheets")
    url = f"sqlite:///{folder / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    assert catalog.import_agencies(SAMPLES / "agencies.csv").rejected == []
    assert catalog.import_register(SAMPLES / "register.csv").rejected == []
    catalog.close()
    pdf = folder / "SHEETS.pdf"
    stdout = sheetgen.print_with_command(url, pdf, "--register", *REGISTER_IDS)
    pages = sheetgen.render_pdf(pdf, dpi=300)
    yield Printed(url, pdf, pages, sheetgen.sheet_ids_of(pages), stdout)


# ------------------------------------------------------------------------------------------ printing


def test_the_command_prints_one_a4_page_per_row_private_and_logged(printed: Printed) -> None:
    assert "4 cover sheet(s) written" in printed.stdout
    assert stat.S_IMODE(printed.pdf.stat().st_mode) == 0o600
    with pikepdf.open(printed.pdf) as pdf:
        assert len(pdf.pages) == 4
        for page in pdf.pages:
            x0, y0, x1, y1 = (float(v) for v in page.mediabox)
            assert (round((x1 - x0) / 72 * 25.4), round((y1 - y0) / 72 * 25.4)) == (210, 297)
    catalog = Catalog(printed.url)
    for register_id, sheet_id in zip(REGISTER_IDS, printed.ids, strict=True):
        row = catalog.resolve_sheet(sheet_id)
        assert row is not None and row.register_id == register_id and row.kind == "KQ"
        assert row.printed_by  # who printed it
    engine = sa.create_engine(printed.url)
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT method, action, detail FROM access_log")).all()
    engine.dispose()
    assert [(m, a) for m, a, _ in logged] == [("CLI", "coversheets")]
    assert all(r in logged[0][2] for r in REGISTER_IDS) and "079123004567" not in logged[0][2]
    catalog.close()


def test_printing_the_same_rows_again_gives_the_same_ids(printed: Printed, tmp_path: Path) -> None:
    sheetgen.print_with_command(printed.url, tmp_path / "again.pdf", "--register", "REG-0003", "REG-0001")
    again = sheetgen.sheet_ids_of(sheetgen.render_pdf(tmp_path / "again.pdf", dpi=150))
    assert again == [printed.ids[2], printed.ids[0]]


def test_a_sheet_shows_the_marker_the_id_and_the_masked_holder(printed: Printed) -> None:
    text = subprocess.run(["pdftotext", str(printed.pdf), "-"], capture_output=True, text=True).stdout
    assert "079123004567" not in text  # no text layer at all: the sheet is an image, nothing to copy out
    page = np.asarray(printed.pages[0])
    band = page[round(15 * 300 / 25.4):round(35 * 300 / 25.4), 300:2100]
    assert (band < 128).mean() > 0.7  # the black "TRANG BÌA — không thuộc hồ sơ" band, white text on black


def test_missing_prints_the_to_do_list_in_register_order(printed: Printed, tmp_path: Path) -> None:
    out = sheetgen.print_with_command(printed.url, tmp_path / "missing.pdf", "--missing", "--agency",
                                      "000.00.12.H99", "--limit", "3")
    assert "3 cover sheet(s)" in out
    ids = sheetgen.sheet_ids_of(sheetgen.render_pdf(tmp_path / "missing.pdf", dpi=150))
    catalog = Catalog(printed.url)
    rows = [catalog.resolve_sheet(i) for i in ids]
    catalog.close()
    register_ids = [r.register_id for r in rows if r is not None]
    assert register_ids == sorted(register_ids) and len(register_ids) == 3
    assert all(r is not None and r.agency_code == "000.00.12.H99" for r in rows)


def test_planned_rows_are_validated_like_the_manifest_and_stored(printed: Printed, tmp_path: Path) -> None:
    planned = tmp_path / "planned.csv"
    with planned.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["document_id", "agency_code", "kind", "title", "issued_date", "holder_id", "dossier_code"])
        writer.writerow(["tp-1", "000.00.12.H99", "TP", "Tờ khai đăng ký khai sinh", "2024-02-01", "079222001234",
                         "000.00.12.H99-240201-0001"])
        writer.writerow(["tp-2", "000.00.12.H99", "TP", "Giấy chứng sinh", "2024-02-30", "79222001234", ""])
    env = {"DIGITIZE_CATALOG_URL": printed.url, "PYTHONPATH": str(sheetgen.REPO)}
    result = subprocess.run([sys.executable, "-m", "digitize", "coversheets", "--out", str(tmp_path / "p.pdf"),
                             "--planned", str(planned)], capture_output=True, text=True,
                            env={**os.environ, **env})
    assert result.returncode == 1  # a row was refused: the officer must see it
    assert "row 3: [MANIFEST_INVALID]" in result.stderr and "holder_id" in result.stderr
    assert "79222001234" not in result.stderr  # personal data never echoed
    (sheet_id,) = sheetgen.sheet_ids_of(sheetgen.render_pdf(tmp_path / "p.pdf", dpi=150))
    catalog = Catalog(printed.url)
    row = catalog.resolve_sheet(sheet_id)
    catalog.close()
    assert row is not None and row.planned and row.kind == "TP" and row.document_id == "tp-1"
    assert row.title == "Tờ khai đăng ký khai sinh" and row.holder_id == "079222001234"


def test_options_of_missing_need_missing(printed: Printed, tmp_path: Path) -> None:
    env = {**os.environ, "DIGITIZE_CATALOG_URL": printed.url, "PYTHONPATH": str(sheetgen.REPO)}
    result = subprocess.run([sys.executable, "-m", "digitize", "coversheets", "--out", str(tmp_path / "x.pdf"),
                             "--register", "REG-0001", "--limit", "2"], capture_output=True, text=True, env=env)
    assert result.returncode == 64 and "--missing" in result.stderr
    assert not (tmp_path / "x.pdf").exists()


# ----------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("how", sheetgen.DEGRADATIONS)
def test_a_spoiled_sheet_is_still_read(printed: Printed, how: str) -> None:
    for n, (page, sheet_id) in enumerate(zip(printed.pages[:2], printed.ids[:2], strict=True)):
        found = detect_sheet(sheetgen.degrade(page, how, seed=n))
        assert found.sheet_id == sheet_id, (how, found)
        assert found.looks_like_sheet
        assert found.symbols_decoded == (1 if how.startswith("smudge") else 2) or how in ("photocopy", "noise")


def test_a_sheet_whose_codes_are_both_destroyed_still_looks_like_one(printed: Printed) -> None:
    for n, page in enumerate(printed.pages):
        for how in ("clean", "rot180"):
            spoiled = sheetgen.degrade(sheetgen.degrade(page, sheetgen.UNREADABLE, seed=n), how)
            found = detect_sheet(spoiled)
            assert found.sheet_id is None and found.looks_like_sheet and found.symbols_decoded == 0, found


@pytest.mark.parametrize("page", ["text", "text_with_qr", "certificate_border", "form_grid", "blank", "small",
                                  "dark_edges"])
def test_ordinary_pages_are_never_sheets(page: str) -> None:
    image = {
        "text": lambda: sheetgen.document_page(1),
        "text_with_qr": lambda: sheetgen.document_page(2, with_qr=True),
        "certificate_border": lambda: sheetgen.document_page(3, border=True),
        "blank": lambda: sheetgen.blank_backside(4),
        "small": lambda: Image.fromarray(small_document_page(dpi=200)),
        "dark_edges": lambda: _on_dark_scanner_bed(sheetgen.document_page(5)),
        "form_grid": lambda: _form(sheetgen.document_page(6, border=True)),
    }[page]()
    for variant in (image, image.rotate(90, expand=True), sheetgen.degrade(image, "bilevel")):
        found = detect_sheet(variant)
        assert (found.sheet_id, found.looks_like_sheet, found.symbols_decoded) == (None, False, 0)


def _form(page: Image.Image) -> Image.Image:
    """A form: a table ruled over the whole page (1 mm outer rule, 0.5 mm cells) over the text."""
    draw = ImageDraw.Draw(page)
    mm = 300 / 25.4
    draw.rectangle((12 * mm, 12 * mm, page.width - 12 * mm, page.height - 12 * mm), outline=0, width=round(mm))
    for y in range(30, 285, 12):
        draw.line((12 * mm, y * mm, page.width - 12 * mm, y * mm), fill=0, width=round(0.5 * mm))
    draw.line((70 * mm, 12 * mm, 70 * mm, page.height - 12 * mm), fill=0, width=round(0.5 * mm))
    return page


def _on_dark_scanner_bed(page: Image.Image) -> Image.Image:
    """The page scanned slightly askew on a black background: dark wedges along every edge."""
    bed = Image.new("L", (page.width + 120, page.height + 120), 10)
    bed.paste(page.rotate(2, expand=False, fillcolor=10), (60, 60))
    return bed


def test_detection_accepts_numpy_pages_in_every_form(printed: Printed) -> None:
    gray = np.asarray(printed.pages[1])
    bgr = np.dstack([gray, gray, gray])
    for array in (gray, bgr, gray > 128, np.dstack([bgr, np.full_like(gray, 255)])):
        assert detect_sheet(array).sheet_id == printed.ids[1]


def test_stacks_as_pdf_and_tiff_have_their_sheets_found_where_they_are(printed: Printed, tmp_path: Path) -> None:
    """Through the pipeline's own page loader: a PDF with JPEG pages, and a bilevel G4 TIFF."""
    sheets = list(zip(printed.ids, printed.pages, strict=True))
    stack = sheetgen.build_stack(sheets, degradations=("clean", "rot180", "skew", "photocopy"), seed=7)
    expected = [(p.kind, p.sheet_id) for p in stack]
    assert sum(kind == "blank" for kind, _ in expected) == 2 and len(expected) == 13
    for path in (sheetgen.write_pdf(stack, tmp_path / "stack.pdf"), sheetgen.write_tiff(stack, tmp_path / "s.tif")):
        found = []
        for info in scan_pages(path):
            detection = detect_sheet(load_image(info))
            found.append(detection.sheet_id if detection.looks_like_sheet else None)
        assert found == [sheet_id for _, sheet_id in expected], path.name


def test_ids_read_from_sheets_are_canonical(printed: Printed) -> None:
    assert all(parse_sheet_id(i) == i for i in printed.ids)


def test_planned_rows_from_xlsx_keep_dates_and_refuse_ids_excel_turned_into_numbers(tmp_path: Path) -> None:
    import openpyxl

    from digitize.errors import ManifestError
    from digitize.intake import read_planned

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["agency_code", "kind", "title", "issued_date", "holder_id"])
    sheet.append(["000.00.12.H99", "TP", "Sơ đồ thửa đất", date(2021, 6, 17), "079123004567"])
    sheet.append(["000.00.12.H99", "TP", "Bản vẽ", date(2021, 6, 18), 79123004567])  # Excel dropped the 0
    book.save(tmp_path / "planned.xlsx")
    documents, errors = read_planned(tmp_path / "planned.xlsx")
    assert [(d.title, d.issued_date, d.holder_id, d.files) for d in documents] == [
        ("Sơ đồ thửa đất", date(2021, 6, 17), "079123004567", ())]
    assert [(e.row, e.reason) for e in errors] == [(3, "MANIFEST_INVALID")] and "holder_id" in errors[0].message
    assert "79123004567" not in errors[0].message
    sheet.cell(row=1, column=6, value="file")
    book.save(tmp_path / "with_file.xlsx")
    with pytest.raises(ManifestError, match="'file' column"):
        read_planned(tmp_path / "with_file.xlsx")
