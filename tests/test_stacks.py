"""Scanned stacks end to end: sheets printed by ``coversheets``, stacks built by ``tests/sheetgen.py``, split and
archived by ``python -m digitize process`` in a new process (and once by the ``digitize_inbox`` DAG).

What an officer relies on: one document per sheet with the right pages and every field from the sheet's row,
blank backsides left out and listed, the sheet never in the signed PDF, each fault refused with its reason
code and nothing merged, resubmission registering nothing twice, a sheet whose row is already archived
reported as a duplicate of its code, the stack archived once and audited like any original.

Pages are A4 at 200 dpi and OCR is the no-op engine where the point is not OCR; one test runs Tesseract.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sheetgen
from envs import folder_archive_env
from PIL import Image
from robustness_support import NOOP_OCR, REPO, SAMPLES
from robustness_support import record as record_outcome
from sheetgen import StackPage

DPI = 200
UNIT = "000.00.12.H99"
REGISTER_IDS = [f"REG-{n:04d}" for n in range(1, 11)]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, demo_pki: Any) -> Iterator[dict[str, Any]]:
    """A catalog with the sample register and the sheets of REG-0001…0010 printed by the command; a sheet
    printed by another office's catalog (unknown here); the settings a user's ``.env`` would give."""
    from digitize.catalog import Catalog

    root = tmp_path_factory.mktemp("stacks")
    env = folder_archive_env(root, demo_pki, DIGITIZE_SIGNING_STAMP="false", DIGITIZE_QUIET_SECONDS="0",
                             DIGITIZE_OCR_JOBS="1")
    catalog = Catalog(env["DIGITIZE_CATALOG_URL"])
    catalog.upgrade()
    catalog.import_agencies(SAMPLES / "agencies.csv")
    catalog.import_register(SAMPLES / "register.csv")
    sheetgen.print_with_command(env["DIGITIZE_CATALOG_URL"], root / "sheets.pdf", "--register", *REGISTER_IDS)
    pages = sheetgen.render_pdf(root / "sheets.pdf", dpi=DPI)
    ids = sheetgen.sheet_ids_of(pages)
    other = Catalog(f"sqlite:///{root / 'other.db'}")
    other.upgrade()
    other.import_agencies(SAMPLES / "agencies.csv")
    other.import_register(SAMPLES / "register.csv")
    sheetgen.print_with_command(f"sqlite:///{root / 'other.db'}", root / "other.pdf", "--register", "REG-0012")
    foreign = sheetgen.render_pdf(root / "other.pdf", dpi=DPI)[0]
    sheets = dict(zip(REGISTER_IDS, zip(ids, pages, strict=True), strict=True))
    yield {"root": root, "env": env, "catalog": catalog, "sheets": sheets,
           "foreign": (sheetgen.sheet_ids_of([foreign])[0], foreign)}
    catalog.close()
    other.close()


def sheet(shop: dict[str, Any], register_id: str, how: str = "clean") -> StackPage:
    sheet_id, image = shop["sheets"][register_id]
    return StackPage(sheetgen.degrade(image, how, dpi=DPI), "sheet", sheet_id, degradation=how, dpi=DPI)


def doc(seed: int) -> StackPage:
    return StackPage(sheetgen.document_page(seed, dpi=DPI), "document", dpi=DPI)


def blank(seed: int) -> StackPage:
    return StackPage(sheetgen.blank_backside(seed, dpi=DPI), "blank", dpi=DPI)


def stack_batch(shop: dict[str, Any], name: str, pages: Sequence[StackPage], *, fmt: str = "pdf",
                unit: str | None = UNIT) -> Path:
    batch = shop["root"] / "inbox" / name
    batch.mkdir(parents=True)
    if fmt == "pdf":
        sheetgen.write_pdf(pages, batch / "stack.pdf")
    elif fmt == "tiff":
        sheetgen.write_tiff(pages, batch / "stack.tif")
    else:  # a scanner's numbered images: scan_9.png comes before scan_10.png
        for number, page in enumerate(pages, start=1):
            page.image.save(batch / f"scan_{number}.png", dpi=(DPI, DPI))
    if unit:
        (batch / "_UNIT").write_text(unit + "\n", encoding="utf-8")
    (batch / "_READY").touch()
    return batch


def cli(shop: dict[str, Any], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m digitize …`` in a new process, with only the settings a user's ``.env`` gives (no-op OCR
    unless ``DIGITIZE_PLUGINS`` says otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITIZE_", "AIRFLOW_CONN_"))}
    env.update(shop["env"], PYTHONPATH=str(REPO), **{"DIGITIZE_PLUGINS": NOOP_OCR, **extra})
    return subprocess.run([sys.executable, "-m", "digitize", *args], env=env, cwd=shop["root"], text=True,
                          capture_output=True, timeout=600)


def documents_of(shop: dict[str, Any], batch: str) -> list[Any]:
    return [d for d in shop["catalog"].documents() if d.batch_id == batch]


def sidecar(shop: dict[str, Any], record: Any) -> dict[str, Any]:
    return json.loads((shop["root"] / "archive" / record.sidecar_key).read_text(encoding="utf-8"))


def test_blank_backsides_are_blank_and_pages_with_ink_are_not() -> None:
    import numpy as np

    from digitize.intake import is_blank

    blanks = [sheetgen.blank_backside(seed, dpi=dpi) for seed, dpi in ((1, 150), (2, 200), (3, 300))]
    blanks += [sheetgen.degrade(sheetgen.blank_backside(4, dpi=300), how, seed=5)
               for how in ("noise", "photocopy", "bilevel", "colour")]
    for page in blanks:
        assert is_blank(np.asarray(page.convert("L"))), "a blank backside must be left out"
    inked = [sheetgen.document_page(seed, dpi=dpi) for seed, dpi in ((1, 150), (2, 300))]
    one_line = np.full((2339, 1654), 246, dtype=np.uint8)
    one_line[1200:1215, 300:420] = 30  # one short word's worth of ink on an empty page
    for page in [*(np.asarray(p.convert("L")) for p in inked), one_line]:
        assert not is_blank(page), "a page with any writing stays in the document"


def test_the_stack_is_kept_as_long_as_its_longest_kept_document() -> None:
    from types import SimpleNamespace

    from digitize.archive import ArchiveOptions, longest_kept_kind

    locked = SimpleNamespace(options=ArchiveOptions(object_lock_mode="COMPLIANCE",
                                                    retention_days={"KQ": 36500, "TP": 7300}))
    assert longest_kept_kind(locked, ["TP", "KQ", "TP"]) == "KQ"
    odd = SimpleNamespace(options=ArchiveOptions(object_lock_mode="GOVERNANCE", retention_days={"KQ": 10},
                                                 default_retention_days=20))
    assert longest_kept_kind(odd, ["KQ", "TP"]) == "TP", "the configured days decide, not the kind's name"
    assert longest_kept_kind(SimpleNamespace(), ["TP", "KQ"]) == "KQ"  # no locking: results outlive components
    assert longest_kept_kind(SimpleNamespace(), ["TP"]) == "TP"


def test_a_pdf_stack_is_split_into_documents_through_the_cli(shop: dict[str, Any]) -> None:
    pages = [sheet(shop, "REG-0001"), blank(1), doc(1), doc(2),
             sheet(shop, "REG-0002", "rot180"), doc(3), blank(2),
             sheet(shop, "REG-0003", "noise"), blank(3), doc(4)]
    batch = stack_batch(shop, "stack-pdf", pages)
    done = cli(shop, "process", str(batch), "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    docs = sorted(documents_of(shop, "stack-pdf"), key=lambda d: d.stack_first_page)
    assert [(d.status, d.register_id, d.stack_first_page, d.stack_last_page, d.pages) for d in docs] == [
        ("ARCHIVED", "REG-0001", 1, 4, 2), ("ARCHIVED", "REG-0002", 5, 7, 1), ("ARCHIVED", "REG-0003", 8, 10, 1)]
    register = {r: shop["catalog"].resolve_sheet(shop["sheets"][r][0]) for r in ("REG-0001", "REG-0002")}
    for record in docs[:2]:  # every field from the sheet's row, the unit from _UNIT
        row = register[record.register_id]
        assert (record.title, record.issued_date, record.holder_id, record.dossier_code, record.agency_code) == (
            row.title, row.issued_date, row.holder_id, row.dossier_code, row.agency_code)
        assert record.scanned_at == UNIT and record.sheet_id == shop["sheets"][record.register_id][0]
    sha = docs[0].stack_sha256
    assert {d.stack_sha256 for d in docs} == {sha}
    archive = shop["root"] / "archive"
    assert sorted(p.relative_to(archive).as_posix() for p in (archive / "stacks").rglob("*") if p.is_file()) == [
        f"stacks/{sha}/stack.pdf"], "the stack is archived once, under its SHA-256"
    first = sidecar(shop, docs[0])
    assert first["stack"]["blank_pages"] == [2] and first["stack"]["pages_kept"] == [3, 4]
    assert first["stack"]["sha256"] == sha and (first["stack"]["first_page"], first["stack"]["last_page"]) == (1, 4)
    assert [f["key"] for f in first["files"] if f["role"] == "original"] == [f"stacks/{sha}/stack.pdf"]
    assert sidecar(shop, docs[2])["stack"]["blank_pages"] == [9]
    split = [e.detail for e in shop["catalog"].events(docs[1].id) if e.event_type == "stack_split"]
    assert split and f"pages 5-7 of stack stack.pdf (sha256 {sha})" in split[0] and "left out: 7" in split[0]
    assert "3 sheet(s) found, 3 document(s) made" in done.stdout and "blank pages left out: 2, 7, 9" in done.stdout
    assert "sent to review: nothing" in done.stdout
    assert not [p for p in (archive / "staging").rglob("*") if p.is_file()], "staged pages are removed"

    again = cli(shop, "process", str(batch), "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(documents_of(shop, "stack-pdf")) == 3 and "already done: 3" in again.stdout, again.stdout
    assert "split by an earlier run, its 3 document(s) already archived" in again.stdout, again.stdout


def test_the_signed_pdf_holds_only_the_documents_own_pages(shop: dict[str, Any]) -> None:
    import pikepdf

    record = next(d for d in documents_of(shop, "stack-pdf") if d.register_id == "REG-0001")
    with pikepdf.open(shop["root"] / "archive" / record.pdf_key) as pdf:
        assert len(pdf.pages) == 2, "neither the sheet nor the blank backside is in the signed PDF"


def test_each_fault_has_its_reason_code_and_nothing_is_merged(shop: dict[str, Any]) -> None:
    foreign_id, foreign = shop["foreign"]
    pages = [doc(10),                                              # 1: before the first sheet
             sheet(shop, "REG-0004"), blank(11),                   # 2-3: a sheet with nothing behind it
             sheet(shop, "REG-0005", "skew"), doc(12),             # 4-5: a good document
             StackPage(foreign, "sheet", foreign_id, dpi=DPI), doc(13),  # 6-7: another office's sheet
             sheet(shop, "REG-0006", sheetgen.UNREADABLE), doc(14), doc(15),  # 8-10: codes destroyed
             sheet(shop, "REG-0008", "bilevel"), doc(16),          # 11-12: a good document
             sheet(shop, "REG-0004")]                              # 13: REG-0004 again, last, nothing behind it
    batch = stack_batch(shop, "stack-faults", pages, fmt="tiff")
    done = cli(shop, "process", str(batch), "--quiet", DIGITIZE_MOVE_DONE="true")
    assert done.returncode == 0, done.stdout + done.stderr
    docs = sorted(documents_of(shop, "stack-faults"), key=lambda d: d.stack_first_page)
    assert [(d.register_id, d.stack_first_page, d.stack_last_page, d.pages) for d in docs] == [
        ("REG-0005", 4, 5, 1), ("REG-0008", 11, 12, 1)], "the unreadable sheet's pages joined no document"
    with Image.open(batch / "stack.tif") as stack:
        stack.seek(4)  # page 5, REG-0005's one page: its pixels are the document's weight, not the whole stack's
        assert [d.files[0].pixels for d in docs] == [stack.width * stack.height] * 2
    events = [e.detail for e in shop["catalog"].batch_events("stack-faults") if e.outcome == "failure"]
    expected = [("STACK_PAGES_BEFORE_SHEET", "page 1:"), ("STACK_TWO_SHEETS", "pages 2-3:"),
                ("STACK_UNKNOWN_SHEET", "pages 6-7:"), ("STACK_UNREADABLE_SHEET", "pages 8-10:"),
                ("STACK_SHEET_AT_END", "page 13:")]
    for reason, pages_named in expected:
        assert any(f"[{reason}]" in e and pages_named in e for e in events), (reason, events)
        assert f"[{reason}]" in done.stdout
    assert all("resubmit" in e for e in events), "each fault tells the officer what to do"
    assert "2 document(s) made" in done.stdout and "pages 8-10 [STACK_UNREADABLE_SHEET]" in done.stdout
    assert (batch / "stack.tif").is_file(), "a stack with refused parts stays in the inbox to be fixed"
    cases = {"STACK_PAGES_BEFORE_SHEET": "stack: pages before its first cover sheet",
             "STACK_TWO_SHEETS": "stack: a cover sheet followed by another (only a blank page between)",
             "STACK_UNKNOWN_SHEET": "stack: another office's cover sheet",
             "STACK_UNREADABLE_SHEET": "stack: a cover sheet whose codes are smudged away",
             "STACK_SHEET_AT_END": "stack: a cover sheet as its last page"}
    for reason, _ in expected:
        detail = next(e for e in events if f"[{reason}]" in e).split(") ", 1)[-1]  # from "pages …:", no hash
        record_outcome("bad input", cases[reason], "pages refused, not merged; stack kept in the inbox", reason,
                       detail)


def test_numbered_images_in_scanner_order_and_a_duplicate_named_by_its_code(shop: dict[str, Any]) -> None:
    pages = [sheet(shop, "REG-0007", "rot90"), doc(20), blank(21), doc(22), doc(23),
             sheet(shop, "REG-0002"), doc(24), doc(25), doc(26), doc(27)]  # REG-0002: archived from stack-pdf
    batch = stack_batch(shop, "stack-images", pages, fmt="images")
    done = cli(shop, "process", str(batch), "--quiet", DIGITIZE_MOVE_DONE="true")
    assert done.returncode == 0, done.stdout + done.stderr
    (made,) = documents_of(shop, "stack-images")
    assert (made.status, made.register_id, made.stack_first_page, made.stack_last_page, made.pages) == (
        "ARCHIVED", "REG-0007", 1, 5, 3)
    assert [f.name for f in made.files] == [f"scan_{n}.png" for n in range(1, 6)], "sheet and pages, in order"
    def pixels(path: Path) -> int:
        with Image.open(path) as image:
            return image.width * image.height

    assert [f.pixels for f in made.files] == [pixels(batch / "done" / f"scan_{n}.png") for n in range(1, 6)]
    existing = next(d for d in documents_of(shop, "stack-pdf") if d.register_id == "REG-0002")
    assert f"stack-images/scan_1.png..scan_10.png#6-10 = {existing.code}" in done.stdout, done.stdout
    assert "duplicates: 1" in done.stdout
    assert sorted(p.name for p in (batch / "done").iterdir()) == sorted(f"scan_{n}.png" for n in range(1, 11))


def test_tesseract_reads_the_documents_pages_and_never_the_sheet(shop: dict[str, Any]) -> None:
    """The one run with real OCR: the text of the document's page is searchable, the sheet's is nowhere."""
    batch = stack_batch(shop, "stack-ocr", [sheet(shop, "REG-0009", "rot270"), blank(40), doc(41)])
    done = cli(shop, "process", str(batch), "--quiet", DIGITIZE_PLUGINS="")
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = documents_of(shop, "stack-ocr")
    assert (record.status, record.pages, record.register_id) == ("ARCHIVED", 1, "REG-0009")
    found = cli(shop, "search", "Độc lập Tự do Hạnh phúc")
    assert found.returncode == 0 and record.code in found.stdout, found.stdout + found.stderr
    ocr = [e.detail for e in shop["catalog"].events(record.id) if e.event_type == "ocr"]
    assert ocr and ocr[0].startswith("1 page(s)"), "only the document's page went to Tesseract"
    sheet_words = cli(shop, "search", "check character")
    assert record.code not in sheet_words.stdout, "the cover sheet's text is never OCR'd"


def test_a_stack_batch_without_a_unit_is_refused(shop: dict[str, Any]) -> None:
    batch = stack_batch(shop, "stack-no-unit", [sheet(shop, "REG-0004"), doc(30)], unit=None)
    done = cli(shop, "process", str(batch))
    assert done.returncode == 65 and "[STACK_NO_UNIT]" in done.stdout and "_UNIT" in done.stdout, done.stdout
    assert documents_of(shop, "stack-no-unit") == []
    refused = next(line for line in done.stdout.splitlines() if "[STACK_NO_UNIT]" in line)
    record_outcome("bad input", "stack batch without a scanning unit (_UNIT)",
                   "batch refused (exit 65), nothing registered", "STACK_NO_UNIT", refused.split("] ", 1)[-1])
    unit = cli(shop, "process", str(batch), "--quiet", DIGITIZE_STACK_UNIT=UNIT)
    assert unit.returncode == 0 and [d.scanned_at for d in documents_of(shop, "stack-no-unit")] == [UNIT]


def test_pages_whose_staged_copy_is_gone_are_cut_again_from_the_archived_stack(
        shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The split stages each document's pages for the chunk tasks; if they are gone when a chunk runs (expired,
    or a split interrupted after registering), the pages come from the archived stack, never the inbox."""
    import shutil

    from digitize.intake import LocalBatch
    from digitize.pipeline import PipelineContext, process_documents, split_stack_batch

    for name, value in {**shop["env"], "DIGITIZE_PLUGINS": NOOP_OCR}.items():
        monkeypatch.setenv(name, value)
    batch = stack_batch(shop, "stack-restage", [sheet(shop, "REG-0010"), doc(50), blank(51), doc(52)])
    ctx = PipelineContext()
    split = split_stack_batch(ctx, LocalBatch(batch))
    shutil.rmtree(shop["root"] / "archive" / "staging" / "stacks")
    shutil.rmtree(batch)  # and the inbox's copy is gone too: the archive alone is enough
    (outcome,) = process_documents(ctx, split.to_process, LocalBatch(batch))
    record = shop["catalog"].get_document(outcome.document_id)
    assert (outcome.status, record.pages, record.register_id) == ("ARCHIVED", 2, "REG-0010")
    assert sidecar(shop, record)["stack"]["blank_pages"] == [3]
    assert any("cut again from the archived stack" in e.detail for e in shop["catalog"].events(record.id))


