"""Intake without typing, the split part: is every document of a 200-document stack cut at the right pages?

    .venv/bin/python -m bench.intake_split [--documents 200] [--dpi 300] [--tiff] [--out bench/results/intake.md]

The stack is the one ``bench/intake_sheets.py`` reads (tests/sheetgen.py): a register of ``--documents`` rows in
a fresh catalog, their sheets printed by ``python -m digitize coversheets`` and rendered by poppler, each sheet
spoiled in turn by the 13 degradations, followed by 1-3 document pages and, after every other sheet, a duplex
blank backside. It is written as one multi-page PDF (and with ``--tiff`` as a bilevel G4 TIFF) into a batch
with ``_UNIT`` and split by the real :func:`digitize.pipeline.split_stack_batch` (no OCR: the split never OCRs)
on a local archive. Each document the split registered is compared with the generator's ground truth: right
(its sheet's row, exactly its pages), merged (its range holds another document's sheet), split wrongly (any
other range or row), missing (no document for a sheet); blank backsides left out against those expected;
faults raised; split time per page. Then the development corpus's real scans go through the same split.

Only the section "## Splitting stacks" of ``--out`` is written; other parts of the file are kept.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
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
SECTION = "## Splitting stacks"
UNIT = "000.00.12.H99"


@dataclass
class Truth:
    """The stack as generated: per page its kind, per document its register row and page range (1-based)."""

    kinds: list[str] = field(default_factory=list)
    documents: list[tuple[str, int, int]] = field(default_factory=list)
    """(register id, sheet page, last page) in stack order."""
    degradation: dict[str, str] = field(default_factory=dict)
    """Register id to how its sheet was spoiled."""

    @property
    def blanks(self) -> set[int]:
        return {n for n, kind in enumerate(self.kinds, start=1) if kind == "blank"}


@dataclass
class Outcome:
    """One split run compared with the truth."""

    label: str
    pages: int
    seconds: float
    right: int = 0
    merged: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    blanks_left_out: int = 0
    blanks_expected: int = 0
    blanks_wrong: list[int] = field(default_factory=list)
    """Pages left out that are not blank backsides, and blank backsides kept."""
    faults: list[str] = field(default_factory=list)


def build(pdf: Path, ids: list[str], register: list[str], dpi: int, *,
          tiff: bool) -> tuple[list[bytes], list[bytes], Truth]:
    """The stack's pages as a scanner's encoded images (JPEG, PNG for bilevel), with ``tiff`` each page's G4
    bilevel copy too, and the ground truth; sheets rendered 20 at a time and pages kept encoded so memory
    stays small."""
    import sheetgen

    blobs: list[bytes] = []
    bilevel: list[bytes] = []
    truth = Truth()
    for chunk in range(0, len(ids), 20):
        rendered = sheetgen.render_pdf(pdf, dpi=dpi, first=chunk + 1, last=min(chunk + 20, len(ids)))
        for n, image in enumerate(rendered, start=chunk):
            how = sheetgen.DEGRADATIONS[n % len(sheetgen.DEGRADATIONS)]
            stack = sheetgen.build_stack([(ids[n], image)], degradations=(how,), dpi=dpi,
                                         pages_per_document=((1, 2, 3)[n % 3],), backsides=n % 2 == 0, seed=n)
            first = len(truth.kinds) + 1
            truth.documents.append((register[n], first, first + len(stack) - 1))
            truth.degradation[register[n]] = how
            for page in stack:
                truth.kinds.append(page.kind)
                buffer = io.BytesIO()
                if page.image.mode == "1":
                    page.image.save(buffer, format="PNG", dpi=(page.dpi, page.dpi))
                else:
                    page.image.save(buffer, format="JPEG", quality=85, dpi=(page.dpi, page.dpi))
                blobs.append(buffer.getvalue())
                if tiff:
                    buffer = io.BytesIO()
                    sheetgen.as_bilevel([page])[0].image.save(buffer, format="TIFF", compression="group4")
                    bilevel.append(buffer.getvalue())
    return blobs, bilevel, truth


def write_tiff(pages: list[bytes], dpi: int, path: Path) -> None:
    """The bilevel pages as one multi-page G4 TIFF, a page at a time (the stack never whole in memory)."""
    from PIL import Image, TiffImagePlugin

    with TiffImagePlugin.AppendingTiffWriter(str(path), new=True) as tiff:
        for blob in pages:
            with Image.open(io.BytesIO(blob)) as page:
                page.save(tiff, format="TIFF", compression="group4", dpi=(dpi, dpi))
            tiff.newFrame()


def split(catalog_url: str, work: Path, name: str, write: Any) -> tuple[Any, float]:
    """A batch holding one stack (``write(folder)`` puts it there) split by the pipeline on its own archive
    (``work/archive-NAME``); the result and seconds."""
    from digitize.intake import LocalBatch
    from digitize.pipeline import PipelineContext, split_stack_batch

    batch = work / "inbox" / name
    batch.mkdir(parents=True)
    write(batch)
    (batch / "_UNIT").write_text(UNIT + "\n", encoding="utf-8")
    (batch / "_READY").touch()
    os.environ.update(DIGITIZE_CATALOG_URL=catalog_url, DIGITIZE_ARCHIVE_URL=(work / f"archive-{name}").as_uri())
    start = time.perf_counter()
    result = split_stack_batch(PipelineContext(), LocalBatch(batch))
    return result, time.perf_counter() - start


def compare(label: str, result: Any, seconds: float, truth: Truth, catalog_url: str) -> Outcome:
    """What the split registered, document by document, against the ground truth."""
    from digitize.catalog import Catalog

    catalog = Catalog(catalog_url)
    try:
        records = [catalog.get_document(d) for d in result.to_process]
    finally:
        catalog.close()
    (stack,) = result.stacks
    out = Outcome(label, stack.pages, seconds, blanks_expected=len(truth.blanks))
    sheet_pages = {first: register_id for register_id, first, _ in truth.documents}
    expected = {register_id: (first, last) for register_id, first, last in truth.documents}
    seen: set[str] = set()
    for record in records:
        got = (record.stack_first_page, record.stack_last_page)
        inside = [r for p, r in sheet_pages.items() if got[0] < p <= got[1]]
        seen.add(record.register_id)
        if expected.get(record.register_id) == got:
            out.right += 1
        elif inside:
            out.merged.append(f"{record.register_id} pages {got[0]}-{got[1]} (holds {', '.join(inside)})")
        else:
            want = expected.get(record.register_id)
            out.wrong.append(f"{record.register_id} pages {got[0]}-{got[1]} (expected {want})")
    out.missing = [f"{r} ({truth.degradation[r]})" for r, _, _ in truth.documents if r not in seen]
    left_out = set(stack.left_out)
    out.blanks_left_out = len(left_out & truth.blanks)
    out.blanks_wrong = sorted(left_out ^ truth.blanks)
    out.faults = [f"{f.reason} pages {f.first_page}-{f.last_page}" for f in stack.faults]
    return out


def corpus_split(work: Path, catalog_url: str) -> list[str]:
    """The development corpus's real scans as one batch through the split: what each stack became."""
    from bench.corpus import DEFAULT_CORPUS

    if not DEFAULT_CORPUS.is_dir():
        return ["(development corpus not found)"]

    def write(batch: Path) -> None:
        for path in sorted(DEFAULT_CORPUS.iterdir()):
            if path.is_file() and path.name.startswith("dev_"):
                shutil.copy(path, batch / path.name)

    result, seconds = split(catalog_url, work, "corpus", write)
    lines = [f"Development corpus (real scans, `../shared/corpus`, {sum(s.pages for s in result.stacks)} pages in "
             f"{len(result.stacks)} stacks), split the same way in {seconds:.1f} s: "
             f"{sum(len(s.sheets) for s in result.stacks)} sheets, {len(result.to_process)} documents registered, "
             f"batch {'said to hold no sheet (sheetless)' if result.sheetless else 'NOT said to be sheetless'}; "
             "faults: " + ", ".join(f"{s.name} {f.reason} pages {f.first_page}-{f.last_page}"
                                    for s in result.stacks for f in s.faults) + "."]
    return lines


