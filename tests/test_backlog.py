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
    assert {t.rendered_map_index for t in chunks} == {"b-local docs 1-1", "b-local docs 2-2"}
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
    is archived and signed once, and the task returns its outcomes in the chunk's order."""
    from digitize.archive.s3 import S3Archive, make_s3_client

    local = make_tiny_batch(backlog_env["root"] / "to-upload" / "b-overlap", 5, start=300)
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
    assert [row["document_id"] for row in task.xcom_pull(task_ids="process", map_indexes=0)] == \
        [d.id for d in docs]


def test_chunks_never_exceed_max_map_length() -> None:
    from digitize.pipeline import MAX_MAP_LENGTH, cut_chunks

    for count, per_batch in ((0, 10), (1, 10), (1024, 3), (1025, 1), (20_000, 7), (1_000_003, 5000)):
        work = [(f"s3://b/p{i // per_batch}/", i) for i in range(count)]
        chunks = cut_chunks(work, 20)
        assert len(chunks) <= MAX_MAP_LENGTH
        assert [(p["batch"], i) for c in chunks for p in c["parts"] for i in p["ids"]] == work
        assert all(len(json.dumps(c)) < 200_000 for c in chunks)
    assert cut_chunks([("/in/b1", 1), ("/in/b1", 2), ("/in/b2", 3)], 2)[0]["label"] == "b1 docs 1-2"
    assert cut_chunks([], 20) == []


def test_chunks_are_even_so_no_slot_is_left_with_a_straggler() -> None:
    from digitize.pipeline import cut_chunks

    def sizes(count: int, chunk_size: int) -> list[int]:
        return [sum(len(p["ids"]) for p in c["parts"]) for c in cut_chunks([("/in/b", i) for i in range(count)],
                                                                            chunk_size)]

    assert sizes(60, 50) == [30, 30]  # not 50 + 10
    assert sizes(200, 20) == [20] * 10
    assert sizes(101, 50) == [34, 34, 33]
    assert max(sizes(5_000, 50)) - min(sizes(5_000, 50)) <= 1


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
