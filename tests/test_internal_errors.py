"""Issue 17, high 4: no input stops a run, and no run that left documents behind ends green.

An unexpected error of one document (a bug, a limit such as ``RecursionError``) quarantines that
document as INTERNAL_ERROR, told by the exception's type and never its text, and the chunk goes on;
transient errors and OSError still fail the task (Airflow retries it), configuration errors still stop
the run. A DAG run whose documents are still RECEIVED at its end fails, and its summary names them.
Real pyHanko, moto over HTTP, a SQLite catalog, Tesseract on tiny pages.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from robustness_support import make_context, png, record, register, row, write_batch

REPO = Path(__file__).resolve().parent.parent
CITIZEN_ID = "079123456789"  # stands for the personal data an exception's text may quote


def nested_forms_pdf(depth: int) -> bytes:
    """One page drawing a form XObject that draws another, ``depth`` levels down (the attack's PDF)."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 200))
    inner = None
    for _ in range(depth):
        form = pikepdf.Stream(pdf, b"/X Do" if inner is not None else b"0 0 1 1 re f")
        form.Type, form.Subtype, form.BBox = pikepdf.Name.XObject, pikepdf.Name.Form, [0, 0, 200, 200]
        form.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner)) if inner is not None else (
            pikepdf.Dictionary())
        inner = pdf.make_indirect(form)
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner))
    page.Contents = pdf.make_stream(b"/X Do")
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _failing_ocr(monkeypatch: pytest.MonkeyPatch, failures: dict[str, BaseException]) -> None:
    """OCR raises ``failures[name]`` for the original of that name, and works for the others."""
    import digitize.ocr

    real = digitize.ocr.make_searchable_pdf

    def ocr(originals: list[Path], *args: Any, **kwargs: Any) -> Any:
        for path in originals:
            if path.name in failures:
                raise failures[path.name]
        return real(originals, *args, **kwargs)

    monkeypatch.setattr(digitize.ocr, "make_searchable_pdf", ocr)


def _run(ctx: Any, batch: Path) -> tuple[list[dict[str, Any]], list[int]]:
    from digitize.pipeline import cut_chunks, open_chunk, run_chunk

    ids = list(register(ctx, batch).to_process)
    [chunk] = cut_chunks([(str(batch), i) for i in ids], len(ids))
    return run_chunk(ctx, open_chunk(chunk), "process", worker="test"), ids


def test_a_pdf_of_nested_forms_is_quarantined_and_the_chunk_goes_on(tmp_path: Path, s3_server: str,
                                                                    demo_pki: Any) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "internal-nested")
    files = {"nested.pdf": nested_forms_pdf(3000), "good.png": png()}
    batch = write_batch(tmp_path / "inbox", "b-nested", files, [row(name) for name in files])

    outcomes, ids = _run(ctx, batch)

    # Page loading refuses the nesting itself (it used to raise RecursionError, which then came out as
    # INTERNAL_ERROR: test_the_exception_text_is_never_stored_nor_logged keeps that rule covered).
    assert [(o["status"], o["reason"]) for o in outcomes] == [("QUARANTINED", "PDF_TOO_COMPLEX"), ("ARCHIVED", None)]
    nested = ctx.catalog.get_document(ids[0])
    assert nested.message and "nested" in nested.message and "recursion depth" not in nested.message
    assert (batch / "nested.pdf").is_file()
    record("bad input", "PDF of 3,000 nested form XObjects (RecursionError before)", nested.status, nested.reason,
           "the next document of the chunk is archived")


def test_the_exception_text_is_never_stored_nor_logged(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "internal-text")
    files = {"bug.png": png(("GIẤY XÁC NHẬN", "Số 7/2024")), "good.png": png()}
    batch = write_batch(tmp_path / "inbox", "b-bug", files, [row(name) for name in files])
    _failing_ocr(monkeypatch, {"bug.png": KeyError(f"holder {CITIZEN_ID}")})

    # The chunk's documents run in forked workers: their records reach a file handler they inherit, not caplog.
    logged = tmp_path / "chunk.log"
    handler = logging.FileHandler(logged, encoding="utf-8")
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            outcomes, ids = _run(ctx, batch)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

    assert [(o["status"], o["reason"]) for o in outcomes] == [("QUARANTINED", "INTERNAL_ERROR"), ("ARCHIVED", None)]
    bug = ctx.catalog.get_document(ids[0])
    assert bug.message and "KeyError" in bug.message
    log_text = logged.read_text(encoding="utf-8")
    assert "internal error" in log_text.lower() or "INTERNAL_ERROR" in log_text, log_text  # the workers' log is here
    stored = [bug.message, *(e.detail or "" for e in ctx.catalog.events(bug.id)), caplog.text, log_text]
    assert not [text for text in stored if CITIZEN_ID in text]


@pytest.mark.parametrize("kind", ["transient", "configuration", "os"])
def test_transient_configuration_and_os_errors_still_stop_the_chunk(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    kind: str) -> None:
    from digitize.errors import ArchiveUnavailable, ConfigurationError

    """The error reaches the task from the chunk's worker process. The document already in the other
    worker's hands is finished; the one not yet started stays RECEIVED, for the retry."""
    exc = {"transient": ArchiveUnavailable("S3 is away"), "configuration": ConfigurationError("no key"),
           "os": OSError(errno.EIO, "Input/output error")}[kind]
    ctx = make_context(tmp_path, s3_server, demo_pki, "internal-stop")
    files = {"first.png": png(), "second.png": png(("GIẤY XÁC NHẬN", "Số 2/2024")),
             "third.png": png(("GIẤY XÁC NHẬN", "Số 3/2024"))}
    batch = write_batch(tmp_path / "inbox", "b-stop", files, [row(name) for name in files])
    _failing_ocr(monkeypatch, {"first.png": exc})

    with pytest.raises(type(exc)):
        _run(ctx, batch)
    documents = sorted(ctx.catalog.documents(), key=lambda d: d.id)
    assert [d.status for d in documents] == ["RECEIVED", "ARCHIVED", "RECEIVED"]


