"""Frozen reports (issue #16, "Done when"): a report (D, C) never changes after the fact, and proves it.

On SQLite and PostgreSQL, with the real pipeline (OCR, B-LTA signing against a local TSA, moto S3):
reports (D, C) are written as CSV, XLSX and HTML; then a document is corrected, a B-LTA document renewed,
an edited register and agency table re-imported, a district split between two communes, reuse events
imported, and the catalog rebuilt from the archive. After each step ``coverage check`` passes for every
report and the regenerated CSV is byte-identical; the report (D, now) shows exactly the expected changes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_catalog import fresh_database_url
from test_signing import LocalCa, start_local_ca

from digitize.clock import business_today, utc_now
from digitize.config import REPO_ROOT

SAMPLES = REPO_ROOT / "samples"
P12, D31, C1, C2 = "000.00.12.H99", "000.00.31.H99", "000.01.31.H99", "000.02.31.H99"
DOCUMENTS = (  # file, agency, title, register row: REG-0010's district was abolished on 30/06/2025
    ("a.png", P12, "Phiếu lý lịch tư pháp số 1", "REG-0001"),
    ("b.png", P12, "Trích lục khai sinh", "REG-0002"),
    ("c.png", D31, "Giấy chứng nhận quyền sử dụng đất", "REG-0010"),
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCa]:
    local, stop = start_local_ca(tmp_path_factory.mktemp("frozen-ca"))
    try:
        yield local
    finally:
        stop()


def cli(*argv: str) -> int:
    from digitize.presentation.cli import main

    return main(list(argv))


def edited_copy(source: Path, target: Path, key: str, value: str, column: str, new: str) -> Path:
    """``source`` with one cell changed: the row whose ``key`` column is ``value`` gets ``column`` = ``new``."""
    rows = list(csv.DictReader(source.open(encoding="utf-8")))
    assert sum(r[key] == value for r in rows) == 1
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{**r, column: new} if r[key] == value else r for r in rows])
    target.write_text(out.getvalue(), encoding="utf-8")
    return target


def figures(report: Any) -> dict[str, Any]:
    """What the expected changes are stated in; every archived document is counted or has a reason."""
    accounting = report.accounting.set_index("level")
    assert (accounting["archived"] == accounting["counted"] + accounting["not_counted"]).all()
    assert accounting["archived"].sum() == len(report.documents) and accounting["not_counted"].sum() == len(
        report.uncounted)
    stock = report.by_level.set_index("level")
    assert all(accounting.loc[lv, "counted"] == stock.loc[lv, "digitized"] for lv in stock.index)
    units = report.units_by_level.set_index("level")
    return {
        "stock": {lv: (int(stock.loc[lv, "digitized"]), int(stock.loc[lv, "valid"])) for lv in stock.index},
        "units": {lv: (int(units.loc[lv, "running"]), int(units.loc[lv, "units"])) for lv in units.index},
        "asked": None if report.asked_by_level is None else dict(zip(report.asked_by_level["level"],
                                                                     report.asked_by_level["not_asked"], strict=True)),
        "uncounted": dict(zip(report.uncounted["document_code"], report.uncounted["reason"], strict=True)),
        "succession": sorted(report.succession["register_id"]),
    }


def checked(reports: dict[str, Path], out: Path, d: str, c: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every report passes ``coverage check``; the CSV regenerated with the same D and C is byte-identical."""
    for fmt, path in reports.items():
        status = cli("coverage", "check", str(path))
        said = capsys.readouterr().out
        assert status == 0 and "matches" in said, (fmt, said)
    again = out / f"again-{time.monotonic_ns()}.csv"
    assert cli("coverage", "--as-of", d, "--cutoff", c, "--out", str(again)) == 0
    capsys.readouterr()
    assert again.read_bytes() == reports["csv"].read_bytes()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reports_d_c_never_change_and_d_now_shows_exactly_the_changes(
        backend: str, tmp_path: Path, s3_server: str, ca: LocalCa, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from imagegen import render_page, save

    from digitize.catalog import Catalog
    from digitize.catalog.store import DocumentSpec, FileSpec
    from digitize.checksums import sha256_file
    from digitize.config import load_settings
    from digitize.coverage import CoverageInputs, load_plan
    from digitize.intake.manifest import read_manifest
    from digitize.pipeline import PipelineContext, process_documents, register_batch
    from digitize.pipeline.stages import process_document
    from digitize.preservation.lta import RenewalOptions, due_for_renewal, renew

    url = fresh_database_url(backend, tmp_path)
    bucket = f"frozen-{backend}"
    for key, value in {"DIGITIZE_CATALOG_URL": url, "DIGITIZE_S3_ENDPOINT_URL": s3_server,
                       "DIGITIZE_S3_BUCKET": bucket}.items():
        monkeypatch.setenv(key, value)
    settings = dataclasses.replace(load_settings(), signing_pkcs12=ca.pkcs12, signing_passphrase=ca.passphrase.decode(),
                                   trust_roots=(ca.root,), signing_level="B-LTA", tsa_url=ca.tsa_url,
                                   signing_stamp=False, ocr_jobs=1, quiet_seconds=0)
    ctx = PipelineContext(settings)
    ctx.catalog.upgrade()
    ctx.archive.ensure_bucket()
    assert cli("agencies", "import", str(SAMPLES / "agencies.csv")) == 0
    assert cli("register", "import", str(SAMPLES / "register.csv")) == 0
    batch = tmp_path / "inbox" / "batch-frozen"
    batch.mkdir(parents=True)
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "agency_code", "kind", "title", "issued_date", "register_id"])
        for i, (name, agency, title, register_id) in enumerate(DOCUMENTS):
            save(render_page(("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", title, f"Số {i + 1}/2024")), batch / name)
            writer.writerow([name, agency, "KQ", title, f"2023-0{i + 1}-15", register_id])
    registered = register_batch(ctx.catalog, read_manifest(batch))
    assert [o.status for o in process_documents(ctx, registered.to_process, batch)] == ["ARCHIVED"] * 3
    docs = {d.register_id: d for d in ctx.catalog.documents(status="ARCHIVED")}

    day, cutoff = business_today(), utc_now()
    d, c = day.isoformat(), cutoff.isoformat()
    out = tmp_path / "reports"
    out.mkdir()
    reports = {fmt: out / f"coverage.{fmt}" for fmt in ("csv", "xlsx", "html")}
    for path in reports.values():
        assert cli("coverage", "--as-of", d, "--cutoff", c, "--out", str(path)) == 0
    capsys.readouterr()
    plan = load_plan(settings.plan_path)
    frozen = figures(CoverageInputs.from_catalog(ctx.catalog, cutoff).report(plan, day))
    assert frozen["uncounted"] == {docs["REG-0010"].code: "AGENCY_NOT_VALID"}  # its district is abolished
    assert frozen["asked"] is None and frozen["succession"] == []
    time.sleep(0.01)

    # 1. a correction with a new scan of REG-0001's result
    first = docs["REG-0001"]
    fix = tmp_path / "inbox" / "correction"
    fix.mkdir()
    scan = save(render_page(("PHIẾU LÝ LỊCH TƯ PHÁP", "Bản đính chính", "Số 1/2024")), fix / "dinh-chinh.png")
    spec = DocumentSpec(batch_id="correction", files=(FileSpec(0, scan.name, sha256_file(scan), scan.stat().st_size),),
                        agency_code=first.agency_code, kind=first.kind, title=first.title + " (đính chính)",
                        issued_date=first.issued_date, register_id=first.register_id)
    correction, _ = ctx.catalog.supersede(first.id, spec, actor="cán bộ lưu trữ", reason="sai tiêu đề")
    assert process_document(PipelineContext(settings), correction.id, fix).status == "ARCHIVED"
    # 2. the LTA renewal of REG-0002's result (B-LTA)
    due = [r for r in due_for_renewal(ctx.catalog, ctx.archive, within_days=400)
           if r.document_id == docs["REG-0002"].id]
    assert due, "the B-LTA document is due within 400 days (the local TSA's certificate lasts a year)"
    renew(ctx.catalog, ctx.archive, due[0].document_id,
          RenewalOptions(tsa_url=ca.tsa_url, trust_roots=(ca.root,), within_days=400))
    # 3. an edited register (REG-0004 expired) and agency table (the Department of Justice gets a one-stop unit)
    assert cli("register", "import", str(edited_copy(SAMPLES / "register.csv", tmp_path / "register.csv",
                                                     "register_id", "REG-0004", "valid_until", "2024-06-30"))) == 0
    assert cli("agencies", "import", str(edited_copy(SAMPLES / "agencies.csv", tmp_path / "agencies.csv",
                                                     "code", P12, "one_stop", "true"))) == 0
    # 4. the abolished district split between its two communes from 1 July 2025
    (tmp_path / "successors.csv").write_text("predecessor_code,successor_code,effective_date\n"
                                             f"{D31},{C1},2025-07-01\n{D31},{C2},2025-07-01\n", encoding="utf-8")
    assert cli("successors", "import", str(tmp_path / "successors.csv")) == 0
    # 5. the one-stop system's log: a new dossier whose paper was reused from the archive
    (tmp_path / "reuse.csv").write_text(
        "new_dossier_code,outcome,document,at\n"
        f"{P12}-{day:%y%m%d}-0042,reused,{docs['REG-0002'].code},{utc_now().isoformat()}\n", encoding="utf-8")
    assert cli("reuse", "import", str(tmp_path / "reuse.csv")) == 0
    capsys.readouterr()

    checked(reports, out, d, c, capsys)
    now = figures(CoverageInputs.from_catalog(ctx.catalog, utc_now()).report(plan, day))
    expected = {
        **frozen,
        "stock": {**frozen["stock"],
                  "province": (frozen["stock"]["province"][0], frozen["stock"]["province"][1] - 1),  # REG-0004
                  "commune": (frozen["stock"]["commune"][0] + 1, frozen["stock"]["commune"][1] + 3)},  # D31's rows
        "units": {**frozen["units"], "province": (frozen["units"]["province"][0],
                                                  frozen["units"]["province"][1] + 1)},
        "asked": {"province": 1, "district": 0, "commune": 0, "all": 1},  # the dossier of the province's office
        "uncounted": {},
        "succession": ["REG-0009", "REG-0010", "REG-0012"],  # D31's still-valid rows, now at the communes
    }
    assert now == expected

    # 6. the catalog rebuilt from the archive alone: same reports (D, C), same report (D, now)
    rebuilt_url = fresh_database_url(backend, tmp_path / "rebuilt")
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", rebuilt_url)
    assert cli("catalog", "rebuild") == 0
    capsys.readouterr()
    checked(reports, out, d, c, capsys)
    rebuilt = Catalog(rebuilt_url)
    assert figures(CoverageInputs.from_catalog(rebuilt, utc_now()).report(plan, day)) == expected
    assert pd.read_csv(reports["csv"], dtype=str).query("indicator == 'provenance'").set_index("scope").loc[
        "cutoff", "basis"] == c
    # a figure edited by hand is caught, with the line that differs
    tampered = out / "tampered.csv"
    lines = reports["csv"].read_text(encoding="utf-8-sig").splitlines(keepends=True)
    stock = next(i for i, line in enumerate(lines) if line.startswith(f"{plan.id},{d},stock,level,province,"))
    cells = lines[stock].split(",")
    cells[7] = str(int(cells[7]) + 1)  # the numerator
    lines[stock] = ",".join(cells)
    tampered.write_text("".join(lines), encoding="utf-8-sig")
    assert cli("coverage", "check", str(tampered)) == 1
    said = capsys.readouterr().out
    assert "DIFFERS" in said and f"line {stock + 1}" in said
