"""Fixity audit: a real archive made by the real pipeline, then one archived object and one catalog row tampered.

The audit must flag exactly those two document versions, say which view disagrees, record one event
per check, and treat an unreachable archive as retryable rather than as a failed check. The
``fixity_audit`` DAG is run with ``dag.test()`` and must write its report to the archive.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"

# (file, agency, kind, title, register_id); small synthetic pages at 200 dpi keep OCR to a second or two.
DOCUMENTS = (
    ("giay-a.png", "000.00.12.H99", "KQ", "Phiếu lý lịch tư pháp số 1", "REG-0001"),
    ("giay-b.png", "000.00.12.H99", "KQ", "Trích lục khai sinh", "REG-0002"),
    ("giay-c.png", "000.00.31.H99", "KQ", "Giấy chứng nhận quyền sử dụng đất", "REG-0010"),
)


@dataclasses.dataclass
class Built:
    """A small archive produced by the real pipeline."""

    settings: Any
    catalog: Any
    archive: Any
    root: Path
    batch: Path
    trust_root: Path


def build_archive(root: Path, endpoint: str, bucket: str, *, pkcs12: Path, passphrase: str, trust_root: Path,
                  documents: tuple[tuple[str, str, str, str, str], ...] = DOCUMENTS, level: str = "B-B",
                  tsa_url: str | None = None, archive_options: Any = None, archive: Any = None) -> Built:
    """Render a tiny batch, register it and run every document through the real pipeline (into ``archive``
    when given, else the S3 bucket)."""
    from imagegen import render_page, save

    from digitize.config import load_settings
    from digitize.intake.manifest import read_manifest
    from digitize.pipeline import PipelineContext, process_documents, register_batch

    batch = root / "inbox" / f"batch-{bucket}"
    batch.mkdir(parents=True)
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "agency_code", "kind", "title", "issued_date", "register_id"])
        for i, (name, agency, kind, title, register_id) in enumerate(documents):
            lines = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", title, f"Số {i + 1}/2024")
            save(render_page(lines), batch / name)
            writer.writerow([name, agency, kind, title, f"2023-0{i + 1}-15", register_id])
    settings = dataclasses.replace(
        load_settings(), catalog_url=f"sqlite:///{root / 'catalog.db'}", s3_endpoint_url=endpoint, s3_bucket=bucket,
        signing_pkcs12=pkcs12, signing_passphrase=passphrase, trust_roots=(trust_root,), signing_level=level,
        tsa_url=tsa_url, signing_stamp=False, ocr_jobs=2, quiet_seconds=0,
    )
    if archive_options is not None:
        from digitize.archive import S3Archive, make_s3_client

        archive = S3Archive(make_s3_client(endpoint), bucket, archive_options)
    ctx = PipelineContext(settings, archive=archive)
    ctx.catalog.upgrade()
    ctx.catalog.import_agencies(SAMPLES / "agencies.csv")
    ctx.catalog.import_register(SAMPLES / "register.csv")
    ctx.archive.ensure_bucket()
    registered = register_batch(ctx.catalog, read_manifest(batch))
    outcomes = process_documents(ctx, registered.to_process, batch)
    assert [o.status for o in outcomes] == ["ARCHIVED"] * len(documents), outcomes
    return Built(settings, ctx.catalog, ctx.archive, root, batch, trust_root)


def s3_env(built: Built) -> dict[str, str]:
    """Environment of a DAG run over ``built`` (settings plus the Airflow S3 connection)."""
    s = built.settings
    return {
        "DIGITIZE_CATALOG_URL": s.catalog_url, "DIGITIZE_S3_ENDPOINT_URL": s.s3_endpoint_url,
        "DIGITIZE_S3_BUCKET": s.s3_bucket, "DIGITIZE_TRUST_ROOTS": str(built.trust_root),
        "AIRFLOW_CONN_DIGITIZE_S3": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": s.s3_endpoint_url, "region_name": "us-east-1",
                      "config_kwargs": {"s3": {"addressing_style": "path"}}}}),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> Built:
    return build_archive(tmp_path_factory.mktemp("fixity"), s3_server, "fixity-archive", pkcs12=demo_pki.pkcs12,
                         passphrase=demo_pki.passphrase, trust_root=demo_pki.root_cert)


def _docs(built: Built) -> list[Any]:
    return sorted(built.catalog.documents(status="ARCHIVED"), key=lambda d: d.code)


def test_untouched_archive_passes_and_every_check_is_an_event(built: Built) -> None:
    from digitize.preservation.fixity import audit

    before = {d.id: len(built.catalog.events(d.id)) for d in _docs(built)}
    report = audit(built.catalog, built.archive, trust_roots=[built.trust_root])
    assert report.ok, report.failures
    assert report.documents == 3
    assert {c.check for c in report.checks} == {"sidecar_checksum", "pdf_checksum", "original_checksum:00",
                                                "signature"}
    for doc in _docs(built):
        new = built.catalog.events(doc.id)[before[doc.id]:]
        assert [e.event_type for e in new] == ["fixity_check"] * 4
        assert {e.outcome for e in new} == {"success"}
        assert {e.tool for e in new} == {"digitize", "pyhanko"} and all(e.tool_version for e in new)


def test_selection_by_code_range_and_sample(built: Built) -> None:
    from digitize.preservation.fixity import select_documents

    docs = _docs(built)
    assert select_documents(built.catalog) == [d.id for d in docs]
    assert select_documents(built.catalog, code_from=docs[1].code, code_to=docs[1].code) == [docs[1].id]
    first = select_documents(built.catalog, sample=2, rng_seed=7)
    assert len(first) == 2 and first == select_documents(built.catalog, sample=2, rng_seed=7)


def test_unreachable_archive_is_retryable_not_a_failed_check(built: Built) -> None:
    import socket

    from digitize.archive import S3Archive, make_s3_client
    from digitize.errors import TransientError
    from digitize.preservation.fixity import audit_documents

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = S3Archive(make_s3_client(f"http://127.0.0.1:{port}", max_attempts=1, connect_timeout=1),
                     built.settings.s3_bucket)
    doc = _docs(built)[0]
    count = len(built.catalog.events(doc.id))
    with pytest.raises(TransientError):
        audit_documents(built.catalog, dead, [doc.id], trust_roots=[built.trust_root])
    assert [e for e in built.catalog.events(doc.id)[count:] if e.outcome == "failure"] == []


def test_tampered_object_and_catalog_row_are_the_only_failures(built: Built) -> None:
    from digitize.preservation.fixity import FixityReport, audit, render_report, report_json

    a, b, _c = _docs(built)
    pdf = bytearray(built.archive.get(a.pdf_key))
    pdf[len(pdf) // 2] ^= 0x01  # one byte inside the signed range
    built.archive.client.put_object(Bucket=built.settings.s3_bucket, Key=a.pdf_key, Body=bytes(pdf))
    with sqlite3.connect(built.settings.catalog_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE documents SET pdf_sha256 = ? WHERE id = ?", ("0" * 64, b.id))

    report = audit(built.catalog, built.archive, trust_roots=[built.trust_root])
    assert report.failed_documents == tuple(sorted([(a.code, 1), (b.code, 1)]))
    failed = {(f.code, f.check): f for f in report.failures}
    assert set(failed) == {(a.code, "pdf_checksum"), (a.code, "signature"), (b.code, "pdf_checksum")}
    assert "archived object was changed" in failed[a.code, "pdf_checksum"].detail
    assert "catalog row was changed" in failed[b.code, "pdf_checksum"].detail
    assert not failed[a.code, "signature"].ok
    failures = [e for e in built.catalog.events(b.id) if e.event_type == "fixity_check" and e.outcome == "failure"]
    assert len(failures) == 1 and "catalog row was changed" in failures[0].detail

    text = render_report(report)
    assert f"FAILED {a.code} v1" in text and f"FAILED {b.code} v1" in text and "3 failed" in text
    again = FixityReport.from_dict(json.loads(report_json(report)))
    assert again.failed_documents == report.failed_documents and len(again.checks) == len(report.checks)


def test_forged_sidecar_is_reported_and_not_believed(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    """A sidecar that no longer hashes to the catalog's value is the one failure: the checksums it claims for
    the PDF and the originals are not used to accuse the objects that still match the catalog."""
    import hashlib

    from digitize.preservation.fixity import audit

    built = build_archive(tmp_path, s3_server, "fixity-forged-sidecar", pkcs12=demo_pki.pkcs12,
                          passphrase=demo_pki.passphrase, trust_root=demo_pki.root_cert, documents=DOCUMENTS[:1])
    doc = _docs(built)[0]
    sidecar = json.loads(built.archive.get(doc.sidecar_key))
    for entry in sidecar["files"]:
        entry["sha256"] = "e" * 64
    forged = json.dumps(sidecar, ensure_ascii=False).encode()
    built.archive.client.put_object(Bucket=built.settings.s3_bucket, Key=doc.sidecar_key, Body=forged,
                                    Metadata={"sha256": hashlib.sha256(forged).hexdigest()})
    report = audit(built.catalog, built.archive, trust_roots=[built.trust_root])
    assert [f.check for f in report.failures] == ["sidecar_checksum"], report.failures
    assert "the sidecar was changed" in report.failures[0].detail


def test_dag_file_is_thin_and_has_the_expected_tasks(airflow_db: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "fixity_audit.py"))
    assert bag.import_errors == {}
    dag = bag.dags["fixity_audit"]
    assert {t.task_id for t in dag.tasks} == {"plan", "audit_chunk", "publish"}
    assert set(dag.params.keys()) >= {"sample", "code_from", "code_to", "chunk_size"}
    assert_thin(REPO / "dags" / "fixity_audit.py")


def assert_thin(dag_file: Path) -> None:
    """Parsing the DAG file must not import the library (imports belong inside the tasks)."""
    import subprocess
    import sys

    code = (f"import runpy, sys; runpy.run_path({str(dag_file)!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'digitize'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


@pytest.fixture
def dag_env(built: Built) -> Iterator[None]:
    values = s3_env(built)
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_dag_run_audits_in_chunks_and_writes_its_report(built: Built, airflow_db: Path, dag_env: None) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.preservation.fixity import audit

    dag = DagBag(dag_folder=str(REPO / "dags" / "fixity_audit.py")).dags["fixity_audit"]
    clean = _docs(built)[2]
    before = set(built.archive.list_keys("reports/fixity/"))
    run = dag.test(run_conf={"chunk_size": 1, "code_from": clean.code})
    assert run.state == "success"
    keys = set(built.archive.list_keys("reports/fixity/")) - before
    assert len(keys) == 1
    report = json.loads(built.archive.get(keys.pop()))
    assert (report["documents"], report["checks_total"], report["ok"]) == (1, 4, True)

    # After the tampering test the archive holds two bad versions: the report is written, then the run fails.
    expected = audit(built.catalog, built.archive, trust_roots=[built.trust_root]).failed_documents
    # Every param is given: in-process dag.test() keeps conf values of the previous run in the DAG's Params.
    whole_run = dag.test(run_conf={"chunk_size": 2, "code_from": "", "code_to": "", "sample": 0})
    assert whole_run.state == ("failed" if expected else "success")
    newest = set(built.archive.list_keys("reports/fixity/")) - before
    assert len(newest) == 2
    full = [json.loads(built.archive.get(k)) for k in newest]
    whole = next(r for r in full if r["documents"] == 3)
    assert whole["checks_total"] == 12
    assert tuple((d["code"], d["version"]) for d in whole["failed_documents"]) == expected
