"""The whole pipeline on the folder archive (``DIGITIZE_ARCHIVE_URL=file://…``), the default of ``make demo``.

Issue 20: the demo's S3 lived in memory, so after it (or after stopping ``make airflow``) the
catalog said ARCHIVED while the objects were gone. Here a small batch goes through the real
``digitize_inbox`` DAG (``dag.test()``) into a folder, with an Airflow S3 connection that points
at a closed port: any S3 call would fail. Then what a newcomer does next runs in fresh processes
with the same environment (``show``, ``verify``, ``search``, the rebuilds), the ``fixity_audit`` DAG
passes, the reuse API serves the PDF, and the prepare/sign split stages its work in the folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from envs import folder_archive_env
from robustness_support import NOOP_OCR, make_context, png, register, row, write_batch

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
KEPT = ("ly-lich-tu-phap.jpg", "ket-hon.tif", "bi-hong.jpg")  # two results and the truncated JPEG

pytestmark = pytest.mark.slow


def _small_batch(inbox: Path) -> Path:
    batch = inbox / "batch-folder"
    batch.mkdir(parents=True)
    with (SAMPLES / "batch" / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["file"] in KEPT]
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for name in KEPT:
        shutil.copy2(SAMPLES / "batch" / name, batch / name)
    (batch / "_READY").touch()
    return batch


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, demo_pki: Any, airflow_db: Path) -> Iterator[dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.catalog import Catalog
    from digitize.config import load_settings

    root = tmp_path_factory.mktemp("folder")
    env = folder_archive_env(
        root, demo_pki, DIGITIZE_QUIET_SECONDS="0", DIGITIZE_OCR_JOBS="2",
        # the connection `make airflow` sets up for S3 users: nothing answers there
        AIRFLOW_CONN_DIGITIZE_S3=json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        catalog = Catalog(load_settings().catalog_url)
        catalog.upgrade()
        catalog.import_agencies(SAMPLES / "agencies.csv")
        catalog.import_register(SAMPLES / "register.csv")
        inbox = root / "inbox"
        batch = _small_batch(inbox)
        bag = DagBag(dag_folder=str(REPO / "dags"))
        first = bag.dags["digitize_inbox"].test(run_conf={"inbox": str(inbox)})
        keys_after_first = sorted(p.relative_to(root / "archive").as_posix()
                                  for p in (root / "archive" / "documents").rglob("*") if p.is_file())
        second = bag.dags["digitize_inbox"].test(run_conf={"inbox": str(inbox)})
        yield {"root": root, "env": env, "catalog": catalog, "batch": batch, "bag": bag, "first": first,
               "second": second, "keys_after_first": keys_after_first, "archive": root / "archive"}
        catalog.close()


def _archived(run: dict[str, Any]) -> list[Any]:
    return sorted((d for d in run["catalog"].documents() if d.status == "ARCHIVED"), key=lambda d: d.code)


def _cli(run: dict[str, Any], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m digitize …`` in a new process, with only the settings a user's ``.env`` gives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITIZE_", "AIRFLOW_CONN_"))}
    env.update({k: v for k, v in run["env"].items() if k.startswith("DIGITIZE_")}, **extra)
    return subprocess.run([sys.executable, "-m", "digitize", *args], env=env, cwd=run["root"], text=True,
                          capture_output=True, timeout=300)


def test_the_dag_archives_into_the_folder(run: dict[str, Any]) -> None:
    assert (run["first"].state, run["second"].state) == ("success", "success")
    docs = run["catalog"].documents()
    assert sorted((d.status, d.files[0].name) for d in docs) == [
        ("ARCHIVED", "ket-hon.tif"), ("ARCHIVED", "ly-lich-tu-phap.jpg"), ("QUARANTINED", "bi-hong.jpg")]
    archive: Path = run["archive"]
    for doc in _archived(run):
        for key, sha in ((doc.pdf_key, doc.pdf_sha256), (doc.sidecar_key, doc.sidecar_sha256)):
            path = archive / key
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
            assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), "written once"
        for key in doc.original_keys:
            assert (archive / key).is_file()
    assert len(run["keys_after_first"]) == 2 * 2 + 2  # pdf + sidecar each, and the two originals
    now = sorted(p.relative_to(archive).as_posix() for p in (archive / "documents").rglob("*") if p.is_file())
    assert now == run["keys_after_first"], "the second run stores nothing again"
    assert not [p for p in archive.glob("staging/**/*") if p.is_file()], "staged work is removed"


def test_show_verify_and_search_work_from_a_new_process(run: dict[str, Any]) -> None:
    """What the README tells a newcomer to try after ``make demo``."""
    record = next(d for d in _archived(run) if d.register_id == "REG-0001")
    shown = _cli(run, "show", record.code)
    assert shown.returncode == 0 and record.code in shown.stdout and "ARCHIVED" in shown.stdout, shown.stderr
    verified = _cli(run, "verify", record.code)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    found = _cli(run, "search", "lý lịch tư pháp")
    assert found.returncode == 0 and record.code in found.stdout, found.stdout + found.stderr


def test_search_and_catalog_rebuild_read_the_folder(run: dict[str, Any]) -> None:
    rebuilt = _cli(run, "search", "rebuild")
    assert rebuilt.returncode == 0 and "indexed 2 document(s)" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
    fresh = f"sqlite:///{run['root'] / 'rebuilt.db'}"
    restored = _cli(run, "catalog", "rebuild", DIGITIZE_CATALOG_URL=fresh)
    assert restored.returncode == 0 and "restored 2 document version(s)" in restored.stdout, restored.stdout
    code = _archived(run)[0].code
    assert code in _cli(run, "show", code, DIGITIZE_CATALOG_URL=fresh).stdout


def test_fixity_audit_passes_on_the_folder(run: dict[str, Any]) -> None:
    """After a restart (new processes, nothing in memory), the audit finds every object as catalogued."""
    audit = run["bag"].dags["fixity_audit"].test(
        run_conf={"chunk_size": 200, "code_from": "", "code_to": "", "sample": 0})
    assert audit.state == "success"
    reports = list((run["archive"] / "reports" / "fixity").rglob("*.json"))
    assert reports
    report = json.loads(reports[-1].read_text(encoding="utf-8"))
    assert report["documents"] == 2 and not report["failed_documents"], report


def test_the_reuse_api_serves_the_pdf_from_the_folder(run: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from digitize import api
    from digitize.config import load_settings

    record = _archived(run)[0]
    token = api.create_token(run["catalog"], "folder-test")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in run["env"].items():
            patch.setenv(name, value)
        app = api.create_app(settings=load_settings())
        with TestClient(app) as client:
            response = client.get(f"/documents/{record.code}/pdf", headers={
                "Authorization": f"Bearer {token}", "X-Purpose": "kiem-tra"})
    assert response.status_code == 200, response.text
    assert hashlib.sha256(response.content).hexdigest() == record.pdf_sha256
    assert response.headers["content-type"] == "application/pdf"


def test_prepare_and_sign_stage_their_work_in_the_folder(tmp_path: Path, demo_pki: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The distributed split (prepare on any worker, sign on the token's) on a folder archive."""
    from digitize.archive import staging_keys
    from digitize.pipeline.stages import PREPARED, finish_document, prepare_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    folder = tmp_path / "archive"
    ctx = make_context(tmp_path, "", demo_pki, "unused", archive_url=folder.as_uri())
    files = {"giay.png": png(("GIẤY XÁC NHẬN", "Số 1/2024"))}
    batch = write_batch(tmp_path / "inbox", "batch-split", files, [row("giay.png", title="Giấy xác nhận")])
    (doc_id,) = register(ctx, batch).to_process
    assert prepare_document(ctx, doc_id, batch).status == PREPARED
    doc = ctx.catalog.get_document(doc_id)
    keys = staging_keys(doc.code, doc.version)
    assert sorted(ctx.archive.list_keys("staging/")) == sorted([keys.pdf, keys.state])
    done = finish_document(ctx, doc_id)
    assert done.status == "ARCHIVED"
    assert list(ctx.archive.list_keys("staging/")) == []
    archived = ctx.catalog.get_document(doc_id)
    assert (folder / archived.pdf_key).is_file() and (folder / archived.sidecar_key).is_file()
