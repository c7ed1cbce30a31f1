"""Security: secrets never leak, keys come only from validated codes, personal data stays out of logs,
archived objects can be encrypted at rest, and every look-up of a document is logged (Decree 13/2023).

tests/test_end_to_end.py already scans Airflow task logs, XCom, events and sidecars; this module adds
exceptions, quarantine messages, CLI output and coverage reports.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from robustness_support import NOOP_OCR, S3_SECRET, make_context, png, record, register, row, write_batch

GROUP = "security"
CATALOG_PASSWORD = "catalog-Pa55-9d2e"  # never a real password; must not show anywhere
HOLDER_ID = "079123004567"
CITIZEN = "Nguyễn Thị Hồng Nhung"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> dict[str, Any]:
    """A batch (one good page naming a citizen, one broken file) through the pipeline with SSE on and
    S3 credentials holding a test secret; everything it writes or logs is collected."""
    from digitize.archive.s3 import ArchiveOptions, S3Archive, make_s3_client
    from digitize.pipeline.stages import process_documents

    root = tmp_path_factory.mktemp("secure")
    client = make_s3_client(s3_server, credentials=("testing", S3_SECRET))
    archive = S3Archive(client, "secure-archive", ArchiveOptions(server_side_encryption="AES256"))
    ctx = make_context(root, s3_server, demo_pki, "secure-archive", archive=archive)
    files = {"giay.png": png(("GIẤY XÁC NHẬN", f"Họ tên: {CITIZEN}", f"Số CCCD: {HOLDER_ID}"), width_in=4.5),
             "hong.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 20}
    rows = [row("giay.png", holder_id=HOLDER_ID), row("hong.png", title="Tệp hỏng", holder_id="079222001234")]
    batch = write_batch(root / "inbox", "batch-secure", files, rows)
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        outcomes = process_documents(ctx, register(ctx, batch).to_process, batch)  # real Tesseract
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(previous)
    return {"ctx": ctx, "outcomes": outcomes, "log": "\n".join(handler.lines), "root": root, "pki": demo_pki}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, entry: logging.LogRecord) -> None:
        self.lines.append(self.format(entry))


def _secrets(secure: dict[str, Any]) -> tuple[str, ...]:
    return (secure["pki"].passphrase, S3_SECRET, CATALOG_PASSWORD)


def _assert_clean(secure: dict[str, Any], where: str, text: str) -> None:
    for secret in _secrets(secure):
        assert secret not in text, f"a secret leaked into {where}"


def test_outcomes_logs_and_quarantine_messages_hold_no_secret_and_no_personal_data(secure: dict[str, Any]) -> None:
    ctx = secure["ctx"]
    assert [o.status for o in secure["outcomes"]] == ["ARCHIVED", "QUARANTINED"]
    xcom_like = repr([o.as_dict() for o in secure["outcomes"]])
    quarantined = ctx.catalog.documents(status="QUARANTINED")
    messages = " ".join(f"{d.reason} {d.message}" for d in quarantined)
    events = " ".join(e.detail for d in ctx.catalog.documents() for e in ctx.catalog.events(d.id))
    sidecars = " ".join(ctx.archive.get(d.sidecar_key).decode() for d in ctx.catalog.documents(status="ARCHIVED"))
    for where, text in (("the outcomes (XCom)", xcom_like), ("the log", secure["log"]),
                        ("quarantine messages", messages), ("events", events), ("sidecars", sidecars),
                        ("repr of context objects", repr(ctx.archive) + repr(ctx.catalog) + repr(ctx.settings))):
        _assert_clean(secure, where, text)
    for personal in (HOLDER_ID, "079222001234", CITIZEN, "Nhung"):
        assert personal not in xcom_like, "personal data in the outcomes that travel through XCom"
        assert personal not in secure["log"], "personal data in the log"
    record(GROUP, "secrets scanned in outcomes, logs, quarantine messages, events, sidecars, reprs", "CLEAN")
    record(GROUP, "citizen name, ID number and OCR text kept out of logs and XCom-bound outcomes", "CLEAN")


def test_exceptions_hold_no_secret(secure: dict[str, Any], tmp_path: Path) -> None:
    import dataclasses

    from digitize.archive.s3 import S3Archive, make_s3_client
    from digitize.catalog.store import Catalog
    from digitize.errors import DigitizeError
    from digitize.signing.signer import AgencySigner, options_from_settings

    ctx = secure["ctx"]
    texts = []
    wrong = dataclasses.replace(ctx.settings, signing_passphrase=CATALOG_PASSWORD)
    with pytest.raises(DigitizeError) as bad_pass:
        AgencySigner.from_options(options_from_settings(wrong))
    texts.append(str(bad_pass.value) + bad_pass.value.hint + repr(options_from_settings(wrong)))
    catalog = Catalog(f"postgresql://digitize:{CATALOG_PASSWORD}@127.0.0.1:9/catalog")
    with pytest.raises(DigitizeError) as down:
        catalog.get_document(1)
    texts.append(str(down.value) + repr(catalog) + repr(down.value.__cause__ or ""))
    from test_archive import _free_port

    dead = S3Archive(make_s3_client(f"http://127.0.0.1:{_free_port()}", credentials=("testing", S3_SECRET),
                                    max_attempts=1, connect_timeout=1), "nowhere")
    with pytest.raises(DigitizeError) as s3_down:
        dead.put("documents/x.pdf", b"%PDF", content_type="application/pdf")
    texts.append(str(s3_down.value) + repr(dead))
    for text in texts:
        _assert_clean(secure, "an exception", text)
    assert "CATALOG_UNAVAILABLE" in texts[1] or "catalog" in texts[1].lower()
    record(GROUP, "wrong PKCS#12 passphrase, unreachable PostgreSQL with password, unreachable S3", "CLEAN",
           f"{bad_pass.value.reason}, {down.value.reason}, {s3_down.value.reason}", "no secret in message or repr")


def test_cli_output_and_coverage_reports_hold_no_secret(secure: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from digitize import coverage
    from digitize.presentation.cli import main

    ctx = secure["ctx"]
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", ctx.settings.catalog_url)
    monkeypatch.setenv("DIGITIZE_SIGNING_PASSPHRASE", secure["pki"].passphrase)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    code = ctx.catalog.documents(status="ARCHIVED")[0].code
    assert main(["show", code]) == 0
    assert main(["quarantine", "list"]) == 0
    out = capsys.readouterr()
    _assert_clean(secure, "CLI output", out.out + out.err)
    ctx.catalog.import_register(Path(__file__).resolve().parent.parent / "samples" / "register.csv")
    plan = coverage.load_plan(ctx.settings.plan_path)
    from digitize.clock import business_today

    report = coverage.compute_coverage(ctx.catalog.agencies_frame(), ctx.catalog.register_frame(),
                                       ctx.catalog.archived_frame(), plan, business_today())
    csv_path = tmp_path / "coverage.csv"
    coverage.write_csv(report, csv_path)
    text = coverage.render_table(report) + csv_path.read_text(encoding="utf-8")
    writer = getattr(coverage, "write_html", None)
    if writer is not None:
        writer(report, tmp_path / "coverage.html")
        text += (tmp_path / "coverage.html").read_text(encoding="utf-8")
    _assert_clean(secure, "a coverage report", text)
    record(GROUP, "CLI show / quarantine list output and coverage reports (table, CSV, HTML)", "CLEAN")


def test_object_keys_come_only_from_validated_codes(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.codes.formats import validate_template
    from digitize.pipeline.stages import process_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "keys-from-codes")
    tricky = "hồ sơ/tên tệp $(rm -rf) ;&|.png"  # a '..' in file is refused by the manifest (test_bad_input)
    batch = write_batch(tmp_path / "inbox", "batch-keys", {tricky: png()},
                        [row(tricky, title="../../../../tmp/x", document_id="..")])
    outcome = process_document(ctx, register(ctx, batch).to_process[0], batch)
    assert outcome.status == "ARCHIVED"
    keys = list(ctx.archive.list_keys(""))
    code = re.escape(outcome.code or "")
    layout = re.compile(rf"^documents/\d{{3}}\.\d{{2}}\.\d{{2}}\.[A-Z]\d{{2}}/\d{{4}}/{code}/v1/"
                        rf"({code}\.(pdf|json)|originals/\d{{2}}\.(png|jpg|tif|pdf))$")
    assert len(keys) == 3 and all(layout.match(k) for k in keys), keys
    assert not (tmp_path / "tmp" / "x").exists()
    import dataclasses

    from digitize.errors import ConfigurationError
    from digitize.pipeline.stages import PipelineContext

    batch2 = write_batch(tmp_path / "inbox", "batch-template", {"b.png": png(("Khác",))}, [row("b.png")])
    doc_id = register(ctx, batch2).to_process[0]
    for template in ("{agency}/../{year}.{kind}.{seq:06d}", "{agency}.{year}.{kind}.{seq:06d}/.."):
        validate_template(template)  # the template's own syntax is fine...
        bad = PipelineContext(dataclasses.replace(ctx.settings, code_template=template), archive=ctx.archive)
        with pytest.raises(ConfigurationError, match="unfit for archive keys"):
            process_document(bad, doc_id, batch2)  # ...but its codes would leave the key layout: the run stops
        assert ctx.catalog.get_document(doc_id).code is None
    record(GROUP, "manifest title/document_id with '../', file name with shell characters", "ARCHIVED", None,
           "keys are documents/<agency>/<year>/<code>/v1/…, originals/NN.<sniffed type>")


def test_server_side_encryption_end_to_end(secure: dict[str, Any]) -> None:
    ctx = secure["ctx"]
    client = ctx.archive.client
    doc = ctx.catalog.documents(status="ARCHIVED")[0]
    for key in (doc.pdf_key, doc.sidecar_key, *doc.original_keys):
        head = client.head_object(Bucket=ctx.archive.bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
    record(GROUP, "DIGITIZE_S3_SSE=AES256: signed PDF, sidecar and originals", "ENCRYPTED",
           None, "x-amz-server-side-encryption on every object")


def test_sse_setting_reaches_the_pipeline_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.config import load_settings
    from digitize.pipeline.stages import PipelineContext

    monkeypatch.setenv("DIGITIZE_S3_SSE", "aws:kms")
    monkeypatch.setenv("DIGITIZE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    assert PipelineContext(load_settings()).archive.options.server_side_encryption == "aws:kms"


def test_show_and_verify_write_access_events(secure: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from digitize.presentation.cli import main

    ctx = secure["ctx"]
    doc = ctx.catalog.documents(status="ARCHIVED")[0]
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", ctx.settings.catalog_url)
    monkeypatch.setenv("DIGITIZE_S3_ENDPOINT_URL", ctx.settings.s3_endpoint_url or "")
    monkeypatch.setenv("DIGITIZE_S3_BUCKET", ctx.archive.bucket)
    monkeypatch.setenv("DIGITIZE_TRUST_ROOTS", str(secure["pki"].root_cert))
    monkeypatch.setenv("DIGITIZE_ACTOR", "auditor.tran@so-tu-phap")
    before = len([e for e in ctx.catalog.events(doc.id) if e.event_type == "access"])
    assert main(["show", doc.code]) == 0
    assert main(["verify", doc.code]) == 0
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(ctx.archive.get(doc.pdf_key))
    assert main(["verify", str(copy)]) == 0
    capsys.readouterr()
    access = [e for e in ctx.catalog.events(doc.id) if e.event_type == "access"][before:]
    assert [e.detail.split(" by ")[0] for e in access] == [
        "show (metadata and events)", "verify (download of the archived PDF)",
        "verify (a local copy of the signed PDF)"]
    assert all("auditor.tran@so-tu-phap" in e.detail and e.created_at for e in access)
    record(GROUP, "`show` and `verify` (by code and by local file)", "LOGGED", None,
           "event 'access': action, who (DIGITIZE_ACTOR or user@host), when")


def test_holder_ids_in_drill_downs_and_the_xlsx_detail_are_masked_unless_asked_and_recorded(
        secure: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """Decree 13/2023: full holder IDs only on request (--show-holder-ids), and then the access is recorded."""
    import csv

    import openpyxl
    import sqlalchemy as sa

    from digitize.catalog import reuse
    from digitize.presentation.cli import main

    ctx = secure["ctx"]
    register_csv = Path(__file__).resolve().parent.parent / "samples" / "register.csv"
    ctx.catalog.import_register(register_csv)
    with register_csv.open(encoding="utf-8") as handle:
        ids = {r["holder_id"] for r in csv.DictReader(handle) if r["holder_id"]}
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", ctx.settings.catalog_url)
    monkeypatch.setenv("DIGITIZE_ACTOR", "auditor.tran@so-tu-phap")

    def access_rows() -> list[Any]:
        with ctx.catalog.read() as conn:
            return list(conn.execute(sa.select(reuse.access_log).order_by(reuse.access_log.c.id)))

    def detail_sheet(path: Path) -> str:
        sheet = openpyxl.load_workbook(path)["Chi tiết"]
        return "\n".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row)

    before = len(access_rows())
    xlsx = tmp_path / "coverage.xlsx"
    assert main(["coverage", "--drill-down", "denominator"]) == 0
    drilled = capsys.readouterr().out
    assert main(["coverage", "--format", "xlsx", "--out", str(xlsx)]) == 0
    sheet = detail_sheet(xlsx)
    assert not any(i in drilled + sheet for i in ids)
    assert len(access_rows()) == before  # nothing shown, nothing to record

    assert main(["coverage", "--drill-down", "denominator", "--show-holder-ids"]) == 0
    full = capsys.readouterr().out
    in_drill_down = {i for i in ids if i in full}
    assert main(["coverage", "--format", "xlsx", "--out", str(xlsx), "--show-holder-ids"]) == 0
    in_sheet = {i for i in ids if i in detail_sheet(xlsx)}
    assert in_drill_down and in_sheet
    for shown, text in ((in_drill_down, drilled), (in_sheet, sheet)):
        assert not any(i in text for i in ids)
        assert all(f"{i[:4]}••••{i[-4:]}" in text for i in shown)
    rows = access_rows()[before:]
    assert [(r.client, r.method, r.action, r.status) for r in rows] == [
        ("auditor.tran@so-tu-phap", "CLI", "coverage_drill_down", 200),
        ("auditor.tran@so-tu-phap", "CLI", "coverage_xlsx", 200)]
    assert all(i in rows[0].detail for i in in_drill_down) and all(i in rows[1].detail for i in in_sheet)
    assert "--show-holder-ids" in rows[0].path
    record(GROUP, "holder IDs in the CLI drill-down and the XLSX detail sheet", "MASKED", None,
           "full IDs only with --show-holder-ids, recorded in access_log (who, when, which IDs)")
