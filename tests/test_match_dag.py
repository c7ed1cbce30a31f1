"""``DIGITIZE_AUTO_MATCH=accepted`` in the real ``digitize_inbox`` DAG (``dag.test()``): a batch of scans without
manifest nor cover sheets gets its manifest from the scans matched with certainty, those are archived, and
the others wait in the folder for the review page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import matchgen

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_the_inbox_dag_matches_a_batch_without_manifest(tmp_path: Path, demo_pki: Any, airflow_db: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from digitize.config import load_settings

    for name, value in {
        "DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "DIGITIZE_ARCHIVE_URL": (tmp_path / "archive").as_uri(), "DIGITIZE_OCR_JOBS": "2",
        "DIGITIZE_SIGNING_PKCS12": str(demo_pki.pkcs12), "DIGITIZE_SIGNING_PASSPHRASE": demo_pki.passphrase,
        "DIGITIZE_TRUST_ROOTS": str(demo_pki.root_cert), "DIGITIZE_QUIET_SECONDS": "0",
        "DIGITIZE_AUTO_MATCH": "accepted",
        "AIRFLOW_CONN_DIGITIZE_S3": json.dumps({  # nothing answers there: the folder archive is used
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "archive").mkdir()
    catalog, batch, scans = matchgen.office_with_register(tmp_path, load_settings().catalog_url, 4, "khong-phieu")
    (batch / "_READY").touch()

    run = DagBag(dag_folder=str(REPO / "dags")).dags["digitize_inbox"].test(
        run_conf={"inbox": str(tmp_path / "inbox")})
    assert run.state == "success"
    keyed = {f"scan-{i}.png": s.row.register_id for i, s in enumerate(scans)
             if s.legible("holder_id") or s.legible("dossier_code")}
    assert keyed and len(keyed) < len(scans)  # some matched with certainty, some not
    archived = {d.files[0].name: d.register_id for d in catalog.documents(status="ARCHIVED")}
    assert archived == keyed
    assert not [d for d in catalog.documents() if d.status != "ARCHIVED"]
    assert {p.name for p in batch.glob("scan-*.png")} == {f"scan-{i}.png" for i in range(len(scans))}  # none moved
    refused = [e for e in catalog.batch_events("khong-phieu") if e.event_type == "stack_split"]
    assert not refused  # matched, never taken for a stack
    catalog.close()
