"""The sample batch through the real ``digitize_inbox`` DAG (``dag.test()``), every stage real.

Real Tesseract, real pyHanko signatures checked by poppler's ``pdfsig``, a real
S3 endpoint over HTTP on loopback, a real SQLite catalog. The batch holds a
deliberately truncated JPEG, which must be quarantined while the rest is archived.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pdfsig import pdfsig_check

from digitize.clock import business_today

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"

pytestmark = pytest.mark.slow
S3_SECRET = "e2e-S3-secret-7c1f0d"  # moto accepts any credentials; this one must never show up anywhere


@contextlib.contextmanager
def _captured_output(path: Path) -> Iterator[None]:
    """Everything the tasks print or log also goes to ``path``: file descriptors 1 and 2 (child
    processes, C libraries), ``sys.stdout``/``sys.stderr`` (whatever test capture put there) and the
    root logger."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as sink, open(path, "a", encoding="utf-8", buffering=1) as text_sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        handler = logging.StreamHandler(text_sink)
        logging.getLogger().addHandler(handler)
        try:
            with contextlib.redirect_stdout(text_sink), contextlib.redirect_stderr(text_sink):
                yield
        finally:
            logging.getLogger().removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _snapshot(catalog: Any, archive: Any) -> dict[str, Any]:
    docs = catalog.documents()
    return {
        "documents": sorted((d.fingerprint, d.status, d.code) for d in docs),
        "keys": sorted(archive.list_keys("")),
    }


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any, airflow_db: Path
        ) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.archive.s3 import S3Archive
    from digitize.catalog.store import Catalog
    from digitize.config import load_settings

    root = tmp_path_factory.mktemp("e2e")
    env = {
        "DIGITIZE_CATALOG_URL": f"sqlite:///{root / 'catalog.db'}",
        "DIGITIZE_S3_ENDPOINT_URL": s3_server,
        "DIGITIZE_S3_BUCKET": "e2e-archive",
        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert),
        "DIGITIZE_QUIET_SECONDS": "0",
        "DIGITIZE_OCR_JOBS": "2",
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AIRFLOW_CONN_DIGITIZE_S3": json.dumps({
            "conn_type": "aws", "login": "testing", "password": S3_SECRET,
            "extra": {"endpoint_url": s3_server, "region_name": "us-east-1",
                      "config_kwargs": {"s3": {"addressing_style": "path"}}}}),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = load_settings()
        catalog = Catalog(settings.catalog_url)
        catalog.upgrade()
        catalog.import_agencies(SAMPLES / "agencies.csv")
        catalog.import_register(SAMPLES / "register.csv")
        archive = S3Archive.from_settings(settings)
        inbox = root / "inbox"
        batch = inbox / "batch-e2e"
        shutil.copytree(SAMPLES / "batch", batch)
        (batch / "_READY").touch()
        originals_before = {p.name: p.read_bytes() for p in batch.iterdir()}

        dag = DagBag(dag_folder=str(REPO / "dags")).dags["digitize_inbox"]
        log = root / "task-output.log"
        with _captured_output(log):
            first = dag.test(run_conf={"inbox": str(inbox)})
            after_first = _snapshot(catalog, archive)
            second = dag.test(run_conf={"inbox": str(inbox)})
            after_second = _snapshot(catalog, archive)
        yield {"catalog": catalog, "archive": archive, "settings": settings, "batch": batch, "root": root,
               "first": first, "second": second, "after_first": after_first, "after_second": after_second,
               "originals_before": originals_before, "pki": demo_pki, "log": log}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _archived(e2e: dict[str, Any]) -> list[Any]:
    return [d for d in e2e["catalog"].documents() if d.status == "ARCHIVED"]


def test_runs_succeed_and_every_document_is_archived_or_quarantined(e2e: dict[str, Any]) -> None:
    assert e2e["first"].state == "success"
    assert e2e["second"].state == "success"
    docs = e2e["catalog"].documents()
    assert len(docs) == 6
    assert {d.status for d in docs} <= {"ARCHIVED", "QUARANTINED"}
    quarantined = [d for d in docs if d.status == "QUARANTINED"]
    assert [(d.files[0].name, d.reason) for d in quarantined] == [("bi-hong.jpg", "CORRUPT_FILE")]
    assert "rescan" in quarantined[0].message.lower() or "copy" in quarantined[0].message.lower()
    assert len(_archived(e2e)) == 5


def test_originals_stay_untouched_in_the_inbox(e2e: dict[str, Any]) -> None:
    now = {p.name: p.read_bytes() for p in e2e["batch"].iterdir()}
    assert now == e2e["originals_before"]


def test_codes_follow_the_default_template(e2e: dict[str, Any]) -> None:
    from digitize.codes.formats import parse_document_code

    year = business_today().year  # the codes' year is Vietnam's
    codes = sorted(d.code for d in _archived(e2e))
    assert len(set(codes)) == 5
    for code in codes:
        parsed = parse_document_code(code)
        assert str(parsed.year) == str(year)
    land = next(d for d in _archived(e2e) if d.register_id == "REG-0010")
    assert land.code == f"000.00.31.H99.{year}.KQ.000001"


