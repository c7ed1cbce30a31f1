"""Faults: no loss, no duplicates. Each fault is injected for real, in the spirit of OCRmyPDF's fault plugins.

- S3 answering 503/500 for a while: a fault-injecting HTTP proxy on loopback in front of moto (moto loses
  its data on restart, so the server itself is never stopped);
- a worker killed with SIGKILL at each stage: a child process runs ``process_document`` with
  ``DIGITIZE_TEST_FAULT=<stage>``, read by the fault injector plugin ``tests/plugins/faults.py`` at the
  pipeline's ``on_stage`` hook (``DIGITIZE_PLUGINS`` loads it, in the child too);
- Tesseract crashing or hanging: a fake Tesseract helper script in place of the real one;
- the TSA unreachable, the catalog locked, the scratch disk full (ENOSPC through the fault injector).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from robustness_support import (
    FAULTS,
    NOOP_OCR,
    make_context,
    object_versions,
    png,
    record,
    register,
    row,
    run_child,
    write_batch,
)
from test_archive import FaultProxy

from digitize.errors import ArchiveUnavailable, CatalogUnavailable, ScratchSpaceFull, TimestampUnavailable


@pytest.fixture
def noop_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The no-op engine, and the fault injector (inert until DIGITIZE_TEST_FAULT is set), here and in children."""
    monkeypatch.setenv("DIGITIZE_PLUGINS", f"{NOOP_OCR},{FAULTS}")


def _one_doc_batch(inbox: Path, name: str = "batch-1", text: str = "Giấy xác nhận") -> Path:
    return write_batch(inbox, name, {"scan.png": png((text, name))}, [row("scan.png", title=text)])


def _assert_single_clean_document(ctx: Any, doc_id: int) -> Any:
    doc = ctx.catalog.get_document(doc_id)
    assert doc.status == "ARCHIVED", (doc.status, doc.reason, doc.message)
    assert len(ctx.catalog.documents()) == 1, "an orphan or duplicate catalog row"
    versions = object_versions(ctx.archive)
    assert sorted(versions) == sorted([doc.pdf_key, doc.sidecar_key, *doc.original_keys])
    assert set(versions.values()) == {1}, f"an object was stored twice: {versions}"
    for key in versions:
        ctx.archive.verify(key)
    return doc


# --------------------------------------------------------------------------- S3 down in the middle of a batch


def test_s3_503_for_a_while_mid_batch_is_retried_never_quarantined(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                                   noop_ocr: None) -> None:
    from digitize.archive.s3 import S3Archive, make_s3_client
    from digitize.dev.s3server import DUMMY_CREDENTIALS

    with FaultProxy(s3_server, faults=0, status=503, methods=("PUT", "GET", "HEAD")) as proxy:
        client = make_s3_client(proxy.endpoint_url, credentials=DUMMY_CREDENTIALS, max_attempts=3,
                                connect_timeout=2, read_timeout=10)
        archive = S3Archive(client, "faults-s3")
        ctx = make_context(tmp_path, s3_server, demo_pki, "faults-s3", archive=archive)
        files = {f"d{i}.png": png((f"Giấy số {i}",)) for i in range(3)}
        batch = write_batch(tmp_path / "inbox", "batch-s3", files, [row(n, title=f"Giấy {n}") for n in files])
        ids = register(ctx, batch).to_process
        from digitize.pipeline.stages import process_document

        assert process_document(ctx, ids[0], batch).status == "ARCHIVED"
        proxy.faults_left = 2  # a blip: the client's own retries absorb it
        assert process_document(ctx, ids[1], batch).status == "ARCHIVED"
        assert proxy.faults_served == 2
        proxy.faults_left = 1000  # down for a while: the task fails transiently (Airflow retries it)
        with pytest.raises(ArchiveUnavailable):
            process_document(ctx, ids[2], batch)
        doc = ctx.catalog.get_document(ids[2])
        assert doc.status == "RECEIVED" and doc.lease_owner is None
        record("faults", "S3 returns 503 for 2 requests (client retries)", "ARCHIVED")
        record("faults", "S3 returns 503 until further notice, mid-batch", "RECEIVED (task retried)",
               "ARCHIVE_UNAVAILABLE", "never quarantined")
        proxy.faults_left = 0  # back: the retry completes the batch
        assert process_document(ctx, ids[2], batch).status == "ARCHIVED"
        proxy.status, proxy.code, proxy.faults_left = 500, "InternalError", 1000
        files2 = {"e.png": png(("Giấy khác",))}
        batch2 = write_batch(tmp_path / "inbox", "batch-s3b", files2, [row("e.png")])
        proxy.faults_left = 0
        other = register(ctx, batch2).to_process[0]
        proxy.faults_left = 1000
        with pytest.raises(ArchiveUnavailable):
            process_document(ctx, other, batch2)
        proxy.faults_left = 0
        assert process_document(ctx, other, batch2).status == "ARCHIVED"
        record("faults", "S3 returns 500 until further notice", "RECEIVED, then ARCHIVED on retry",
               "ARCHIVE_UNAVAILABLE")
        docs = ctx.catalog.documents()
    assert {d.status for d in docs} == {"ARCHIVED"}
    versions = object_versions(archive)
    assert len(versions) == 4 * 3 and set(versions.values()) == {1}
    for key in versions:
        archive.verify(key)  # every visible object is whole and matches its checksum


