"""The Celery profile for real: scripts/cluster.sh (Redis, PostgreSQL, two Celery workers, scheduler, api-server,
dag-processor, triggerer) runs a small backlog from an S3 prefix through digitize_backlog.

Asserts the run succeeds, every document is archived exactly once, the work was spread over more
than one worker, and stopping the script stops every process it started. Installs what it needs
(the Celery provider and its pins, Debian's redis-server and postgresql) on a fresh machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CELERY_PINS = ("apache-airflow-providers-celery==3.26.0", "celery[redis]==5.6.3")
DOCUMENTS = 8

pytestmark = pytest.mark.slow


def _ensure_celery() -> None:
    try:
        import airflow.providers.celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *CELERY_PINS], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_pki: Any) -> Iterator[dict[str, Any]]:
    yield from start_cluster(tmp_path_factory, demo_pki)


def start_cluster(tmp_path_factory: pytest.TempPathFactory, demo_pki: Any, extra_env: dict[str, str] | None = None
                  ) -> Iterator[dict[str, Any]]:
    """scripts/cluster.sh with the test PKI (plus ``extra_env``), until the generator is closed."""
    _ensure_celery()
    root = Path("/tmp") / f"digitize-cluster-{os.getpid()}"  # PostgreSQL (user postgres) must reach it
    home = tmp_path_factory.mktemp("cluster-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__DATABASE__", "DIGITIZE_"))}
    env.update({
        "CLUSTER_DIR": str(root), "CLUSTER_API_PORT": str(_free_port()), "CLUSTER_WORKERS": "2",
        "AIRFLOW_HOME": str(home), "POSTGRES_FSYNC": "off",
        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12), "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert), "DIGITIZE_SIGNING_STAMP": "false",
        "DIGITIZE_OCR_JOBS": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        **(extra_env or {}),
    })
    log = (home / "cluster.out").open("w")
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "cluster.sh")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = root / "ready"
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert proc.poll() is None, (home / "cluster.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "cluster not ready in 240 s"
            time.sleep(1)
        info = dict(line.split("=", 1) for line in ready.read_text().splitlines() if "=" in line)
        client_env = {**env, **info}
        yield {"proc": proc, "env": client_env, "info": info, "root": root, "home": home}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # what Ctrl-C does to the script's trap
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _run_state(env: dict[str, str], run_id: str) -> dict[str, Any] | None:
    """The run as ``airflow dags list-runs -o json`` reports it (its JSON is the line that starts with '[')."""
    done = _airflow(env, "dags", "list-runs", "digitize_backlog", "-o", "json")
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")] if done.returncode == 0 else []
    runs = json.loads(lines[-1]) if lines else []
    return next((r for r in runs if r["run_id"] == run_id), None)


def _start(env: dict[str, str], run_id: str, conf: dict[str, Any]) -> None:
    """Unpause (other DAGs stay paused, so they take no worker slot) and trigger once the DAG is parsed."""
    started = time.monotonic()
    while _airflow(env, "dags", "unpause", "digitize_backlog").returncode != 0 or _airflow(
            env, "dags", "trigger", "digitize_backlog", "--run-id", run_id, "--conf", json.dumps(conf)).returncode:
        if time.monotonic() - started > 180:
            raise TimeoutError("digitize_backlog was not parsed in 180 s")
        time.sleep(2)


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv" / "bin" / "airflow"), *args], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def backlog_run(cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_backlog(cluster, tmp_path_factory)


def run_backlog(cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A backlog of DOCUMENTS tiny scans from an S3 prefix through the cluster's digitize_backlog."""
    from test_backlog import make_tiny_batch

    from digitize.archive.s3 import S3Archive, make_s3_client

    env = cluster["env"]
    local = make_tiny_batch(tmp_path_factory.mktemp("cluster-batch") / "cluster-b1", DOCUMENTS, start=500)
    inbox = S3Archive(make_s3_client(env["DIGITIZE_S3_ENDPOINT_URL"], credentials=("testing", "testing")), "inbox")
    inbox.ensure_bucket()
    for path in sorted(local.iterdir()):
        inbox.put(f"backlog/cluster-b1/{path.name}", path.read_bytes(), content_type="application/octet-stream")
    # Chunks of two: each Celery task forks its document workers (a daemonic process's children).
    conf = {"source": "s3://inbox/backlog/", "chunk_size": 2, "priority": "high"}
    started = time.monotonic()
    _start(env, "cluster-test", conf)
    state = ""
    while time.monotonic() - started < 300:
        run = _run_state(env, "cluster-test")
        state = run["state"] if run else ""
        if state in ("success", "failed"):
            break
        time.sleep(3)
    return {"state": state, "seconds": time.monotonic() - started, "local": local}


