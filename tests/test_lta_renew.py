"""LTA renewal with a real TSA, OCSP responder and CRLs (certomancer on 127.0.0.1) in an Object Lock bucket.

The pipeline signs a document B-LTA; renewal must write version 2 (a new document timestamp appended,
verifying offline), leave version 1 byte for byte and lock for lock as it was, point the catalog to
version 2, and keep both versions under the fixity audit. The ``lta_renew`` DAG then renews again.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_fixity import DOCUMENTS, Built, assert_thin, build_archive, s3_env
from test_signing import LocalCa, start_local_ca

REPO = Path(__file__).resolve().parent.parent
LOCK_ENV = {"DIGITIZE_S3_OBJECT_LOCK_MODE": "COMPLIANCE", "DIGITIZE_S3_RETENTION_DAYS": "KQ=3650,*=30"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCa]:
    local, stop = start_local_ca(tmp_path_factory.mktemp("lta-ca"))
    try:
        yield local
    finally:
        stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, s3_server: str, ca: LocalCa) -> Built:
    from digitize.archive import ArchiveOptions

    return build_archive(tmp_path_factory.mktemp("lta"), s3_server, "lta-archive", pkcs12=ca.pkcs12,
                         passphrase=ca.passphrase.decode(), trust_root=ca.root, documents=DOCUMENTS[:1],
                         level="B-LTA", tsa_url=ca.tsa_url, archive_options=ArchiveOptions.from_env(LOCK_ENV))


def _options(built: Built, ca: LocalCa, within_days: int = 400) -> Any:
    from digitize.preservation.lta import RenewalOptions

    return RenewalOptions(tsa_url=ca.tsa_url, trust_roots=(ca.root,), within_days=within_days)


@pytest.fixture(scope="module")
def renewed(built: Built, ca: LocalCa) -> dict[str, Any]:
    from digitize.preservation.lta import due_for_renewal, renew

    (v1,) = built.catalog.documents(status="ARCHIVED")
    head_before = built.archive.head(v1.pdf_key)
    bytes_before = built.archive.get(v1.pdf_key)
    not_yet = due_for_renewal(built.catalog, built.archive, within_days=30)  # the TSA certificate lasts a year
    due = due_for_renewal(built.catalog, built.archive, within_days=400)
    result = renew(built.catalog, built.archive, due[0].document_id, _options(built, ca))
    return {"v1": v1, "head_before": head_before, "bytes_before": bytes_before, "not_yet": not_yet, "due": due,
            "result": result}


def test_only_documents_near_expiry_are_due(renewed: dict[str, Any]) -> None:
    assert renewed["not_yet"] == []
    assert [(c.code, c.version) for c in renewed["due"]] == [(renewed["v1"].code, 1)]


def test_version_2_appends_a_timestamp_and_verifies(built: Built, ca: LocalCa, renewed: dict[str, Any]) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    from digitize.archive import document_keys
    from digitize.signing import verify_pdf

    result, v1 = renewed["result"], renewed["v1"]
    assert (result.code, result.version, result.pdf_key) == (v1.code, 2, document_keys(v1.code, 2).pdf)
    data = built.archive.get(result.pdf_key)
    assert data.startswith(renewed["bytes_before"]) and len(data) > len(renewed["bytes_before"])
    stamps = PdfFileReader(io.BytesIO(data)).embedded_timestamp_signatures
    assert len(stamps) == 2
    verdict = verify_pdf(data, [ca.root], revocation_mode="require")
    assert verdict.valid and verdict.level == "B-LTA", verdict.summary
    assert result.new_expiry >= result.previous_expiry


def test_version_1_is_untouched_and_still_locked(built: Built, renewed: dict[str, Any]) -> None:
    v1 = renewed["v1"]
    head = built.archive.head(v1.pdf_key)
    assert head == renewed["head_before"] and head.lock_mode == "COMPLIANCE"
    assert hashlib.sha256(built.archive.get(v1.pdf_key)).hexdigest() == v1.pdf_sha256
    assert built.archive.head(renewed["result"].pdf_key).lock_mode == "COMPLIANCE"
    versions = built.archive.client.list_object_versions(Bucket=built.settings.s3_bucket, Prefix=v1.pdf_key)
    assert len(versions["Versions"]) == 1 and not versions.get("DeleteMarkers")


def test_catalog_points_to_version_2_and_links_version_1(built: Built, renewed: dict[str, Any]) -> None:
    from digitize.catalog import fingerprint_of

    v1 = renewed["v1"]
    current = built.catalog.get_by_code(v1.code)
    assert current.version == 2 and current.supersedes_id == v1.id and current.id == renewed["result"].document_id
    assert current.files == v1.files and current.original_keys == v1.original_keys
    assert built.catalog.find_by_fingerprint(fingerprint_of([f.sha256 for f in v1.files])).id == v1.id
    assert built.catalog.archived_frame()["version"].tolist() == [2]
    assert "lta_renewal" in [e.event_type for e in built.catalog.events(current.id)]


def test_old_version_cannot_be_renewed_again(built: Built, ca: LocalCa, renewed: dict[str, Any]) -> None:
    from digitize.errors import CatalogConflict
    from digitize.preservation.lta import renew

    with pytest.raises(CatalogConflict):
        renew(built.catalog, built.archive, renewed["v1"].id, _options(built, ca))


def test_fixity_audit_checks_both_versions(built: Built, ca: LocalCa, renewed: dict[str, Any]) -> None:
    from digitize.preservation.fixity import audit

    report = audit(built.catalog, built.archive, trust_roots=[ca.root])
    assert report.ok, report.failures
    assert sorted({(c.code, c.version) for c in report.checks}) == [(renewed["v1"].code, 1), (renewed["v1"].code, 2)]


def test_rebuild_restores_the_renewed_version(built: Built, renewed: dict[str, Any], tmp_path: Path) -> None:
    from digitize.catalog.store import Catalog
    from digitize.preservation.fixity import rebuild_catalog

    fresh = Catalog(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    fresh.upgrade()
    rebuild_catalog(fresh, built.archive)
    before = {d.version: d for d in built.catalog.documents()}
    after = {d.version: d for d in fresh.documents()}
    assert {v: (d.fingerprint, d.pdf_sha256, d.sidecar_sha256) for v, d in after.items()} == \
        {v: (d.fingerprint, d.pdf_sha256, d.sidecar_sha256) for v, d in before.items()}
    assert after[2].supersedes_id == after[1].id


def test_renewal_on_a_folder_archive(tmp_path: Path, ca: LocalCa) -> None:
    """Version 2 goes next to version 1 in the folder (DIGITIZE_ARCHIVE_URL=file://…); both pass the audit."""
    from digitize.archive import open_archive
    from digitize.preservation.fixity import audit
    from digitize.preservation.lta import due_for_renewal, renew
    from digitize.signing import verify_pdf

    folder = open_archive((tmp_path / "archive").as_uri())
    built = build_archive(tmp_path, "", "unused", pkcs12=ca.pkcs12, passphrase=ca.passphrase.decode(),
                          trust_root=ca.root, documents=DOCUMENTS[:1], level="B-LTA", tsa_url=ca.tsa_url,
                          archive=folder)
    (v1,) = built.catalog.documents(status="ARCHIVED")
    bytes_before = (tmp_path / "archive" / v1.pdf_key).read_bytes()
    (due,) = due_for_renewal(built.catalog, folder, within_days=400)
    result = renew(built.catalog, folder, due.document_id, _options(built, ca))
    renewed = (tmp_path / "archive" / result.pdf_key).read_bytes()
    assert result.version == 2 and renewed.startswith(bytes_before) and len(renewed) > len(bytes_before)
    assert (tmp_path / "archive" / v1.pdf_key).read_bytes() == bytes_before
    assert verify_pdf(renewed, [ca.root], revocation_mode="require").level == "B-LTA"
    report = audit(built.catalog, folder, trust_roots=[ca.root])
    assert report.ok, report.failures
    assert sorted({c.version for c in report.checks}) == [1, 2]


@pytest.fixture
def dag_env(built: Built, ca: LocalCa) -> Iterator[None]:
    values = {**s3_env(built), **LOCK_ENV, "DIGITIZE_TSA_URL": ca.tsa_url}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_dag_renews_the_current_version(built: Built, renewed: dict[str, Any], airflow_db: Path, dag_env: None
                                        ) -> None:
    from airflow.dag_processing.dagbag import DagBag

    assert_thin(REPO / "dags" / "lta_renew.py")
    bag = DagBag(dag_folder=str(REPO / "dags" / "lta_renew.py"))
    assert bag.import_errors == {}
    dag = bag.dags["lta_renew"]
    assert {t.task_id for t in dag.tasks} == {"find_due", "renew_chunk", "summarize"}
    quiet = dag.test(run_conf={"within_days": 30, "max_documents": 0, "chunk_size": 50})
    assert quiet.state == "success" and built.catalog.get_by_code(renewed["v1"].code).version == 2
    run = dag.test(run_conf={"within_days": 400, "max_documents": 0, "chunk_size": 50})
    assert run.state == "success"
    current = built.catalog.get_by_code(renewed["v1"].code)
    assert current.version == 3 and current.supersedes_id == renewed["result"].document_id
