"""Matching scans to the register without cover sheets (issue 18, part 3): evidence, scores, ``propose``.

The evidence and scoring tests run on text; the end-to-end ones OCR generated decision pages
(tests/matchgen.py) with the real Tesseract, keep the OCR in a real folder archive, write a real
workbook, and process the confirmed batch through the real pipeline (signature included).
"""

from __future__ import annotations

import csv
import shutil
import stat
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from digitize.catalog import RegisterRow
from digitize.match import ACCEPTED, NONE, REVIEW, extract
from digitize.match.evidence import agency_similarities
from digitize.match.scoring import decide, rank, segments
from tests import matchgen

LETTER = """ỦY BAN NHÂN DÂN HUYỆN CÁI BÈ
ỦY BAN NHÂN DÂN XÃ TÂN PHÚ
Số: 123/QĐ-UBND
Tân Phú, ngày 17 tháng 6 năm 2O21
QUYẾT ĐỊNH
Về việc cấp giấy phép xây dựng nhà ở riêng lẻ
Cấp cho ông Nguyễn Văn An, sinh ngày 01/02/1980, số định danh 07909l234567
Mã hồ sơ: 000.12.31.H29-21O617-0003
Điện thoại 0909123456
"""


def test_evidence_is_read_whatever_the_diacritics_and_digit_slips() -> None:
    ev = extract(LETTER)
    assert ev.holder_ids == ("079091234567",)  # l → 1; the 10-digit phone number is no tax code
    assert ev.dossier_codes == ("000.12.31.H29-210617-0003",)  # O → 0
    assert ev.numbers == ("123/QD-UBND",)
    assert ev.written_dates == (date(2021, 6, 17),)
    assert ev.numeric_dates == (date(1980, 2, 1),)
    unaccented = extract("UY BAN NHAN DAN XA TAN PHU\nTan Phu, ngay 5 thang 3 nam 202]\nMa so thue: 0301234567-001")
    assert unaccented.written_dates == (date(2021, 3, 5),)  # ] → 1
    assert unaccented.holder_ids == ("0301234567-001",)  # a tax code, after its label


def test_words_are_not_read_as_numbers() -> None:
    ev = extract("Số: lO/QĐ-UBND\nllllOOOOllll là chữ\nngày 3l tháng 2 năm 2021")
    assert ev.holder_ids == ()  # mostly letters: not an ID with slips
    assert ev.written_dates == ()  # 31 February does not exist


def test_agency_found_in_the_letterhead_against_a_neighbour_a_letter_apart() -> None:
    found = agency_similarities(extract(LETTER), [("000.12.31.H29", "UBND xã Tân Phú"),
                                                 ("000.12.32.H29", "UBND xã Tân Phước"),
                                                 ("000.12.33.H29", "UBND xã An Hữu")])
    assert found["000.12.31.H29"] == 100.0
    # the others share "Ủy ban nhân dân xã": found too (candidates by date), but too far behind to earn points
    assert max(v for k, v in found.items() if k != "000.12.31.H29") < 100.0 - 2.0
    rows = [RegisterRow(f"R{k}", k, "Giấy phép xây dựng nhà ở riêng lẻ", date(2021, 6, 17)) for k in sorted(found)]
    points = {c.row.agency_code: "agency" in c.matched for c in rank(extract(LETTER), rows, found)}
    assert points == {"000.12.31.H29": True, "000.12.32.H29": False, "000.12.33.H29": False}


def _row(register_id: str, title: str, *, dossier: str | None = None, holder: str | None = "079091234567",
         issued: date = date(2021, 6, 17), archived: str | None = None) -> RegisterRow:
    return RegisterRow(register_id, "000.12.31.H29", title, issued, dossier_code=dossier, holder_id=holder,
                       archived_code=archived)


def test_one_holders_similar_results_are_told_apart_by_the_title() -> None:
    rows = [_row("R1", "Giấy phép xây dựng nhà ở riêng lẻ"), _row("R2", "Giấy phép sửa chữa, cải tạo nhà ở riêng lẻ"),
            _row("R3", "Giấy xác nhận tình trạng hôn nhân", holder="079091234568")]
    ev = extract(LETTER.replace("Mã hồ sơ", "Mã khác"))  # the ID only: no dossier code read
    verdict = decide(rank(ev, rows, {"000.12.31.H29": 100.0}))
    assert verdict.status == ACCEPTED and verdict.best is not None and verdict.best.row.register_id == "R1"
    assert verdict.second is not None and verdict.second.row.register_id == "R2"
    assert "holder_id" in verdict.best.matched and "issued_date" in verdict.best.matched


