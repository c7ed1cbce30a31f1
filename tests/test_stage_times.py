"""Every run reports wall time and CPU per fixed stage, children's CPU included; ``process --workers``."""

from __future__ import annotations

import contextvars
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image
from robustness_support import REPO, make_context, png, register, row, settings_env, write_batch

from digitize.ocr import tesseract
from digitize.pipeline import largest_first
from digitize.stageclock import STAGES, StageTimes, recording, stage, waiting

BURN = [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"]


def test_nested_stages_count_only_their_own_time_and_children_once() -> None:
    times = StageTimes()
    with recording(times):
        time.sleep(0.2)  # the base stage: catalog
        with stage("ocr"):
            subprocess.run(BURN, check=True)  # a child's CPU: Tesseract's place
            with stage("pdf"):
                time.sleep(0.2)
    wall, cpu = times.rounded()
    assert list(wall) == ["ocr", "pdf", "catalog"]  # in STAGES order
    assert 0.19 <= wall["pdf"] < 0.35 and 0.19 <= wall["catalog"] < 0.35
    assert wall["ocr"] >= 0.35 and wall["ocr"] - wall["pdf"] < wall["ocr"]  # pdf's sleep is not ocr's
    assert cpu["ocr"] >= 0.35, cpu  # the child's CPU, reaped inside the stage
    assert cpu["pdf"] < 0.1 and cpu["catalog"] < 0.2, cpu  # handed out once, not to the enclosing stages


def test_stages_in_page_threads_are_recorded_and_nothing_outside_a_recording() -> None:
    times = StageTimes()
    with stage("ocr"):
        subprocess.run(BURN, check=True)  # nobody records: not counted anywhere
    with recording(times):
        def page() -> None:
            with stage("cleanup"):
                time.sleep(0.1)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(page,))
        thread.start()
        thread.join()
    assert set(times.wall) == {"cleanup", "catalog"} and times.wall["cleanup"] >= 0.1
    assert times.cpu["catalog"] < 0.2  # the child burnt before the recording is not counted


def test_waiting_for_page_threads_is_not_counted_twice() -> None:
    """A document OCR'd by two page threads: the pages' time is theirs; the main thread's wait for them is
    not added to its own stage (it used to show a two-page document's OCR as seconds of ``pdf``)."""
    times = StageTimes()
    with recording(times), stage("pdf"):
        time.sleep(0.1)
        with waiting():
            def page() -> None:
                with stage("ocr"):
                    time.sleep(0.3)

            thread = threading.Thread(target=contextvars.copy_context().run, args=(page,))
            thread.start()
            thread.join()
        time.sleep(0.1)
    assert times.wall["ocr"] >= 0.3
    assert 0.19 <= times.wall["pdf"] < 0.3, times.wall


