"""The digitize_backlog DAG through ``dag.test()``: local folder and S3 prefix, filters, dry run, resume, chunking.

Every stage is real (Tesseract on tiny one-page scans, pyHanko, moto over
HTTP, SQLite catalog); only the scheduler is ``dag.test()``'s in-process one.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
AGENCIES = ("000.00.12.H99", "000.00.31.H99")

pytestmark = pytest.mark.slow


def make_tiny_batch(batch: Path, count: int, *, start: int = 0, corrupt: bool = False) -> Path:
    """``count`` distinct one-page PNG documents (agencies alternate, issued 2021-01-01 + i months) + manifest."""
    from imagegen import render_page, save

    batch.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "agency_code", "kind", "title", "issued_date"])
    for i in range(start, start + count):
        name = f"doc-{i:05d}.png"
        lines = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", f"Giấy chứng nhận số {i:05d}", "Ủy ban nhân dân tỉnh Mẫu")
        save(render_page(lines, width_in=4.0, height_in=1.5, font_pt=12.0), batch / name, fmt="PNG")
        writer.writerow([name, AGENCIES[i % 2], "KQ", f"Giấy chứng nhận số {i:05d}",
                         f"{2021 + (i // 12) % 4}-{i % 12 + 1:02d}-01"])
    if corrupt:
        (batch / "hong.png").write_bytes((batch / f"doc-{start:05d}.png").read_bytes()[:300])
        writer.writerow(["hong.png", AGENCIES[0], "TP", "Tệp hỏng", "2021-01-01"])
    (batch / "manifest.csv").write_text(out.getvalue(), encoding="utf-8")
    return batch


@pytest.fixture(scope="module")
def backlog_env(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any, airflow_db: Path
                ) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.catalog.store import Catalog
    from digitize.config import load_settings

    root = tmp_path_factory.mktemp("backlog")
    env = {
        "DIGITIZE_CATALOG_URL": f"sqlite:///{root / 'catalog.db'}",
        "DIGITIZE_S3_ENDPOINT_URL": s3_server,
        "DIGITIZE_S3_BUCKET": "backlog-archive",
        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert),
        "DIGITIZE_SIGNING_STAMP": "false",
        "DIGITIZE_OCR_JOBS": "1",
        "AIRFLOW_CONN_DIGITIZE_S3": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": s3_server, "region_name": "us-east-1",
                      "config_kwargs": {"s3": {"addressing_style": "path"}}}}),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        catalog = Catalog(load_settings().catalog_url)
        catalog.upgrade()
        catalog.import_agencies(SAMPLES / "agencies.csv")
        dag = DagBag(dag_folder=str(REPO / "dags" / "digitize_backlog.py")).dags["digitize_backlog"]
        yield {"catalog": catalog, "dag": dag, "root": root, "s3": s3_server}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _conf(**values: Any) -> dict[str, Any]:
    """Every param spelled out: ``dag.test()`` keeps the previous run's values for params left out."""
    return {"agencies": "", "issued_from": None, "issued_to": None, "max_documents": 0, "priority": "normal",
            "chunk_size": 20, "dry_run": False, **values}


def _summary(run: Any) -> dict[str, Any]:
    ti = next(t for t in run.get_task_instances() if t.task_id == "summarize")
    assert ti.state == "success"
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.query(XComModel.value).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id="summarize",
                                                         key="return_value").scalar()
    return json.loads(value) if isinstance(value, str) else value