def test_doubt_goes_to_review_and_nothing_to_none() -> None:
    same = [_row("R1", "Giấy phép xây dựng nhà ở riêng lẻ"), _row("R2", "Giấy phép xây dựng nhà ở riêng lẻ")]
    ev = extract(LETTER.replace("Mã hồ sơ", "Mã khác"))
    tie = decide(rank(ev, same, {}))
    assert tie.status == REVIEW and "points behind" in tie.why
    no_key = decide(rank(extract("Tân Phú, ngày 17 tháng 6 năm 2021\nGiấy phép xây dựng nhà ở riêng lẻ"),
                         same[:1], {"000.12.31.H29": 100.0}))
    assert no_key.status == REVIEW and "neither the dossier code nor the holder ID" in no_key.why
    done = decide(rank(ev, [_row("R1", "Giấy phép xây dựng nhà ở riêng lẻ", archived="X.2021.KQ.000001")], {}))
    assert done.status == REVIEW and "already digitized as X.2021.KQ.000001" in done.why
    assert decide(rank(extract("nothing useful"), same, {})).status == NONE


def test_a_file_is_split_where_the_identifying_evidence_changes() -> None:
    first, annex = extract(LETTER), extract("Phụ lục kèm theo quyết định\nbản vẽ mặt bằng")
    other = extract(LETTER.replace("07909l234567", "080123456789").replace("123/QĐ", "124/QĐ"))
    parts = segments([first, annex, other, annex])
    assert [(p.first_page, p.last_page) for p in parts] == [(1, 2), (3, 4)]
    assert parts[1].evidence.holder_ids == ("080123456789",)
    assert decide(rank(parts[0].evidence, [_row("R1", "Giấy phép xây dựng nhà ở riêng lẻ",
                                                     dossier="000.12.31.H29-210617-0003")], {}),
                  split=True).status == REVIEW


# ---------------------------------------------------------------------------------------- end to end


@pytest.fixture
def office(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_pki: Any) -> dict[str, Any]:
    """A catalog with the generated register, a folder archive, and a batch of 6 rendered scans without manifest."""
    from digitize.config import load_settings

    for name, value in {"DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
                        "DIGITIZE_ARCHIVE_URL": (tmp_path / "archive").as_uri(), "DIGITIZE_OCR_JOBS": "2",
                        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
                        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
                        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert), "DIGITIZE_ACTOR": "can.bo.mot.cua"}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "archive").mkdir()
    catalog, batch, scans = matchgen.office_with_register(tmp_path, load_settings().catalog_url, 6, "batch-1")
    return {"catalog": catalog, "batch": batch, "scans": scans, "tmp": tmp_path}


def _sheet(path: Path) -> list[dict[str, Any]]:
    from openpyxl import load_workbook

    book = load_workbook(path)
    rows = list(book["proposal"].iter_rows())
    header = [c.value for c in rows[0]]
    return [{h: c for h, c in zip(header, r, strict=True)} for r in rows[1:]]