def test_documents_report_the_fixed_stages_with_cpu(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    from digitize.pipeline import process_documents, summarize

    ctx = make_context(tmp_path, s3_server, demo_pki, "stage-times")
    batch = write_batch(tmp_path / "inbox", "b", {"a.png": png(("GIẤY XÁC NHẬN", "Số 3/2024"))}, [row("a.png")])
    tesseract.stop_helpers()  # a fresh helper: its start and model load count to the page, as in a new worker
    [outcome] = process_documents(ctx, register(ctx, batch).to_process, batch)
    assert outcome.status == "ARCHIVED"
    assert set(outcome.seconds) == set(outcome.cpu) <= set(STAGES)
    assert {"load", "cleanup", "ocr", "pdf", "code", "sign", "archive", "catalog", "index"} <= set(outcome.seconds)
    assert outcome.cpu["ocr"] > 0.05  # Tesseract's CPU, the helper process's (it waits meanwhile)
    summary = summarize([outcome], duplicates=0, rejected_rows=0, seconds=sum(outcome.seconds.values()))
    assert summary.stage_cpu == outcome.cpu and summary.as_dict()["stage_cpu"] == outcome.cpu
    assert any(line.startswith("time by stage") and "ocr " in line for line in summary.lines())


def test_process_with_workers_archives_every_document_once(tmp_path: Path, s3_server: str,
                                                                   demo_pki: Any) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "stage-workers")
    names = [f"p{n}.png" for n in range(3)]
    batch = write_batch(tmp_path / "inbox", "b", {n: png(("GIẤY XÁC NHẬN", f"Số {i}/2024"))
                                                  for i, n in enumerate(names)}, [row(n) for n in names])
    out = tmp_path / "stages.json"
    done = subprocess.run([sys.executable, "-m", "digitize", "process", str(batch), "--quiet", "--workers", "2",
                           "--stage-times", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **settings_env(ctx.settings), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "archived: 3, quarantined: 0" in done.stdout, done.stdout
    report = json.loads(out.read_text())
    assert report["archived"] == 3 and report["pages"] == 3
    assert report["stage_cpu"]["ocr"] > 0.05 and set(report["stage_seconds"]) <= set(STAGES)
    documents = ctx.catalog.documents()
    assert sorted(d.status for d in documents) == ["ARCHIVED"] * 3
    assert all(sum(e.event_type == "signature" for e in ctx.catalog.events(d.id)) == 1 for d in documents)


def _process_with_timed_ocr(ctx: Any, batch: Path, log: Path) -> Path:
    """``process --workers 2`` of a batch of 8 documents, each recognition logged (``tests/plugins/timed_ocr.py``)."""
    done = subprocess.run([sys.executable, "-m", "digitize", "process", str(batch), "--quiet", "--workers", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **settings_env(ctx.settings), "PYTHONPATH": str(REPO),
                               "DIGITIZE_PLUGINS": str(REPO / "tests" / "plugins" / "timed_ocr.py"),
                               "DIGITIZE_TEST_OCR_LOG": str(log)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "archived: 8, quarantined: 0" in done.stdout, done.stdout
    return log


def test_workers_ocr_n_documents_at_a_time_while_others_are_finished(tmp_path: Path, s3_server: str,
                                                                      demo_pki: Any) -> None:
    """``--workers 2``: four processes take documents, but never more than two OCR at once (two Tesseracts
    on two cores); the others sign, archive and catalogue meanwhile. Every document is archived once."""
    ctx = make_context(tmp_path, s3_server, demo_pki, "stage-slots")
    names = [f"p{n}.png" for n in range(8)]
    batch = write_batch(tmp_path / "inbox", "b", {n: png(("GIẤY XÁC NHẬN", f"Số {i}/2024"))
                                                  for i, n in enumerate(names)}, [row(n) for n in names])
    log = _process_with_timed_ocr(ctx, batch, tmp_path / "ocr.log")
    calls = [line.split() for line in log.read_text().splitlines()]
    assert len(calls) == 8
    assert len({pid for pid, *_ in calls}) >= 3  # more processes than OCR slots took documents
    edges = sorted([(float(start), 1) for _, start, *_ in calls] + [(float(end), -1) for _, _, end, *_ in calls])
    running = peak = 0
    for _, step in edges:  # an end at the same instant as a start comes first
        running += step
        peak = max(peak, running)
    assert peak <= 2, calls
    assert {threads for *_, threads in calls} == {"1"}  # the cores are the documents': no OpenCV thread pool
    documents = ctx.catalog.documents()
    assert all(sum(e.event_type == "signature" for e in ctx.catalog.events(d.id)) == 1 for d in documents)


def _two_page_tiff(width_in: float, height_in: float) -> bytes:
    pages = [Image.open(io.BytesIO(png(("Trang", str(n)), width_in=width_in, height_in=height_in))) for n in (1, 2)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:], dpi=(200, 200))
    return buffer.getvalue()


def test_largest_first_orders_documents_by_the_pixels_of_their_pages(tmp_path: Path, s3_server: str,
                                                                      demo_pki: Any) -> None:
    """Big documents go to the workers first, so a run does not end on one core finishing one of them;
    equal documents keep the manifest's order, and a file that cannot be read counts as nothing."""
    ctx = make_context(tmp_path, s3_server, demo_pki, "stage-order")
    files = {"small.png": png(("Số 1",)), "broken.png": b"\x89PNG\r\n\x1a\n not an image",
             "two-pages.tif": _two_page_tiff(6.0, 3.0), "a4.png": png(("Số 3",), width_in=8.27, height_in=11.69),
             "small-too.png": png(("Số 2",))}
    batch = write_batch(tmp_path / "inbox", "b", files, [row(n) for n in files])
    registered = register(ctx, batch)
    names = {d.id: d.files[0].name for d in ctx.catalog.documents(batch_id="b")}
    ordered = largest_first(ctx.catalog, registered.to_process)
    assert [names[i] for i in ordered] == ["a4.png", "two-pages.tif", "small.png", "small-too.png", "broken.png"]


def test_workers_start_the_largest_document_first(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    """``process --workers 2`` takes an A4 page listed last in the manifest among the first documents: in
    manifest order it would start only after four others were finished."""
    ctx = make_context(tmp_path, s3_server, demo_pki, "stage-lpt")
    files = {f"p{n}.png": png(("GIẤY XÁC NHẬN", f"Số {n}/2024")) for n in range(7)}
    files["a4.png"] = png(("GIẤY XÁC NHẬN", "Số 8/2024"), width_in=8.27, height_in=11.69)
    batch = write_batch(tmp_path / "inbox", "b", files, [row(n) for n in files])
    log = _process_with_timed_ocr(ctx, batch, tmp_path / "ocr.log")
    calls = sorted((float(start), int(pixels)) for _, start, _, pixels, _ in
                   (line.split() for line in log.read_text().splitlines()))
    largest = max(pixels for _, pixels in calls)
    assert [pixels for _, pixels in calls].index(largest) < 4, calls