def _rendered(run: Any, task_id: str) -> dict[str, Any]:
    """The task's template fields as its Rendered Templates tab shows them."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        fields = session.query(RenderedTaskInstanceFields.rendered_fields).filter_by(
            dag_id=run.dag_id, run_id=run.run_id, task_id=task_id).scalar()
    return json.loads(fields) if isinstance(fields, str) else fields


def _workers(catalog: Any) -> dict[int, int]:
    return {d.id: sum(e.event_type == "processing_worker" for e in catalog.events(d.id)) for d in catalog.documents()}


def test_dry_run_counts_and_writes_nothing(backlog_env: dict[str, Any]) -> None:
    inbox = backlog_env["root"] / "dry"
    make_tiny_batch(inbox / "b1", 4, corrupt=True)
    make_tiny_batch(inbox / "b2", 2, start=10)
    run = backlog_env["dag"].test(run_conf=_conf(source=str(inbox), dry_run=True))
    assert run.state == "success"
    summary = _summary(run)
    assert (summary["selected"], summary["files"], summary["dry_run"]) == (7, 7, True)
    assert summary["archived"] == 0 and summary["to_process"] == 0
    assert backlog_env["catalog"].documents() == []


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_missing_source_fails_the_run_at_once(backlog_env: dict[str, Any], capfd: pytest.CaptureFixture[str],
                                                dry_run: bool) -> None:
    """A mistyped source used to end green with "0 batch(es)": plan now fails, not retried, naming what is there."""
    (backlog_env["root"] / "b-walk").mkdir(exist_ok=True)
    missing = backlog_env["root"] / "b-wlak"
    run = backlog_env["dag"].test(run_conf=_conf(source=str(missing), dry_run=dry_run))
    assert run.state == "failed"
    assert {t.task_id: (t.state, t.try_number) for t in run.get_task_instances()}["plan"] == ("failed", 1)
    out = capfd.readouterr()
    assert f"[BATCH_NOT_FOUND] no folder {missing}; the nearest folder above it that exists is " \
           f"{backlog_env['root']} (folders there: " in out.out + out.err
    assert "b-walk" in out.out + out.err and "every worker mounts at the same path" in out.out + out.err
    assert backlog_env["catalog"].documents() == []


def test_a_folder_of_scans_without_a_manifest_succeeds_and_the_log_says_why(
        backlog_env: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    folder = backlog_env["root"] / "no-manifest"
    folder.mkdir()
    for name in ("scan_1.png", "scan_2.png"):
        (folder / name).write_bytes(b"scan")
    run = backlog_env["dag"].test(run_conf=_conf(source=str(folder)))
    assert run.state == "success"
    out = capfd.readouterr().out
    assert f"0 batch(es) in {folder}\n{folder} holds 2 file(s) (scan_1.png, scan_2.png) but no manifest.csv and " \
           "no _UNIT, so it is no batch: add a manifest.csv" in out
    assert _summary(run)["selected"] == 0


def test_filters_limit_then_resume_from_a_local_folder(backlog_env: dict[str, Any]) -> None:
    catalog = backlog_env["catalog"]
    batch = make_tiny_batch(backlog_env["root"] / "local" / "b-local", 6, start=100, corrupt=True)
    conf = _conf(source=str(batch.parent), agencies=AGENCIES[0], issued_from="2021-01-01", issued_to="2029-12-31",
                 chunk_size=1, priority="high")
    first = backlog_env["dag"].test(run_conf={**conf, "max_documents": 2})
    assert first.state == "success"
    s1 = _summary(first)
    # agency filter: docs 100, 102, 104 and the corrupt one; two processed now, two left.
    assert (s1["selected"], s1["to_process"], s1["remaining"]) == (4, 2, 2)
    assert s1["archived"] + sum(s1["quarantined"].values()) == 2
    chunks = [t for t in first.get_task_instances() if t.task_id == "process"]
    assert {t.rendered_map_index for t in chunks} == {"b-local 1/2 (1 doc)", "b-local 2/2 (1 doc)"}
    # the form's "high" through the cluster policy (plugins/airflow_local_settings.py): above the inbox's 10
    assert {t.priority_weight for t in chunks} == {20}

    second = backlog_env["dag"].test(run_conf=conf)
    assert second.state == "success"
    s2 = _summary(second)
    assert (s2["to_process"], s2["remaining"]) == (2, 0)
    docs = [d for d in catalog.documents() if d.batch_id == "b-local"]
    assert len(docs) == 4
    assert {d.agency_code for d in docs} == {AGENCIES[0]}
    assert sorted(d.status for d in docs) == ["ARCHIVED", "ARCHIVED", "ARCHIVED", "QUARANTINED"]
    assert [d.reason for d in docs if d.status == "QUARANTINED"] != [None]
    assert all(n == 1 for i, n in _workers(catalog).items() if i in {d.id for d in docs})

    third = backlog_env["dag"].test(run_conf=conf)  # nothing left: nothing redone
    assert third.state == "success"
    assert _summary(third)["to_process"] == 0
    assert all(n == 1 for i, n in _workers(catalog).items() if i in {d.id for d in docs})
    assert "backlog" not in _summary(third)["text"]


def test_backlog_under_an_s3_prefix(backlog_env: dict[str, Any]) -> None:
    from digitize.archive.s3 import S3Archive, make_s3_client

    local = make_tiny_batch(backlog_env["root"] / "to-upload" / "b-s3", 3, start=200)
    inbox = S3Archive(make_s3_client(backlog_env["s3"], credentials=("testing", "testing")), "backlog-inbox")
    inbox.ensure_bucket()
    for path in sorted(local.iterdir()):
        inbox.put(f"scans/2021/b-s3/{path.name}", path.read_bytes(), content_type="application/octet-stream")
    run = backlog_env["dag"].test(run_conf=_conf(source="s3://backlog-inbox/scans/2021/", priority="low"))
    assert run.state == "success"
    summary = _summary(run)
    assert summary["archived"] == 3 and summary["pages"] == 3
    assert summary["pages_per_minute"] > 0 and summary["slowest_stage"]
    # Operators who do not read logs find the summary in the task's Rendered Templates, written after it ran.
    assert _rendered(run, "summarize")["templates_dict"] == {"summary": summary["text"]}
    assert {t.priority_weight for t in run.get_task_instances() if t.task_id == "process"} == {1}  # "low"
    docs = [d for d in backlog_env["catalog"].documents() if d.batch_id == "b-s3"]
    assert sorted(d.status for d in docs) == ["ARCHIVED"] * 3
    archive = S3Archive(make_s3_client(backlog_env["s3"], credentials=("testing", "testing")), "backlog-archive")
    for doc in docs:
        assert archive.head(doc.pdf_key) is not None
        assert [f.name for f in doc.files] and archive.get(doc.original_keys[0]) == local.joinpath(
            doc.files[0].name).read_bytes()


def test_a_chunk_overlaps_its_documents_in_two_processes_per_ocr_slot(backlog_env: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One chunk task of five documents from S3, holding one OCR slot: two forked processes take its
    documents (one signs and archives while the other OCRs), never two Tesseracts at once. Each document
    is archived and signed once, and the task returns its outcomes in the chunk's order: heaviest first, by
    the pixels registration read from each file's headers (the third document is a larger page)."""
    from imagegen import render_page, save

    from digitize.archive.s3 import S3Archive, make_s3_client

    local = make_tiny_batch(backlog_env["root"] / "to-upload" / "b-overlap", 5, start=300)
    save(render_page(("Giấy chứng nhận số 00302", "Ủy ban nhân dân tỉnh Mẫu"), width_in=5.0, height_in=2.0,
                     font_pt=12.0), local / "doc-00302.png", fmt="PNG")
    inbox = S3Archive(make_s3_client(backlog_env["s3"], credentials=("testing", "testing")), "backlog-inbox")
    inbox.ensure_bucket()
    for path in sorted(local.iterdir()):
        inbox.put(f"overlap/b-overlap/{path.name}", path.read_bytes(), content_type="application/octet-stream")
    log = backlog_env["root"] / "ocr-overlap.log"
    monkeypatch.setenv("DIGITIZE_PLUGINS", str(REPO / "tests" / "plugins" / "timed_ocr.py"))
    monkeypatch.setenv("DIGITIZE_TEST_OCR_LOG", str(log))
    run = backlog_env["dag"].test(run_conf=_conf(source="s3://backlog-inbox/overlap/", chunk_size=5))
    assert run.state == "success"
    assert _summary(run)["archived"] == 5
    lines = [line.split() for line in log.read_text().splitlines()]
    calls = sorted((float(start), float(end), int(pid)) for pid, start, end, *_ in lines)
    assert len(calls) == 5
    assert {threads for *_, threads in lines} == {"1"}  # no OpenCV thread pool in the chunk's workers
    assert len({pid for *_, pid in calls}) == 2 and os.getpid() not in {pid for *_, pid in calls}
    assert all(end <= next_start for (_, end, _), (next_start, _, _) in itertools.pairwise(calls)), calls  # one slot
    catalog = backlog_env["catalog"]
    docs = sorted((d for d in catalog.documents() if d.batch_id == "b-overlap"), key=lambda d: d.id)
    assert [d.status for d in docs] == ["ARCHIVED"] * 5
    assert all(sum(e.event_type == "signature" for e in catalog.events(d.id)) == 1 for d in docs)
    assert all(_workers(catalog)[d.id] == 1 for d in docs)
    [task] = [t for t in run.get_task_instances() if t.task_id == "process"]
    assert [d.files[0].pixels for d in docs] == [800 * 300] * 2 + [1000 * 400] + [800 * 300] * 2  # at 200 dpi
    assert [row["document_id"] for row in task.xcom_pull(task_ids="process", map_indexes=0)] == \
        [docs[2].id, docs[0].id, docs[1].id, docs[3].id, docs[4].id]
    # the heavy one was handed out first, so it was among the first two OCR'd (one per process; which of those
    # two reaches the one OCR slot first is a race between their clean-ups)
    first_two = sorted(lines, key=lambda line: float(line[1]))[:2]
    assert max(int(line[3]) for line in lines) in {int(line[3]) for line in first_two}


