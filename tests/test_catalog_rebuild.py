"""The archive is the source of truth: drop the catalog, rebuild it from the sidecars, compare field by field."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_fixity import Built, build_archive

from digitize.clock import business_today

# What the sidecar cannot carry, so the rebuilt catalog cannot reproduce: the database's own ids (versions
# are linked again by code and version instead) and the archiving instant (the sidecar is written
# milliseconds before the catalog marks the document archived).
NOT_IN_SIDECAR = {"id", "supersedes_id", "archived_at"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> Built:
    """Three documents, then a correction of the first one (version 2 with a new scan)."""
    from imagegen import render_page, save

    from digitize.catalog.store import DocumentSpec, FileSpec
    from digitize.checksums import sha256_file
    from digitize.pipeline.stages import PipelineContext, process_document

    built = build_archive(tmp_path_factory.mktemp("rebuild"), s3_server, "rebuild-archive", pkcs12=demo_pki.pkcs12,
                          passphrase=demo_pki.passphrase, trust_root=demo_pki.root_cert)
    first = min(built.catalog.documents(status="ARCHIVED"), key=lambda d: d.code)
    batch = built.root / "inbox" / "correction"
    batch.mkdir()
    scan = save(render_page(("PHIẾU LÝ LỊCH TƯ PHÁP", "Bản đính chính", "Số 1/2024")), batch / "dinh-chinh.png")
    spec = DocumentSpec(batch_id="correction", files=(FileSpec(0, scan.name, sha256_file(scan), scan.stat().st_size),),
                        agency_code=first.agency_code, kind=first.kind, title=first.title + " (đính chính)",
                        issued_date=first.issued_date, register_id=first.register_id)
    correction, created = built.catalog.supersede(first.id, spec, actor="cán bộ lưu trữ", reason="sai ngày cấp")
    assert created
    outcome = process_document(PipelineContext(built.settings), correction.id, batch)
    assert (outcome.status, outcome.code) == ("ARCHIVED", first.code)
    return built


def _by_version(catalog: Any) -> dict[tuple[str, int], Any]:
    return {(d.code, d.version): d for d in catalog.documents()}


def _sequences(url: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return db.execute("SELECT agency_code, kind, year, next_seq FROM code_sequences ORDER BY 1, 2, 3").fetchall()


@pytest.fixture(scope="module")
def rebuilt(built: Built, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, int, str]:
    """An empty catalog rebuilt by ``python -m digitize catalog rebuild`` (in-process)."""
    from digitize.catalog.store import Catalog
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path_factory.mktemp('fresh') / 'rebuilt.db'}"
    mp = pytest.MonkeyPatch()
    s = built.settings
    for key, value in {"DIGITIZE_CATALOG_URL": url, "DIGITIZE_S3_ENDPOINT_URL": s.s3_endpoint_url,
                       "DIGITIZE_S3_BUCKET": s.s3_bucket}.items():
        mp.setenv(key, value)
    try:
        status = main(["catalog", "rebuild"])
        again = main(["catalog", "rebuild"])  # refuses a catalog that already holds documents
    finally:
        mp.undo()
    assert again == 1
    return Catalog(url), status, url


def test_rebuild_reproduces_every_document_version_field_by_field(built: Built, rebuilt: tuple[Any, int, str]
                                                                  ) -> None:
    catalog, status, _url = rebuilt
    assert status == 0
    original, restored = _by_version(built.catalog), _by_version(catalog)
    assert sorted(restored) == sorted(original) and len(original) == 4
    for key, before in original.items():
        after = restored[key]
        for name in (f.name for f in dataclasses.fields(before)):
            if name not in NOT_IN_SIDECAR:
                assert getattr(after, name) == getattr(before, name), (key, name)
        assert after.archived_at is not None and abs((after.archived_at - before.archived_at).total_seconds()) < 60


def test_versions_are_linked_again(built: Built, rebuilt: tuple[Any, int, str]) -> None:
    catalog = rebuilt[0]
    restored = _by_version(catalog)
    (code, _), = [k for k in restored if k[1] == 2]
    assert restored[code, 2].supersedes_id == restored[code, 1].id
    assert catalog.get_by_code(code).version == 2
    assert len(catalog.archived_frame()) == 3  # coverage counts each code once


def test_code_sequences_match_and_allocation_continues(built: Built, rebuilt: tuple[Any, int, str]) -> None:
    from digitize.catalog.store import DocumentSpec, FileSpec

    catalog, _status, url = rebuilt
    assert _sequences(url) == _sequences(built.settings.catalog_url)
    catalog.import_agencies(Path(__file__).resolve().parent.parent / "samples" / "agencies.csv")
    spec = DocumentSpec(batch_id="after-rebuild", files=(FileSpec(0, "new.png", "ab" * 32, 10),),
                        agency_code="000.00.12.H99", kind="KQ", title="Tài liệu mới", issued_date=date(2024, 1, 1))
    record, _ = catalog.register_document(spec)
    year = business_today().year  # the codes' year is Vietnam's
    assert catalog.allocate_code(record.id, template=built.settings.code_template, year=year) == \
        f"000.00.12.H99.{year}.KQ.000003"


def test_rebuilt_catalog_passes_a_fixity_audit(built: Built, rebuilt: tuple[Any, int, str]) -> None:
    from digitize.preservation.fixity import audit

    catalog = rebuilt[0]
    report = audit(catalog, built.archive, trust_roots=[built.trust_root])
    assert report.ok and report.documents == 4, report.failures
    for document in catalog.documents(status="ARCHIVED"):
        assert "catalog_rebuild" in [e.event_type for e in catalog.events(document.id)]