# --------------------------------------------------------------------------- corrupted upload, Object Lock on


@pytest.mark.parametrize("size", ["small", "multipart"])
def test_upload_corrupted_in_transit_under_object_lock_locks_nothing_and_a_retry_succeeds(
        s3_server: str, size: str) -> None:
    """moto stores the checksum sent with a put without checking it, as some S3 servers do: before the
    fix, the bad bytes were locked under the final key and every retry met them for the whole retention."""
    import base64
    import hashlib

    from digitize.archive import ArchiveOptions, S3Archive, document_keys, make_s3_client
    from digitize.archive.s3 import MIB
    from digitize.dev.s3server import DUMMY_CREDENTIALS
    from digitize.errors import ArchiveIntegrityError

    options = ArchiveOptions(object_lock_mode="COMPLIANCE", default_retention_days=1, server_side_encryption="AES256",
                             multipart_threshold=6 * MIB, part_size=5 * MIB)
    data = b"%PDF-1.7\n" + hashlib.sha256(size.encode()).digest() * ((11 * MIB if size == "multipart" else 4096) // 32)
    key = document_keys("000.00.00.H49.2021.KQ.000123").pdf
    with FaultProxy(s3_server) as proxy:
        client = make_s3_client(proxy.endpoint_url, credentials=DUMMY_CREDENTIALS, max_attempts=3,
                                connect_timeout=2, read_timeout=30)
        store = S3Archive(client, f"lock-corrupt-{size}", options)
        store.ensure_bucket()
        proxy.corrupt = 1  # the next PUT with a body: the object's first bytes (or first part) on their way
        with pytest.raises(ArchiveIntegrityError):
            store.put(key, data, content_type="application/pdf")
        assert proxy.corrupt == 0, "the fault was not injected"
        assert object_versions(store) == {}, "something was left (or locked) after the corrupted upload"
        stored = store.put(key, data, content_type="application/pdf", metadata={"title": "Tờ trình"})  # the retry
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.metadata == {"title": "Tờ trình"}
    assert stored.content_type == "application/pdf"
    if size == "small":  # moto ignores Object Lock on multipart uploads (AWS and MinIO apply it)
        assert stored.lock_mode == "COMPLIANCE" and stored.retain_until is not None
        assert stored.checksum_sha256 == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert store.client.head_object(Bucket=store.bucket, Key=key)["ServerSideEncryption"] == "AES256"
    assert store.get(key) == data
    assert object_versions(store) == {key: 1}, "the staged copy stays, or the final key holds two versions"
    record("faults", f"S3 upload corrupted in transit, Object Lock COMPLIANCE ({size} object)",
           "refused, nothing locked; retry stored", "ARCHIVE_INTEGRITY",
           "bytes staged and read back before the locked copy")


# --------------------------------------------------------------------------- SIGKILL at each stage


@pytest.mark.parametrize("stage", ["after_ocr", "after_code", "after_sign", "during_upload"])
def test_worker_killed_at_each_stage_then_rerun_finishes_with_the_same_code(
        tmp_path: Path, s3_server: str, demo_pki: Any, noop_ocr: None, stage: str) -> None:
    from digitize.pipeline.stages import PipelineContext, process_document

    ctx = make_context(tmp_path, s3_server, demo_pki, f"kill-{stage.replace('_', '-')}")
    batch = _one_doc_batch(tmp_path / "inbox")
    doc_id = register(ctx, batch).to_process[0]
    killed = run_child(ctx.settings, batch, [doc_id], extra_env={"DIGITIZE_TEST_FAULT": stage})
    assert killed.returncode == -9, killed.stderr[-2000:]
    after_kill = ctx.catalog.get_document(doc_id)
    assert after_kill.status == "RECEIVED" and after_kill.lease_owner is not None
    code_before = after_kill.code
    assert (code_before is None) == (stage == "after_ocr")
    stored_before = object_versions(ctx.archive)
    if stage == "during_upload":
        assert any(k.endswith(".pdf") for k in stored_before) and not any(k.endswith(".json") for k in stored_before)
    else:
        assert stored_before == {}

    outcome = process_document(PipelineContext(ctx.settings, archive=ctx.archive), doc_id, batch)
    assert outcome.status == "ARCHIVED"
    doc = _assert_single_clean_document(ctx, doc_id)
    if code_before is not None:
        assert doc.code == code_before
    events = [e.event_type for e in ctx.catalog.events(doc_id)]
    assert "processing_resumed" in events
    assert events.count("identifier_assignment") == 2 if stage != "after_ocr" else events.count("ocr") == 2
    if stage == "during_upload":
        reused = [e for e in ctx.catalog.events(doc_id) if e.event_type == "signature"]
        assert "reused the signed PDF" in reused[-1].detail  # never signed twice over a stored PDF
    record("faults", f"worker SIGKILLed {stage.replace('_', ' ')}, then re-run", "ARCHIVED", None,
           "same code, one object per key, no orphan row, event processing_resumed")


# --------------------------------------------------------------------------- Tesseract crashes or hangs


def _broken_helper(path: Path, behaviour: str) -> Path:
    """A Tesseract helper that greets like the real one, answers OSD with "unsure", and crashes (SIGSEGV) or
    hangs on the first page it is asked to read."""
    action = {"crash": "os.kill(os.getpid(), signal.SIGSEGV)", "hang": "time.sleep(60)"}[behaviour]
    path.write_text(f"""import os, signal, sys, time
from digitize.ocr.tesseract_server import read_message, write_message
write_message(sys.stdout.buffer, {{"tesseract": "5.5.4", "tesserocr": "fake", "cpu": 0.0}})
while (request := read_message(sys.stdin.buffer)) is not None:
    if request[0]["op"] == "ocr":
        {action}
    write_message(sys.stdout.buffer, {{"rotation": 0, "confidence": 0.0, "cpu": 0.0}})
""")
    return path


@pytest.mark.parametrize("behaviour", ["crash", "hang"])
def test_tesseract_crash_or_hang_quarantines_that_document_and_the_run_goes_on(
        tmp_path: Path, s3_server: str, demo_pki: Any, monkeypatch: pytest.MonkeyPatch, behaviour: str) -> None:
    from digitize.ocr import tesseract
    from digitize.pipeline.stages import process_documents

    ctx = make_context(tmp_path, s3_server, demo_pki, f"tess-{behaviour}", ocr_page_timeout=2.0)
    files = {"a.png": png(("Giấy số một",)), "b.png": png(("Giấy số hai",))}
    batch = write_batch(tmp_path / "inbox", "batch-tess", files, [row("a.png"), row("b.png", title="Hai")])
    ids = register(ctx, batch).to_process
    tesseract.stop_helpers()  # the next page starts the broken helper
    monkeypatch.setattr(tesseract, "SERVER", _broken_helper(tmp_path / "broken_helper.py", behaviour))
    started = time.monotonic()
    first = process_documents(ctx, ids[:1], batch)
    assert time.monotonic() - started < 60, "a hung Tesseract hung the run"
    assert first[0].status == "QUARANTINED" and first[0].reason == "OCR_FAILED"
    message = ctx.catalog.get_document(ids[0]).message or ""
    assert ("exit" in message or "signal" in message or "-11" in message) if behaviour == "crash" else "2 s" in message
    assert not tesseract._this_process_pool().idle, "a crashed or hung helper is not used again"
    monkeypatch.undo()  # Tesseract is back: the rest of the run goes on
    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    rest = process_documents(ctx, ids[1:], batch)
    assert rest[0].status == "ARCHIVED"
    record("faults", f"Tesseract {'crashes (SIGSEGV)' if behaviour == 'crash' else 'hangs past the page timeout'}",
           "QUARANTINED", "OCR_FAILED", "next document archived")


# --------------------------------------------------------------------------- TSA, catalog, disk


def test_tsa_unreachable_is_transient_and_nothing_is_stored(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                           noop_ocr: None) -> None:
    from test_archive import _free_port

    from digitize.pipeline.stages import process_document

    ctx = make_context(tmp_path, s3_server, demo_pki, "tsa-down", signing_level="B-T",
                       tsa_url=f"http://127.0.0.1:{_free_port()}/tsa")
    batch = _one_doc_batch(tmp_path / "inbox")
    doc_id = register(ctx, batch).to_process[0]
    with pytest.raises(TimestampUnavailable):
        process_document(ctx, doc_id, batch)
    doc = ctx.catalog.get_document(doc_id)
    assert doc.status == "RECEIVED" and doc.lease_owner is None
    assert object_versions(ctx.archive) == {}
    record("faults", "TSA unreachable (PAdES B-T)", "RECEIVED (task retried later)", "TIMESTAMP_UNAVAILABLE",
           "document not quarantined, nothing archived")


def test_catalog_locked_mid_document_is_transient_then_resumes(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                              noop_ocr: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import digitize.catalog.store as catalog_module
    import digitize.ocr as ocr_module  # the pipeline calls the package's make_searchable_pdf
    from digitize.pipeline.stages import PipelineContext, process_document

    monkeypatch.setattr(catalog_module, "SQLITE_BUSY_TIMEOUT_S", 1.0)
    ctx = make_context(tmp_path, s3_server, demo_pki, "catalog-locked", lease_seconds=3)
    batch = _one_doc_batch(tmp_path / "inbox")
    doc_id = register(ctx, batch).to_process[0]
    holder = sqlite3.connect(tmp_path / "catalog.db", timeout=5, isolation_level=None)
    real = ocr_module.make_searchable_pdf

    def ocr_then_lock(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        holder.execute("BEGIN EXCLUSIVE")  # another program locks the database right after OCR
        return result

    monkeypatch.setattr(ocr_module, "make_searchable_pdf", ocr_then_lock)
    with pytest.raises(CatalogUnavailable):
        process_document(ctx, doc_id, batch)
    holder.execute("ROLLBACK")
    holder.close()
    monkeypatch.setattr(ocr_module, "make_searchable_pdf", real)
    assert ctx.catalog.get_document(doc_id).status == "RECEIVED"
    time.sleep(3.2)  # the release failed with the lock held: the lease lapses by itself
    assert process_document(PipelineContext(ctx.settings, archive=ctx.archive), doc_id, batch).status == "ARCHIVED"
    _assert_single_clean_document(ctx, doc_id)
    record("faults", "catalog database locked mid-document", "RECEIVED, then ARCHIVED on retry",
           "CATALOG_UNAVAILABLE", "never quarantined")


def test_scratch_disk_full_is_transient_with_no_partial_results(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                               noop_ocr: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.pipeline.stages import process_document

    work = tmp_path / "scratch"
    work.mkdir()
    ctx = make_context(tmp_path, s3_server, demo_pki, "enospc", work_dir=work)
    batch = _one_doc_batch(tmp_path / "inbox")
    doc_id = register(ctx, batch).to_process[0]
    monkeypatch.setenv("DIGITIZE_TEST_FAULT", "after_ocr:enospc")
    with pytest.raises(ScratchSpaceFull) as info:
        process_document(ctx, doc_id, batch)
    assert info.value.reason == "SCRATCH_SPACE_FULL" and "nothing was archived" in info.value.message
    assert list(work.iterdir()) == [], "temporary files left behind"
    assert ctx.catalog.get_document(doc_id).status == "RECEIVED"
    assert object_versions(ctx.archive) == {}
    monkeypatch.delenv("DIGITIZE_TEST_FAULT")
    assert process_document(ctx, doc_id, batch).status == "ARCHIVED"
    record("faults", "scratch disk full (ENOSPC) after OCR", "RECEIVED, then ARCHIVED on retry",
           "SCRATCH_SPACE_FULL", "no temporary file, object or code left behind")


def test_a_new_signature_is_verified_once_and_a_reused_one_before_it_is_archived(
        tmp_path: Path, s3_server: str, demo_pki: Any, noop_ocr: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer checks every signature it makes; the pipeline only checks one an earlier run left."""
    from digitize.pipeline.stages import process_document
    from digitize.signing import verify as verification

    checks: list[bytes] = []
    real = verification.verify_with_roots
    monkeypatch.setattr(verification, "verify_with_roots",
                        lambda pdf, *a, **k: checks.append(pdf) or real(pdf, *a, **k))
    ctx = make_context(tmp_path, s3_server, demo_pki, "verify-once")
    batch = _one_doc_batch(tmp_path / "inbox")
    doc_id = register(ctx, batch).to_process[0]
    monkeypatch.setenv("DIGITIZE_TEST_FAULT", "during_upload:enospc")  # after the signed PDF is stored
    with pytest.raises(ScratchSpaceFull):
        process_document(ctx, doc_id, batch)
    assert len(checks) == 1, "a new signature was verified more than once"
    monkeypatch.delenv("DIGITIZE_TEST_FAULT")
    assert process_document(ctx, doc_id, batch).status == "ARCHIVED"
    assert len(checks) == 2 and checks[1] == checks[0], "the signed PDF of the first run was not checked again"
    assert sum(e.event_type == "signature_validation" for e in ctx.catalog.events(doc_id)) >= 1
