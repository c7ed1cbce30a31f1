"""Prepare and finish as separate stages (issue #8: signing on the one machine holding the token).

Library level: ``prepare_document`` then ``finish_document`` gives what ``process_document`` gives;
a prepared document is finished later without a second OCR; failures in finish quarantine or retry;
the staging objects are gone once a document is archived. Real pyHanko, real moto S3 over HTTP,
a real SQLite catalog; OCR is Tesseract in the equivalence test, the no-op engine elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from robustness_support import FAULTS, NOOP_OCR, make_context, object_versions, png, record, register, row, write_batch

from digitize.errors import TimestampUnavailable
from digitize.ocr import tesseract

# What may differ between two archivings of the same scan: times, the signature bytes, the history.
VOLATILE = ("archived_at", "events", "received_at", "signature")


def _batch(inbox: Path, name: str = "batch-split", count: int = 1) -> Path:
    files = {f"giay-{i}.png": png(("GIẤY XÁC NHẬN", f"Số {i}/2024 {name}")) for i in range(count)}
    return write_batch(inbox, name, files, [row(n, title=f"Giấy xác nhận {n}") for n in files])


def _events(ctx: Any, doc_id: int, event_type: str) -> int:
    return sum(e.event_type == event_type for e in ctx.catalog.events(doc_id))


def _staging(ctx: Any) -> dict[str, int]:
    return object_versions(ctx.archive, "staging/")


def _sidecar(ctx: Any, doc: Any) -> dict[str, Any]:
    sidecar: dict[str, Any] = json.loads(ctx.archive.get(doc.sidecar_key))
    for name in VOLATILE:
        sidecar.pop(name)
    sidecar["files"] = [f for f in sidecar["files"] if f["role"] != "signed_pdf"]
    return sidecar


def test_prepare_then_finish_gives_what_process_document_gives(tmp_path: Path, s3_server: str,
                                                               demo_pki: Any) -> None:
    from digitize.pipeline.stages import PREPARED, finish_document, prepare_document, process_document
    from digitize.signing import verify_pdf

    whole = make_context(tmp_path / "whole", s3_server, demo_pki, "split-whole")
    split = make_context(tmp_path / "split", s3_server, demo_pki, "split-staged")
    batch = _batch(tmp_path / "inbox")
    (whole_id,) = register(whole, batch).to_process
    (split_id,) = register(split, batch).to_process

    one = process_document(whole, whole_id, batch)
    prepared = prepare_document(split, split_id, batch)
    assert (prepared.status, prepared.pages) == (PREPARED, 1)
    assert split.catalog.get_document(split_id).status == "RECEIVED"
    two = finish_document(split, split_id)

    assert (one.status, one.code, one.pages) == (two.status, two.code, two.pages) == ("ARCHIVED", one.code, 1)
    a, b = whole.catalog.get_document(whole_id), split.catalog.get_document(split_id)
    assert (a.code, a.pages, a.mean_confidence, a.needs_review, a.original_keys, a.pdf_key, a.sidecar_key) == (
        b.code, b.pages, b.mean_confidence, b.needs_review, b.original_keys, b.pdf_key, b.sidecar_key)
    assert _sidecar(whole, a) == _sidecar(split, b)  # OCR figures, originals, metadata: field by field
    assert sorted(object_versions(whole.archive)) == sorted(object_versions(split.archive))
    for ctx, doc in ((whole, a), (split, b)):
        verdict = verify_pdf(ctx.archive.get(doc.pdf_key), ctx.settings.trust_roots)
        assert verdict.valid, verdict.summary
    assert _staging(split) == {}
    assert [_events(split, split_id, t) for t in ("ocr", "staging", "signature", "ingestion_complete")] == [1, 1, 1, 1]
    assert _events(whole, whole_id, "staging") == 0  # the one-process path stages nothing


def test_prepared_document_is_finished_later_without_a_second_ocr(tmp_path: Path, s3_server: str,
                                                                  demo_pki: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.archive import staging_keys
    from digitize.pipeline.stages import PREPARED, PipelineContext, prepare_document, process_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "split-later")
    batch = _batch(tmp_path / "inbox")
    (doc_id,) = register(ctx, batch).to_process
    assert prepare_document(ctx, doc_id, batch).status == PREPARED
    doc = ctx.catalog.get_document(doc_id)
    assert doc.status == "RECEIVED" and doc.lease_owner is None and doc.code is not None
    keys = staging_keys(doc.code, doc.version)
    assert sorted(_staging(ctx)) == sorted([keys.pdf, keys.state])
    archived = [k for k in object_versions(ctx.archive) if not k.startswith("staging/")]
    assert len(archived) == 1 and archived[0].endswith("/originals/00.png")  # the original, no signed PDF yet

    again = prepare_document(PipelineContext(ctx.settings, archive=ctx.archive), doc_id, batch)  # a re-run
    assert (again.status, again.code) == (PREPARED, doc.code)
    assert _events(ctx, doc_id, "ocr") == 1 and _events(ctx, doc_id, "staging") == 1

    # the next run takes the one-process path: it finishes from the staged state
    done = process_document(PipelineContext(ctx.settings, archive=ctx.archive), doc_id, batch)
    assert (done.status, done.code) == ("ARCHIVED", doc.code)
    assert _events(ctx, doc_id, "ocr") == 1 and _events(ctx, doc_id, "identifier_assignment") == 1
    assert _staging(ctx) == {}
    assert set(object_versions(ctx.archive).values()) == {1}


def test_finish_failures_quarantine_or_retry_and_keep_the_staged_work(tmp_path: Path, s3_server: str,
                                                                     demo_pki: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from test_archive import _free_port

    from digitize.pipeline.stages import PREPARED, PipelineContext, finish_document, prepare_document
    from digitize.signing.pki import create_demo_pki

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "split-fail")
    batch = _batch(tmp_path / "inbox", count=2)
    first, second = register(ctx, batch).to_process
    assert {prepare_document(ctx, i, batch).status for i in (first, second)} == {PREPARED}

    # token machine's TSA down: transient, the document stays RECEIVED and unclaimed for the retry
    tsa_down = dataclasses.replace(ctx.settings, signing_level="B-T", tsa_url=f"http://127.0.0.1:{_free_port()}/t")
    with pytest.raises(TimestampUnavailable):
        finish_document(PipelineContext(tsa_down, archive=ctx.archive), first)
    doc = ctx.catalog.get_document(first)
    assert doc.status == "RECEIVED" and doc.lease_owner is None and doc.pdf_key is None

    # a signature that does not verify (wrong trust root): quarantined with the usual reason code
    other = create_demo_pki(tmp_path / "other-pki", agency_name="Khác", passphrase="x", key_type="ec-p256")
    wrong_roots = dataclasses.replace(ctx.settings, trust_roots=(other.root_cert,))
    bad = finish_document(PipelineContext(wrong_roots, archive=ctx.archive), second)
    assert (bad.status, bad.reason) == ("QUARANTINED", "SIGNATURE_INVALID")
    assert ctx.catalog.get_document(second).pdf_key is None

    # fixed: the retry finishes both from what was staged, without OCR (the signing machine has no Tesseract)
    ctx.catalog.reset_for_retry(second)
    tesseract.stop_helpers()
    monkeypatch.setattr(tesseract, "SERVER", tmp_path / "no-tesseract-here")
    fixed = PipelineContext(ctx.settings, archive=ctx.archive)
    assert [finish_document(fixed, i).status for i in (first, second)] == ["ARCHIVED", "ARCHIVED"]
    assert [_events(ctx, i, "ocr") for i in (first, second)] == [1, 1]
    assert _staging(ctx) == {}
    sidecar = json.loads(ctx.archive.get(ctx.catalog.get_document(first).sidecar_key))
    assert sidecar["tools"]["tesseract"] not in ("", "unknown")  # the version of the machine that OCR'd
    record("faults", "sign stage: TSA down on the signing machine", "RECEIVED, then ARCHIVED on retry",
           "TIMESTAMP_UNAVAILABLE", "no lease or signed PDF left; finished from the staged work, no second OCR")
    record("faults", "sign stage: signature does not verify (wrong trust root)", "QUARANTINED", "SIGNATURE_INVALID",
           "staged work kept: after the fix the retry signs it on a machine without Tesseract")


def test_finish_is_exactly_once_and_cleans_up_after_a_crash(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.archive import staging_keys
    from digitize.pipeline.stages import PipelineContext, finish_document, prepare_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "split-once")
    batch = _batch(tmp_path / "inbox")
    (doc_id,) = register(ctx, batch).to_process
    unprepared = finish_document(ctx, doc_id)  # nothing staged yet: left for the next run
    assert unprepared.status == "SKIPPED" and ctx.catalog.get_document(doc_id).status == "RECEIVED"
    prepare_document(ctx, doc_id, batch)

    assert ctx.catalog.claim(doc_id, "other-host/ns:1:live", 60)  # another signer is at it
    assert finish_document(ctx, doc_id).status == "SKIPPED"
    ctx.catalog.release(doc_id, "other-host/ns:1:live")
    assert finish_document(ctx, doc_id).status == "ARCHIVED"
    assert finish_document(PipelineContext(ctx.settings, archive=ctx.archive), doc_id).status == "SKIPPED"
    assert _events(ctx, doc_id, "signature") == 1

    # a finish that died between archiving and clean-up: the task's retry removes the leftovers
    doc = ctx.catalog.get_document(doc_id)
    assert doc.code is not None
    keys = staging_keys(doc.code, doc.version)
    ctx.archive.put(keys.state, b"{}", content_type="application/json")
    assert finish_document(ctx, doc_id).status == "SKIPPED"
    assert _staging(ctx) == {}


def test_staging_objects_are_never_locked_and_only_they_can_be_deleted(s3_server: str) -> None:
    from digitize.archive import ArchiveOptions, S3Archive, make_s3_client, staging_keys

    options = ArchiveOptions(object_lock_mode="COMPLIANCE", retention_days={"KQ": 3650})
    archive = S3Archive(make_s3_client(s3_server, credentials=("testing", "testing")), "split-locked", options)
    archive.ensure_bucket()
    keys = staging_keys("000.00.12.H99.2024.KQ.000001")
    stored = archive.put(keys.pdf, b"%PDF-1.7 staged", content_type="application/pdf")
    assert stored.lock_mode is None  # Object Lock would make the clean-up impossible
    assert archive.delete(keys.pdf) == 1
    assert archive.head(keys.pdf) is None and object_versions(archive, "staging/") == {}
    with pytest.raises(ValueError, match="only staging"):
        archive.delete("documents/000.00.12.H99/2024/000.00.12.H99.2024.KQ.000001/v1/x.pdf")
    with pytest.raises(ValueError):
        staging_keys("../escape")


STAGE_CHILD = """
import json, sys
from pathlib import Path
from digitize.pipeline.stages import PipelineContext, finish_document, prepare_document
ctx = PipelineContext()
doc_id = int(sys.argv[2])
outcome = prepare_document(ctx, doc_id, Path(sys.argv[3])) if sys.argv[1] == "prepare" else finish_document(ctx, doc_id)
print(json.dumps(outcome.as_dict()))
"""


@pytest.mark.parametrize(("stage", "fault"), [("prepare", "after_code"), ("finish", "after_sign"),
                                              ("finish", "during_upload")])
def test_worker_killed_in_a_stage_then_the_stage_rerun_finishes_once(tmp_path: Path, s3_server: str,
                                                                     demo_pki: Any, stage: str, fault: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys

    from robustness_support import REPO, settings_env

    from digitize.pipeline.stages import PREPARED, PipelineContext, finish_document, prepare_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, f"split-kill-{fault.replace('_', '-')}")
    batch = _batch(tmp_path / "inbox")
    (doc_id,) = register(ctx, batch).to_process
    if stage == "finish":
        assert prepare_document(ctx, doc_id, batch).status == PREPARED
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    env.update(settings_env(ctx.settings), DIGITIZE_PLUGINS=f"{NOOP_OCR},{FAULTS}", DIGITIZE_TEST_FAULT=fault)
    killed = subprocess.run([sys.executable, "-c", STAGE_CHILD, stage, str(doc_id), str(batch)], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    code = ctx.catalog.get_document(doc_id).code
    assert code is not None and ctx.catalog.get_document(doc_id).status == "RECEIVED"

    again = PipelineContext(ctx.settings, archive=ctx.archive)  # the task's retry, on the same machine
    if stage == "prepare":
        assert prepare_document(again, doc_id, batch).status == PREPARED
    done = finish_document(again, doc_id)
    assert (done.status, done.code) == ("ARCHIVED", code)
    redone = 2 if stage == "prepare" else 1  # killed before staging: OCR again, the same code given back
    assert [_events(ctx, doc_id, t) for t in ("ocr", "identifier_assignment", "staging")] == [redone, redone, 1]
    assert _events(ctx, doc_id, "processing_resumed") == 1
    if fault == "during_upload":
        reused = [e for e in ctx.catalog.events(doc_id) if e.event_type == "signature"]
        assert "reused the signed PDF" in reused[-1].detail  # never signed twice over a stored PDF
    doc = ctx.catalog.get_document(doc_id)
    versions = object_versions(ctx.archive)
    assert sorted(versions) == sorted([doc.pdf_key, doc.sidecar_key, *doc.original_keys])
    assert set(versions.values()) == {1}
    record("faults", f"worker killed in the {stage} stage ({fault})", "RECEIVED, then ARCHIVED on retry", None,
           "same code; one object version each; " + ("OCR again (killed before staging)" if stage == "prepare"
                                                      else "no second OCR, signed once"))