def test_archived_objects_match_the_catalog_checksums(e2e: dict[str, Any]) -> None:
    archive = e2e["archive"]
    for doc in _archived(e2e):
        assert hashlib.sha256(archive.get(doc.pdf_key)).hexdigest() == doc.pdf_sha256
        sidecar_bytes = archive.get(doc.sidecar_key)
        assert hashlib.sha256(sidecar_bytes).hexdigest() == doc.sidecar_sha256
        sidecar = json.loads(sidecar_bytes)
        assert sidecar["code"] == doc.code
        originals = [f for f in sidecar["files"] if f["role"] == "original"]
        assert [f["sha256"] for f in originals] == [f.sha256 for f in doc.files]
        for entry in sidecar["files"]:
            assert hashlib.sha256(archive.get(entry["key"])).hexdigest() == entry["sha256"]
        assert doc.code in doc.pdf_key


def test_signed_pdfs_verify_with_pdfsig_and_pyhanko(e2e: dict[str, Any], tmp_path: Path) -> None:
    from digitize.signing import verify_pdf

    for doc in _archived(e2e):
        data = e2e["archive"].get(doc.pdf_key)
        verdict = verify_pdf(data, [e2e["pki"].root_cert])
        assert verdict.valid, verdict.summary
        pdf = tmp_path / f"{doc.code}.pdf"
        pdf.write_bytes(data)
        report = pdfsig_check(pdf, e2e["pki"].root_cert, tmp_path / "nss")
        assert report.signatures and all(s.valid and s.trusted for s in report.signatures), report.raw


def test_text_layer_holds_vietnamese_with_diacritics(e2e: dict[str, Any], tmp_path: Path) -> None:
    expected = {
        "REG-0001": ["LÝ LỊCH TƯ PHÁP", "Quốc tịch", "Việt Nam"],
        "REG-0010": ["QUYỀN SỬ DỤNG ĐẤT", "Diện tích"],  # scanned upside down
        "REG-0017": ["GIẤY CHỨNG NHẬN KẾT HÔN", "Số định danh cá nhân"],  # bilevel G4 TIFF, 200 dpi
    }
    for doc in _archived(e2e):
        if doc.register_id not in expected:
            continue
        pdf = tmp_path / "doc.pdf"
        pdf.write_bytes(e2e["archive"].get(doc.pdf_key))
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        collapsed = " ".join(text.split())
        for phrase in expected[doc.register_id]:
            assert phrase in collapsed, f"{phrase!r} not in text of {doc.code}: {collapsed[:300]}"


def test_pdf_metadata_carries_the_code(e2e: dict[str, Any]) -> None:
    import io

    import pikepdf

    doc = _archived(e2e)[0]
    with pikepdf.open(io.BytesIO(e2e["archive"].get(doc.pdf_key))) as pdf, pdf.open_metadata() as meta:
        assert meta.get("pdfaid:part") == "2"
        assert doc.code in str(meta.get("dc:identifier", "")) + str(pdf.docinfo.get("/Subject", ""))


def test_every_action_is_an_event_with_tool_and_version(e2e: dict[str, Any]) -> None:
    catalog = e2e["catalog"]
    for doc in _archived(e2e):
        events = catalog.events(doc.id)
        types = [e.event_type for e in events]
        for required in ("ingestion", "ocr", "identifier_assignment", "signature", "signature_validation",
                         "replication", "ingestion_complete", "indexing"):
            assert required in types, (doc.code, types)
        assert all(e.tool and e.tool_version for e in events)


def test_coverage_matches_hand_computed_figures(e2e: dict[str, Any]) -> None:
    from digitize import coverage

    catalog = e2e["catalog"]
    plan = coverage.load_plan(e2e["settings"].plan_path)
    # Pinned: the figures below hold on AS_OF (REG-0005 expires 2030-10-01), whatever day the test runs; the
    # documents this run archived count from a fixed day before it.
    as_of = date(2026, 12, 31)
    archived = catalog.archived_frame().assign(archived_at=pd.Timestamp("2026-12-01", tz="UTC"))
    report = coverage.compute_coverage(catalog.agencies_frame(), catalog.register_frame(), archived, plan, as_of)
    by_level = report.by_level.set_index("level")
    # Province (Sở Tư pháp): REG-0001..0008 minus the expired REG-0007 and REG-0008 → 6 valid; REG-0001 and
    # REG-0002 digitized. Communes: REG-0015..0024 minus the expired 0018, 0020, 0023 → 7 valid; REG-0017
    # digitized. The district (abolished 2025-06-30) holds nothing valid on AS_OF.
    assert (by_level.loc["province", "digitized"], by_level.loc["province", "valid"]) == (2, 6)
    assert (by_level.loc["commune", "digitized"], by_level.loc["commune", "valid"]) == (1, 7)
    assert "district" not in by_level.index or by_level.loc["district", "valid"] == 0
    assert round(float(by_level.loc["province", "coverage_pct"]), 1) == 33.3


