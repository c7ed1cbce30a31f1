"""DIGITIZE_SIGNING_QUEUE set: the DAGs split each chunk into prepare (any worker) and sign (that queue).

Real ``dag.test()`` runs of digitize_inbox and digitize_backlog (Tesseract on tiny scans, pyHanko,
moto over HTTP, SQLite catalog). ``dag.test()`` runs every task in-process whatever its queue, so
the queue itself is checked on the parsed DAG and the hand-over through the bucket on the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_backlog import make_tiny_batch

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split_env(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any, airflow_db: Path
              ) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.archive.s3 import S3Archive
    from digitize.catalog.store import Catalog
    from digitize.config import load_settings

    root = tmp_path_factory.mktemp("split")
    env = {
        "DIGITIZE_SIGNING_QUEUE": "signing",
        "DIGITIZE_CATALOG_URL": f"sqlite:///{root / 'catalog.db'}",
        "DIGITIZE_S3_ENDPOINT_URL": s3_server,
        "DIGITIZE_S3_BUCKET": "split-dag-archive",
        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12),
        "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert),
        "DIGITIZE_SIGNING_STAMP": "false",
        "DIGITIZE_QUIET_SECONDS": "0",
        "DIGITIZE_OCR_JOBS": "1",
        "AIRFLOW_CONN_DIGITIZE_S3": json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
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
        archive = S3Archive.from_settings(settings)
        archive.ensure_bucket()
        bag = DagBag(dag_folder=str(REPO / "dags"))
        assert not bag.import_errors
        yield {"catalog": catalog, "archive": archive, "settings": settings, "root": root, "bag": bag}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _summary(run: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.query(XComModel.value).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id="summarize",
                                                         key="return_value").scalar()
    return json.loads(value) if isinstance(value, str) else value


def _assert_signed_and_unstaged(env: dict[str, Any], docs: list[Any]) -> None:
    from digitize.signing import verify_pdf

    for doc in docs:
        verdict = verify_pdf(env["archive"].get(doc.pdf_key), env["settings"].trust_roots)
        assert verdict.valid, verdict.summary
        assert [env["archive"].head(k) is not None for k in (doc.sidecar_key, *doc.original_keys)] == [True, True]
    assert list(env["archive"].list_keys("staging/")) == []


def test_only_the_sign_tasks_go_to_the_signing_queue(split_env: dict[str, Any]) -> None:
    bag = split_env["bag"]
    for dag_id, groups in (("digitize_inbox", ("chunk",)),
                           ("digitize_backlog", ("process",))):
        dag = bag.dags[dag_id]
        assert not {"process", "process_chunk"} & {t.task_id for t in dag.tasks}  # only the group's two tasks
        for group in groups:
            prepare, sign = dag.get_task(f"{group}.prepare_chunk"), dag.get_task(f"{group}.sign_chunk")
            assert (prepare.queue, prepare.pool) == ("default", "ocr")
            assert (sign.queue, sign.pool, sign.pool_slots) == ("signing", "default_pool", 1)
            assert prepare.priority_weight == sign.priority_weight
            assert prepare.map_index_template == sign.map_index_template == "{{ chunk_label }}"
            assert prepare.on_failure_callback and sign.on_failure_callback
            assert f"{group}.prepare_chunk" in sign.upstream_task_ids


def test_inbox_run_prepares_then_signs_and_leaves_nothing_staged(split_env: dict[str, Any]) -> None:
    from digitize.intake.manifest import read_manifest
    from digitize.pipeline import PipelineContext, prepare_document, register_batch
    from digitize.pipeline.stages import PREPARED

    catalog = split_env["catalog"]
    inbox = split_env["root"] / "inbox"
    batch = make_tiny_batch(inbox / "b-split", 3, start=300, corrupt=True)
    (batch / "_READY").touch()
    # an earlier run prepared the first document, then its signing task never ran (token machine off)
    ctx = PipelineContext(split_env["settings"], archive=split_env["archive"])
    early = register_batch(catalog, read_manifest(batch)).to_process[0]
    assert prepare_document(ctx, early, batch).status == PREPARED
    assert list(split_env["archive"].list_keys("staging/"))

    run = split_env["bag"].dags["digitize_inbox"].test(run_conf={"inbox": str(inbox), "batch": "b-split",
                                                                 "chunk_size": 2})
    assert run.state == "success"
    tis = run.get_task_instances()
    for task_id in ("chunk.prepare_chunk", "chunk.sign_chunk"):
        assert sorted(t.rendered_map_index for t in tis if t.task_id == task_id) == ["b-split 1/2 (2 docs)",
                                                                                   "b-split 2/2 (2 docs)"]
        assert {t.state for t in tis if t.task_id == task_id} == {"success"}
    docs = [d for d in catalog.documents() if d.batch_id == "b-split"]
    assert sorted(d.status for d in docs) == ["ARCHIVED"] * 3 + ["QUARANTINED"]
    assert [d.reason for d in docs if d.status == "QUARANTINED"] == ["CORRUPT_FILE"]
    archived = [d for d in docs if d.status == "ARCHIVED"]
    _assert_signed_and_unstaged(split_env, archived)
    assert all(sum(e.event_type == "ocr" for e in catalog.events(d.id)) == 1 for d in archived)
    assert sum(e.event_type == "processing_resumed" for e in catalog.events(early)) == 0
    summary = _summary(run)
    assert (summary["archived"], summary["quarantined"], summary["pages"]) == (3, {"CORRUPT_FILE": 1}, 3)
    assert summary["slowest_stage"]


def test_backlog_run_prepares_then_signs(split_env: dict[str, Any]) -> None:
    catalog = split_env["catalog"]
    batch = make_tiny_batch(split_env["root"] / "backlog" / "b-backlog", 2, start=400)
    conf = {"source": str(batch.parent), "agencies": "", "issued_from": None, "issued_to": None,
            "max_documents": 0, "priority": "high", "chunk_size": 1, "dry_run": False}
    run = split_env["bag"].dags["digitize_backlog"].test(run_conf=conf)
    assert run.state == "success"
    tis = run.get_task_instances()
    signs = [t for t in tis if t.task_id == "process.sign_chunk"]
    assert sorted(t.rendered_map_index for t in signs) == ["b-backlog 1/2 (1 doc)", "b-backlog 2/2 (1 doc)"]
    assert {t.priority_weight for t in signs} == {20}  # the form's "high", on the signing queue too
    docs = [d for d in catalog.documents() if d.batch_id == "b-backlog"]
    assert sorted(d.status for d in docs) == ["ARCHIVED", "ARCHIVED"]
    _assert_signed_and_unstaged(split_env, docs)
    workers = [sorted(e.detail.rsplit(" ", 1)[-1] for e in catalog.events(d.id) if e.event_type == "processing_worker")
               for d in docs]
    assert workers == [["(prepare)", "(sign)"]] * 2
    assert _summary(run)["archived"] == 2