def test_chunks_never_exceed_max_map_length() -> None:
    from digitize.pipeline import MAX_MAP_LENGTH, chunk_pairs, cut_chunks

    for count, per_batch in ((0, 10), (1, 10), (1024, 3), (1025, 1), (20_000, 7), (1_000_003, 5000)):
        work = [(f"s3://b/p{i // per_batch}/", i) for i in range(count)]
        chunks = cut_chunks(work, 20)
        assert len(chunks) <= MAX_MAP_LENGTH
        assert [pair for c in chunks for pair in chunk_pairs(c)] == work
        assert all(len(json.dumps(c)) < 200_000 for c in chunks)
        pixels = {i: 8_699_840 * (1 + i * 7919 % 30) for i in range(count)}  # 1-30 A4 pages, batches mixed
        chunks = cut_chunks(work, 20, pixels)
        assert len(chunks) <= MAX_MAP_LENGTH
        assert sorted(p for c in chunks for p in chunk_pairs(c)) == sorted(work)
        assert all(len(json.dumps(c)) < 200_000 for c in chunks)  # batches mixed in a chunk: each uri once
    assert cut_chunks([("/in/b1", 1), ("/in/b1", 2), ("/in/b2", 3)], 2)[0]["label"] == "b1 1/2 (2 docs)"
    assert cut_chunks([("/in/b1", 1), ("/in/b1", 2), ("/in/b2", 3)], 3)[0]["label"] == "b1 + 1/1 (3 docs)"
    assert cut_chunks([], 20) == []