def test_second_run_adds_no_document_object_or_code(e2e: dict[str, Any]) -> None:
    assert e2e["after_second"] == e2e["after_first"]
    assert len(e2e["after_first"]["keys"]) == 5 * 2 + 6  # pdf + sidecar per document, 6 original files


def test_coverage_report_dag_publishes_the_reports(e2e: dict[str, Any]) -> None:
    import csv
    import io

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["coverage_report"]
    today = business_today().isoformat()  # Vietnam's day: from 17:00 UTC it is tomorrow there
    run = dag.test(run_conf={"as_of": today})
    assert run.state == "success"
    keys = [k for k in e2e["archive"].list_keys("reports/coverage/") if f"/{today}/" in k]
    assert {k.rsplit(".", 1)[1] for k in keys} == {"html", "xlsx", "csv"}
    rows = list(csv.DictReader(io.StringIO(e2e["archive"].get(next(k for k in keys if k.endswith(".csv"))).decode())))
    province = next(r for r in rows if r["indicator"] == "stock" and r["scope"] == "level" and r["level"] == "province")
    from digitize import coverage  # the published figures are the library's for that day (2/6 until 2030-10-01)

    catalog = e2e["catalog"]
    report = coverage.compute_coverage(catalog.agencies_frame(), catalog.register_frame(), catalog.archived_frame(),
                                       coverage.load_plan(e2e["settings"].plan_path), date.fromisoformat(today))
    expected = report.by_level.set_index("level").loc["province"]
    assert (province["numerator"], province["denominator"]) == (str(expected["digitized"]), str(expected["valid"]))
    assert int(province["numerator"]) > 0
    html = e2e["archive"].get(next(k for k in keys if k.endswith(".html"))).decode()
    assert "http://" not in html and "https://" not in html


def test_published_reports_prove_themselves(e2e: dict[str, Any], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The DAG's history files record D and C (C names their folder) and pass ``coverage check``."""
    from digitize.clock import business_today
    from digitize.coverage import read_provenance
    from digitize.presentation.cli import main
    from digitize.presentation.reports import publish_coverage

    day = business_today()
    published = publish_coverage(e2e["catalog"], e2e["archive"], coverage_plan(e2e), day)
    for fmt, key in published.keys.items():
        path = tmp_path / f"published.{fmt}"
        path.write_bytes(e2e["archive"].get(key))
        recorded = read_provenance(path)
        assert recorded["as_of"] == day.isoformat() and key.split("/")[3] == day.isoformat()
        cutoff = datetime.fromisoformat(recorded["cutoff"])
        assert key.split("/")[4] == f"{cutoff:%Y%m%dT%H%M%S%fZ}"
        assert main(["coverage", "check", str(path)]) == 0, capsys.readouterr().out
        assert "matches" in capsys.readouterr().out


def coverage_plan(e2e: dict[str, Any]) -> Any:
    from digitize import coverage

    return coverage.load_plan(e2e["settings"].plan_path)


def test_secrets_and_personal_data_stay_out_of_logs_xcom_and_events(e2e: dict[str, Any]) -> None:
    """Signing passphrase and S3 secret nowhere; citizens' IDs and OCR text not in task logs or XCom."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    log = e2e["log"].read_text(encoding="utf-8", errors="replace")
    assert "document 1: ARCHIVED" in log  # the capture works
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == "digitize_inbox")
        xcoms = " ".join(str(row.value) for row in rows)
    assert "ARCHIVED" in xcoms
    catalog = e2e["catalog"]
    events = " ".join(e.detail for d in catalog.documents() for e in catalog.events(d.id))
    sidecars = " ".join(e2e["archive"].get(d.sidecar_key).decode() for d in _archived(e2e))
    for secret in (e2e["pki"].passphrase, S3_SECRET):
        for name, text in (("task log", log), ("XCom", xcoms), ("events", events), ("sidecars", sidecars)):
            assert secret not in text, f"a secret leaked into the {name}"
    for personal in ("079123004567", "Nguyễn Thị Hồng Nhung", "Phạm Văn Đức"):
        assert personal not in log, "personal data in the task log"
        assert personal not in xcoms, "personal data in XCom"


def test_archived_text_is_searchable_with_or_without_diacritics(e2e: dict[str, Any]) -> None:
    from digitize import search

    land = next(d for d in _archived(e2e) if d.register_id == "REG-0010")
    for query in ("quyền sử dụng đất", "quyen su dung dat", '"Diện tích"'):
        hits = search.search(e2e["catalog"], query).hits
        assert hits and hits[0].code == land.code, query
        assert hits[0].page == 1


def test_cli_drill_down_lists_the_register_rows_behind_a_figure(e2e: dict[str, Any],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from digitize.presentation.cli import main

    assert main(["coverage", "--drill-down", "numerator", "--level", "province"]) == 0
    out = capsys.readouterr().out
    assert "REG-0001" in out and "REG-0002" in out and "REG-0003" not in out
    assert main(["coverage", "--drill-down", "missing", "--level", "commune"]) == 0
    missing = capsys.readouterr().out
    assert "REG-0015" in missing and "REG-0017" not in missing and "REG-0018" not in missing  # 0018 expired
