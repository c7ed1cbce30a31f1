"""Intake without typing, the cover-sheet part: sheets found in a 200-document stack, and what finding them costs.

    .venv/bin/python -m bench.intake_sheets [--documents 200] [--out bench/results/intake.md]

The stack (tests/sheetgen.py): a register of ``--documents`` rows in a fresh catalog, their sheets printed by
``python -m digitize coversheets --register …`` and rendered by poppler at 300 dpi, each sheet spoiled in turn by
every degradation the issue lists (rotated 90/180/270°, 7-10° of skew, noise, 150 and 600 dpi, bilevel,
photocopy, colour, one code smudged), followed by 1-3 document pages (some with a result's own QR code or a
certificate's border) and, after every other sheet, a duplex blank backside. Every page goes through
:func:`digitize.intake.detect_sheet` as the split would; reported: sheets found with the right id, sheets
missed, pages wrongly taken for a sheet, and detection time per page. Then sheets with both codes destroyed
(they must look like sheets without an id), the development corpus's real scans (none may look like a sheet),
and OCR per page (``make_searchable_pdf`` on document pages of the stack, one Tesseract job) for the cost ratio.

Only the section "## Cover sheets (detection)" of ``--out`` is written; other parts of the file are kept
(h18match's matching part of ``bench/intake.py`` writes its own).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import sections

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO, REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

TITLE = "# Intake without typing: benchmark"
SECTION = "## Cover sheets (detection)"


@dataclass
class Tally:
    """What detection made of the stack's pages."""

    sheets: int = 0
    found: int = 0
    wrong_id: int = 0
    missed: list[str] = field(default_factory=list)
    false_sheets: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def time(self, kind: str, seconds: float) -> None:
        self.seconds.setdefault(kind, []).append(seconds)


def print_sheets(documents: int, work: Path) -> tuple[Path, list[str]]:
    """A catalog with ``documents`` register rows and their sheets printed by the command: the PDF and the ids
    (in register order) the sheets must carry."""
    import sheetgen

    from digitize.catalog import Catalog
    from digitize.codes import sheet_id_for
    from digitize.config import REPO_ROOT

    url = f"sqlite:///{work / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.import_agencies(REPO_ROOT / "samples" / "agencies.csv")
    register = work / "register.csv"
    with register.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["register_id", "agency_code", "title", "issued_date", "holder_id"])
        for n in range(documents):
            writer.writerow([f"B-{n:05d}", "000.00.12.H99", f"Giấy chứng nhận quyền sử dụng đất số {n}",
                             f"2022-{n % 12 + 1:02d}-{n % 28 + 1:02d}", f"0790{n:08d}"])
    assert catalog.import_register(register).rejected == []
    catalog.close()
    pdf = work / "SHEETS.pdf"
    sheetgen.print_with_command(url, pdf, "--register", *(f"B-{n:05d}" for n in range(documents)))
    return pdf, [sheet_id_for(f"register:B-{n:05d}") for n in range(documents)]


def run_stack(pdf: Path, ids: list[str], tally: Tally) -> tuple[list[Any], list[Any]]:
    """Every page of the stack through detection, sheet by sheet as the scanner feeds them (rendered 20 at a time);
    a few document pages and clean sheets are kept for the OCR comparison and the destroyed-codes check."""
    import sheetgen

    from digitize.intake import detect_sheet

    kept: list[Any] = []
    clean: list[Any] = []
    for chunk in range(0, len(ids), 20):
        rendered = sheetgen.render_pdf(pdf, dpi=300, first=chunk + 1, last=min(chunk + 20, len(ids)))
        for n, image in enumerate(rendered, start=chunk):
            if len(clean) < 10:
                clean.append(image)
            how = sheetgen.DEGRADATIONS[n % len(sheetgen.DEGRADATIONS)]
            stack = sheetgen.build_stack([(ids[n], image)], degradations=(how,),
                                         pages_per_document=((1, 2, 3)[n % 3],), backsides=n % 2 == 0, seed=n)
            for page in stack:
                start = time.perf_counter()
                found = detect_sheet(page.image)
                tally.time(page.kind, time.perf_counter() - start)
                _count(tally, page, found, f"document {n} {page.kind} ({page.degradation})")
                if page.kind == "document" and len(kept) < 8 and n % 7 == 0:
                    kept.append(page.image)
    return kept, clean


def _count(tally: Tally, page: Any, found: Any, label: str) -> None:
    if page.kind != "sheet":
        if found.looks_like_sheet:
            tally.false_sheets.append(label)
        return
    tally.sheets += 1
    if found.sheet_id == page.sheet_id:
        tally.found += 1
    elif found.sheet_id is not None:
        tally.wrong_id += 1
    else:
        tally.missed.append(label)


def destroyed(sheets: list[Any]) -> tuple[int, int]:
    """Sheets with both codes destroyed (clean, rotated, photocopied): how many look like sheets with no id."""
    import sheetgen

    from digitize.intake import detect_sheet

    right = total = 0
    for n, image in enumerate(sheets):
        spoiled = sheetgen.degrade(image, sheetgen.UNREADABLE, seed=n)
        for how in ("clean", "rot90", "photocopy"):
            found = detect_sheet(sheetgen.degrade(spoiled, how, seed=n))
            total += 1
            right += found.looks_like_sheet and found.sheet_id is None
    return right, total