def test_backlog_runs_through_two_celery_workers(cluster: dict[str, Any], backlog_run: dict[str, Any]) -> None:
    from digitize.catalog.store import Catalog

    logs = cluster["root"] / "logs"
    assert backlog_run["state"] == "success", (logs / "scheduler.log").read_text()[-3000:]
    catalog = Catalog(cluster["info"]["DIGITIZE_CATALOG_URL"])
    docs = [d for d in catalog.documents() if d.batch_id == "cluster-b1"]
    assert len(docs) == DOCUMENTS
    assert {d.status for d in docs} == {"ARCHIVED"}
    assert len({d.code for d in docs}) == DOCUMENTS
    workers: dict[int, list[str]] = {
        d.id: [e.detail for e in catalog.events(d.id) if e.event_type == "processing_worker"] for d in docs}
    assert all(len(w) == 1 for w in workers.values()), workers  # processed exactly once
    signatures = {d.id: sum(e.event_type == "signature" for e in catalog.events(d.id)) for d in docs}
    assert set(signatures.values()) == {1}, signatures
    names = {w[0].split()[-1].split(":")[0] for w in workers.values()}
    assert names == {"worker1", "worker2"}, workers  # both Celery workers took chunks
    for name in ("worker1", "worker2"):
        assert "execute_workload" in (logs / f"{name}.log").read_text()
    # The form's "high" reached the scheduler's queue through the cluster policy; the summary shows in the UI.
    import psycopg

    url = cluster["info"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        weights = conn.execute("SELECT DISTINCT priority_weight FROM task_instance WHERE run_id = 'cluster-test' "
                               "AND task_id = 'process'").fetchall()
        rendered = conn.execute("SELECT rendered_fields FROM rendered_task_instance_fields WHERE "
                                "run_id = 'cluster-test' AND task_id = 'summarize'").fetchone()
    assert weights == [(20,)]
    assert f"archived: {DOCUMENTS}" in rendered[0]["templates_dict"]["summary"], rendered
    # The dag-processor parsed every DAG, the inbox with its DeadlineAlert (cluster.sh turns it on).
    errors = _airflow(cluster["env"], "dags", "list-import-errors", "-o", "json")
    listed = [line for line in errors.stdout.splitlines() if line.startswith("[")]
    assert errors.returncode == 0 and listed == ["[]"], errors.stdout + errors.stderr


def test_ctrl_c_stops_every_process(cluster: dict[str, Any], backlog_run: dict[str, Any]) -> None:
    proc = cluster["proc"]
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=90)
    groups = [int(line.split()[0]) for line in (cluster["root"] / "pids").read_text().splitlines()]
    assert len(groups) == 8  # redis, s3, api-server, scheduler, dag-processor, triggerer, 2 workers
    assert [g for g in groups if _group_alive(g)] == []
    assert subprocess.run(["pgrep", "-f", str(cluster["root"])], capture_output=True).returncode == 1
    assert not _group_alive(proc.pid)
    assert not (cluster["root"] / "ready").exists()