def test_scans_without_any_sheet_are_refused_whole_and_said_to_be_sheetless(
        shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Scans of their own dropped without a manifest: nothing is registered or archived, and the batch says it
    holds no sheet at all (what automatic matching, when on, takes instead)."""
    from digitize.intake import LocalBatch
    from digitize.pipeline import PipelineContext, split_stack_batch

    for name, value in shop["env"].items():
        monkeypatch.setenv(name, value)
    batch = stack_batch(shop, "no-sheets", [doc(70), blank(71), doc(72)], fmt="images")
    split = split_stack_batch(PipelineContext(), LocalBatch(batch))
    assert split.sheetless and split.to_process == ()
    assert [(f.reason, f.first_page, f.last_page) for f in split.stacks[0].faults] == [
        ("STACK_PAGES_BEFORE_SHEET", 1, 3)]
    assert not (shop["root"] / "archive" / "stacks" / split.stacks[0].sha256).exists()


def test_fixity_audit_and_catalog_rebuild_know_stacks(shop: dict[str, Any]) -> None:
    from digitize.archive import open_archive
    from digitize.catalog import Catalog
    from digitize.preservation import audit_documents, rebuild_catalog

    archive = open_archive(shop["env"]["DIGITIZE_ARCHIVE_URL"])
    stacked_ids = [d.id for d in shop["catalog"].documents(status="ARCHIVED") if d.stack_sha256]
    report = audit_documents(shop["catalog"], archive, stacked_ids,
                             trust_roots=[Path(shop["env"]["DIGITIZE_TRUST_ROOTS"])])
    stacked = [c for c in report.checks if c.check.startswith("original_checksum") and "stacks/" in c.key]
    assert report.ok and len(stacked) >= 3, report.failures
    fresh = Catalog(f"sqlite:///{shop['root'] / 'rebuilt.db'}")
    fresh.upgrade()
    fresh.import_agencies(SAMPLES / "agencies.csv")
    rebuild_catalog(fresh, archive)
    before = {(d.code, d.stack_sha256, d.stack_first_page, d.stack_last_page, d.sheet_id, d.fingerprint)
              for d in shop["catalog"].documents(status="ARCHIVED") if d.stack_sha256}
    after = {(d.code, d.stack_sha256, d.stack_first_page, d.stack_last_page, d.sheet_id, d.fingerprint)
             for d in fresh.documents() if d.stack_sha256}
    assert before and after == before
    fresh.close()


def test_a_stack_on_s3_prepared_on_one_worker_and_signed_on_another(
        shop: dict[str, Any], s3_server: str, demo_pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An S3 inbox and an S3 archive, and the signing queue's two halves: prepare (OCR, code) reads the pages the
    split staged in the bucket, finish (sign, archive) reads only what prepare staged; nothing on local disk."""
    from robustness_support import make_context

    from digitize.archive import S3Archive, make_s3_client
    from digitize.intake import open_batch
    from digitize.pipeline import finish_prepared, prepare_document, split_stack_batch

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(shop["root"] / "s3", s3_server, demo_pki, "stacks-archive")
    ctx.catalog.import_register(SAMPLES / "register.csv")
    url = ctx.settings.catalog_url
    sheetgen.print_with_command(url, shop["root"] / "s3" / "sheets.pdf", "--register", "REG-0011", "REG-0013")
    printed = sheetgen.render_pdf(shop["root"] / "s3" / "sheets.pdf", dpi=DPI)
    ids = sheetgen.sheet_ids_of(printed)
    pages = [StackPage(printed[0], "sheet", ids[0], dpi=DPI), doc(60), blank(61),
             StackPage(sheetgen.degrade(printed[1], "photocopy", dpi=DPI), "sheet", ids[1], dpi=DPI), doc(62), doc(63)]
    local = shop["root"] / "s3" / "stack.tif"
    sheetgen.write_tiff(pages, local)
    client = make_s3_client(s3_server, credentials=("testing", "testing"))
    inbox = S3Archive(client, "stacks-inbox")
    inbox.ensure_bucket()
    inbox.put("scans/pile-1/stack.tif", local.read_bytes(), content_type="image/tiff")
    inbox.put("scans/pile-1/_UNIT", UNIT.encode(), content_type="text/plain")
    inbox.put("scans/pile-1/_READY", b"", content_type="text/plain")
    source = open_batch("s3://stacks-inbox/scans/pile-1/", s3=lambda bucket: S3Archive(client, bucket))
    split = split_stack_batch(ctx, source)
    assert len(split.to_process) == 2 and not split.stacks[0].faults
    prepared = [prepare_document(ctx, document_id, source) for document_id in split.to_process]
    assert [p.status for p in prepared] == ["PREPARED", "PREPARED"]
    done = [finish_prepared(ctx, p) for p in prepared]  # no batch: the signing worker never reads the inbox
    assert [d.status for d in done] == ["ARCHIVED", "ARCHIVED"]
    records = [ctx.catalog.get_document(d.document_id) for d in done]
    assert [(r.register_id, r.stack_first_page, r.stack_last_page, r.pages) for r in records] == [
        ("REG-0011", 1, 3, 1), ("REG-0013", 4, 6, 2)]
    keys = sorted(ctx.archive.list_keys("stacks/"))
    assert keys == [f"stacks/{records[0].stack_sha256}/stack.tif"], "archived once, in the archive bucket"
    assert list(ctx.archive.list_keys("staging/")) == [], "staged pages and prepared work are removed"
    side = json.loads(ctx.archive.get(records[0].sidecar_key))
    assert side["stack"]["blank_pages"] == [3] and side["scanned_at"] == UNIT
