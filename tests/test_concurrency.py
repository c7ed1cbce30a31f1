"""Overlapping runs: each document is processed exactly once (claim/lease in the catalog).

Real processes race over one batch on one SQLite catalog and one moto bucket; two ``dag.test()`` runs
race a CLI run. The no-op OCR engine keeps pages cheap: the race, not OCR, is the point.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from robustness_support import (
    NOOP_OCR,
    REPO,
    make_context,
    object_versions,
    png,
    record,
    register,
    row,
    run_child,
    write_batch,
)

N_DOCS = 6


@pytest.fixture(autouse=True)
def _noop_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)


def _batch(inbox: Path, name: str = "batch-race", prefix: str = "race") -> Path:
    files = {f"{prefix}-{i}.png": png((f"Giấy số {i}", f"{prefix} {i}")) for i in range(N_DOCS)}
    return write_batch(inbox, name, files, [row(n, title=f"Giấy số {i}") for i, n in enumerate(files)])


def test_claim_is_exclusive_until_released_or_expired(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "claim-unit")
    doc_id = register(ctx, _batch(tmp_path / "inbox")).to_process[0]
    catalog = ctx.catalog
    assert catalog.claim(doc_id, "a", 60)
    assert not catalog.claim(doc_id, "b", 60)
    assert catalog.claim(doc_id, "a", 60)  # renewal by the holder
    assert catalog.get_document(doc_id).lease_owner == "a"
    catalog.release(doc_id, "b")  # not b's to release
    assert not catalog.claim(doc_id, "b", 60)
    catalog.release(doc_id, "a")
    assert catalog.claim(doc_id, "b", 0.2)
    time.sleep(0.4)
    assert catalog.claim(doc_id, "c", 60)  # b's lease expired
    assert catalog.claim(doc_id, "d", 60, take_over="c")  # c is known dead
    catalog.mark_quarantined(doc_id, "CORRUPT_FILE", "test")
    assert catalog.get_document(doc_id).lease_owner is None
    assert not catalog.claim(doc_id, "e", 60)  # only RECEIVED documents can be claimed


def test_processes_racing_on_one_batch_archive_each_document_once(tmp_path: Path, s3_server: str,
                                                                  demo_pki: Any) -> None:
    ctx = make_context(tmp_path, s3_server, demo_pki, "race-procs")
    batch = _batch(tmp_path / "inbox")
    ids = list(register(ctx, batch).to_process)
    assert len(ids) == N_DOCS
    # Three workers, each taking the whole batch in a different order.
    orders = [ids, ids[::-1], ids[N_DOCS // 2:] + ids[:N_DOCS // 2]]
    procs = [run_child(ctx.settings, batch, order, wait=False) for order in orders]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        outcomes += json.loads(out.strip().splitlines()[-1])
    statuses = Counter(o["status"] for o in outcomes)
    assert statuses["ARCHIVED"] == N_DOCS, statuses
    assert statuses["QUARANTINED"] == 0, [o for o in outcomes if o["status"] == "QUARANTINED"]
    assert statuses["SKIPPED"] == 2 * N_DOCS
    docs = ctx.catalog.documents()
    assert [d.status for d in docs] == ["ARCHIVED"] * N_DOCS
    assert len({d.code for d in docs}) == N_DOCS
    assert all(d.lease_owner is None for d in docs)
    versions = object_versions(ctx.archive, "documents/")
    assert len(versions) == 3 * N_DOCS and set(versions.values()) == {1}, versions
    for doc in docs:
        signatures = [e for e in ctx.catalog.events(doc.id) if e.event_type == "signature"]
        assert len(signatures) == 1, "a document was signed twice"
    record("concurrency", f"3 worker processes over one batch of {N_DOCS} documents",
           "ARCHIVED ×6, SKIPPED ×12", None, "each document signed and stored once, no quarantine")


def test_threads_of_one_process_race_too(tmp_path: Path, s3_server: str, demo_pki: Any) -> None:
    from digitize.pipeline.stages import PipelineContext, process_document

    ctx = make_context(tmp_path, s3_server, demo_pki, "race-threads")
    batch = _batch(tmp_path / "inbox")
    ids = list(register(ctx, batch).to_process)
    results: list[str] = []
    lock = threading.Lock()

    def worker(order: list[int]) -> None:
        own = PipelineContext(ctx.settings)
        for doc_id in order:
            outcome = process_document(own, doc_id, batch)
            with lock:
                results.append(outcome.status)

    threads = [threading.Thread(target=worker, args=(o,)) for o in (ids, ids[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(results) == {"ARCHIVED": N_DOCS, "SKIPPED": N_DOCS}
    record("concurrency", "2 threads of one process over one batch", "ARCHIVED ×6, SKIPPED ×6")


def _copy_live_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database in use through SQLite's backup API, not as a file.

    A file copy would miss what is still in the WAL, and closing its file descriptor would drop the POSIX locks
    this process's own connections hold on the database (this test process keeps Airflow's pooled connections
    open). The next process to close the database would then think itself the last user, checkpoint and
    delete the WAL under those connections, and a later test would read "database disk image is malformed".
    """
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(target)) as copy:
        live.backup(copy)


def test_two_dag_runs_and_a_cli_run_over_overlapping_batches(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                             airflow_db: Path) -> None:
    """Two ``dag.test()`` processes and ``python -m digitize process`` at once over the same batch folder."""
    from robustness_support import settings_env

    ctx = make_context(tmp_path, s3_server, demo_pki, "race-dags")
    inbox = tmp_path / "inbox"
    batch = _batch(inbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    env.update(settings_env(ctx.settings), DIGITIZE_PLUGINS=NOOP_OCR)
    env["AIRFLOW_CONN_DIGITIZE_S3"] = json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_server, "region_name": "us-east-1",
                  "config_kwargs": {"s3": {"addressing_style": "path"}}}})
    dag_script = (
        "import sys\nfrom airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag(dag_folder={str(REPO / 'dags')!r}).dags['digitize_inbox']\n"
        "import pendulum\n"
        "day = pendulum.datetime(2026, 2, 1 + int(sys.argv[2]), tz='UTC')\n"
        "run = dag.test(run_conf={'inbox': sys.argv[1], 'chunk_size': 2}, logical_date=day)\n"
        "print('STATE', run.state)\n")
    # Each DAG run gets its own copy of Airflow's (SQLite) metadata database, as two deployments would:
    # what is shared, and under test, is the catalog and the archive. (Two dag.test() processes on one
    # SQLite metadata database trip over each other inside Airflow, which is not what this test is about.)
    procs = []
    for n in range(2):
        own = tmp_path / f"airflow-{n}.db"
        _copy_live_sqlite(airflow_db / "airflow.db", own)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", dag_script, str(inbox), str(n)], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{own}"}))
    procs.append(subprocess.Popen([sys.executable, "-m", "digitize", "process", str(batch), "--quiet"], env=env,
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    assert all("STATE success" in out for out in outputs[:2]), [o[-2000:] for o in outputs[:2]]
    docs = ctx.catalog.documents()
    assert len(docs) == N_DOCS and {d.status for d in docs} == {"ARCHIVED"}
    versions = object_versions(ctx.archive, "documents/")
    assert len(versions) == 3 * N_DOCS and set(versions.values()) == {1}
    record("concurrency", "2 dag.test() runs + 1 CLI run over the same batch", "ARCHIVED ×6", None,
           "no duplicate object, no quarantine")