def test_chunks_are_even_so_no_slot_is_left_with_a_straggler() -> None:
    from digitize.pipeline import cut_chunks

    def sizes(count: int, chunk_size: int) -> list[int]:
        return [len(c["items"]) for c in cut_chunks([("/in/b", i) for i in range(count)],
                                                                            chunk_size)]

    assert sizes(60, 50) == [30, 30]  # not 50 + 10
    assert sizes(200, 20) == [20] * 10
    assert sizes(101, 50) == [34, 34, 33]
    assert max(sizes(5_000, 50)) - min(sizes(5_000, 50)) <= 1


def _makespan(chunks: list[dict[str, Any]], weights: dict[int, int], at_once: int) -> int:
    """When the last of ``at_once`` slots ends, each taking the next chunk when it frees (as the pool does)."""
    import heapq

    from digitize.pipeline import chunk_pairs

    slots = [0] * at_once
    for chunk in chunks:
        heapq.heappush(slots, heapq.heappop(slots) + sum(weights.get(i, 0) for _, i in chunk_pairs(chunk)))
    return max(slots)


def test_chunks_are_cut_by_work_in_waves_and_list_their_heaviest_documents_first() -> None:
    """A dossier listed last no longer ends the run alone: the plan sorts the documents by pixels, cuts them in
    waves of as many chunks as run side by side, evens out the chunks of a wave, and each chunk runs its
    heaviest first."""
    import random

    from digitize.pipeline import chunk_pairs, cut_chunks

    a4 = 2480 * 3508  # pixels of an A4 page at 300 dpi
    work = [("/in/b1", i) for i in range(12)] + [("/in/b2", 12)]
    pixels = dict.fromkeys(range(12), a4) | {12: 6 * a4}  # twelve one-page scans, then a 6-page dossier

    def pages(chunks: list[dict[str, Any]]) -> list[int]:
        return [sum(pixels[i] for _, i in chunk_pairs(c)) // a4 for c in chunks]

    assert pages(cut_chunks(work, 7)) == [7, 11] and chunk_pairs(cut_chunks(work, 7)[1])[-1] == ("/in/b2", 12)
    side_by_side = cut_chunks(work, 10, pixels, at_once=2)  # two tasks at once: one wave, evened out
    assert pages(side_by_side) == [9, 9] and chunk_pairs(side_by_side[0])[0] == ("/in/b2", 12)
    assert [len(c["items"]) for c in side_by_side] == [4, 9] and side_by_side[0]["label"] == "b2 + 1/2 (4 docs)"
    assert pages(cut_chunks(work, 7, pixels, at_once=2)) == [11, 7]  # the best split with at most 7 a chunk
    one_at_a_time = cut_chunks(work, 7, pixels)  # the default deployment: the heaviest chunk first
    assert pages(one_at_a_time) == [12, 6] and chunk_pairs(one_at_a_time[0])[0] == ("/in/b2", 12)
    assert sorted(p for c in side_by_side for p in chunk_pairs(c)) == sorted(work)
    assert [len(c["items"]) for c in cut_chunks(work, 7, dict.fromkeys(range(13), a4), at_once=2)] == [7, 6]
    assert chunk_pairs(cut_chunks(work, 13, {12: a4})[0])[0] == ("/in/b2", 12)  # no weight: counted as nothing

    # bench/pipeline.py's batch (the development corpus, then 12 A4 pages) at 5 per task, two tasks at once: five
    # chunks even in pixels would leave one slot alone with a whole chunk in a third wave (1.19 × the ideal);
    # in waves, what runs alone at the end is the two lightest documents
    corpus = [a4] * 5 + [3 * a4, 2 * a4, a4 // 2, a4, 1.4 * a4] + [a4] * 12
    pixels = {i: int(weight) for i, weight in enumerate(corpus)}
    work = [("/in/bench", i) for i in range(len(corpus))]
    ideal = sum(pixels.values()) / 2
    in_waves = cut_chunks(work, 5, pixels, at_once=2)
    assert [len(c["items"]) for c in in_waves] == [5, 5, 5, 5, 2]
    assert _makespan(in_waves, pixels, 2) < min(_makespan(cut_chunks(work, 5), pixels, 2), 1.04 * ideal)

    rng = random.Random(19)
    work = [(f"s3://b/p{i // 40}/", i) for i in range(1_000)]
    pixels = {i: a4 * rng.choice((1, 1, 1, 2, 5, 30)) for i in range(1_000)}
    for chunk_size, at_once in ((50, 1), (50, 2), (50, 6), (7, 4), (1, 2), (200, 8)):
        chunks = cut_chunks(work, chunk_size, pixels, at_once=at_once)
        assert len(chunks) == len(cut_chunks(work, chunk_size))
        assert max(len(c["items"]) for c in chunks) <= chunk_size
        assert sorted((p for c in chunks for p in chunk_pairs(c)), key=lambda pair: pair[1]) == work
        for chunk in chunks:
            weights = [pixels[i] for _, i in chunk_pairs(chunk)]
            assert weights == sorted(weights, reverse=True)
        ideal = max(sum(pixels.values()) / min(at_once, len(chunks)), max(pixels.values()))
        assert _makespan(chunks, pixels, at_once) <= _makespan(cut_chunks(work, chunk_size), pixels, at_once)
        assert _makespan(chunks, pixels, at_once) < 1.1 * ideal, (chunk_size, at_once)
    assert len({c["label"] for c in cut_chunks(work, 50, pixels)}) == 20


def test_registration_records_each_originals_pixels(tmp_path: Path) -> None:
    """Pixels come from the headers of each file at registration (a folder's or an S3 batch's, which has no path
    to read them from later); the catalog sums them per document for the chunks, and leaves out the unknown."""
    from datetime import date

    from imagegen import render_page, save
    from PIL import Image

    from digitize.catalog.records import DocumentSpec, FileSpec
    from digitize.catalog.store import Catalog
    from digitize.intake import LocalBatch

    batch = tmp_path / "b"
    batch.mkdir()
    save(render_page(("Giấy chứng nhận",), width_in=4.0, height_in=1.5, font_pt=12.0), batch / "one.png", fmt="PNG")
    page = Image.new("1", (1240, 1754), 1)
    page.save(batch / "two.tif", save_all=True, append_images=[page.copy()], compression="group4", dpi=(150, 150))
    (batch / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with Image.open(batch / "one.png") as image:
        one_pixels = image.width * image.height
    source = LocalBatch(batch)
    assert source.inspect("two.tif")[1:] == ((batch / "two.tif").stat().st_size, 2 * 1240 * 1754)
    assert source.inspect("broken.jpg")[2] is None
    assert source.inspect("one.png")[2] == one_pixels

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.upgrade()
    assert catalog.import_agencies(SAMPLES / "agencies.csv").rejected == []
    ids = []
    for n, names in enumerate((("one.png",), ("one.png", "two.tif"), ("broken.jpg",))):
        files = tuple(FileSpec(i, name, sha, size, pixels) for i, (name, (sha, size, pixels)) in
                      enumerate((name, source.inspect(name)) for name in names))
        spec = DocumentSpec(batch_id=f"b{n}", agency_code=AGENCIES[0], kind="KQ", title=f"d{n}",
                            issued_date=date(2024, 1, 1), files=files)
        ids.append(catalog.register_document(spec)[0].id)
    assert catalog.document_pixels([*ids, 99_999]) == {ids[0]: one_pixels, ids[1]: one_pixels + 2 * 1240 * 1754}
    assert catalog.get_document(ids[1]).files[1].pixels == 2 * 1240 * 1754
    assert catalog.document_pixels([]) == {}


def test_signing_queue_and_alerting_are_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DIGITIZE_SIGNING_QUEUE", "signing")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    for dag_id, groups in (("digitize_backlog", ("process",)),
                           ("digitize_inbox", ("chunk",))):
        dag = bag.dags[dag_id]
        for group in groups:  # OCR anywhere, only signing on the token holder (tests/test_dags_signing_queue.py)
            prepare, sign = dag.get_task(f"{group}.prepare_chunk"), dag.get_task(f"{group}.sign_chunk")
            assert (prepare.queue, prepare.pool, sign.queue, sign.pool) == ("default", "ocr", "signing", "default_pool")
            assert prepare.on_failure_callback and sign.on_failure_callback
    assert not bag.dags["digitize_inbox"].deadline  # off unless DIGITIZE_DEADLINE_MINUTES is set
