"""The Celery profile with DIGITIZE_SIGNING_QUEUE=signing: OCR on any worker, signing on worker1 only.

Same cluster as tests/test_cluster.py (scripts/cluster.sh: Redis, PostgreSQL, two Celery workers),
where worker1 stands for the machine holding the token: only it serves the ``signing`` queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cluster import DOCUMENTS, run_backlog, start_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def signing_cluster(tmp_path_factory: pytest.TempPathFactory, demo_pki: Any) -> Iterator[dict[str, Any]]:
    yield from start_cluster(tmp_path_factory, demo_pki, {"DIGITIZE_SIGNING_QUEUE": "signing"})


def _queues(worker_log: Path) -> list[str]:
    """The queues a Celery worker consumes, from the banner it prints at start-up."""
    banner = worker_log.read_text().split("[queues]", 1)[1].split("[tasks]", 1)[0]
    return [line.split()[1] for line in banner.splitlines() if ".>" in line]


def test_sign_tasks_run_on_the_token_holder_and_ocr_on_any_worker(signing_cluster: dict[str, Any],
                                                                     tmp_path_factory: pytest.TempPathFactory
                                                                     ) -> None:
    from digitize.archive.s3 import S3Archive, make_s3_client
    from digitize.catalog.store import Catalog

    run = run_backlog(signing_cluster, tmp_path_factory)
    logs = signing_cluster["root"] / "logs"
    assert run["state"] == "success", (logs / "scheduler.log").read_text()[-3000:]
    catalog = Catalog(signing_cluster["info"]["DIGITIZE_CATALOG_URL"])
    docs = [d for d in catalog.documents() if d.batch_id == "cluster-b1"]
    assert len(docs) == DOCUMENTS and {d.status for d in docs} == {"ARCHIVED"}
    stages: dict[str, set[str]] = {"(prepare)": set(), "(sign)": set()}
    for doc in docs:
        details = [e.detail.split() for e in catalog.events(doc.id) if e.event_type == "processing_worker"]
        assert sorted(d[-1] for d in details) == ["(prepare)", "(sign)"], details  # each stage exactly once
        for detail in details:
            stages[detail[-1]].add(detail[1].split(":")[0])
        assert [sum(e.event_type == t for e in catalog.events(doc.id)) for t in ("ocr", "signature")] == [1, 1]
    # Signing only where the token is; OCR not tied to it. Whether worker1 also gets OCR work in a run
    # this small depends on timing (it is often busy signing), so its queues are read from its banner.
    assert stages["(sign)"] == {"worker1"} and "worker2" in stages["(prepare)"], stages
    assert [_queues(logs / "worker1.log"), _queues(logs / "worker2.log")] == [["default", "signing"], ["default"]]
    archive = S3Archive(make_s3_client(signing_cluster["env"]["DIGITIZE_S3_ENDPOINT_URL"],
                                       credentials=("testing", "testing")), "digitize-archive")
    assert list(archive.list_keys("staging/")) == []