def corpus_pages() -> tuple[int, list[str], list[float]]:
    """The development corpus's real scans through detection: pages, those taken for sheets, seconds each."""
    from bench.corpus import DEFAULT_CORPUS, load_images
    from digitize.intake import detect_sheet

    if not DEFAULT_CORPUS.is_dir():
        return 0, [], []
    wrong, seconds, pages = [], [], 0
    for path in sorted(DEFAULT_CORPUS.iterdir()):
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pdf"):
            continue
        for n, (image, _dpi) in enumerate(load_images(path)):
            start = time.perf_counter()
            found = detect_sheet(image)
            seconds.append(time.perf_counter() - start)
            pages += 1
            if found.looks_like_sheet:
                wrong.append(f"{path.name} page {n + 1}")
    return pages, wrong, seconds


def ocr_seconds_per_page(pages: list[Any], work: Path) -> float:
    """Seconds per page of the project's OCR (one Tesseract job) on document pages of the stack."""
    from digitize.ocr import OcrOptions, make_searchable_pdf

    files = []
    for n, image in enumerate(pages):
        path = work / f"ocr-{n}.png"
        image.save(path, dpi=(300, 300))
        files.append(path)
    start = time.perf_counter()
    make_searchable_pdf(files, work / "ocr.pdf", OcrOptions(jobs=1, work_dir=work))
    return (time.perf_counter() - start) / len(files)


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms (p95 {sorted(values)[int(0.95 * (len(values) - 1))] * 1000:.1f})"


def report(tally: Tally, unreadable: tuple[int, int], corpus: tuple[int, list[str], list[float]], ocr: float,
           command: str) -> str:
    """The section of bench/results/intake.md."""
    import sheetgen

    every = [s for values in tally.seconds.values() for s in values]
    per_page = statistics.mean(every)
    pages, corpus_wrong, corpus_seconds = corpus
    lines = [SECTION, "", f"Command: `{command}`", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores "
             f"(shared machine, load average {os.getloadavg()[0]:.1f}); Python {platform.python_version()}. "
             "Sheets printed by `python -m digitize coversheets`, rendered at 300 dpi by pdftoppm, each spoiled in "
             "turn by one of: " + ", ".join(sheetgen.DEGRADATIONS) + ".", "",
             "| stack | pages | sheets | found (right id) | wrong id | missed | pages taken for a sheet |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| {tally.sheets} documents | {len(every)} | {tally.sheets} | {tally.found} | {tally.wrong_id} "
             f"| {len(tally.missed)} | {len(tally.false_sheets)} |", ""]
    if tally.missed or tally.false_sheets:
        lines += ["Missed: " + ", ".join(tally.missed[:20]), "Taken for a sheet: " + ", ".join(tally.false_sheets[:20]),
                  ""]
    lines += [f"Sheets with both codes destroyed (clean, rotated 90°, photocopied): {unreadable[0]} of {unreadable[1]} "
              "seen as sheets without an id (the split stops there: STACK_UNREADABLE_SHEET).",
              f"Development corpus (real scans, `{'../shared/corpus'}`): {pages} pages, "
              f"{len(corpus_wrong)} taken for a sheet" + (f" ({', '.join(corpus_wrong)})" if corpus_wrong else "")
              + (f"; detection {_ms(corpus_seconds)} per page." if corpus_seconds else "."), "",
              "| cost per page | median (p95) |", "|---|---:|"]
    for kind, values in tally.seconds.items():
        lines.append(f"| detection, {kind} pages ({len(values)}) | {_ms(values)} |")
    lines += [f"| detection, every page (mean) | {per_page * 1000:.1f} ms |",
              f"| OCR (`make_searchable_pdf`, 1 Tesseract job, 300 dpi document pages) | {ocr:.2f} s |", "",
              "Detection is timed on decoded pages: decoding a page, which OCR needs too, is not counted.", "",
              f"Detection costs **{per_page / ocr:.2%}** of OCR per page (target < 2 %): "
              f"**{'met' if per_page / ocr < 0.02 else 'NOT met'}**. "
              f"Every sheet found with its id and no page taken for a sheet: "
              f"**{'met' if tally.found == tally.sheets and not tally.false_sheets else 'NOT met'}**.", ""]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` in place of the previous one (other benchmarks' sections kept)."""
    sections.write_section(path, SECTION, section, title=TITLE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--out", help="write the section into this file (e.g. bench/results/intake.md)")
    args = parser.parse_args()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bench-sheets-") as tmp:
        work = Path(tmp)
        pdf, ids = print_sheets(args.documents, work)
        kept, clean = run_stack(pdf, ids, tally)
        unreadable = destroyed(clean)
        ocr = ocr_seconds_per_page(kept, work)
    section = report(tally, unreadable, corpus_pages(), ocr,
                     ".venv/bin/python -m bench.intake_sheets " + " ".join(sys.argv[1:]))
    print(section)
    if args.out:
        write_section(Path(args.out), section)


if __name__ == "__main__":
    main()