def test_the_summary_names_the_documents_left_received(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    from digitize.pipeline import summarize, unfinished_documents

    ctx = make_context(tmp_path, s3_server, demo_pki, "internal-summary")
    files = {f"doc-{i}.png": png(("GIẤY XÁC NHẬN", f"Số {i}/2024")) for i in range(3)}
    ids = list(register(ctx, write_batch(tmp_path / "inbox", "b-left", files, [row(n) for n in files])).to_process)
    ctx.catalog.mark_quarantined(ids[0], "CORRUPT_FILE", "done with")
    assert ctx.catalog.claim(ids[1], "elsewhere:1:live", 600)  # a live worker of another run holds it

    left = unfinished_documents(ctx.catalog, ids)
    summary = summarize([], duplicates=0, rejected_rows=0, seconds=1.0, unfinished=left)

    assert left == (ids[2],)
    assert summary.as_dict()["unfinished"] == [ids[2]]
    assert f"NOT FINISHED: 1 document(s) still RECEIVED after this run (ids {ids[2]})" in "\n".join(summary.lines())


@pytest.fixture
def inbox_env(tmp_path: Path, s3_server: str, demo_pki: Any, airflow_db: Path,
              monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from digitize.catalog.store import Catalog
    from digitize.config import load_settings

    for name, value in {
        "DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}", "DIGITIZE_S3_ENDPOINT_URL": s3_server,
        "DIGITIZE_S3_BUCKET": "internal-dag", "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase, "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert),
        "DIGITIZE_SIGNING_STAMP": "false", "DIGITIZE_QUIET_SECONDS": "0", "DIGITIZE_OCR_JOBS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    catalog.import_agencies(REPO / "samples" / "agencies.csv")
    return {"catalog": catalog, "root": tmp_path}


@pytest.mark.slow
def test_a_dag_run_that_leaves_a_document_received_ends_red(inbox_env: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from digitize.errors import ArchiveUnavailable

    sys.path.insert(0, str(REPO / "plugins"))
    import digitize_airflow

    defaults = digitize_airflow.default_args
    monkeypatch.setattr(digitize_airflow, "default_args", lambda: {**defaults(), "retries": 0})  # retries spent
    _failing_ocr(monkeypatch, {"stuck.png": ArchiveUnavailable("S3 is away"), "bug.png": RecursionError()})
    files = {"stuck.png": png(("GIẤY XÁC NHẬN", "Số 3/2024")), "bug.png": png(("GIẤY XÁC NHẬN", "Số 2/2024")),
             "good.png": png()}
    write_batch(inbox_env["root"] / "inbox", "b-red", files, [row(name) for name in files])
    dag = DagBag(dag_folder=str(REPO / "dags" / "digitize_inbox.py")).dags["digitize_inbox"]

    run = dag.test(run_conf={"inbox": str(inbox_env["root"] / "inbox"), "batch": "b-red", "chunk_size": 1})

    docs = {d.files[0].name: d for d in inbox_env["catalog"].documents()}
    assert {name: (d.status, d.reason) for name, d in docs.items()} == {
        "stuck.png": ("RECEIVED", None), "bug.png": ("QUARANTINED", "INTERNAL_ERROR"), "good.png": ("ARCHIVED", None)}
    assert run.state == "failed"
    states = {t.task_id: t.state for t in run.get_task_instances() if t.task_id == "summarize"}
    assert states == {"summarize": "failed"}
    with create_session() as session:
        value = session.query(XComModel.value).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id="summarize",
                                                         key="return_value").scalar()
    summary = json.loads(value) if isinstance(value, str) else value
    assert summary["unfinished"] == [docs["stuck.png"].id]
    assert summary["quarantined"] == {"INTERNAL_ERROR": 1} and summary["archived"] == 1


def test_cli_process_names_what_it_left_received_and_exits_3(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    """The scratch disk fills up mid-batch (a transient error): the CLI does not retry, it names the documents
    left RECEIVED for the next run and exits with its documented code 3."""
    import os
    import subprocess

    from robustness_support import FAULTS, NOOP_OCR, settings_env

    from digitize.presentation.cli import EXIT_UNFINISHED

    ctx = make_context(tmp_path, s3_server, demo_pki, "cli-unfinished")
    files = {f"d{i}.png": png((f"Giấy số {i}",)) for i in range(2)}
    batch = write_batch(tmp_path / "inbox", "batch-full", files, [row(n, title=f"Giấy {n}") for n in files])
    env = {**os.environ, **settings_env(ctx.settings), "DIGITIZE_PLUGINS": f"{NOOP_OCR},{FAULTS}",
           "DIGITIZE_TEST_FAULT": "after_ocr:enospc"}
    done = subprocess.run([sys.executable, "-m", "digitize", "process", str(batch), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_UNFINISHED == 3, done.stdout + done.stderr
    ids = [d.id for d in ctx.catalog.documents(status="RECEIVED")]
    assert len(ids) == 2
    assert "SCRATCH_SPACE_FULL" in done.stdout and "NOT FINISHED: 2 document(s)" in done.stdout, done.stdout
    assert all(str(i) in done.stdout.split("NOT FINISHED")[1] for i in ids)