def test_propose_then_apply_then_process_reuses_the_ocr(office: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from digitize.presentation.cli import main

    catalog, batch, scans, tmp = office["catalog"], office["batch"], office["scans"], office["tmp"]
    monkeypatch.chdir(tmp)
    assert main(["propose", str(batch)]) == 0
    proposal = tmp / "batch-1.proposal.xlsx"
    assert stat.S_IMODE(proposal.stat().st_mode) == 0o600  # it holds full citizen IDs
    cells = {r["file"].value: r for r in _sheet(proposal)}
    assert len(cells) == len(scans)
    for i, scan in enumerate(scans):
        row = cells[f"scan-{i}.png"]
        assert row["best_register_id"].value == scan.row.register_id  # the true row is the best, every time
        assert row["best_holder_id"].data_type == "s" and row["best_holder_id"].number_format == "@"
        assert row["best_issued_date"].value == scan.row.issued_date.isoformat()
        keyed = scan.legible("holder_id") or scan.legible("dossier_code")
        assert row["status"].value == (ACCEPTED if keyed else row["status"].value)
        if not keyed:
            assert row["status"].value != ACCEPTED
    access = _access_log(catalog)
    (logged,) = [a for a in access if a["action"] == "propose_xlsx"]
    shown = {r["best_holder_id"].value for r in cells.values()} | {r["second_holder_id"].value for r in cells.values()}
    assert all(holder in logged["detail"] for holder in shown - {None, ""})  # which IDs left in the file

    assert main(["propose", "--apply", str(proposal), str(batch)]) == 0
    with (batch / "manifest.csv").open(encoding="utf-8") as handle:
        manifest = list(csv.DictReader(handle))
    accepted = {f for f, r in cells.items() if r["status"].value == ACCEPTED}
    assert {m["file"] for m in manifest} == accepted
    truth = {f"scan-{i}.png": s.row for i, s in enumerate(scans)}
    for m in manifest:
        assert (m["register_id"], m["holder_id"], m["issued_date"]) == (
            truth[m["file"]].register_id, truth[m["file"]].holder_id, truth[m["file"]].issued_date.isoformat())
    assert stat.S_IMODE((batch / "manifest.csv").stat().st_mode) == 0o600
    matches = [e for e in catalog.batch_events("batch-1") if e.event_type == "register_match"]
    assert len(matches) == len(accepted) and all("confirmed by can.bo.mot.cua" in e.detail for e in matches)
    assert all("evidence: best candidate, matched: " in e.detail for e in matches)
    assert not any(s.row.holder_id in e.detail for e in matches for s in scans)  # field names, never an ID

    digests = {f: r["sha256"].value for f, r in cells.items()}
    for f in set(cells) - accepted:
        shutil.move(batch / f, tmp / f)  # the review scans wait elsewhere; the manifest lists the rest
    assert main(["process", str(batch), "--quiet"]) == 0
    archived = catalog.documents(status="ARCHIVED")
    assert {d.register_id for d in archived} == {truth[f].register_id for f in accepted}
    for doc in archived:
        ocr = [e for e in catalog.events(doc.id) if e.event_type == "ocr"]
        assert ocr and "reused the OCR 'propose' kept for these bytes" in ocr[0].detail
    kept = {p.parent.name for p in (tmp / "archive" / "staging" / "_ocr").glob("*/ocr.json")}
    assert kept == {digests[f] for f in set(cells) - accepted}  # dropped once archived, kept for the others


def _access_log(catalog: Any) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    with catalog.read() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT action, detail FROM access_log")).mappings()]


def test_kept_ocr_serves_the_same_bytes_only(office: dict[str, Any], tmp_path: Path) -> None:
    from digitize.archive import open_archive
    from digitize.checksums import sha256_bytes
    from digitize.config import load_settings
    from digitize.match import keep_ocr, kept_ocr, ocr_options
    from digitize.ocr import make_searchable_pdf

    settings = load_settings()
    archive = open_archive(settings)
    scan = office["batch"] / "scan-0.png"
    options = ocr_options(settings, None)
    made = make_searchable_pdf([scan], tmp_path / "made.pdf", options)
    digest = sha256_bytes(scan.read_bytes())
    keep_ocr(archive, [digest], made, options)
    again = kept_ocr(archive, [digest], tmp_path / "again.pdf", options)
    assert again is not None and again.text == made.text
    assert (tmp_path / "again.pdf").read_bytes() == (tmp_path / "made.pdf").read_bytes()
    other = sha256_bytes(scan.read_bytes() + b"\0")  # one byte more: another scan
    assert kept_ocr(archive, [other], tmp_path / "other.pdf", options) is None
    assert kept_ocr(archive, [digest, other], tmp_path / "two.pdf", options) is None
    from dataclasses import replace
    assert kept_ocr(archive, [digest], tmp_path / "eng.pdf", replace(options, language="eng")) is None


def test_process_ocrs_a_scan_changed_since_propose(office: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.presentation.cli import main

    catalog, batch, scans, tmp = office["catalog"], office["batch"], office["scans"], office["tmp"]
    keyed = next(i for i, s in enumerate(scans) if s.legible("holder_id"))
    for i in range(len(scans)):
        if i != keyed:
            (batch / f"scan-{i}.png").unlink()
    monkeypatch.chdir(tmp)
    assert main(["propose", str(batch)]) == 0
    proposal = tmp / "batch-1.proposal.xlsx"
    assert main(["propose", "--apply", str(proposal), str(batch)]) == 0
    scan = batch / f"scan-{keyed}.png"
    scan.write_bytes(scan.read_bytes() + b"\0")  # the same picture, other bytes, after the manifest was written
    assert main(["process", str(batch), "--quiet"]) == 0
    (doc,) = catalog.documents(status="ARCHIVED")
    (ocr,) = [e for e in catalog.events(doc.id) if e.event_type == "ocr"]
    assert "reused" not in ocr.detail


def test_apply_refuses_cells_excel_damaged(office: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import load_workbook

    from digitize.presentation.cli import main

    batch, tmp = office["batch"], office["tmp"]
    for extra in sorted(batch.glob("scan-*.png"))[2:]:
        extra.unlink()
    monkeypatch.chdir(tmp)
    assert main(["propose", str(batch)]) == 0
    proposal = tmp / "batch-1.proposal.xlsx"
    for column, value, said in (("best_holder_id", 79091234567, "is a number, not text"),
                                ("best_holder_id", "79091234567", "not a 12-digit citizen ID"),
                                ("best_issued_date", date(2021, 6, 17), "is a date, not text"),
                                ("best_issued_date", "17/06/2021", "not a YYYY-MM-DD date"),
                                ("register_id", "REG-99999", "register row 'REG-99999' is unknown")):
        book = load_workbook(proposal)
        sheet = book["proposal"]
        header = [c.value for c in sheet[1]]
        sheet.cell(row=2, column=header.index(column) + 1, value=value)
        sheet.cell(row=2, column=header.index("status") + 1, value=ACCEPTED)
        damaged = tmp / "damaged.xlsx"
        book.save(damaged)
        capsys.readouterr()
        code = main(["propose", "--apply", str(damaged), str(batch)])
        err = capsys.readouterr().err
        assert code == 65 and said in err, (column, err)
        assert "79091234567" not in err  # the message names the cell, never a citizen ID
        assert not (batch / "manifest.csv").exists()


def test_auto_match_processes_the_accepted_and_a_reviewers_decision(office: dict[str, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.match import record_decision, stored_proposals
    from digitize.presentation.cli import main

    catalog, batch, scans = office["catalog"], office["batch"], office["scans"]
    assert main(["process", str(batch), "--quiet"]) != 0  # off by default: no manifest, nothing matched
    assert not (batch / "manifest.csv").exists() and not catalog.documents()

    monkeypatch.setenv("DIGITIZE_AUTO_MATCH", "accepted")
    assert main(["process", str(batch), "--quiet"]) == 0
    truth = {f"scan-{i}.png": s for i, s in enumerate(scans)}
    keyed = {f for f, s in truth.items() if s.legible("holder_id") or s.legible("dossier_code")}
    archived = catalog.documents(status="ARCHIVED")
    assert {d.register_id for d in archived} == {truth[f].row.register_id for f in keyed}
    matches = [e for e in catalog.batch_events("batch-1") if e.event_type == "register_match"]
    assert all("confirmed by DIGITIZE_AUTO_MATCH via automatic matching" in e.detail for e in matches)

    waiting = [p for p in stored_proposals(catalog, batch_id="batch-1") if p.status != ACCEPTED]
    assert {p.file for p in waiting} == set(truth) - keyed
    chosen = waiting[0]
    assert chosen.best is not None and chosen.best["register_id"] == truth[chosen.file].row.register_id
    record_decision(catalog, chosen.key, accept=True, user="nguyen.thi.hoa")
    for other in waiting[1:]:
        record_decision(catalog, other.key, accept=False, user="nguyen.thi.hoa")
    assert main(["process", str(batch), "--quiet"]) == 0  # the next run: the decision is applied
    after = {d.register_id for d in catalog.documents(status="ARCHIVED")}
    assert after == {truth[f].row.register_id for f in keyed} | {truth[chosen.file].row.register_id}
    assert any(e.event_type == "match_decision" and '"user": "nguyen.thi.hoa"' in e.detail
               for e in catalog.batch_events("batch-1"))
    (by_hand,) = [e for e in catalog.batch_events("batch-1") if e.event_type == "register_match"
                  and chosen.file in e.detail]
    assert "accepted by nguyen.thi.hoa" in by_hand.detail
    proposed = [e for e in catalog.batch_events("batch-1") if e.event_type == "match_proposed"]
    assert len(proposed) == len(scans)  # each scan proposed once, not again on every run


def test_apply_leaves_out_a_row_whose_title_would_run_as_a_formula(office: dict[str, Any]) -> None:
    from digitize.checksums import sha256_bytes
    from digitize.intake import LocalBatch
    from digitize.match import ProposalLine, apply_lines

    catalog, batch, scans, tmp = office["catalog"], office["batch"], office["scans"], office["tmp"]
    row = scans[0].row
    register = tmp / "register-formula.csv"
    register.write_text("register_id,agency_code,title,issued_date,holder_id\n"
                        f"{row.register_id},{row.agency_code},\"=HYPERLINK(\"\"http://x\"\")\","
                        f"{row.issued_date.isoformat()},{row.holder_id}\n", encoding="utf-8")
    assert catalog.import_register(register).changed == 1
    line = ProposalLine(row=2, file="scan-0.png", sha256=sha256_bytes((batch / "scan-0.png").read_bytes()),
                        first_page=1, last_page=1, whole_file=True, status=ACCEPTED, register_id=row.register_id,
                        why="")
    applied = apply_lines(catalog, LocalBatch(batch), [line], actor="t", via="test")
    assert applied.written == () and "formula" in applied.left[0][2]
    assert not (batch / "manifest.csv").exists()


def test_kept_ocr_on_s3_is_staging_only_and_dropped(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    """The same on the S3 archive (moto over HTTP): kept under staging/_ocr/, read back, then dropped."""
    from robustness_support import make_context

    from digitize.checksums import sha256_bytes
    from digitize.match import forget_ocr, keep_ocr, kept_ocr, ocr_options
    from digitize.ocr import make_searchable_pdf

    ctx = make_context(tmp_path / "s3", s3_server, demo_pki, "match-ocr-cache")
    scan = matchgen.render_scan(matchgen.scans_for(matchgen.make_register(1))[0], tmp_path / "scan.png")
    options = ocr_options(ctx.settings, None)
    made = make_searchable_pdf([scan], tmp_path / "made.pdf", options)
    digest = sha256_bytes(scan.read_bytes())
    keep_ocr(ctx.archive, [digest], made, options)
    keep_ocr(ctx.archive, [digest], made, options)  # kept again (a second propose): replaced, not refused
    assert sorted(ctx.archive.list_keys("staging/_ocr/")) == [f"staging/_ocr/{digest}/ocr.json",
                                                              f"staging/_ocr/{digest}/ocr.pdf"]
    again = kept_ocr(ctx.archive, [digest], tmp_path / "again.pdf", options)
    assert again is not None and [p.text for p in again.pages] == [p.text for p in made.pages]
    forget_ocr(ctx.archive, [digest])
    assert kept_ocr(ctx.archive, [digest], tmp_path / "gone.pdf", options) is None
    assert not list(ctx.archive.list_keys("staging/_ocr/"))


def test_a_kept_pdf_without_its_record_does_not_block_keeping_again(tmp_path: Path, s3_server: str,
                                                                     demo_pki: Any) -> None:
    """A propose that stopped between its two puts left the PDF alone; the next one keeps its OCR anyway."""
    from robustness_support import make_context

    from digitize.archive import ocr_cache_keys
    from digitize.checksums import sha256_bytes
    from digitize.match import forget_ocr, keep_ocr, kept_ocr, ocr_options
    from digitize.ocr import make_searchable_pdf

    ctx = make_context(tmp_path / "s3", s3_server, demo_pki, "match-ocr-orphan")
    scan = matchgen.render_scan(matchgen.scans_for(matchgen.make_register(1))[0], tmp_path / "scan.png")
    options = ocr_options(ctx.settings, None)
    made = make_searchable_pdf([scan], tmp_path / "made.pdf", options)
    digest = sha256_bytes(scan.read_bytes())
    ctx.archive.put(ocr_cache_keys(digest).pdf, b"%PDF-1.7 an older, unfinished keep", content_type="application/pdf",
                    metadata={})
    forget_ocr(ctx.archive, [digest])  # no record: nothing is dropped, and nothing is reused either
    assert kept_ocr(ctx.archive, [digest], tmp_path / "none.pdf", options) is None
    keep_ocr(ctx.archive, [digest], made, options)
    again = kept_ocr(ctx.archive, [digest], tmp_path / "again.pdf", options)
    assert again is not None and again.pdf_path.read_bytes() == made.pdf_path.read_bytes()


def test_archiving_a_document_with_nothing_kept_lists_no_versions(tmp_path: Path, s3_server: str,
                                                                   demo_pki: Any) -> None:
    """Dropping kept OCR lists each key's versions, which an S3-compatible store may answer in time that grows
    with the bucket (moto's grew ~8× over three batches). Most documents had nothing kept: none of that."""
    from robustness_support import make_context, register, row, write_batch

    from digitize.intake import LocalBatch
    from digitize.pipeline import process_document

    ctx = make_context(tmp_path / "s3", s3_server, demo_pki, "match-no-listing")
    scan = matchgen.render_scan(matchgen.scans_for(matchgen.make_register(1))[0], tmp_path / "scan.png")
    batch = write_batch(tmp_path / "inbox", "b", {"scan.png": scan.read_bytes()}, [row("scan.png")])
    calls: list[str] = []
    ctx.archive.client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    (document_id,) = register(ctx, batch).to_process
    assert process_document(ctx, document_id, LocalBatch(batch)).status == "ARCHIVED"
    assert "PutObject" in calls and "HeadObject" in calls, calls  # the hook saw the document's requests
    assert "ListObjectVersions" not in calls, calls


def test_auto_match_leaves_a_stack_batch_to_the_stack_intake(office: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A scan that starts with a cover sheet (printed by the command, rendered by poppler) is never proposed."""
    import sheetgen

    from digitize.match import stored_proposals
    from digitize.pipeline import PipelineContext, auto_match

    catalog, scans, tmp = office["catalog"], office["scans"], office["tmp"]
    monkeypatch.setenv("DIGITIZE_AUTO_MATCH", "accepted")
    url = f"sqlite:///{tmp / 'catalog.db'}"
    sheetgen.print_with_command(url, tmp / "sheet.pdf", "--register", scans[0].row.register_id)
    sheet = sheetgen.render_pdf(tmp / "sheet.pdf", dpi=200)[0]
    stack = tmp / "inbox" / "stack-1"
    stack.mkdir()
    sheetgen.write_pdf([sheetgen.StackPage(sheet, "sheet", dpi=200),
                        sheetgen.StackPage(sheetgen.document_page(1, dpi=200), "document", dpi=200)],
                       stack / "pile.pdf")
    assert auto_match(PipelineContext(), stack) is None
    assert not (stack / "manifest.csv").exists() and not stored_proposals(catalog, batch_id="stack-1")


def test_auto_match_with_nothing_accepted_leaves_the_batch_waiting(office: dict[str, Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Only scans that print neither ID nor dossier code: nothing accepted, no manifest, never split as a stack."""
    from digitize.presentation.cli import main

    catalog, batch, scans = office["catalog"], office["batch"], office["scans"]
    for i, scan in enumerate(scans):
        if scan.legible("holder_id") or scan.legible("dossier_code"):
            (batch / f"scan-{i}.png").unlink()
    assert list(batch.glob("scan-*.png"))
    monkeypatch.setenv("DIGITIZE_AUTO_MATCH", "accepted")
    assert main(["process", str(batch), "--quiet"]) == 0
    assert not (batch / "manifest.csv").exists() and not catalog.documents()
    kinds = {e.event_type for e in catalog.batch_events("batch-1")}
    assert kinds == {"match_proposed"}  # proposed for review, nothing refused or split