def report(outcomes: list[Outcome], truth: Truth, corpus: list[str], command: str, dpi: int) -> str:
    """The section of bench/results/intake.md."""
    lines = [SECTION, "", f"Command: `{command}`", "",
             f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores "
             f"(shared machine, load average {os.getloadavg()[0]:.1f}); Python {platform.python_version()}. "
             f"The stack of the cover-sheet part ({len(truth.documents)} documents, {len(truth.kinds)} pages at "
             f"{dpi} dpi: sheets spoiled in turn by the 13 degradations, 1-3 document pages, a blank backside "
             "after every other sheet) split by `digitize.pipeline.split_stack_batch` on a local archive, no OCR; "
             "each registered document compared with the generator's ground truth (its sheet's row, its page range).",
             "", "| stack | pages | documents | right | split wrongly | merged | missing | blanks left out "
             "(expected) | pages left out wrongly | faults | split time per page |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        lines.append(f"| {o.label} | {o.pages} | {len(truth.documents)} | {o.right} | {len(o.wrong)} "
                     f"| {len(o.merged)} | {len(o.missing)} | {o.blanks_left_out} ({o.blanks_expected}) "
                     f"| {len(o.blanks_wrong)} | {len(o.faults)} | {o.seconds / o.pages * 1000:.0f} ms |")
    lines.append("")
    for o in outcomes:
        for what, items in (("split wrongly", o.wrong), ("merged", o.merged), ("missing", o.missing),
                            ("blank backside kept or page left out wrongly", [str(p) for p in o.blanks_wrong]),
                            ("faults", o.faults)):
            if items:
                lines.append(f"{o.label}, {what}: " + "; ".join(items[:20]) + (" …" if len(items) > 20 else ""))
    met = all(o.right == len(truth.documents) and not o.blanks_wrong and not o.faults for o in outcomes)
    lines += ["", "Split time per page counts reading each page from the stack file, sheet detection, the blank "
              "test, registering the documents, archiving the stack once and staging each document's pages.", "",
              f"Every document cut at its own sheet with exactly its pages, none merged or split wrongly, every "
              f"blank backside left out and no fault: **{'met' if met else 'NOT met'}**.", "", *corpus, "",
              "The development corpus holds pages of one provincial plan (Kế hoạch 155/KH-UBND, Tiền Giang) with "
              "text ground truth only: no holder ID, no dossier code, no register row. None of its pages can be "
              "matched to a register, so the matching figures above come from the generated register and "
              "`samples/batch`, not from the corpus.", ""]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` in place of the previous one (other benchmarks' sections kept)."""
    sections.write_section(path, SECTION, section, title=TITLE)


def main() -> None:
    import img2pdf

    from bench.intake_sheets import print_sheets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument("--tiff", action="store_true", help="split the stack as a bilevel G4 TIFF too")
    parser.add_argument("--out", help="write the section into this file (e.g. bench/results/intake.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-split-") as tmp:
        work = Path(tmp)
        pdf, ids = print_sheets(args.documents, work)
        shutil.copy(work / "catalog.db", work / "unsplit.db")  # the TIFF's own catalog: rows, no documents yet
        url = f"sqlite:///{work / 'catalog.db'}"
        blobs, bilevel, truth = build(pdf, ids, [f"B-{n:05d}" for n in range(args.documents)], args.dpi,
                                      tiff=args.tiff)
        result, seconds = split(url, work, "stack-pdf",
                                lambda b: (b / "stack.pdf").write_bytes(img2pdf.convert(blobs)))
        outcomes = [compare("one PDF", result, seconds, truth, url)]
        if args.tiff:
            tiff_url = f"sqlite:///{work / 'unsplit.db'}"
            result, seconds = split(tiff_url, work, "stack-tiff",
                                    lambda b: write_tiff(bilevel, args.dpi, b / "stack.tif"))
            outcomes.append(compare("one G4 TIFF (bilevel)", result, seconds, truth, tiff_url))
        corpus = corpus_split(work, url)
    section = report(outcomes, truth, corpus, ".venv/bin/python -m bench.intake_split " + " ".join(sys.argv[1:]),
                     args.dpi)
    print(section)
    if args.out:
        write_section(Path(args.out), section)


if __name__ == "__main__":
    main()
